// The proxy's purpose-built SERVER span (server-span.ts) against the SDK's own span: the same
// sampling, the same ids and parentage, and the same OTLP once serialized by the library.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import type { Attributes, Context, TextMapGetter } from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { JsonTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  AlwaysOnSampler,
  InMemorySpanExporter,
  ParentBasedSampler,
  SamplingDecision,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  TracerProvider,
} from '@opentelemetry/sdk-trace';
import type { ReadableSpan, Sampler, SpanProcessor } from '@opentelemetry/sdk-trace';
import { serverSpanFactory } from '../src/server-span.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const resource = resourceFromAttributes({ 'service.name': 'server-span-test' });
const scope = { name: 'spanscope-proxy' };

function setUp(sampler: Sampler = new ParentBasedSampler({ root: new AlwaysOnSampler() })) {
  const exporter = new InMemorySpanExporter();
  const processor = new SimpleSpanProcessor({ exporter });
  // The processor exports asynchronously: `finished()` waits for it.
  const finished = async () => {
    await processor.forceFlush();
    return exporter.getFinishedSpans();
  };
  return { finished, start: serverSpanFactory({ sampler, processor, resource, scope }) };
}

function parentContext(flags: '00' | '01', tracestate?: string): Context {
  const headers: Record<string, string> = { traceparent: `00-${TRACE_ID}-${PARENT_ID}-${flags}` };
  if (tracestate !== undefined) headers.tracestate = tracestate;
  const getter: TextMapGetter<Record<string, string>> = {
    keys: (carrier) => Object.keys(carrier),
    get: (carrier, key) => carrier[key],
  };
  return new W3CTraceContextPropagator().extract(ROOT_CONTEXT, headers, getter);
}

const requestAttributes = (): Attributes => ({
  'http.request.method': 'GET',
  'url.path': '/product/7',
  'server.port': 8080,
  'http.route': '/product/{id}',
});

describe('server span', () => {
  it('continues a sampled remote parent: same trace, parent id, tracestate, SERVER kind', async () => {
    const { finished, start } = setUp();
    const span = start('GET /product/{id}', parentContext('01', 'congo=t61rcWkgMzE'), requestAttributes());
    assert.equal(span.isRecording(), true);
    span.end();
    const [done] = await finished();
    assert.ok(done);
    assert.equal(done.spanContext().traceId, TRACE_ID);
    assert.match(done.spanContext().spanId, /^[0-9a-f]{16}$/);
    assert.notEqual(done.spanContext().spanId, PARENT_ID);
    assert.equal(done.spanContext().traceFlags, 1);
    assert.equal(done.spanContext().traceState?.serialize(), 'congo=t61rcWkgMzE');
    assert.equal(done.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(done.parentSpanContext.isRemote, true);
    assert.equal(done.kind, SpanKind.SERVER);
    assert.equal(done.name, 'GET /product/{id}');
    assert.equal(done.resource, resource);
    assert.equal(done.instrumentationScope.name, 'spanscope-proxy');
    assert.equal(done.ended, true);
  });

  it('starts a new trace without a valid parent', async () => {
    const { finished, start } = setUp();
    start('GET', ROOT_CONTEXT, {}).end();
    const [done] = await finished();
    assert.ok(done);
    assert.match(done.spanContext().traceId, /^[0-9a-f]{32}$/);
    assert.notEqual(done.spanContext().traceId, '0'.repeat(32));
    assert.equal(done.parentSpanContext, undefined);
  });

  it('follows the sampler: an unsampled parent or a ratio of 0 gives a non-recording span with ids', async () => {
    for (const [sampler, parent] of [
      [new ParentBasedSampler({ root: new AlwaysOnSampler() }), parentContext('00')],
      [new TraceIdRatioBasedSampler(0), ROOT_CONTEXT],
      [new AlwaysOffSampler(), ROOT_CONTEXT],
    ] as const) {
      const { finished, start } = setUp(sampler);
      const span = start('GET', parent, {});
      assert.equal(span.isRecording(), false);
      assert.equal(span.spanContext().traceFlags, 0);
      assert.match(span.spanContext().spanId, /^[0-9a-f]{16}$/);
      span.end();
      assert.equal((await finished()).length, 0);
    }
    const { finished, start } = setUp(new TraceIdRatioBasedSampler(1));
    start('GET', ROOT_CONTEXT, {}).end();
    assert.equal((await finished()).length, 1);
  });

  it("takes the sampler's tracestate and attributes", async () => {
    const sampler: Sampler = {
      shouldSample: () => ({
        decision: SamplingDecision.RECORD_AND_SAMPLED,
        attributes: { 'sampler.rule': 'all' },
        traceState: new TraceState('vendor=chosen'),
      }),
      toString: () => 'test sampler',
    };
    const { finished, start } = setUp(sampler);
    start('GET', parentContext('01', 'congo=t61rcWkgMzE'), { 'url.path': '/' }).end();
    const [done] = await finished();
    assert.equal(done?.spanContext().traceState?.serialize(), 'vendor=chosen');
    assert.deepEqual(done.attributes, { 'url.path': '/', 'sampler.rule': 'all' });
  });

  it('is frozen once ended: later attributes, status, names and a second end are ignored', () => {
    const ended: ReadableSpan[] = [];
    const processor: SpanProcessor = {
      onStart: () => undefined,
      onEnd: (span) => ended.push(span),
      forceFlush: () => Promise.resolve(),
      shutdown: () => Promise.resolve(),
    };
    const start = serverSpanFactory({ sampler: new AlwaysOnSampler(), processor, resource, scope });
    const span = start('GET', ROOT_CONTEXT, {});
    span.setAttribute('http.response.status_code', 503);
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream unavailable' });
    span.end();
    span.setAttribute('late', 1);
    span.setStatus({ code: SpanStatusCode.OK });
    span.updateName('renamed');
    span.end();
    assert.equal(ended.length, 1);
    const [done] = ended;
    assert.deepEqual(done?.attributes, { 'http.response.status_code': 503 });
    assert.deepEqual(done.status, { code: SpanStatusCode.ERROR, message: 'upstream unavailable' });
    assert.equal(done.name, 'GET');
    const [startS, startNs] = done.startTime;
    const [endS, endNs] = done.endTime;
    assert.ok(endS * 1e9 + endNs >= startS * 1e9 + startNs, 'ends after it starts');
    assert.ok(Math.abs(startS * 1e3 + startNs / 1e6 - Date.now()) < 60_000, 'wall-clock time');
  });

  it('serializes to the same OTLP as an SDK span with the same inputs', async () => {
    const sdkExporter = new InMemorySpanExporter();
    const sampler = new ParentBasedSampler({ root: new AlwaysOnSampler() });
    const provider = new TracerProvider({
      resource,
      sampler,
      spanProcessors: [new SimpleSpanProcessor({ exporter: sdkExporter })],
    });
    const parent = parentContext('01', 'congo=t61rcWkgMzE');
    const sdkSpan = provider
      .getTracer(scope.name)
      .startSpan('GET /product/{id}', { kind: SpanKind.SERVER }, parent);
    sdkSpan.setAttributes(requestAttributes());
    sdkSpan.setAttribute('http.response.status_code', 500);
    sdkSpan.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    sdkSpan.end();

    const { finished, start } = setUp(sampler);
    const ours = start('GET /product/{id}', parent, requestAttributes());
    ours.setAttribute('http.response.status_code', 500);
    ours.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    ours.end();

    const otlp = (span: ReadableSpan | undefined) => {
      assert.ok(span);
      const request = JSON.parse(new TextDecoder().decode(JsonTraceSerializer.serializeRequest([span]))) as {
        resourceSpans: { scopeSpans: { spans: Record<string, unknown>[] }[] }[];
      };
      const encoded = request.resourceSpans[0]?.scopeSpans[0]?.spans[0];
      assert.ok(encoded);
      // Ids and times differ by nature; everything else must match.
      const { spanId, startTimeUnixNano, endTimeUnixNano, ...rest } = encoded;
      assert.ok(spanId && startTimeUnixNano && endTimeUnixNano, 'ids and times are set');
      return {
        ...request,
        resourceSpans: [
          {
            ...request.resourceSpans[0],
            scopeSpans: [{ ...request.resourceSpans[0]?.scopeSpans[0], spans: [rest] }],
          },
        ],
      };
    };
    await provider.forceFlush();
    assert.deepEqual(otlp((await finished())[0]), otlp(sdkExporter.getFinishedSpans()[0]));
  });
});
