import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Attributes, Tracer } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import protobuf from 'protobufjs';
import { loadConfig } from '../src/config.ts';
import { EncodedSpanBatch, encodeTraceRequest } from '../src/otlp/span-encoder.ts';
import { createTracing } from '../src/tracing.ts';
import type { Tracing } from '../src/tracing.ts';
import { decodeExportRequest, startOtlpReceiver } from './support/otlp-receiver.ts';
import type { DecodedSpan, OtlpReceiver } from './support/otlp-receiver.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';

/** Spans made by the real SDK, kept in memory. */
function recordingProvider(resource: Attributes, limits = {}) {
  const exporter = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes(resource),
    spanLimits: limits,
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
  return { exporter, provider };
}

function nanos(time: readonly [number, number]): bigint {
  return BigInt(time[0]) * 1_000_000_000n + BigInt(time[1]);
}

// The receiver decodes what the proxy's spans use; these are the remaining fields of
// trace.proto (dropped counts, span and link flags, scope attributes), with the upstream numbers.
const EXTRA_FIELDS = protobuf
  .parse(
    `
syntax = "proto3";
message Request { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; string schema_url = 3; }
message Resource { uint32 dropped_attributes_count = 2; }
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; string schema_url = 3; }
message Scope { repeated KeyValue attributes = 3; uint32 dropped_attributes_count = 4; }
message KeyValue { string key = 1; }
message Span {
  bytes span_id = 2;
  uint32 dropped_attributes_count = 10;
  repeated Event events = 11;
  uint32 dropped_events_count = 12;
  repeated Link links = 13;
  uint32 dropped_links_count = 14;
  fixed32 flags = 16;
}
message Event { uint32 dropped_attributes_count = 4; }
message Link { uint32 dropped_attributes_count = 5; fixed32 flags = 6; }
`,
  )
  .root.lookupType('Request');

interface ExtraSpanFields {
  spanId: Uint8Array;
  droppedAttributesCount: number;
  droppedEventsCount: number;
  droppedLinksCount: number;
  flags: number;
  events: { droppedAttributesCount: number }[];
  links: { droppedAttributesCount: number; flags: number }[];
}

function extraFields(body: Uint8Array): Map<string, ExtraSpanFields> {
  const decoded = EXTRA_FIELDS.toObject(EXTRA_FIELDS.decode(body), { defaults: true, arrays: true }) as {
    resourceSpans: { scopeSpans: { spans: ExtraSpanFields[] }[] }[];
  };
  const bySpanId = new Map<string, ExtraSpanFields>();
  for (const rs of decoded.resourceSpans)
    for (const ss of rs.scopeSpans)
      for (const span of ss.spans) bySpanId.set(Buffer.from(span.spanId).toString('hex'), span);
  return bySpanId;
}

describe('OTLP/protobuf span encoder', () => {
  const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: TRACE_ID,
    spanId: PARENT_ID,
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  });
  const everyValue: Attributes = {
    'http.request.method': 'GET',
    'text.unicode': 'grüße ✓ 日本 🚀',
    'text.long': 'x'.repeat(300),
    'text.empty': '',
    'int.zero': 0,
    'int.small': 42,
    'int.negative': -5,
    'int.large': 2 ** 40 + 3,
    'int.max_safe': Number.MAX_SAFE_INTEGER,
    'double.value': 3.25,
    'double.negative': -0.5,
    'bool.true': true,
    'bool.false': false,
    'array.strings': ['a', 'ü', ''],
    'array.numbers': [1, 2.5, -3],
    'array.bools': [true, false],
    'array.empty': [],
  };

  function makeSpans(): { spans: ReadableSpan[]; providers: TracerProvider[] } {
    const main = recordingProvider(
      { 'service.name': 'checkout-sidecar', 'deployment.environment.name': 'test', 'host.cpus': 2 },
      {
        eventCountLimit: 2,
        linkCountLimit: 1,
        attributePerEventCountLimit: 1,
        attributePerLinkCountLimit: 1,
      },
    );
    const other = recordingProvider({ 'service.name': 'second-service' });
    const tracer = main.provider.getTracer('spanscope-proxy', '1.2.3');
    const otherScope = main.provider.getTracer('another-scope');

    const server = tracer.startSpan(
      'GET /product/{id}',
      { kind: SpanKind.SERVER, attributes: everyValue },
      remoteParent,
    );
    server.addEvent('first', { 'event.kept': 'yes', 'event.dropped': 1 });
    server.addEvent('second');
    server.addEvent('third, pushes out the first', { n: 3 });
    // The span keeps one link (the limit above): the later one, which pushes out the first.
    server.addLink({ context: { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 0 } });
    server.addLink({
      context: {
        traceId: 'a'.repeat(32),
        spanId: 'b'.repeat(16),
        traceFlags: TraceFlags.SAMPLED,
        isRemote: true,
        traceState: new TraceState('vendor=value'),
      },
      attributes: { 'link.kept': 'yes', 'link.dropped': true },
    });
    server.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream unavailable: connect ECONNREFUSED' });

    const child = tracer.startSpan(
      'child',
      { kind: SpanKind.INTERNAL, attributes: { k: 'v' } },
      trace.setSpan(ROOT_CONTEXT, server),
    );
    child.setStatus({ code: SpanStatusCode.OK });
    child.end();
    server.end();

    for (const kind of [SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER]) {
      otherScope.startSpan(`kind ${kind}`, { kind }).end();
    }
    other.provider.getTracer('spanscope-proxy', '1.2.3').startSpan('elsewhere').end();
    return {
      spans: [...main.exporter.getFinishedSpans(), ...other.exporter.getFinishedSpans()],
      providers: [main.provider, other.provider],
    };
  }

  it("decodes to exactly what the library's own serializer produces, field by field", async () => {
    const { spans, providers } = makeSpans();
    const mine = encodeTraceRequest(spans);
    const library = ProtobufTraceSerializer.serializeRequest(spans);
    assert.ok(library);
    const decoded = decodeExportRequest(mine, 'protobuf');
    assert.deepEqual(decoded, decodeExportRequest(Buffer.from(library), 'protobuf'));
    assert.equal(decoded.length, spans.length);

    // Fields the receiver does not decode: dropped counts and flags.
    const myExtra = extraFields(mine);
    const libraryExtra = extraFields(Buffer.from(library));
    for (const span of spans) {
      const id = span.spanContext().spanId;
      const extra = myExtra.get(id);
      assert.ok(extra, `span ${span.name} encoded`);
      assert.equal(extra.droppedAttributesCount, span.droppedAttributesCount);
      assert.equal(extra.droppedEventsCount, span.droppedEventsCount);
      assert.equal(extra.droppedLinksCount, span.droppedLinksCount);
      assert.deepEqual(
        extra.events.map((e) => e.droppedAttributesCount),
        span.events.map((e) => e.droppedAttributesCount ?? 0),
      );
      assert.deepEqual(extra, libraryExtra.get(id), `${span.name}: same counts and flags as the library`);
    }
    await Promise.all(providers.map((p) => p.shutdown()));
  });

  it('writes every field of the spans it is given', async () => {
    const { spans, providers } = makeSpans();
    const body = encodeTraceRequest(spans);
    const decoded = new Map(decodeExportRequest(body, 'protobuf').map((s) => [s.spanId, s]));
    const extra = extraFields(body);
    for (const span of spans) {
      const ctx = span.spanContext();
      const got = decoded.get(ctx.spanId) as DecodedSpan;
      assert.equal(got.traceId, ctx.traceId);
      assert.equal(got.parentSpanId, span.parentSpanContext?.spanId);
      assert.equal(got.traceState, ctx.traceState?.serialize());
      assert.equal(got.name, span.name);
      assert.equal(got.kind, ['INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'][span.kind]);
      assert.equal(got.startTimeUnixNano, nanos(span.startTime));
      assert.equal(got.endTimeUnixNano, nanos(span.endTime));
      assert.deepEqual(got.attributes, { ...span.attributes });
      assert.deepEqual(
        got.events,
        span.events.map((e) => ({
          name: e.name,
          timeUnixNano: nanos(e.time),
          attributes: { ...e.attributes },
        })),
      );
      assert.deepEqual(
        got.links,
        span.links.map((l) => ({
          traceId: l.context.traceId,
          spanId: l.context.spanId,
          traceState: l.context.traceState?.serialize(),
          attributes: { ...l.attributes },
        })),
      );
      assert.equal(got.status.code, ['UNSET', 'OK', 'ERROR'][span.status.code]);
      assert.equal(got.status.message, span.status.message);
      assert.deepEqual(got.resource, { ...span.resource.attributes });
      assert.deepEqual(got.scope, {
        name: span.instrumentationScope.name,
        ...(span.instrumentationScope.version ? { version: span.instrumentationScope.version } : {}),
      });
      // W3C flags in the low byte, "has is_remote" (0x100), "is remote" (0x200) for a remote parent.
      const remote = span.parentSpanContext?.isRemote === true ? 0x200 : 0;
      assert.equal(extra.get(ctx.spanId)?.flags, ctx.traceFlags | 0x100 | remote);
    }
    const server = decoded.get(spans.find((s) => s.kind === SpanKind.SERVER)?.spanContext().spanId ?? '');
    assert.ok(server);
    assert.equal(server.parentSpanId, PARENT_ID);
    assert.equal(server.traceState, 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7');
    assert.equal(server.attributes['text.unicode'], 'grüße ✓ 日本 🚀');
    assert.equal(server.attributes['int.large'], 2 ** 40 + 3);
    assert.equal(server.attributes['int.negative'], -5);
    assert.equal(server.links[0]?.traceState, 'vendor=value');
    assert.equal(server.status.message, 'upstream unavailable: connect ECONNREFUSED');
    const serverLinks = extra.get(server.spanId)?.links;
    assert.deepEqual(serverLinks, [{ droppedAttributesCount: 1, flags: 0x301 }]);
    await Promise.all(providers.map((p) => p.shutdown()));
  });

  it('groups a batch by resource and scope, each written once', async () => {
    const { spans, providers } = makeSpans();
    const decoded = EXTRA_FIELDS.toObject(EXTRA_FIELDS.decode(encodeTraceRequest(spans)), {
      arrays: true,
    }) as { resourceSpans: { scopeSpans: { spans: unknown[] }[] }[] };
    assert.deepEqual(
      decoded.resourceSpans.map((rs) => rs.scopeSpans.map((ss) => ss.spans.length)),
      [[2, 3], [1]],
    );
    await Promise.all(providers.map((p) => p.shutdown()));
  });

  it('encodes a full batch of 512 spans with long length prefixes', async () => {
    const { exporter, provider } = recordingProvider({ 'service.name': 'big' });
    const tracer = provider.getTracer('spanscope-proxy');
    const paths = ['/products', '/product/1', '/product/22', '/products'];
    for (let i = 0; i < 512; i++) {
      const span = tracer.startSpan('GET', { kind: SpanKind.SERVER });
      // Tens of KB of spans: the ScopeSpans length takes a 3-byte varint.
      span.setAttributes({ 'url.path': paths[i % 4], 'http.route': i < 256 ? '/a' : '/b', n: i });
      span.end();
    }
    const spans = exporter.getFinishedSpans();
    const body = encodeTraceRequest(spans);
    const decoded = decodeExportRequest(body, 'protobuf');
    assert.deepEqual(
      decoded,
      decodeExportRequest(Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? []), 'protobuf'),
    );
    assert.deepEqual(
      decoded.map((s) => s.attributes['url.path']),
      spans.map((_, i) => paths[i % 4]),
    );
    assert.equal(decoded[300]?.attributes['http.route'], '/b');
    await provider.shutdown();
  });

  it('carries the next batch in the buffers of a released one, with none of its bytes', async () => {
    const { exporter, provider } = recordingProvider({ 'service.name': 'reuse' });
    const tracer = provider.getTracer('spanscope-proxy');
    for (let i = 0; i < 300; i++) {
      const span = tracer.startSpan(`long ${i}`, { kind: SpanKind.SERVER });
      span.setAttributes({ 'url.path': `/product/${'9'.repeat(100)}${i}` });
      span.end();
    }
    const long = exporter.getFinishedSpans();
    exporter.reset();
    tracer.startSpan('short', { kind: SpanKind.CLIENT }).end();
    const short = exporter.getFinishedSpans();

    const first = new EncodedSpanBatch();
    for (const span of long) first.add(span);
    const firstRequest = first.toRequest();
    assert.equal(decodeExportRequest(firstRequest, 'protobuf').length, 300);
    first.release();
    assert.equal(first.count, 0);

    const second = new EncodedSpanBatch();
    for (const span of short) second.add(span);
    const secondRequest = second.toRequest();
    assert.equal(secondRequest.buffer, firstRequest.buffer, 'the request buffer was reused');
    assert.ok(secondRequest.length < firstRequest.length);
    assert.deepEqual(
      decodeExportRequest(secondRequest, 'protobuf'),
      decodeExportRequest(encodeTraceRequest(short), 'protobuf'),
    );
    second.release();
    await provider.shutdown();
  });
});

describe('OTLP/protobuf export from the proxy', () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  function tracingFor(env: Record<string, string>): Tracing {
    receiver.clear();
    receiver.setBehaviour({});
    return createTracing(
      loadConfig({
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
        OTEL_SERVICE_NAME: 'export-test',
        ...env,
      }),
    );
  }

  function endSpans(tracer: Tracer, count: number, name = 'span'): string[] {
    const ids: string[] = [];
    for (let i = 0; i < count; i++) {
      const span = tracer.startSpan(`${name} ${i}`, { kind: SpanKind.SERVER, attributes: { i } });
      ids.push(span.spanContext().spanId);
      span.end();
    }
    return ids;
  }

  it('sends spans in batches no larger than the queue, as protobuf, through the OpenTelemetry transport', async () => {
    const tracing = tracingFor({ OTEL_BSP_MAX_QUEUE_SIZE: '3', OTEL_BSP_SCHEDULE_DELAY: '20' });
    try {
      endSpans(tracing.tracer, 3, 'first');
      await receiver.waitForSpans(3);
      endSpans(tracing.tracer, 3, 'second');
      await receiver.waitForSpans(6);
      endSpans(tracing.tracer, 2, 'third');
      const spans = await receiver.waitForSpans(8);
      assert.deepEqual(
        receiver.requests.map((r) => r.spanCount),
        [3, 3, 2],
      );
      assert.deepEqual(
        spans.map((s) => s.name),
        ['first 0', 'first 1', 'first 2', 'second 0', 'second 1', 'second 2', 'third 0', 'third 1'],
      );
      assert.deepEqual(spans[7]?.attributes, { i: 1 });
      assert.equal(spans[0]?.resource['service.name'], 'export-test');
      for (const request of receiver.requests) {
        assert.equal(request.method, 'POST');
        assert.equal(request.url, '/v1/traces');
        assert.equal(request.contentType, 'application/x-protobuf');
        assert.match(request.userAgent ?? '', /^OTel-OTLP-Exporter-JavaScript\//);
      }
      assert.deepEqual(tracing.dropped(), { queue_full: 0, export_failed: 0 });
    } finally {
      await tracing.shutdown();
    }
  });

  it('counts spans refused by a full queue while a batch is in flight, and delivers the queued ones', async () => {
    const tracing = tracingFor({ OTEL_BSP_MAX_QUEUE_SIZE: '2', OTEL_BSP_SCHEDULE_DELAY: '10' });
    receiver.setBehaviour({ delayMs: 300 });
    try {
      const [first] = endSpans(tracing.tracer, 1, 'in flight');
      while (receiver.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
      const later = endSpans(tracing.tracer, 5, 'behind it');
      assert.equal(tracing.dropped().queue_full, 3);
      await tracing.forceFlush();
      const spans = await receiver.waitForSpans(3);
      assert.deepEqual(
        spans.map((s) => s.spanId),
        [first, ...later.slice(0, 2)],
      );
      assert.equal(tracing.dropped().export_failed, 0);
    } finally {
      await tracing.shutdown();
    }
  });

  for (const status of [400, 503]) {
    it(`counts every span of a batch the collector answers ${status} to`, async () => {
      const tracing = tracingFor({ OTEL_BSP_SCHEDULE_DELAY: '10', OTEL_EXPORTER_OTLP_TIMEOUT: '300' });
      receiver.setBehaviour({ status });
      try {
        endSpans(tracing.tracer, 4);
        await tracing.forceFlush();
        assert.deepEqual(tracing.dropped(), { queue_full: 0, export_failed: 4 });
        assert.ok(receiver.requests.length >= 1);
        assert.ok(receiver.requests.every((r) => r.responseStatus === status && r.spanCount === 4));
      } finally {
        await tracing.shutdown();
      }
    });
  }

  it('gives up on a collector that does not answer within OTEL_EXPORTER_OTLP_TIMEOUT', async () => {
    const tracing = tracingFor({ OTEL_BSP_SCHEDULE_DELAY: '10', OTEL_EXPORTER_OTLP_TIMEOUT: '150' });
    receiver.setBehaviour({ delayMs: 2000 });
    try {
      endSpans(tracing.tracer, 2);
      await tracing.forceFlush();
      assert.deepEqual(tracing.dropped(), { queue_full: 0, export_failed: 2 });
      assert.equal(receiver.requests[0]?.responseStatus, undefined, 'the collector had not answered yet');
    } finally {
      receiver.setBehaviour({});
      await tracing.shutdown();
    }
  });

  it('flushes every queued span at shutdown, long before the schedule delay', async () => {
    const tracing = tracingFor({ OTEL_BSP_SCHEDULE_DELAY: '600000', OTEL_BSP_MAX_QUEUE_SIZE: '1000' });
    const ids = endSpans(tracing.tracer, 700);
    await tracing.shutdown();
    assert.deepEqual(
      receiver.spans.map((s) => s.spanId),
      ids,
    );
    assert.deepEqual(
      receiver.requests.map((r) => r.spanCount),
      [512, 188],
    );
    // Ended after shutdown: not exported, not counted.
    endSpans(tracing.tracer, 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(receiver.spans.length, 700);
  });

  it('exports nothing for unsampled spans', async () => {
    const tracing = tracingFor({ OTEL_TRACES_SAMPLER: 'always_off', OTEL_BSP_SCHEDULE_DELAY: '10' });
    endSpans(tracing.tracer, 3);
    await tracing.shutdown();
    assert.equal(receiver.requests.length, 0);
    assert.deepEqual(tracing.dropped(), { queue_full: 0, export_failed: 0 });
  });

  it('still honours the exporter settings OpenTelemetry reads itself (OTEL_EXPORTER_OTLP_COMPRESSION)', async () => {
    process.env.OTEL_EXPORTER_OTLP_COMPRESSION = 'gzip';
    let tracing: Tracing;
    try {
      tracing = tracingFor({ OTEL_BSP_SCHEDULE_DELAY: '10' });
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_COMPRESSION;
    }
    try {
      endSpans(tracing.tracer, 2, 'zipped');
      const spans = await receiver.waitForSpans(2);
      assert.deepEqual(
        spans.map((s) => s.name),
        ['zipped 0', 'zipped 1'],
      );
      assert.equal(receiver.requests[0]?.contentEncoding, 'gzip');
    } finally {
      await tracing.shutdown();
    }
  });
});
