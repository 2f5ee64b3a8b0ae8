// Spans as `npm run validate` needs them (ids, parent, kind, service, attributes), read from the
// two places they come from: an OTLP/HTTP export (binary protobuf or JSON, as the deployment's
// exporters send it to `--otlp-listen`) and Tempo's trace-by-id answer (OTLP JSON, under
// `batches` or `trace.resourceSpans`, ids in hex or base64 depending on the version).
import { DecodeError } from './errors.ts';
import { double, hex, int64, readFields, utf8 } from './protobuf-wire.ts';

export interface Span {
  /** 32 lowercase hex digits. */
  readonly traceId: string;
  /** 16 lowercase hex digits. */
  readonly spanId: string;
  readonly parentSpanId: string | undefined;
  readonly name: string;
  /** `SERVER`, `CLIENT`, `INTERNAL`, … */
  readonly kind: string;
  /** The resource's `service.name`. */
  readonly service: string;
  readonly attributes: Readonly<Record<string, unknown>>;
}

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

function kindName(kind: number | string | undefined): string {
  if (kind === undefined) return 'UNSPECIFIED';
  if (typeof kind === 'number') return KINDS[kind] ?? String(kind);
  return kind.replace(/^SPAN_KIND_/, '');
}

// ---------------------------------------------------------------------------------------------
// Binary protobuf: ExportTraceServiceRequest, field numbers from opentelemetry-proto.

function decodeAnyValue(bytes: Uint8Array): unknown {
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.type === 'bytes') return utf8(f.value);
    if (f.field === 2 && f.type === 'varint') return f.value !== 0n;
    if (f.field === 3 && f.type === 'varint') return int64(f.value);
    if (f.field === 4 && f.type === 'fixed64') return double(f.value);
  }
  // Arrays, key-value lists and bytes are not needed by any check.
  return undefined;
}

function decodeKeyValue(bytes: Uint8Array): [string, unknown] {
  let key = '';
  let value: unknown;
  for (const f of readFields(bytes)) {
    if (f.field === 1 && f.type === 'bytes') key = utf8(f.value);
    else if (f.field === 2 && f.type === 'bytes') value = decodeAnyValue(f.value);
  }
  return [key, value];
}

function decodeResourceService(bytes: Uint8Array): string {
  for (const f of readFields(bytes)) {
    if (f.field !== 1 || f.type !== 'bytes') continue;
    const [key, value] = decodeKeyValue(f.value);
    if (key === 'service.name' && typeof value === 'string') return value;
  }
  return '';
}

function decodeSpan(bytes: Uint8Array, service: string): Span {
  let traceId = '';
  let spanId = '';
  let parentSpanId: string | undefined;
  let name = '';
  let kind = 0;
  const attributes: Record<string, unknown> = {};
  for (const f of readFields(bytes)) {
    if (f.type === 'bytes') {
      if (f.field === 1) traceId = hex(f.value);
      else if (f.field === 2) spanId = hex(f.value);
      else if (f.field === 4 && f.value.length > 0) parentSpanId = hex(f.value);
      else if (f.field === 5) name = utf8(f.value);
      else if (f.field === 9) {
        const [key, value] = decodeKeyValue(f.value);
        attributes[key] = value;
      }
    } else if (f.field === 6 && f.type === 'varint') {
      kind = Number(f.value);
    }
  }
  return { traceId, spanId, parentSpanId, name, kind: kindName(kind), service, attributes };
}

/** An ExportTraceServiceRequest in binary protobuf (already decompressed). */
export function decodeOtlpProtobuf(body: Uint8Array): Span[] {
  const spans: Span[] = [];
  for (const resourceSpans of readFields(body)) {
    if (resourceSpans.field !== 1 || resourceSpans.type !== 'bytes') continue;
    let service = '';
    const scopes: Uint8Array[] = [];
    for (const f of readFields(resourceSpans.value)) {
      if (f.type !== 'bytes') continue;
      if (f.field === 1) service = decodeResourceService(f.value);
      else if (f.field === 2) scopes.push(f.value);
    }
    for (const scope of scopes) {
      for (const f of readFields(scope)) {
        if (f.field === 2 && f.type === 'bytes') spans.push(decodeSpan(f.value, service));
      }
    }
  }
  return spans;
}

// ---------------------------------------------------------------------------------------------
// OTLP JSON, as exporters send it and as Tempo answers.

interface JsonAnyValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string | number;
  doubleValue?: string | number;
}

interface JsonKeyValue {
  key?: string;
  value?: JsonAnyValue;
}

interface JsonSpan {
  traceId?: string;
  spanId?: string;
  parentSpanId?: string;
  name?: string;
  kind?: number | string;
  attributes?: JsonKeyValue[];
}

interface JsonScopeSpans {
  spans?: JsonSpan[];
}

interface JsonResourceSpans {
  resource?: { attributes?: JsonKeyValue[] };
  scopeSpans?: JsonScopeSpans[];
  /** Before OTLP 0.15 (older Tempo versions). */
  instrumentationLibrarySpans?: JsonScopeSpans[];
}

interface JsonTraces {
  resourceSpans?: JsonResourceSpans[];
  /** Tempo's `/api/traces/<id>`. */
  batches?: JsonResourceSpans[];
  /** Tempo's `/api/v2/traces/<id>`. */
  trace?: { resourceSpans?: JsonResourceSpans[]; batches?: JsonResourceSpans[] };
}

/** OTLP JSON ids are hex; Tempo's answers (gogo/protobuf JSON) have them in base64. */
function jsonId(value: string | undefined, bytes: 8 | 16): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (value.length === bytes * 2 && /^[0-9a-fA-F]+$/.test(value)) return value.toLowerCase();
  const decoded = Buffer.from(value, 'base64');
  if (decoded.length !== bytes) throw new DecodeError(`malformed ${bytes}-byte id ${JSON.stringify(value)}`);
  return decoded.toString('hex');
}

function jsonValue(value: JsonAnyValue | undefined): unknown {
  if (value === undefined) return undefined;
  if (value.stringValue !== undefined) return value.stringValue;
  if (value.boolValue !== undefined) return value.boolValue;
  if (value.intValue !== undefined) return Number(value.intValue);
  if (value.doubleValue !== undefined) return Number(value.doubleValue);
  return undefined;
}

function jsonAttributes(list: JsonKeyValue[] | undefined): Record<string, unknown> {
  const attributes: Record<string, unknown> = {};
  for (const { key, value } of list ?? []) attributes[key ?? ''] = jsonValue(value);
  return attributes;
}

/** OTLP JSON traces: an export request body, or Tempo's answer to a trace by id. */
export function decodeOtlpJson(document: unknown): Span[] {
  if (typeof document !== 'object' || document === null) {
    throw new DecodeError('expected an OTLP JSON object');
  }
  const traces = document as JsonTraces;
  const batches =
    traces.resourceSpans ?? traces.batches ?? traces.trace?.resourceSpans ?? traces.trace?.batches ?? [];
  const spans: Span[] = [];
  for (const batch of batches) {
    const service = jsonAttributes(batch.resource?.attributes)['service.name'];
    for (const scope of batch.scopeSpans ?? batch.instrumentationLibrarySpans ?? []) {
      for (const span of scope.spans ?? []) {
        spans.push({
          traceId: jsonId(span.traceId, 16) ?? '',
          spanId: jsonId(span.spanId, 8) ?? '',
          parentSpanId: jsonId(span.parentSpanId, 8),
          name: span.name ?? '',
          kind: kindName(span.kind),
          service: typeof service === 'string' ? service : '',
          attributes: jsonAttributes(span.attributes),
        });
      }
    }
  }
  return spans;
}
