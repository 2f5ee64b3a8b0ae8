// A real OTLP/HTTP metrics receiver for tests: a node:http server on 127.0.0.1 that accepts
// `POST /v1/metrics` as binary protobuf or OTLP/JSON (optionally gzip- or deflate-compressed),
// decodes every metric of the ExportMetricsServiceRequest into a plain `DecodedMetric` with its
// resource and scope, and answers with an empty ExportMetricsServiceResponse in the request's
// encoding. The OTLP pieces shared with traces come from otlp-receiver.ts.
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  answerExport,
  decompress,
  encodingOf,
  loadOtlpTypes,
  plainAttributes,
  toBigInt,
} from './otlp-receiver.ts';
import type { OtlpEncoding, WireKeyValue, WireLong } from './otlp-receiver.ts';
import { serveOnLoopback } from './loopback-server.ts';

// The needed subset of opentelemetry-proto's metrics and collector/metrics (common and resource
// come from the trace receiver), with the upstream package names and field numbers. Exemplars and
// exponential-histogram buckets are not listed, so the decoder skips them.
const METRICS_PROTO = `
syntax = "proto3";
package opentelemetry.proto.metrics.v1;
message ResourceMetrics {
  opentelemetry.proto.resource.v1.Resource resource = 1;
  repeated ScopeMetrics scope_metrics = 2;
  string schema_url = 3;
}
message ScopeMetrics {
  opentelemetry.proto.common.v1.InstrumentationScope scope = 1;
  repeated Metric metrics = 2;
  string schema_url = 3;
}
message Metric {
  string name = 1;
  string description = 2;
  string unit = 3;
  oneof data {
    Gauge gauge = 5;
    Sum sum = 7;
    Histogram histogram = 9;
    ExponentialHistogram exponential_histogram = 10;
    Summary summary = 11;
  }
  repeated opentelemetry.proto.common.v1.KeyValue metadata = 12;
}
enum AggregationTemporality {
  AGGREGATION_TEMPORALITY_UNSPECIFIED = 0;
  AGGREGATION_TEMPORALITY_DELTA = 1;
  AGGREGATION_TEMPORALITY_CUMULATIVE = 2;
}
message Gauge { repeated NumberDataPoint data_points = 1; }
message Sum {
  repeated NumberDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
  bool is_monotonic = 3;
}
message Histogram {
  repeated HistogramDataPoint data_points = 1;
  AggregationTemporality aggregation_temporality = 2;
}
message ExponentialHistogram { AggregationTemporality aggregation_temporality = 2; }
message Summary {}
message NumberDataPoint {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 7;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  oneof value {
    double as_double = 4;
    sfixed64 as_int = 6;
  }
  uint32 flags = 8;
}
message HistogramDataPoint {
  repeated opentelemetry.proto.common.v1.KeyValue attributes = 9;
  fixed64 start_time_unix_nano = 2;
  fixed64 time_unix_nano = 3;
  fixed64 count = 4;
  optional double sum = 5;
  repeated fixed64 bucket_counts = 6;
  repeated double explicit_bounds = 7;
  uint32 flags = 10;
  optional double min = 11;
  optional double max = 12;
}
`;

const SERVICE_PROTO = `
syntax = "proto3";
package opentelemetry.proto.collector.metrics.v1;
message ExportMetricsServiceRequest {
  repeated opentelemetry.proto.metrics.v1.ResourceMetrics resource_metrics = 1;
}
message ExportMetricsServiceResponse { ExportMetricsPartialSuccess partial_success = 1; }
message ExportMetricsPartialSuccess {
  int64 rejected_data_points = 1;
  string error_message = 2;
}
`;

const OTLP = loadOtlpTypes(
  [METRICS_PROTO, SERVICE_PROTO],
  'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
  'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse',
);

export type DecodedMetricKind = 'gauge' | 'sum' | 'histogram' | 'exponential_histogram' | 'summary';
export type DecodedTemporality = 'unspecified' | 'delta' | 'cumulative';

export interface DecodedDataPoint {
  attributes: Record<string, unknown>;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  /** Gauge and sum points: the value (as_int converted to number). */
  value?: number;
  /** Histogram points. */
  count?: number;
  sum?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

export interface DecodedMetric {
  name: string;
  description: string;
  unit: string;
  kind: DecodedMetricKind;
  /** Sum and histogram only. */
  temporality?: DecodedTemporality;
  /** Sum only. */
  isMonotonic?: boolean;
  dataPoints: DecodedDataPoint[];
  resource: Record<string, unknown>;
  scope: { name: string; version?: string };
}

export interface ReceivedMetricsRequest {
  url: string;
  contentType: string | undefined;
  encoding: OtlpEncoding | undefined;
  metricCount: number;
  responseStatus: number;
  decodeError?: string;
}

export interface OtlpMetricsReceiver {
  readonly url: string;
  /** `${url}/v1/metrics`. */
  readonly metricsUrl: string;
  /** Every decoded metric, in arrival order (one entry per metric per export). */
  readonly metrics: DecodedMetric[];
  readonly requests: ReceivedMetricsRequest[];
  /** Resolves with every metric of that name received so far, once there is at least one. */
  waitForMetric(name: string, timeoutMs?: number): Promise<DecodedMetric[]>;
  clear(): void;
  close(): Promise<void>;
}

// Wire shapes: protobufjs `toObject` output (64-bit as bigint, enums as numbers) and OTLP/JSON
// (64-bit as decimal strings or numbers, enums as numbers or names).
interface WireNumberPoint {
  attributes?: WireKeyValue[];
  startTimeUnixNano?: WireLong;
  timeUnixNano?: WireLong;
  asDouble?: number | string;
  asInt?: WireLong;
}

interface WireHistogramPoint {
  attributes?: WireKeyValue[];
  startTimeUnixNano?: WireLong;
  timeUnixNano?: WireLong;
  count?: WireLong;
  sum?: number | string;
  bucketCounts?: WireLong[];
  explicitBounds?: (number | string)[];
}

interface WireMetric {
  name?: string;
  description?: string;
  unit?: string;
  gauge?: { dataPoints?: WireNumberPoint[] };
  sum?: { dataPoints?: WireNumberPoint[]; aggregationTemporality?: number | string; isMonotonic?: boolean };
  histogram?: { dataPoints?: WireHistogramPoint[]; aggregationTemporality?: number | string };
  exponentialHistogram?: { aggregationTemporality?: number | string };
  summary?: object;
}

interface WireRequest {
  resourceMetrics?: {
    resource?: { attributes?: WireKeyValue[] };
    scopeMetrics?: { scope?: { name?: string; version?: string }; metrics?: WireMetric[] }[];
  }[];
}

const TEMPORALITIES: readonly DecodedTemporality[] = ['unspecified', 'delta', 'cumulative'];

function temporality(value: number | string | undefined): DecodedTemporality {
  if (value === undefined) return 'unspecified';
  if (typeof value === 'number') return TEMPORALITIES[value] ?? 'unspecified';
  const bare = value.replace(/^AGGREGATION_TEMPORALITY_/, '').toLowerCase();
  return TEMPORALITIES.find((name) => name === bare) ?? 'unspecified';
}

function numberPoint(point: WireNumberPoint): DecodedDataPoint {
  const decoded: DecodedDataPoint = {
    attributes: plainAttributes(point.attributes),
    startTimeUnixNano: toBigInt(point.startTimeUnixNano),
    timeUnixNano: toBigInt(point.timeUnixNano),
  };
  if (point.asDouble !== undefined) decoded.value = Number(point.asDouble);
  else if (point.asInt !== undefined) decoded.value = Number(point.asInt);
  return decoded;
}

function histogramPoint(point: WireHistogramPoint): DecodedDataPoint {
  const decoded: DecodedDataPoint = {
    attributes: plainAttributes(point.attributes),
    startTimeUnixNano: toBigInt(point.startTimeUnixNano),
    timeUnixNano: toBigInt(point.timeUnixNano),
    count: Number(point.count ?? 0),
    bucketCounts: (point.bucketCounts ?? []).map(Number),
    explicitBounds: (point.explicitBounds ?? []).map(Number),
  };
  if (point.sum !== undefined) decoded.sum = Number(point.sum);
  return decoded;
}

function decodeMetric(
  metric: WireMetric,
  resource: Record<string, unknown>,
  scope: DecodedMetric['scope'],
): DecodedMetric {
  const base = {
    name: metric.name ?? '',
    description: metric.description ?? '',
    unit: metric.unit ?? '',
    resource,
    scope,
  };
  if (metric.gauge !== undefined) {
    return { ...base, kind: 'gauge', dataPoints: (metric.gauge.dataPoints ?? []).map(numberPoint) };
  }
  if (metric.sum !== undefined) {
    return {
      ...base,
      kind: 'sum',
      temporality: temporality(metric.sum.aggregationTemporality),
      isMonotonic: metric.sum.isMonotonic ?? false,
      dataPoints: (metric.sum.dataPoints ?? []).map(numberPoint),
    };
  }
  if (metric.histogram !== undefined) {
    return {
      ...base,
      kind: 'histogram',
      temporality: temporality(metric.histogram.aggregationTemporality),
      dataPoints: (metric.histogram.dataPoints ?? []).map(histogramPoint),
    };
  }
  if (metric.exponentialHistogram !== undefined) {
    return {
      ...base,
      kind: 'exponential_histogram',
      temporality: temporality(metric.exponentialHistogram.aggregationTemporality),
      dataPoints: [],
    };
  }
  if (metric.summary !== undefined) return { ...base, kind: 'summary', dataPoints: [] };
  throw new Error(`metric ${base.name} has no data`);
}

/** Decodes an ExportMetricsServiceRequest body (already decompressed). */
function decodeMetricsRequest(body: Buffer, encoding: OtlpEncoding): DecodedMetric[] {
  const request: WireRequest =
    encoding === 'protobuf'
      ? OTLP.request.toObject(OTLP.request.decode(body), { longs: BigInt })
      : (JSON.parse(body.toString('utf8')) as WireRequest);
  const metrics: DecodedMetric[] = [];
  for (const resourceMetrics of request.resourceMetrics ?? []) {
    const resource = plainAttributes(resourceMetrics.resource?.attributes);
    for (const scopeMetrics of resourceMetrics.scopeMetrics ?? []) {
      const scope: DecodedMetric['scope'] = { name: scopeMetrics.scope?.name ?? '' };
      if (scopeMetrics.scope?.version) scope.version = scopeMetrics.scope.version;
      for (const metric of scopeMetrics.metrics ?? []) metrics.push(decodeMetric(metric, resource, scope));
    }
  }
  return metrics;
}

export async function startOtlpMetricsReceiver(): Promise<OtlpMetricsReceiver> {
  const metrics: DecodedMetric[] = [];
  const requests: ReceivedMetricsRequest[] = [];
  const listeners = new Set<() => void>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const contentType = req.headers['content-type'];
    const encoding = encodingOf(contentType);
    const record: ReceivedMetricsRequest = {
      url: req.url ?? '',
      contentType,
      encoding,
      metricCount: 0,
      responseStatus: 200,
    };
    requests.push(record);
    if (req.method !== 'POST' || (req.url ?? '').split('?')[0] !== '/v1/metrics') {
      record.responseStatus = 404;
      answerExport(res, 404, encoding, OTLP, `no route for ${String(req.method)} ${String(req.url)}`);
      return;
    }
    if (encoding === undefined) {
      record.responseStatus = 415;
      answerExport(res, 415, encoding, OTLP, `unsupported Content-Type ${String(contentType)}`);
      return;
    }
    try {
      const body = decompress(Buffer.concat(chunks), req.headers['content-encoding']);
      const decoded = decodeMetricsRequest(body, encoding);
      record.metricCount = decoded.length;
      metrics.push(...decoded);
    } catch (error) {
      record.decodeError = error instanceof Error ? error.message : String(error);
      record.responseStatus = 400;
      answerExport(res, 400, encoding, OTLP, `cannot decode request: ${record.decodeError}`);
      return;
    }
    answerExport(res, 200, encoding, OTLP);
    for (const listener of listeners) listener();
  };

  const server = await serveOnLoopback(handle);
  const { url } = server;

  return {
    url,
    metricsUrl: `${url}/v1/metrics`,
    metrics,
    requests,
    waitForMetric(name, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          const found = metrics.filter((metric) => metric.name === name);
          if (found.length === 0) return;
          clearTimeout(timer);
          listeners.delete(check);
          resolve(found);
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          const names = [...new Set(metrics.map((metric) => metric.name))].join(', ');
          reject(new Error(`Timed out after ${timeoutMs} ms waiting for metric ${name}; received: ${names}`));
        }, timeoutMs);
        listeners.add(check);
        check();
      });
    },
    clear() {
      metrics.length = 0;
      requests.length = 0;
    },
    close: () => server.close(),
  };
}
