// The proxy's OpenTelemetry tracing: provider, sampler and exporter from the standard OTEL_*
// variables, W3C Trace Context + Baggage propagation, and an export path that can only drop
// spans (counted), never slow or fail the request that produced them.
//
// OTLP over http/protobuf, the default, encodes each span as it ends (otlp/), which costs less
// per request than the SDK's BatchSpanProcessor with the library's protobuf serializer (measured
// in README.md, "Tracing"); the library's HTTP transport is kept. http/json, console and the
// tests' in-memory exporter take the SDK's batch processor.
import { INVALID_SPAN_CONTEXT, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Context, SpanContext, TextMapGetter, Tracer } from '@opentelemetry/api';
import { ExportResultCode, W3CTraceContextPropagator } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NoopSpanProcessor,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { ReadableSpan, Sampler, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace';
import type { IncomingHttpHeaders } from 'node:http';
import type { ProxyConfig } from './config.ts';
import { EncodingBatchProcessor } from './otlp/span-batch-processor.ts';
import { OtlpProtoExporter } from './otlp/span-exporter.ts';
import { serverSpanFactory } from './server-span.ts';
import type { StartServerSpan } from './server-span.ts';

export type TracingConfig = Pick<
  ProxyConfig,
  | 'OTEL_SDK_DISABLED'
  | 'OTEL_SERVICE_NAME'
  | 'OTEL_RESOURCE_ATTRIBUTES'
  | 'OTEL_TRACES_EXPORTER'
  | 'OTEL_EXPORTER_OTLP_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'
  | 'OTEL_EXPORTER_OTLP_PROTOCOL'
  | 'OTEL_EXPORTER_OTLP_TIMEOUT'
  | 'OTEL_TRACES_SAMPLER'
  | 'OTEL_TRACES_SAMPLER_ARG'
  | 'OTEL_BSP_MAX_QUEUE_SIZE'
  | 'OTEL_BSP_SCHEDULE_DELAY'
>;

export interface DroppedSpans {
  /** Finished spans refused because the export queue was full (collector slow or down). */
  queue_full: number;
  /** Spans in a batch the collector did not accept. */
  export_failed: number;
}

export interface Tracing {
  /**
   * False when OTEL_SDK_DISABLED=true: no spans, and the caller's trace headers pass untouched.
   * OTEL_TRACES_EXPORTER=none still creates and propagates spans (trace ids, traceresponse) but
   * exports nothing, as the OpenTelemetry specification defines it.
   */
  readonly enabled: boolean;
  readonly tracer: Tracer;
  /** The request's SERVER span (server-span.ts): sampled by the configured sampler, exported as any. */
  readonly startServerSpan: StartServerSpan;
  /** The caller's span context from `traceparent`/`tracestate`, by every W3C Trace Context rule. */
  extract(headers: IncomingHttpHeaders): Context;
  /**
   * Writes `traceparent` (and `tracestate`) naming `spanContext` as the parent into a header record;
   * returns the `traceparent`.
   */
  inject(spanContext: SpanContext, headers: Record<string, string>): string;
  dropped(): Readonly<DroppedSpans>;
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** Replaces the configured exporter (tests read spans from an InMemorySpanExporter). */
  exporter?: SpanExporter;
  /** Export each span as it ends instead of in batches (tests only). */
  synchronousExport?: boolean;
  /** The instrumentation scope's name (default `spanscope-proxy`). */
  tracerName?: string;
  /** Told about drops; the caller decides how often to log. */
  onDrop?: (kind: keyof DroppedSpans, count: number) => void;
}

const headerGetter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

/**
 * The W3C Trace Context propagator's inject, for a span context the proxy made itself: its ids
 * are valid by construction and its flags are 0 or 1, so the propagator's checks and the
 * context it reads the span from are spared on every request.
 */
export function injectTraceContext(spanContext: SpanContext, headers: Record<string, string>): string {
  const flags = (spanContext.traceFlags & 1) === 1 ? '01' : '00';
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-${flags}`;
  headers.traceparent = traceparent;
  const traceState = spanContext.traceState?.serialize();
  if (traceState) headers.tracestate = traceState;
  return traceparent;
}

export function createTracing(config: TracingConfig, options: TracingOptions = {}): Tracing {
  const traceContext = new W3CTraceContextPropagator();
  const dropped: DroppedSpans = { queue_full: 0, export_failed: 0 };
  const enabled = !config.OTEL_SDK_DISABLED;

  if (!enabled) {
    return {
      enabled,
      tracer: trace.getTracer('spanscope-proxy-noop'),
      startServerSpan: () => trace.wrapSpanContext(INVALID_SPAN_CONTEXT),
      extract: () => ROOT_CONTEXT,
      inject: () => '',
      dropped: () => dropped,
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
  }

  const onDrop = (kind: keyof DroppedSpans, count: number) => {
    dropped[kind] += count;
    options.onDrop?.(kind, count);
  };
  const spanProcessors: SpanProcessor[] = [];
  const configured = options.exporter ?? createExporter(config);
  if (configured === 'otlp-protobuf') {
    // The default path: spans are encoded as they end (otlp/span-batch-processor.ts).
    spanProcessors.push(
      new EncodingBatchProcessor(new OtlpProtoExporter(otlpExporterOptions(config)), {
        maxQueueSize: config.OTEL_BSP_MAX_QUEUE_SIZE,
        // synchronousExport (tests): every span is a batch of its own, sent as it ends.
        maxExportBatchSize: options.synchronousExport === true ? 1 : MAX_EXPORT_BATCH_SIZE,
        scheduledDelayMillis: config.OTEL_BSP_SCHEDULE_DELAY,
        onDrop,
      }),
    );
  } else if (configured !== undefined) {
    const exporter = new CountingExporter(configured, onDrop);
    spanProcessors.push(
      options.synchronousExport
        ? new SimpleSpanProcessor({ exporter })
        : new BoundedBatchProcessor(
            exporter,
            config.OTEL_BSP_MAX_QUEUE_SIZE,
            config.OTEL_BSP_SCHEDULE_DELAY,
            onDrop,
          ),
    );
  }

  const resource = otelResource(config);
  const sampler = createSampler(config);
  const provider = new TracerProvider({ resource, sampler, spanProcessors });
  const scope = { name: options.tracerName ?? 'spanscope-proxy' };

  return {
    enabled,
    tracer: provider.getTracer(scope.name),
    startServerSpan: serverSpanFactory({
      sampler,
      processor: spanProcessors.length === 1 ? (spanProcessors[0] as SpanProcessor) : new NoopSpanProcessor(),
      resource,
      scope,
    }),
    // Baggage is not read into the context: the proxy forwards the client's members byte for byte
    // and adds its own (baggage.ts), which a parse and re-serialization would not keep.
    extract: (headers) => traceContext.extract(ROOT_CONTEXT, headers, headerGetter),
    inject: injectTraceContext,
    dropped: () => dropped,
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}

/** The resource spans and metrics share: OTEL_RESOURCE_ATTRIBUTES with OTEL_SERVICE_NAME on top. */
export function otelResource(
  config: Pick<ProxyConfig, 'OTEL_SERVICE_NAME' | 'OTEL_RESOURCE_ATTRIBUTES'>,
): Resource {
  return defaultResource().merge(
    resourceFromAttributes({ ...config.OTEL_RESOURCE_ATTRIBUTES, 'service.name': config.OTEL_SERVICE_NAME }),
  );
}

function createSampler(config: TracingConfig): Sampler {
  const ratio = config.OTEL_TRACES_SAMPLER_ARG ?? 1;
  switch (config.OTEL_TRACES_SAMPLER) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

const MAX_EXPORT_BATCH_SIZE = 512;

function otlpExporterOptions(config: TracingConfig) {
  const url =
    config.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ??
    `${config.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')}/v1/traces`;
  // One batch is in flight in normal operation; a flush sends everything queued at once.
  const batches = Math.ceil(config.OTEL_BSP_MAX_QUEUE_SIZE / MAX_EXPORT_BATCH_SIZE) + 2;
  return { url, timeoutMillis: config.OTEL_EXPORTER_OTLP_TIMEOUT, concurrencyLimit: Math.max(4, batches) };
}

function createExporter(config: TracingConfig): SpanExporter | 'otlp-protobuf' | undefined {
  if (config.OTEL_TRACES_EXPORTER === 'none') return undefined;
  if (config.OTEL_TRACES_EXPORTER === 'console') return new ConsoleSpanExporter();
  return config.OTEL_EXPORTER_OTLP_PROTOCOL === 'http/json'
    ? new OTLPJsonExporter(otlpExporterOptions(config))
    : 'otlp-protobuf';
}

/** Counts spans in batches the collector refused; the batch processor itself would only log them. */
class CountingExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #onDrop: (kind: keyof DroppedSpans, count: number) => void;
  onBatchTaken: (count: number) => void = () => undefined;

  constructor(inner: SpanExporter, onDrop: (kind: keyof DroppedSpans, count: number) => void) {
    this.#inner = inner;
    this.#onDrop = onDrop;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    this.onBatchTaken(spans.length);
    try {
      this.#inner.export(spans, (result) => {
        if (result.code !== ExportResultCode.SUCCESS) this.#onDrop('export_failed', spans.length);
        resultCallback(result);
      });
    } catch (error) {
      this.#onDrop('export_failed', spans.length);
      resultCallback({ code: ExportResultCode.FAILED, error: error as Error });
    }
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * The SDK's BatchSpanProcessor with its queue-full drops made countable: it mirrors the queue's
 * length (spans added minus spans handed to the exporter) and counts what the SDK will refuse.
 */
class BoundedBatchProcessor implements SpanProcessor {
  readonly #inner: BatchSpanProcessor;
  readonly #maxQueueSize: number;
  readonly #onDrop: (kind: keyof DroppedSpans, count: number) => void;
  #queued = 0;

  constructor(
    exporter: CountingExporter,
    maxQueueSize: number,
    scheduledDelayMillis: number,
    onDrop: (kind: keyof DroppedSpans, count: number) => void,
  ) {
    this.#maxQueueSize = maxQueueSize;
    this.#onDrop = onDrop;
    exporter.onBatchTaken = (count) => {
      this.#queued = Math.max(0, this.#queued - count);
    };
    this.#inner = new BatchSpanProcessor({
      exporter,
      maxQueueSize,
      maxExportBatchSize: Math.min(MAX_EXPORT_BATCH_SIZE, maxQueueSize),
      scheduledDelayMillis,
    });
  }

  onStart(): void {
    // Nothing to do at start: the batch processor only acts on ended spans.
  }

  onEnd(span: ReadableSpan): void {
    if ((span.spanContext().traceFlags & 1) === 0) return;
    if (this.#queued >= this.#maxQueueSize) this.#onDrop('queue_full', 1);
    else this.#queued++;
    this.#inner.onEnd(span);
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }
}

// Shared with the backend, which reads the same OTEL_* variables and names methods the same way.
export { otelConfigShape, parseResourceAttributes } from './config.ts';
export { normalizeMethod } from './exchange.ts';
