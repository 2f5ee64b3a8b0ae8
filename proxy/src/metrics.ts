// Prometheus metrics for the admin port. Every label value comes from a closed set (route table,
// normalised method, status class, user-agent category), so series cannot grow with traffic.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { RequestMetrics } from './request-metrics.ts';
import type { UpstreamFailureKind } from './errors.ts';
import type { DroppedSpans } from './tracing.ts';
import type { LabelDrop } from './profiling/tagging.ts';

export interface RequestSample {
  readonly handler: string;
  readonly method: string;
  readonly status: number;
  readonly userAgent: string;
  readonly durationSeconds: number;
}

export interface ProxyMetrics {
  readonly registry: Registry;
  recordRequest(sample: RequestSample): void;
  recordUpstreamError(kind: UpstreamFailureKind): void;
  recordDroppedSpans(reason: keyof DroppedSpans, count: number): void;
  /** Where `spanscope_requests_in_flight` reads its value at each scrape. */
  readInFlightFrom(read: () => number): void;
  /** One request to the tagging endpoint (or one in-process profile): taken, or refused and why. */
  recordIngest(result: IngestResult): void;
  /** Labels the tagging endpoint removed, by name and place. */
  recordDroppedLabels(drops: readonly LabelDrop[]): void;
  /** Profiles that never reached Pyroscope or the store, by reason. */
  recordDroppedProfiles(reason: string, count: number): void;
  /** Profiles delivered to Pyroscope. */
  recordForwardedProfile(): void;
  /** A failed attempt to deliver a profile, to be tried again. */
  recordForwardRetry(reason: string): void;
}

export type IngestResult = 'accepted' | 'rejected' | 'too_large';

/** Label names come from senders: past this many distinct ones, the rest count as `other`. */
const MAX_DROPPED_LABEL_NAMES = 64;

// Tuned to a sidecar: most proxied requests take well under 100 ms.
const DURATION_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createMetrics(): ProxyMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const requests = new RequestMetrics(registry, {
    countName: 'spanscope_requests_total',
    countHelp: 'Requests handled by the proxy, by handler, method, status class and user-agent category.',
    durationName: 'spanscope_request_duration_seconds',
    durationHelp: 'Time from the request reaching the proxy to the last response byte written.',
    buckets: DURATION_BUCKETS,
  });
  const upstreamErrors = new Counter({
    name: 'spanscope_upstream_errors_total',
    help: 'Forwarding failures by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const droppedSpans = new Counter({
    name: 'spanscope_dropped_spans_total',
    help: 'Spans dropped instead of exported: queue_full (collector slow or down) or export_failed.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  // Read at scrape time from the handler's own count: nothing is paid per request.
  let readInFlight = () => 0;
  new Gauge({
    name: 'spanscope_requests_in_flight',
    help: 'Requests being proxied now.',
    registers: [registry],
    collect() {
      this.set(readInFlight());
    },
  });
  for (const kind of [
    'upstream_unavailable',
    'upstream_timeout',
    'upstream_reset',
    'client_abort',
  ] as const) {
    upstreamErrors.labels(kind).inc(0);
  }
  for (const reason of ['queue_full', 'export_failed'] as const) droppedSpans.labels(reason).inc(0);
  const ingested = new Counter({
    name: 'spanscope_ingest_profiles_total',
    help: 'Profiles received by the tagging endpoint (POST /ingest and the proxy own), by result.',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['accepted', 'rejected', 'too_large'] as const) ingested.labels(result).inc(0);
  const droppedLabels = new Counter({
    name: 'spanscope_ingest_labels_dropped_total',
    help: 'Labels removed by the tagging endpoint: series tags (per profile) and sample labels (per sample) outside the label scheme.',
    labelNames: ['label', 'where'] as const,
    registers: [registry],
  });
  const droppedProfiles = new Counter({
    name: 'spanscope_profiles_dropped_total',
    help: 'Profiles that reached neither Pyroscope nor the local store, by reason.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const forwarded = new Counter({
    name: 'spanscope_profiles_forwarded_total',
    help: 'Profiles delivered to Pyroscope by the tagging endpoint.',
    registers: [registry],
  });
  const forwardRetries = new Counter({
    name: 'spanscope_profile_forward_retries_total',
    help: 'Failed attempts to deliver a profile to Pyroscope, retried: network, timeout, server_error, throttled.',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const seenLabelNames = new Set<string>();

  return {
    registry,
    recordRequest({ handler, method, status, userAgent, durationSeconds }) {
      requests.record(handler, method, status, userAgent, durationSeconds);
    },
    recordUpstreamError(kind) {
      upstreamErrors.labels(kind).inc();
    },
    recordDroppedSpans(reason, count) {
      droppedSpans.labels(reason).inc(count);
    },
    readInFlightFrom(read) {
      readInFlight = read;
    },
    recordIngest(result) {
      ingested.labels(result).inc();
    },
    recordDroppedLabels(drops) {
      for (const { label, where, count } of drops) {
        if (!seenLabelNames.has(label) && seenLabelNames.size < MAX_DROPPED_LABEL_NAMES)
          seenLabelNames.add(label);
        droppedLabels.labels(seenLabelNames.has(label) ? label : 'other', where).inc(count);
      }
    },
    recordDroppedProfiles(reason, count) {
      droppedProfiles.labels(reason).inc(count);
    },
    recordForwardedProfile() {
      forwarded.inc();
    },
    recordForwardRetry(reason) {
      forwardRetries.labels(reason).inc();
    },
  };
}
