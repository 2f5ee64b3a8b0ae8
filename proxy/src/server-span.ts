// The proxy's one SERVER span per request, without the SDK's general-purpose Span.
//
// Why: the SDK span validates every attribute on the way in (in @opentelemetry/core 3.1 that
// allocates per attribute), keeps limits, events, links and end metrics that this span never
// uses, and reads the clock three times: a request's span from traceparent to encoded bytes cost
// about twice as much with it (`npm run bench -- --suite hot-path`, request-span). Here the
// attributes are the proxy's own, built from values it has already parsed, so they need no
// validation. Everything else stays the SDK's: the configured sampler decides, its
// RandomIdGenerator makes the ids, the span processors receive the ended span as a ReadableSpan,
// so every exporter (OTLP, console, in-memory) works with it unchanged.
import { SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import type {
  Attributes,
  AnyValue,
  Context,
  HrTime,
  Link,
  Span,
  SpanContext,
  SpanStatus,
  TimeInput,
} from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import { hrTimeDuration, isTimeInput, millisToHrTime, timeInputToHrTime } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { RandomIdGenerator, SamplingDecision } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, Sampler, SpanProcessor, TimedEvent } from '@opentelemetry/sdk-trace';

export interface ServerSpanFactoryOptions {
  readonly sampler: Sampler;
  readonly processor: SpanProcessor;
  readonly resource: Resource;
  readonly scope: InstrumentationScope;
}

/** Starts the SERVER span of one request: a child of `parent` when it holds a valid span context. */
export type StartServerSpan = (name: string, parent: Context, attributes: Attributes) => Span;

const NO_LINKS: Link[] = [];

export function serverSpanFactory(options: ServerSpanFactoryOptions): StartServerSpan {
  const ids = new RandomIdGenerator();
  const { sampler, processor } = options;
  return (name, parent, attributes) => {
    const parentSpanContext = trace.getSpanContext(parent);
    const validParent =
      parentSpanContext !== undefined && trace.isSpanContextValid(parentSpanContext)
        ? parentSpanContext
        : undefined;
    const traceId = validParent?.traceId ?? ids.generateTraceId();
    const spanId = ids.generateSpanId();
    const sampling = sampler.shouldSample(parent, traceId, name, SpanKind.SERVER, attributes, NO_LINKS);
    const spanContext: SpanContext = {
      traceId,
      spanId,
      traceFlags:
        sampling.decision === SamplingDecision.RECORD_AND_SAMPLED ? TraceFlags.SAMPLED : TraceFlags.NONE,
      traceState: sampling.traceState ?? validParent?.traceState,
    };
    if (sampling.decision === SamplingDecision.NOT_RECORD) return trace.wrapSpanContext(spanContext);
    if (sampling.attributes !== undefined) Object.assign(attributes, sampling.attributes);
    const span = new ServerSpan(name, spanContext, validParent, attributes, options);
    processor.onStart(span, parent);
    return span;
  };
}

/** A recording SERVER span that is its own ReadableSpan once ended. */
class ServerSpan implements Span, ReadableSpan {
  readonly kind = SpanKind.SERVER;
  name: string;
  readonly parentSpanContext: SpanContext | undefined;
  readonly startTime: HrTime;
  endTime: HrTime = [0, 0];
  readonly attributes: Attributes;
  status: SpanStatus = { code: SpanStatusCode.UNSET };
  readonly links: Link[] = NO_LINKS;
  readonly events: TimedEvent[] = [];
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  ended = false;
  duration: HrTime = [-1, -1];
  readonly #spanContext: SpanContext;
  readonly #processor: SpanProcessor;
  // Wall-clock start plus a monotonic offset, as the SDK span times itself: an NTP step during the
  // request cannot make the span end before it began.
  readonly #startMs: number;
  readonly #startPerf: number;

  constructor(
    name: string,
    spanContext: SpanContext,
    parent: SpanContext | undefined,
    attributes: Attributes,
    options: ServerSpanFactoryOptions,
  ) {
    this.name = name;
    this.#spanContext = spanContext;
    this.parentSpanContext = parent;
    this.attributes = attributes;
    this.resource = options.resource;
    this.instrumentationScope = options.scope;
    this.#processor = options.processor;
    this.#startPerf = performance.now();
    this.#startMs = Date.now();
    this.startTime = millisToHrTime(this.#startMs);
  }

  spanContext(): SpanContext {
    return this.#spanContext;
  }

  setAttribute(key: string, value: AnyValue): this {
    // The SDK's default limits: no cap on value length, and far more attributes than set here.
    if (!this.ended && value !== undefined && value !== null) this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) {
      const value = attributes[key];
      if (value !== undefined) this.setAttribute(key, value);
    }
    return this;
  }

  addEvent(name: string, attributesOrTime?: Attributes | TimeInput, time?: TimeInput): this {
    if (this.ended) return this;
    const attributes = isTimeInput(attributesOrTime) ? undefined : attributesOrTime;
    const at = isTimeInput(attributesOrTime) ? attributesOrTime : time;
    this.events.push({
      name,
      attributes,
      time: at === undefined ? this.#now() : timeInputToHrTime(at),
      droppedAttributesCount: 0,
    });
    return this;
  }

  // The proxy never links its request span nor records exception events on it (failures are
  // `error.type` and the status), so these drop what they are given: implement them before using them.
  addLink(): this {
    return this;
  }

  addLinks(): this {
    return this;
  }

  setStatus(status: SpanStatus): this {
    if (this.ended || this.status.code === SpanStatusCode.OK) return this;
    if (status.code === SpanStatusCode.UNSET) return this;
    this.status = status.code === SpanStatusCode.ERROR ? status : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.name = name;
    return this;
  }

  end(): void {
    if (this.ended) return;
    this.endTime = this.#now();
    this.duration = hrTimeDuration(this.startTime, this.endTime);
    this.ended = true;
    this.#processor.onEnd(this);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  recordException(): void {
    // Dropped: see addLink.
  }

  #now(): HrTime {
    return millisToHrTime(this.#startMs + (performance.now() - this.#startPerf));
  }
}
