// OTLP/protobuf ExportTraceServiceRequest bytes written straight from the SDK's ReadableSpans:
// ids as bytes, attributes, events, links, status and flags, with each resource and scope written
// once per batch (opentelemetry-proto trace/v1/trace.proto, collector/trace/v1/trace_service.proto).
//
// Why not the exporter's own serializer: on the benchmark's spans it costs several times as much
// per span (a size-estimating pass, then a writing pass, both through generic per-byte helpers);
// the numbers are in README.md, "Tracing".
import { SpanStatusCode } from '@opentelemetry/api';
import type { Attributes, HrTime, Link, SpanContext } from '@opentelemetry/api';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace';
import { ProtoWriter, WIRE } from './proto-writer.ts';

type Resource = ReadableSpan['resource'];
type Scope = ReadableSpan['instrumentationScope'] & {
  readonly attributes?: Attributes;
  readonly droppedAttributesCount?: number;
};

// Span flags (trace.proto SpanFlags): the W3C trace flags, plus whether the parent was remote.
const FLAGS_HAS_IS_REMOTE = 0x100;
const FLAGS_IS_REMOTE = 0x200;

const MAX_INT64 = 2 ** 63;

/** The encoded `key` field of a KeyValue, by attribute name: a span's names are a fixed few. */
const keyCache = new Map<string, Buffer>();
const KEY_CACHE_LIMIT = 1024;

function encodedKey(key: string): Buffer {
  let encoded = keyCache.get(key);
  if (encoded === undefined) {
    const w = new ProtoWriter(key.length * 3 + 8);
    w.tag(1, WIRE.LEN);
    w.string(key);
    encoded = w.copy();
    // Bounded in case some caller makes attribute names up as it goes.
    if (keyCache.size >= KEY_CACHE_LIMIT) keyCache.clear();
    keyCache.set(key, encoded);
  }
  return encoded;
}

/** AnyValue fields (common.proto), without the enclosing length. */
function writeAnyValue(w: ProtoWriter, value: unknown): void {
  switch (typeof value) {
    case 'string':
      w.tag(1, WIRE.LEN);
      w.string(value);
      return;
    case 'boolean':
      w.tag(2, WIRE.VARINT);
      w.uint32(value ? 1 : 0);
      return;
    case 'number':
      if (Number.isInteger(value) && value >= -MAX_INT64 && value < MAX_INT64) {
        w.tag(3, WIRE.VARINT);
        w.int64(value);
      } else {
        w.tag(4, WIRE.FIXED64);
        w.double(value);
      }
      return;
    case 'object': {
      if (value === null) return;
      if (value instanceof Uint8Array) {
        w.tag(7, WIRE.LEN);
        w.bytes(value);
        return;
      }
      if (Array.isArray(value)) {
        w.tag(5, WIRE.LEN);
        const array = w.beginMessage();
        for (const item of value as unknown[]) {
          w.tag(1, WIRE.LEN);
          const at = w.beginMessage();
          writeAnyValue(w, item);
          w.endMessage(at);
        }
        w.endMessage(array);
        return;
      }
      w.tag(6, WIRE.LEN);
      const list = w.beginMessage();
      writeKeyValues(w, 1, value as Record<string, unknown>);
      w.endMessage(list);
      return;
    }
    default:
      // undefined, bigint, symbol, function: not attribute values; an empty AnyValue, as the SDK's
      // own serializer writes.
      return;
  }
}

/** Repeated KeyValue `field` from an attribute record. */
function writeKeyValues(w: ProtoWriter, field: number, attributes: Readonly<Record<string, unknown>>): void {
  for (const key in attributes) {
    if (!Object.hasOwn(attributes, key)) continue;
    w.tag(field, WIRE.LEN);
    const kv = w.beginMessage();
    w.raw(encodedKey(key));
    w.tag(2, WIRE.LEN);
    const value = w.beginMessage();
    writeAnyValue(w, attributes[key]);
    w.endMessage(value);
    w.endMessage(kv);
  }
}

function writeTime(w: ProtoWriter, field: number, time: HrTime): void {
  w.tag(field, WIRE.FIXED64);
  w.hrTime(time[0], time[1]);
}

function spanFlags(traceFlags: number, parentIsRemote: boolean | undefined): number {
  return (traceFlags & 0xff) | FLAGS_HAS_IS_REMOTE | (parentIsRemote === true ? FLAGS_IS_REMOTE : 0);
}

function writeEvent(w: ProtoWriter, event: TimedEvent): void {
  w.tag(11, WIRE.LEN);
  const at = w.beginMessage();
  writeTime(w, 1, event.time);
  w.tag(2, WIRE.LEN);
  w.string(event.name);
  if (event.attributes !== undefined) writeKeyValues(w, 3, event.attributes);
  if (event.droppedAttributesCount) {
    w.tag(4, WIRE.VARINT);
    w.uint32(event.droppedAttributesCount);
  }
  w.endMessage(at);
}

/** trace_id, span_id and trace_state: fields 1–3 of both Span and Span.Link. */
function writeIds(w: ProtoWriter, context: SpanContext): void {
  w.tag(1, WIRE.LEN);
  w.hexBytes(context.traceId);
  w.tag(2, WIRE.LEN);
  w.hexBytes(context.spanId);
  const traceState = context.traceState?.serialize();
  if (traceState) {
    w.tag(3, WIRE.LEN);
    w.string(traceState);
  }
}

function writeLink(w: ProtoWriter, link: Link & { droppedAttributesCount?: number }): void {
  const context: SpanContext = link.context;
  w.tag(13, WIRE.LEN);
  const at = w.beginMessage();
  writeIds(w, context);
  if (link.attributes !== undefined) writeKeyValues(w, 4, link.attributes);
  if (link.droppedAttributesCount) {
    w.tag(5, WIRE.VARINT);
    w.uint32(link.droppedAttributesCount);
  }
  w.tag(6, WIRE.FIXED32);
  w.fixed32(spanFlags(context.traceFlags, context.isRemote));
  w.endMessage(at);
}

/** One `Span` message as field 2 of ScopeSpans (tag, length and body). */
export function writeSpan(w: ProtoWriter, span: ReadableSpan): void {
  const context = span.spanContext();
  w.tag(2, WIRE.LEN);
  const at = w.beginMessage();
  writeIds(w, context);
  const parent = span.parentSpanContext;
  if (parent?.spanId) {
    w.tag(4, WIRE.LEN);
    w.hexBytes(parent.spanId);
  }
  w.tag(5, WIRE.LEN);
  w.string(span.name);
  // The API's SpanKind starts at INTERNAL = 0; OTLP keeps 0 for UNSPECIFIED.
  w.tag(6, WIRE.VARINT);
  w.uint32(span.kind + 1);
  writeTime(w, 7, span.startTime);
  writeTime(w, 8, span.endTime);
  writeKeyValues(w, 9, span.attributes);
  if (span.droppedAttributesCount) {
    w.tag(10, WIRE.VARINT);
    w.uint32(span.droppedAttributesCount);
  }
  for (const event of span.events) writeEvent(w, event);
  if (span.droppedEventsCount) {
    w.tag(12, WIRE.VARINT);
    w.uint32(span.droppedEventsCount);
  }
  for (const link of span.links) writeLink(w, link);
  if (span.droppedLinksCount) {
    w.tag(14, WIRE.VARINT);
    w.uint32(span.droppedLinksCount);
  }
  const { status } = span;
  if (status.code !== SpanStatusCode.UNSET || status.message) {
    w.tag(15, WIRE.LEN);
    const statusAt = w.beginMessage();
    if (status.message) {
      w.tag(2, WIRE.LEN);
      w.string(status.message);
    }
    w.tag(3, WIRE.VARINT);
    w.uint32(status.code);
    w.endMessage(statusAt);
  }
  w.tag(16, WIRE.FIXED32);
  w.fixed32(spanFlags(context.traceFlags, parent?.isRemote));
  w.endMessage(at);
}

// Resources and scopes are a handful of long-lived objects: each is encoded once.
const resourceCache = new WeakMap<Resource, Buffer>();
const scopeCache = new WeakMap<Scope, Buffer>();

/** Field 1 of ResourceSpans: the Resource message. */
function encodedResource(resource: Resource): Buffer {
  const cached = resourceCache.get(resource);
  if (cached !== undefined) return cached;
  const w = new ProtoWriter(1024);
  w.tag(1, WIRE.LEN);
  const at = w.beginMessage();
  writeKeyValues(w, 1, resource.attributes);
  w.endMessage(at);
  const encoded = w.copy();
  // Attributes still being detected may change: such a resource is encoded again next time.
  if (resource.asyncAttributesPending !== true) resourceCache.set(resource, encoded);
  return encoded;
}

/** Field 1 of ScopeSpans: the InstrumentationScope message. */
function encodedScope(scope: Scope): Buffer {
  const cached = scopeCache.get(scope);
  if (cached !== undefined) return cached;
  const w = new ProtoWriter(256);
  w.tag(1, WIRE.LEN);
  const at = w.beginMessage();
  w.tag(1, WIRE.LEN);
  w.string(scope.name);
  if (scope.version) {
    w.tag(2, WIRE.LEN);
    w.string(scope.version);
  }
  if (scope.attributes !== undefined) writeKeyValues(w, 3, scope.attributes);
  if (scope.droppedAttributesCount) {
    w.tag(4, WIRE.VARINT);
    w.uint32(scope.droppedAttributesCount);
  }
  w.endMessage(at);
  const encoded = w.copy();
  scopeCache.set(scope, encoded);
  return encoded;
}

interface SpanGroup {
  readonly resource: Resource;
  readonly scope: Scope;
  readonly spans: ProtoWriter;
}

// Batches reuse the buffers of batches already sent. A batch's bytes live from its first span to
// the collector's answer, long enough for V8 to promote the Buffers that hold them, and the memory
// of promoted Buffers is freed only by a full collection: a new set each batch (a few hundred KiB,
// several times a second) kept those coming. `npm run bench -- --suite instructions --only
// spanscope-bare,spanscope-full`, fully instrumented, instructions in GC per request: 69,475 with
// new buffers per batch, 6,174 and 6,103 with them reused (2026-11-29; README.md, "Tracing").
const SPARE_WRITERS = 4;
const spareWriters: ProtoWriter[] = [];

function takeWriter(size: number): ProtoWriter {
  const writer = spareWriters.pop();
  if (writer === undefined) return new ProtoWriter(size);
  writer.reset();
  writer.ensure(size);
  return writer;
}

/**
 * Spans encoded as they end, grouped by resource and instrumentation scope, until they leave as
 * one ExportTraceServiceRequest. Holding bytes instead of span objects lets each span die young.
 */
export class EncodedSpanBatch {
  /** Spans in the batch. */
  count = 0;
  readonly #groups: SpanGroup[] = [];
  #request: ProtoWriter | undefined;

  /** Encodes `span` into the batch; on an encoding error the batch is left as it was. */
  add(span: ReadableSpan): void {
    const { spans } = this.#group(span.resource, span.instrumentationScope);
    const at = spans.pos;
    try {
      writeSpan(spans, span);
    } catch (error) {
      spans.pos = at;
      throw error;
    }
    this.count++;
  }

  #group(resource: Resource, scope: Scope): SpanGroup {
    // A process has one resource and a tracer or two: a short scan beats a map.
    for (const group of this.#groups) {
      if (group.resource === resource && group.scope === scope) return group;
    }
    const group = { resource, scope, spans: takeWriter(64 * 1024) };
    this.#groups.push(group);
    return group;
  }

  /** The ExportTraceServiceRequest bytes: valid until `release`. */
  toRequest(): Buffer {
    let size = 64;
    for (const group of this.#groups) size += group.spans.pos + 1024;
    const w = (this.#request ??= takeWriter(size));
    w.reset();
    const resources = new Set(this.#groups.map((group) => group.resource));
    for (const resource of resources) {
      w.tag(1, WIRE.LEN);
      const resourceSpans = w.beginMessage();
      w.raw(encodedResource(resource));
      for (const group of this.#groups) {
        if (group.resource !== resource) continue;
        w.tag(2, WIRE.LEN);
        const scopeSpans = w.beginMessage();
        w.raw(encodedScope(group.scope));
        w.raw(group.spans.view());
        if (group.scope.schemaUrl) {
          w.tag(3, WIRE.LEN);
          w.string(group.scope.schemaUrl);
        }
        w.endMessage(scopeSpans);
      }
      if (resource.schemaUrl) {
        w.tag(3, WIRE.LEN);
        w.string(resource.schemaUrl);
      }
      w.endMessage(resourceSpans);
    }
    return w.view();
  }

  /**
   * Hands the batch's buffers to later batches. Only once nothing reads the request any more: the
   * exporter has called back. The batch is empty afterwards.
   */
  release(): void {
    // Last in, first out: the next batch's first group gets this one's, its request this one's.
    const writers = this.#groups.map((group) => group.spans).reverse();
    if (this.#request !== undefined) writers.unshift(this.#request);
    this.#groups.length = 0;
    this.#request = undefined;
    this.count = 0;
    for (const writer of writers) if (spareWriters.length < SPARE_WRITERS) spareWriters.push(writer);
  }
}

/** The ExportTraceServiceRequest for `spans`, in buffers of its own. */
export function encodeTraceRequest(spans: readonly ReadableSpan[]): Buffer {
  const batch = new EncodedSpanBatch();
  for (const span of spans) batch.add(span);
  return batch.toRequest();
}
