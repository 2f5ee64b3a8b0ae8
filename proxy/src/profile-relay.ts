// The pod's tagging endpoint put together: profiles come in (the backend's over POST /ingest, the
// proxy's own in-process), are read, policed and tagged (profiling/tagging.ts), and go out to
// Pyroscope through a bounded retry queue (profiling/forwarder.ts) or, with no
// PYROSCOPE_SERVER_ADDRESS, into the local store served at GET /debug/pprof.
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import type { AdminAnswer } from './admin-server.ts';
import { jsonAnswer } from './admin-server.ts';
import type { ProxyConfig } from './config.ts';
import type { ProxyMetrics } from './metrics.ts';
import { createForwarder } from './profiling/forwarder.ts';
import type { Forwarder } from './profiling/forwarder.ts';
import { LocalProfileStore, parseProfileQuery } from './profiling/profile-store.ts';
import { ingestLocal, policeAndTag, readIngestRequest, sharedTagsFrom } from './profiling/tagging.ts';
import type { IngestedProfile, TaggingPolicy } from './profiling/tagging.ts';
import type { ProfileUpload } from './profiling/upload.ts';
import { ProfileFormatError } from './profiling/pprof-merge.ts';
import { IngestError } from './profiling/tagging.ts';

export interface ProfileRelay {
  /** `pyroscope` (forwarding) or `local` (the in-memory store). */
  readonly destination: 'pyroscope' | 'local';
  readonly policy: TaggingPolicy;
  /** POST /ingest: throws an IngestError (400/413) for what it refuses. */
  ingest(query: URLSearchParams, contentType: string | undefined, body: Buffer): void;
  /** The proxy's own profiler hands its profiles over here. */
  take(upload: ProfileUpload): Promise<void>;
  /** GET /debug/pprof. */
  debugPprof(query: URLSearchParams): Promise<AdminAnswer>;
  /** Sends what is queued for up to `deadlineMs`, then drops the rest (counted). */
  close(deadlineMs: number): Promise<void>;
}

const MIB = 1024 * 1024;
const BACKOFF = { initialMs: 1_000, maxMs: 60_000 } as const;
const MIN_FORWARD_TIMEOUT_MS = 10_000;
const MAX_ATTEMPTS = 10;

export function createProfileRelay(config: ProxyConfig, metrics: ProxyMetrics, logger: Logger): ProfileRelay {
  const policy: TaggingPolicy = Object.freeze({
    sharedTags: Object.freeze(sharedTagsFrom(config.OTEL_RESOURCE_ATTRIBUTES, config)),
    traceIdLabel: config.ENABLE_TRACE_ID_LABEL,
  });

  let forwarder: Forwarder | undefined;
  let store: LocalProfileStore | undefined;
  const serverAddress = config.PYROSCOPE_SERVER_ADDRESS;
  if (serverAddress !== undefined) {
    const user = config.PYROSCOPE_BASIC_AUTH_USER;
    const password = config.PYROSCOPE_BASIC_AUTH_PASSWORD;
    forwarder = createForwarder({
      target: {
        serverAddress,
        authToken: config.PYROSCOPE_AUTH_TOKEN,
        basicAuth: user !== undefined && password !== undefined ? { user, password } : undefined,
        tenantId: config.PYROSCOPE_TENANT_ID,
      },
      maxQueueBytes: config.PYROSCOPE_QUEUE_MAX_MB * MIB,
      requestTimeoutMs: Math.max(MIN_FORWARD_TIMEOUT_MS, config.PYROSCOPE_UPLOAD_RATE * 1000),
      backoff: BACKOFF,
      // One profile Pyroscope always fails with a 5xx must not hold the head of the queue for good.
      maxAttempts: MAX_ATTEMPTS,
      logger,
      onEvent(event) {
        if (event.type === 'sent') metrics.recordForwardedProfile();
        else if (event.type === 'retried') metrics.recordForwardRetry(event.reason);
        else metrics.recordDroppedProfiles(event.reason, 1);
      },
    });
    const queued = forwarder;
    new Gauge({
      name: 'spanscope_profile_queue_bytes',
      help: 'Profile bytes waiting for Pyroscope (capped by PYROSCOPE_QUEUE_MAX_MB).',
      registers: [metrics.registry],
      collect() {
        this.set(queued.stats().queuedBytes);
      },
    });
  } else {
    store = new LocalProfileStore({
      retentionMs: config.LOCAL_PROFILE_RETENTION_MINUTES * 60_000,
      maxBytes: config.LOCAL_PROFILE_MAX_MB * MIB,
    });
    const held = store;
    new Gauge({
      name: 'spanscope_profile_store_bytes',
      help: 'Bytes held by the local profile store (capped by LOCAL_PROFILE_MAX_MB).',
      registers: [metrics.registry],
      collect() {
        this.set(held.stats().bytes);
      },
    });
    new Gauge({
      name: 'spanscope_profile_store_profiles',
      help: 'Profiles held by the local profile store.',
      registers: [metrics.registry],
      collect() {
        this.set(held.stats().profiles);
      },
    });
  }

  function deliver(ingested: IngestedProfile): void {
    const { upload, drops } = policeAndTag(ingested, policy);
    if (drops.length > 0) metrics.recordDroppedLabels(drops);
    if (forwarder !== undefined) {
      forwarder.enqueue(upload);
    } else if (store !== undefined) {
      try {
        // Policing left `ingested.profile` matching `upload.body`: no second decode.
        store.add(upload, ingested.profile);
      } catch (error) {
        if (error instanceof ProfileFormatError) throw new IngestError(400, error.message);
        throw error;
      }
    }
    metrics.recordIngest('accepted');
  }

  return {
    destination: forwarder !== undefined ? 'pyroscope' : 'local',
    policy,
    ingest(query, contentType, body) {
      deliver(readIngestRequest(query, contentType, body));
    },
    take(upload) {
      try {
        deliver(ingestLocal(upload));
        return Promise.resolve();
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
    },
    async debugPprof(query) {
      if (store === undefined) {
        return jsonAnswer(404, {
          error: 'no local profile store: profiles are forwarded to PYROSCOPE_SERVER_ADDRESS',
        });
      }
      // A bad query throws ProfileQueryError, which the admin server answers with a 400 naming the parameter.
      const parsed = parseProfileQuery(query);
      const result = await store.query(parsed);
      return [
        200,
        {
          'content-type': 'application/octet-stream',
          'content-disposition': `attachment; filename="${parsed.type}.pb.gz"`,
          'cache-control': 'no-store',
          'x-spanscope-samples': String(result.samples),
          'x-spanscope-profiles': String(result.profiles),
        },
        result.pprof,
      ];
    },
    async close(deadlineMs) {
      await forwarder?.close(deadlineMs);
    },
  };
}
