// The proxy's per-span export encoding, measured in-process against the library path it replaces:
// finished spans shaped like the proxy's, encoded as OTLP/protobuf by the SDK's serializer and by
// proxy/src/otlp/span-encoder.ts, after checking that both decode to the same spans. CPU time from
// process.cpuUsage over many repetitions; the lower quartile of the rounds is reported, the figure
// least disturbed by other processes.
import assert from 'node:assert/strict';
import { SpanKind } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import { encodeTraceRequest } from '../../proxy/src/otlp/span-encoder.ts';
import { decodeExportRequest } from '../../proxy/test/support/otlp-receiver.ts';
import { percentile } from './lib/stats.ts';
import { writeResults } from './lib/suite.ts';
import type { CommonOptions, Suite } from './lib/suite.ts';
import { fmt, renderTable } from './lib/table.ts';

const CONTENDERS = ['span-encoding'] as const;
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

function summary(sorted: number[]): { p25: number; median: number } {
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

async function runSuite(common: CommonOptions): Promise<string> {
  const rounds = common.quick ? 10 : 40;
  const wanted = common.only ?? [...CONTENDERS];
  const results: Record<string, ReturnType<typeof spanEncoding>> = {};
  if (wanted.includes('span-encoding')) results['span-encoding'] = spanEncoding(rounds);
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
    suite: 'hot-path',
    at: new Date().toISOString(),
    node: process.version,
    rounds,
    results,
  });
}

export const hotPathSuite: Suite = {
  name: 'hot-path',
  description: 'the OTLP span encoding in-process: the SDK serializer vs spanscope',
  options: {},
  help: ['(no extra flags; --quick: 10 rounds instead of 40)'],
  contenders: [...CONTENDERS],
  run: runSuite,
};
