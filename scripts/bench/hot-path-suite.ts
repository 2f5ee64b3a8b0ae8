// The proxy's own code on the per-request path, measured in-process against the library path it
// replaces; that both give the same result is checked here for the encoding and by the tests for
// the others (proxy/test/server-span.test.ts, proxy/test/request-metrics.test.ts):
// - span-encoding: finished spans shaped like the proxy's, encoded as OTLP/protobuf by the SDK's
//   serializer and by proxy/src/otlp/span-encoder.ts;
// - request-span: a request's SERVER span started from the caller's traceparent, attributed and
//   ended, by the SDK's tracer and by proxy/src/server-span.ts, into the same encoding processor;
// - request-metrics: a request counted and timed by prom-client's Counter and Histogram and by
//   proxy/src/request-metrics.ts;
// - access-log: one access-log line through pino into /dev/null, gathered 4 KiB at a time by
//   sonic-boom's own `minLength` and by proxy/src/logger.ts's LineBatcher (the same bytes reach the
//   file either way, which proxy/test/access-log.test.ts checks).
// CPU time from process.cpuUsage over many repetitions; the lower quartile of the rounds is
// reported, the figure least disturbed by other processes.
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind } from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import {
  AlwaysOnSampler,
  InMemorySpanExporter,
  ParentBasedSampler,
  SimpleSpanProcessor,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { closeSync, openSync } from 'node:fs';
import { pino } from 'pino';
import { Counter, Histogram, Registry } from 'prom-client';
import { createAccessLog } from '../../proxy/src/access-log.ts';
import { LineBatcher } from '../../proxy/src/logger.ts';
import { EncodingBatchProcessor } from '../../proxy/src/otlp/span-batch-processor.ts';
import { encodeTraceRequest } from '../../proxy/src/otlp/span-encoder.ts';
import { RequestMetrics, statusClass } from '../../proxy/src/request-metrics.ts';
import { serverSpanFactory } from '../../proxy/src/server-span.ts';
import { otelResource } from '../../proxy/src/tracing.ts';
import { decodeExportRequest } from '../../proxy/test/support/otlp-receiver.ts';
import { percentile } from './lib/stats.ts';
import { writeResults } from './lib/suite.ts';
import type { CommonOptions, Suite } from './lib/suite.ts';
import { fmt, renderTable } from './lib/table.ts';

const CONTENDERS = ['span-encoding', 'request-span', 'request-metrics', 'access-log'] as const;
const SPANS = 512;

/** Spans shaped like the proxy's SERVER spans: the same attributes, a parent on half of them. */
function proxyLikeSpans(): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const tracer = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }).getTracer(
    'bench',
  );
  const paths = ['/products', '/product/{id}', '/health'];
  for (let i = 0; i < SPANS; i++) {
    const route = paths[i % paths.length] ?? '/';
    const span = tracer.startSpan(`GET ${route}`, { kind: SpanKind.SERVER });
    span.setAttributes({
      'http.request.method': 'GET',
      'url.path': route.replace('{id}', String(i)),
      'url.scheme': 'http',
      'server.address': '127.0.0.1',
      'server.port': 8080,
      'client.address': '127.0.0.1',
      'network.protocol.version': '1.1',
      'user_agent.original': 'curl/8.5.0',
      'spanscope.user_agent.category': 'curl',
      'spanscope.handler': 'get_products',
      'http.route': route,
      'pyroscope.profile.id': span.spanContext().spanId,
      'http.response.status_code': i % 10 === 0 ? 502 : 200,
    });
    span.end();
  }
  return exporter.getFinishedSpans();
}

/** Microseconds of CPU per unit of `fn`, per round. */
function measure(fn: () => void, units: number, rounds: number): number[] {
  const results: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const start = process.cpuUsage();
    fn();
    const used = process.cpuUsage(start);
    results.push((used.user + used.system) / units);
  }
  return results.sort((a, b) => a - b);
}

type Summary = { p25: number; median: number };

function summary(sorted: number[]): Summary {
  return { p25: percentile(sorted, 25), median: percentile(sorted, 50) };
}

function spanEncoding(rounds: number) {
  const spans = proxyLikeSpans();
  const library = Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? new Uint8Array());
  // The two encodings must say the same before their cost means anything.
  assert.deepEqual(
    decodeExportRequest(Buffer.from(encodeTraceRequest(spans)), 'protobuf'),
    decodeExportRequest(library, 'protobuf'),
  );
  const repeat = 20;
  return {
    unit: 'µs per span',
    library: summary(
      measure(
        () => {
          for (let i = 0; i < repeat; i++) ProtobufTraceSerializer.serializeRequest(spans);
        },
        repeat * spans.length,
        rounds,
      ),
    ),
    spanscope: summary(
      measure(
        () => {
          for (let i = 0; i < repeat; i++) encodeTraceRequest(spans);
        },
        repeat * spans.length,
        rounds,
      ),
    ),
  };
}

function requestAttributes(i: number): Attributes {
  return {
    'http.request.method': 'GET',
    'url.path': `/product/${String(i % 100)}`,
    'url.scheme': 'http',
    'server.port': 8080,
    'network.protocol.version': '1.1',
    'spanscope.user_agent.category': 'curl',
    'spanscope.handler': 'get_product',
    'server.address': '127.0.0.1',
    'client.address': '127.0.0.1',
    'user_agent.original': 'curl/8.5.0',
    'http.route': '/product/{id}',
  };
}

/** A request's span from a caller's traceparent to its encoding, as request-trace.ts drives it. */
function requestSpan(rounds: number) {
  const resource = otelResource({ OTEL_SERVICE_NAME: 'bench', OTEL_RESOURCE_ATTRIBUTES: {} });
  const sampler = new ParentBasedSampler({ root: new AlwaysOnSampler() });
  const discard = {
    export: (_batch: unknown, done: (r: { code: 0 }) => void) => done({ code: 0 }),
    shutdown: () => Promise.resolve(),
  };
  const processor = () =>
    new EncodingBatchProcessor(discard, {
      maxQueueSize: 2048,
      maxExportBatchSize: 512,
      scheduledDelayMillis: 60_000,
      onDrop: () => undefined,
    });
  const tracer = new TracerProvider({ resource, sampler, spanProcessors: [processor()] }).getTracer(
    'spanscope-proxy',
  );
  const start = serverSpanFactory({
    sampler,
    processor: processor(),
    resource,
    scope: { name: 'spanscope-proxy' },
  });
  const propagator = new W3CTraceContextPropagator();
  const getter = {
    keys: (c: Record<string, string>) => Object.keys(c),
    get: (c: Record<string, string>, k: string) => c[k],
  };
  const headers = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };
  const requests = 2000;
  const run =
    (
      startSpan: (
        name: string,
        parent: typeof ROOT_CONTEXT,
        attributes: Attributes,
      ) => { setAttribute(k: string, v: number): unknown; end(): void },
    ) =>
    () => {
      for (let i = 0; i < requests; i++) {
        const parent = propagator.extract(ROOT_CONTEXT, headers, getter);
        const span = startSpan('GET /product/{id}', parent, requestAttributes(i));
        span.setAttribute('http.response.status_code', 200);
        span.end();
      }
    };
  return {
    unit: 'µs per request',
    library: summary(
      measure(
        run((name, parent, attributes) => {
          const span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
          span.setAttributes(attributes);
          return span;
        }),
        requests,
        rounds,
      ),
    ),
    spanscope: summary(measure(run(start), requests, rounds)),
  };
}

/** One request counted and timed, with label values from the proxy's closed sets. */
function requestMetrics(rounds: number) {
  const labelNames = ['handler', 'method', 'status_class', 'user_agent'];
  const registry = new Registry();
  const counter = new Counter({ name: 'requests_total', help: '-', labelNames, registers: [registry] });
  const histogram = new Histogram({ name: 'duration_seconds', help: '-', labelNames, registers: [registry] });
  const ours = new RequestMetrics(new Registry(), {
    countName: 'requests_total',
    countHelp: '-',
    durationName: 'duration_seconds',
    durationHelp: '-',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  });
  const agents = ['curl', 'browser', 'load-test'];
  const requests = 20_000;
  return {
    unit: 'µs per request',
    library: summary(
      measure(
        () => {
          for (let i = 0; i < requests; i++) {
            const labels = {
              handler: 'get_product',
              method: 'GET',
              status_class: statusClass(200),
              user_agent: agents[i % 3] ?? '',
            };
            counter.inc(labels);
            histogram.observe(labels, 0.0003 * (i % 50));
          }
        },
        requests,
        rounds,
      ),
    ),
    spanscope: summary(
      measure(
        () => {
          for (let i = 0; i < requests; i++)
            ours.record('get_product', 'GET', 200, agents[i % 3] ?? '', 0.0003 * (i % 50));
        },
        requests,
        rounds,
      ),
    ),
  };
}

/**
 * One access-log line into /dev/null: through `logger.info` and sonic-boom's own `minLength`
 * (library), and as proxy-handler.ts writes it (access-log.ts into the LineBatcher).
 */
function accessLog(rounds: number) {
  const devNull = openSync('/dev/null', 'w');
  const batched = new LineBatcher(pino.destination({ fd: devNull, sync: true }));
  const options = { level: 'info', name: 'spanscope-proxy', base: { pid: process.pid } };
  const viaMinLength = pino(options, pino.destination({ fd: devNull, sync: true, minLength: 4096 }));
  const accessLog = createAccessLog(pino(options, batched));
  const lines = 20_000;
  const library = () => {
    for (let i = 0; i < lines; i++) {
      viaMinLength.info(
        {
          trace_id: '0af7651916cd43dd8448eb211c80319c',
          span_id: 'b7ad6b7169203331',
          method: 'GET',
          path: `/product/${String(i % 100)}`,
          handler: 'get_product',
          route: '/product/{id}',
          user_agent: 'curl',
          status: 200,
          duration_ms: 0.412,
          upstream_error: undefined,
        },
        'request',
      );
    }
  };
  const spanscope = () => {
    for (let i = 0; i < lines; i++) {
      accessLog({
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        method: 'GET',
        path: `/product/${String(i % 100)}`,
        handler: 'get_product',
        route: '/product/{id}',
        userAgent: 'curl',
        status: 200,
        durationMs: 0.412,
        upstreamError: undefined,
      });
    }
  };
  const result = {
    unit: 'µs per line',
    library: summary(measure(library, lines, rounds)),
    spanscope: summary(measure(spanscope, lines, rounds)),
  };
  batched.flushSync();
  closeSync(devNull);
  return result;
}

async function runSuite(common: CommonOptions): Promise<string> {
  const rounds = common.quick ? 10 : 40;
  const wanted = common.only ?? [...CONTENDERS];
  const results: Record<string, ReturnType<typeof spanEncoding>> = {};
  if (wanted.includes('span-encoding')) results['span-encoding'] = spanEncoding(rounds);
  if (wanted.includes('request-span')) results['request-span'] = requestSpan(rounds);
  if (wanted.includes('request-metrics')) results['request-metrics'] = requestMetrics(rounds);
  if (wanted.includes('access-log')) results['access-log'] = accessLog(rounds);
  console.log(
    renderTable(
      ['step', 'unit', 'library p25', 'spanscope p25', 'library median', 'spanscope median', 'ratio (p25)'],
      Object.entries(results).map(([step, r]) => [
        step,
        r.unit,
        fmt(r.library.p25, 2),
        fmt(r.spanscope.p25, 2),
        fmt(r.library.median, 2),
        fmt(r.spanscope.median, 2),
        fmt(r.library.p25 / r.spanscope.p25, 2),
      ]),
    ),
  );
  await Promise.resolve();
  return writeResults(common.outDir, 'hot-path', {
    rounds,
    results,
  });
}

export const hotPathSuite: Suite = {
  name: 'hot-path',
  description:
    "spanscope's own per-request code in-process against the library it replaces: span encoding, the request span, the request metrics",
  options: {},
  help: ['(no extra flags; --quick: 10 rounds instead of 40)'],
  contenders: [...CONTENDERS],
  run: runSuite,
};
