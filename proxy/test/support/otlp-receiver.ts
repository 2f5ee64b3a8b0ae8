// A real OTLP/HTTP trace receiver for tests: a node:http server on 127.0.0.1 that accepts
// `POST /v1/traces` as binary protobuf (application/x-protobuf) or OTLP/JSON (application/json),
// optionally gzip-compressed, decodes every span into a plain `DecodedSpan`, and answers with an
// empty ExportTraceServiceResponse in the request's encoding. `setBehaviour` turns it into a
// failing or slow collector for tests of the proxy's export path. The OTLP pieces every signal
// shares (common and resource protos, attribute values, encodings) are exported for the metrics
// receiver.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { gunzipSync, inflateSync } from 'node:zlib';
import protobuf from 'protobufjs';
import { serveOnLoopback } from './loopback-server.ts';

// The needed subset of opentelemetry-proto (common, resource, trace, collector/trace), with the
// upstream package names and field numbers. Fields not listed here are skipped by the decoder.
const COMMON_PROTO = `
syntax = "proto3";
package opentelemetry.proto.common.v1;
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
    ArrayValue array_value = 5;
    KeyValueList kvlist_value = 6;
    bytes bytes_value = 7;
  }
}
message ArrayValue { repeated AnyValue values = 1; }
message KeyValueList { repeated KeyValue values = 1; }
message KeyValue {
  string key = 1;
  AnyValue value = 2;
}
message InstrumentationScope {
  string name = 1;
  string version = 2;
  repeated KeyValue attributes = 3;
  uint32 dropped_attributes_count = 4;
}
`;

const RESOURCE_PROTO = `
syntax = "proto3";
package opentelemetry.proto.resource.v1;
message Resource {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 1;
  uint32 dropped_attributes_count = 2;
}
`;

const TRACE_PROTO = `
syntax = "proto3";
package opentelemetry.proto.trace.v1;
message TracesData { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans {
  opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeSpans scope_spans = 2;
  string schema_url = 3;
}
message ScopeSpans {
  opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated Span spans = 2;
  string schema_url = 3;
}
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  string trace_state = 3;
  bytes parent_span_id = 4;
  fixed32 flags = 16;
  string name = 5;
  enum SpanKind {
    SPAN_KIND_UNSPECIFIED = 0;
    SPAN_KIND_INTERNAL = 1;
    SPAN_KIND_SERVER = 2;
    SPAN_KIND_CLIENT = 3;
    SPAN_KIND_PRODUCER = 4;
    SPAN_KIND_CONSUMER = 5;
  }
  SpanKind kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 9;
  uint32 dropped_attributes_count = 10;
  message Event {
    fixed64 time_unix_nano = 1;
    string name = 2;
    repeated opentelemetry.proto.common.v1.KeyValue attributes = 3;
    uint32 dropped_attributes_count = 4;
  }
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  message Link {
    bytes trace_id = 1;
    bytes span_id = 2;
    string trace_state = 3;
    repeated opentelemetry.proto.common.v1.KeyValue attributes = 4;
    uint32 dropped_attributes_count = 5;
    fixed32 flags = 6;
  }
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  Status status = 15;
}
message Status {
  reserved 1;
  string message = 2;
  enum StatusCode {
    STATUS_CODE_UNSET = 0;
    STATUS_CODE_OK = 1;
    STATUS_CODE_ERROR = 2;
  }
  StatusCode code = 3;
}
`;

const TRACE_SERVICE_PROTO = `
syntax = "proto3";
package opentelemetry.proto.collector.trace.v1;
message ExportTraceServiceRequest {
  repeated opentelemetry.proto.trace.v1.ResourceSpans resource_spans = 1;
}
message ExportTraceServiceResponse { ExportTracePartialSuccess partial_success = 1; }
message ExportTracePartialSuccess {
  int64 rejected_spans = 1;
  string error_message = 2;
}
`;

export interface OtlpServiceTypes {
  readonly request: protobuf.Type;
  readonly response: protobuf.Type;
}

/**
 * Parses COMMON_PROTO and RESOURCE_PROTO plus one signal's protos, and looks up that signal's
 * Export…ServiceRequest and Export…ServiceResponse by their fully qualified names.
 */
export function loadOtlpTypes(
  signalProtos: readonly string[],
  requestType: string,
  responseType: string,
): OtlpServiceTypes {
  const root = new protobuf.Root();
  for (const source of [COMMON_PROTO, RESOURCE_PROTO, ...signalProtos]) protobuf.parse(source, root);
  root.resolveAll();
  return { request: root.lookupType(requestType), response: root.lookupType(responseType) };
}

const OTLP = loadOtlpTypes(
  [TRACE_PROTO, TRACE_SERVICE_PROTO],
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse',
);

export type DecodedSpanKind = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
export type DecodedStatusCode = 'UNSET' | 'OK' | 'ERROR';

export interface DecodedEvent {
  name: string;
  timeUnixNano: bigint;
  attributes: Record<string, unknown>;
}

export interface DecodedLink {
  traceId: string;
  spanId: string;
  traceState: string | undefined;
  attributes: Record<string, unknown>;
}

export interface DecodedSpan {
  /** 32 lowercase hex digits. */
  traceId: string;
  /** 16 lowercase hex digits. */
  spanId: string;
  parentSpanId: string | undefined;
  traceState: string | undefined;
  /** OTLP span flags (W3C trace flags in the low byte, plus the has-/is-remote bits); undefined when absent. */
  flags: number | undefined;
  name: string;
  kind: DecodedSpanKind;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  /** Plain values: string, number (int64 converted to number), boolean, arrays, objects (kvlist), Buffer (bytes). */
  attributes: Record<string, unknown>;
  events: DecodedEvent[];
  links: DecodedLink[];
  status: { code: DecodedStatusCode; message?: string };
  /** Resource attributes, as plain values. */
  resource: Record<string, unknown>;
  scope: { name: string; version?: string };
}

export type OtlpEncoding = 'protobuf' | 'json';

export interface ReceivedExportRequest {
  method: string;
  url: string;
  /** The request's Content-Type header, verbatim (may include parameters). */
  contentType: string | undefined;
  contentEncoding: string | undefined;
  encoding: OtlpEncoding | undefined;
  /** Body size on the wire (before decompression). */
  bodyBytes: number;
  /** Spans decoded from this request (also counted when the configured behaviour rejected them). */
  spanCount: number;
  /** Status the receiver answered with; undefined when the behaviour destroyed the connection. */
  responseStatus: number | undefined;
  userAgent: string | undefined;
  decodeError?: string;
}

export interface OtlpReceiverBehaviour {
  /** Status code to answer with (default 200). Spans of requests answered with a non-2xx status are not added to `spans`. */
  status?: number;
  /**
   * Wait this long after receiving the body before answering (default 0). The spans are still
   * accepted after the delay (like a slow collector) even if the exporter gave up meanwhile.
   */
  delayMs?: number;
  /** Value of a Retry-After header to send with non-2xx answers. */
  retryAfter?: string;
  /** Destroy the connection instead of answering (after `delayMs`). */
  destroyConnection?: boolean;
}

export type SpanPredicate = (span: DecodedSpan) => boolean;

export interface SpanWaitCondition {
  /** Only spans matching this count (default: every span). */
  where?: SpanPredicate;
  /** How many (matching) spans to wait for (default 1). */
  count?: number;
}

export interface OtlpReceiver {
  /** Base URL, e.g. http://127.0.0.1:43123 (the trace endpoint is `${url}/v1/traces`). */
  readonly url: string;
  /** `${url}/v1/traces`. */
  readonly tracesUrl: string;
  readonly port: number;
  /** Every accepted span, in arrival order. */
  readonly spans: DecodedSpan[];
  /** Every request received, in arrival order. */
  readonly requests: ReceivedExportRequest[];
  /**
   * Resolves once enough spans have arrived:
   * - a number n: at least n spans in total; resolves with all spans;
   * - a predicate: at least one matching span; resolves with the matching spans;
   * - `{ where, count }`: at least `count` matching spans; resolves with the matching spans.
   * Rejects after `timeoutMs` with a message listing what did arrive.
   */
  waitForSpans(
    condition: number | SpanPredicate | SpanWaitCondition,
    timeoutMs?: number,
  ): Promise<DecodedSpan[]>;
  /** Replaces the current behaviour; `setBehaviour({})` restores the healthy default. */
  setBehaviour(behaviour: OtlpReceiverBehaviour): void;
  /** Forgets received spans and requests (spans of requests still in flight are dropped too). */
  clear(): void;
  close(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// Wire shapes: protobufjs `toObject` output (bytes as Uint8Array, 64-bit as bigint, enums as
// numbers) and OTLP/JSON (ids as hex strings, 64-bit as decimal strings or numbers, enums as
// numbers or names). Both use lowerCamelCase field names.

type WireBytes = Uint8Array | string;
export type WireLong = bigint | string | number;

interface WireAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: WireLong;
  doubleValue?: number | string;
  arrayValue?: { values?: WireAnyValue[] };
  kvlistValue?: { values?: WireKeyValue[] };
  bytesValue?: WireBytes;
}

export interface WireKeyValue {
  key?: string;
  value?: WireAnyValue;
}

interface WireEvent {
  timeUnixNano?: WireLong;
  name?: string;
  attributes?: WireKeyValue[];
}

interface WireLink {
  traceId?: WireBytes;
  spanId?: WireBytes;
  traceState?: string;
  attributes?: WireKeyValue[];
}

interface WireSpan {
  traceId?: WireBytes;
  spanId?: WireBytes;
  traceState?: string;
  parentSpanId?: WireBytes;
  flags?: number;
  name?: string;
  kind?: number | string;
  startTimeUnixNano?: WireLong;
  endTimeUnixNano?: WireLong;
  attributes?: WireKeyValue[];
  events?: WireEvent[];
  links?: WireLink[];
  status?: { message?: string; code?: number | string };
}

interface WireRequest {
  resourceSpans?: {
    resource?: { attributes?: WireKeyValue[] };
    scopeSpans?: {
      scope?: { name?: string; version?: string };
      spans?: WireSpan[];
    }[];
  }[];
}

const SPAN_KINDS: readonly DecodedSpanKind[] = [
  'UNSPECIFIED',
  'INTERNAL',
  'SERVER',
  'CLIENT',
  'PRODUCER',
  'CONSUMER',
];
const STATUS_CODES: readonly DecodedStatusCode[] = ['UNSET', 'OK', 'ERROR'];

function enumName<T extends string>(
  value: number | string | undefined,
  names: readonly T[],
  prefix: string,
): T | undefined {
  if (value === undefined) return names[0];
  if (typeof value === 'number') return names[value];
  const bare = value.startsWith(prefix) ? value.slice(prefix.length) : value;
  return names.find((name) => name === bare);
}

function toHex(id: WireBytes | undefined): string | undefined {
  if (id === undefined) return undefined;
  const hex = typeof id === 'string' ? id.toLowerCase() : Buffer.from(id).toString('hex');
  return hex === '' ? undefined : hex;
}

export function toBigInt(value: WireLong | undefined): bigint {
  if (value === undefined) return 0n;
  return typeof value === 'bigint' ? value : BigInt(value);
}

function plainValue(value: WireAnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return Number(value.doubleValue);
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(plainValue);
  if (value.kvlistValue !== undefined) return plainAttributes(value.kvlistValue.values);
  if (value.bytesValue !== undefined) {
    return typeof value.bytesValue === 'string'
      ? Buffer.from(value.bytesValue, 'base64')
      : Buffer.from(value.bytesValue);
  }
  return undefined;
}

/** OTLP attributes as plain values (int64 as number, bytes as Buffer, kvlist as an object). */
export function plainAttributes(attributes: WireKeyValue[] | undefined): Record<string, unknown> {
  const result: Record<string, unknown> = {};
  for (const { key, value } of attributes ?? []) {
    result[key ?? ''] = plainValue(value);
  }
  return result;
}

function decodeSpan(
  span: WireSpan,
  resource: Record<string, unknown>,
  scope: DecodedSpan['scope'],
): DecodedSpan {
  const kind = enumName(span.kind, SPAN_KINDS, 'SPAN_KIND_');
  const code = enumName(span.status?.code, STATUS_CODES, 'STATUS_CODE_');
  if (kind === undefined) throw new Error(`unknown span kind ${String(span.kind)}`);
  if (code === undefined) throw new Error(`unknown status code ${String(span.status?.code)}`);
  const status: DecodedSpan['status'] = { code };
  if (span.status?.message) status.message = span.status.message;
  return {
    traceId: toHex(span.traceId) ?? '',
    spanId: toHex(span.spanId) ?? '',
    parentSpanId: toHex(span.parentSpanId),
    traceState: span.traceState === '' ? undefined : span.traceState,
    flags: span.flags,
    name: span.name ?? '',
    kind,
    startTimeUnixNano: toBigInt(span.startTimeUnixNano),
    endTimeUnixNano: toBigInt(span.endTimeUnixNano),
    attributes: plainAttributes(span.attributes),
    events: (span.events ?? []).map((event) => ({
      name: event.name ?? '',
      timeUnixNano: toBigInt(event.timeUnixNano),
      attributes: plainAttributes(event.attributes),
    })),
    links: (span.links ?? []).map((link) => ({
      traceId: toHex(link.traceId) ?? '',
      spanId: toHex(link.spanId) ?? '',
      traceState: link.traceState === '' ? undefined : link.traceState,
      attributes: plainAttributes(link.attributes),
    })),
    status,
    resource,
    scope,
  };
}

function parseJson(text: string): unknown {
  return JSON.parse(text);
}

/** Decodes an ExportTraceServiceRequest body (already decompressed) into plain spans. */
export function decodeExportRequest(body: Buffer, encoding: OtlpEncoding): DecodedSpan[] {
  const request: WireRequest =
    encoding === 'protobuf'
      ? OTLP.request.toObject(OTLP.request.decode(body), { longs: BigInt })
      : (parseJson(body.toString('utf8')) as WireRequest);
  const spans: DecodedSpan[] = [];
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = plainAttributes(resourceSpans.resource?.attributes);
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      const scope: DecodedSpan['scope'] = { name: scopeSpans.scope?.name ?? '' };
      if (scopeSpans.scope?.version) scope.version = scopeSpans.scope.version;
      for (const span of scopeSpans.spans ?? []) spans.push(decodeSpan(span, resource, scope));
    }
  }
  return spans;
}

/** The OTLP encoding a Content-Type names; undefined for anything else. */
export function encodingOf(contentType: string | undefined): OtlpEncoding | undefined {
  const mediaType = contentType?.split(';')[0]?.trim().toLowerCase();
  if (mediaType === 'application/x-protobuf' || mediaType === 'application/protobuf') return 'protobuf';
  if (mediaType === 'application/json') return 'json';
  return undefined;
}

/** The body as sent before Content-Encoding: identity, gzip or deflate; anything else throws. */
export function decompress(body: Buffer, contentEncoding: string | undefined): Buffer {
  switch (contentEncoding?.trim().toLowerCase()) {
    case undefined:
    case '':
    case 'identity':
      return body;
    case 'gzip':
    case 'x-gzip':
      return gunzipSync(body);
    case 'deflate':
      return inflateSync(body);
    default:
      throw new Error(`unsupported Content-Encoding ${String(contentEncoding)}`);
  }
}

function describeSpan(span: DecodedSpan): string {
  const parent = span.parentSpanId === undefined ? '' : ` parent=${span.parentSpanId}`;
  return `${span.kind} "${span.name}" trace=${span.traceId} span=${span.spanId}${parent} status=${span.status.code}`;
}

/**
 * Answers an OTLP export: a 2xx with an empty Export…ServiceResponse of `types` in the request's
 * encoding (protobuf when unknown), anything else with `message` as plain text.
 */
export function answerExport(
  res: ServerResponse,
  status: number,
  encoding: OtlpEncoding | undefined,
  types: OtlpServiceTypes,
  message?: string,
  headers: OutgoingHttpHeaders = {},
): void {
  if (status < 200 || status > 299) {
    res
      .writeHead(status, { ...headers, 'content-type': 'text/plain; charset=utf-8' })
      .end(message ?? `receiver answered ${status}`);
  } else if (encoding === 'json') {
    res
      .writeHead(status, { ...headers, 'content-type': 'application/json' })
      .end(JSON.stringify(types.response.toObject(types.response.create({}))));
  } else {
    res
      .writeHead(status, { ...headers, 'content-type': 'application/x-protobuf' })
      .end(types.response.encode(types.response.create({})).finish());
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

interface Waiter {
  check(): boolean;
  reject(error: Error): void;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: DecodedSpan[] = [];
  const requests: ReceivedExportRequest[] = [];
  const waiters = new Set<Waiter>();
  let behaviour: OtlpReceiverBehaviour = {};
  let clearGeneration = 0;

  const notify = (): void => {
    for (const waiter of waiters) waiter.check();
  };

  const respond = (
    res: ServerResponse,
    status: number,
    encoding: OtlpEncoding | undefined,
    message?: string,
  ): void => {
    const failed = status < 200 || status > 299;
    const headers: OutgoingHttpHeaders =
      failed && behaviour.retryAfter !== undefined ? { 'retry-after': behaviour.retryAfter } : {};
    answerExport(res, status, encoding, OTLP, message, headers);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const contentType = req.headers['content-type'];
    const contentEncoding = req.headers['content-encoding'];
    const encoding = encodingOf(contentType);
    const record: ReceivedExportRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      contentType,
      contentEncoding,
      encoding,
      bodyBytes: 0,
      spanCount: 0,
      responseStatus: undefined,
      userAgent: req.headers['user-agent'],
    };
    requests.push(record);

    const chunks: Buffer[] = [];
    for await (const chunk of req) {
      const buffer = chunk as Buffer;
      chunks.push(buffer);
      record.bodyBytes += buffer.length;
    }

    const path = (req.url ?? '').split('?')[0];
    if (path !== '/v1/traces') {
      record.responseStatus = 404;
      respond(res, 404, encoding, `no route for ${String(req.method)} ${String(req.url)}`);
      return;
    }
    if (req.method !== 'POST') {
      record.responseStatus = 405;
      res.setHeader('allow', 'POST');
      respond(res, 405, encoding, 'only POST is accepted');
      return;
    }
    if (encoding === undefined) {
      record.responseStatus = 415;
      respond(res, 415, encoding, `unsupported Content-Type ${String(contentType)}`);
      return;
    }

    let decoded: DecodedSpan[];
    try {
      decoded = decodeExportRequest(decompress(Buffer.concat(chunks), contentEncoding), encoding);
    } catch (error) {
      record.decodeError = error instanceof Error ? error.message : String(error);
      record.responseStatus = 400;
      respond(res, 400, encoding, `cannot decode request: ${record.decodeError}`);
      return;
    }
    record.spanCount = decoded.length;

    const current = behaviour;
    const generation = clearGeneration;
    if (current.delayMs !== undefined && current.delayMs > 0) await sleep(current.delayMs);
    if (current.destroyConnection === true) {
      res.destroy();
      return;
    }
    const status = current.status ?? 200;
    record.responseStatus = status;
    // Spans still in flight when `clear()` was called belong to an earlier test: drop them.
    if (status >= 200 && status <= 299 && generation === clearGeneration) {
      spans.push(...decoded);
      notify();
    }
    if (!res.destroyed) respond(res, status, encoding);
  };

  const server = await serveOnLoopback(handle);
  const { port, url } = server;

  const describeArrivals = (): string => {
    const lines = spans.map((span) => `  - ${describeSpan(span)}`);
    const statuses = requests.map(
      (r) => `${r.encoding ?? String(r.contentType)}→${String(r.responseStatus)}`,
    );
    return (
      `${spans.length} span(s) arrived in ${requests.length} request(s) [${statuses.join(', ')}]` +
      (lines.length > 0 ? `:\n${lines.join('\n')}` : '')
    );
  };

  const waitForSpans = (
    condition: number | SpanPredicate | SpanWaitCondition,
    timeoutMs = 5000,
  ): Promise<DecodedSpan[]> => {
    const where: SpanPredicate | undefined =
      typeof condition === 'function'
        ? condition
        : typeof condition === 'number'
          ? undefined
          : condition.where;
    const count =
      typeof condition === 'number'
        ? condition
        : typeof condition === 'function'
          ? 1
          : (condition.count ?? 1);
    const wanted =
      typeof condition === 'number'
        ? `${count} span(s)`
        : `${count} span(s) matching ${where === undefined ? 'anything' : where.toString()}`;

    return new Promise<DecodedSpan[]>((resolve, reject) => {
      const matching = (): DecodedSpan[] => (where === undefined ? [...spans] : spans.filter(where));
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${wanted}; ${describeArrivals()}`));
      }, timeoutMs);
      const waiter: Waiter = {
        check: () => {
          const found = matching();
          if (found.length < count) return false;
          clearTimeout(timer);
          waiters.delete(waiter);
          resolve(found);
          return true;
        },
        reject: (error) => {
          clearTimeout(timer);
          waiters.delete(waiter);
          reject(error);
        },
      };
      waiters.add(waiter);
      waiter.check();
    });
  };

  return {
    url,
    tracesUrl: `${url}/v1/traces`,
    port,
    spans,
    requests,
    waitForSpans,
    setBehaviour(next) {
      behaviour = { ...next };
    },
    clear() {
      clearGeneration++;
      spans.length = 0;
      requests.length = 0;
    },
    close() {
      for (const waiter of waiters) {
        waiter.reject(new Error(`OTLP receiver closed while waiting for spans; ${describeArrivals()}`));
      }
      return server.close();
    },
  };
}
