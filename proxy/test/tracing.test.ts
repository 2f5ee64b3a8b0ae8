import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { TraceState, W3CTraceContextPropagator } from '@opentelemetry/core';
import { injectTraceContext } from '../src/tracing.ts';
import { startEchoBackend } from './support/echo-backend.ts';
import type { EchoBackend, EchoReport } from './support/echo-backend.ts';
import { rawRequest } from './support/http-client.ts';
import type { HeaderPair } from './support/http-client.ts';
import { startOtlpReceiver } from './support/otlp-receiver.ts';
import { echoBackendBehindProxy, startProxy } from './support/start-proxy.ts';
import type { ProxyUnderTest } from './support/start-proxy.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_ID = '00f067aa0ba902b7';
const VALID = `00-${TRACE_ID}-${PARENT_ID}-01`;

function header(report: EchoReport, name: string): string[] {
  return report.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

describe('injectTraceContext', () => {
  it("writes exactly the headers OpenTelemetry's W3C propagator writes, and returns the traceparent", () => {
    const propagator = new W3CTraceContextPropagator();
    const setter = {
      set: (carrier: Record<string, string>, key: string, value: string) => {
        carrier[key] = value;
      },
    };
    for (const traceFlags of [0, 1]) {
      for (const traceState of [undefined, new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7')]) {
        const spanContext = { traceId: TRACE_ID, spanId: PARENT_ID, traceFlags, traceState };
        const ours: Record<string, string> = {};
        const returned = injectTraceContext(spanContext, ours);
        const theirs: Record<string, string> = {};
        propagator.inject(trace.setSpanContext(ROOT_CONTEXT, spanContext), theirs, setter);
        assert.deepEqual(ours, theirs);
        assert.equal(returned, theirs.traceparent);
      }
    }
  });
});

async function send(proxy: ProxyUnderTest, headers: HeaderPair[], path = '/product/7') {
  const res = await rawRequest({ port: proxy.port, path, headers });
  const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
  const spans = proxy.exporter.getFinishedSpans();
  const span = spans.at(-1);
  assert.ok(span, 'the proxy exported a span');
  return { res, report, span };
}

describe('W3C trace context', () => {
  const setup = echoBackendBehindProxy();
  afterEach(() => {
    setup.proxy.exporter.reset();
  });

  it('continues a valid traceparent: the span is its child and tracestate is kept', async () => {
    const { report, span } = await send(setup.proxy, [
      ['traceparent', VALID],
      ['tracestate', 'congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'],
    ]);
    assert.equal(span.spanContext().traceId, TRACE_ID);
    assert.equal(span.parentSpanContext?.spanId, PARENT_ID);
    assert.equal(span.parentSpanContext.isRemote, true);
    const forwarded = header(report, 'traceparent');
    assert.deepEqual(
      forwarded,
      [`00-${TRACE_ID}-${span.spanContext().spanId}-01`],
      'upstream parent is the proxy span',
    );
    assert.deepEqual(header(report, 'tracestate'), ['congo=t61rcWkgMzE,rojo=00f067aa0ba902b7']);
  });

  it('keeps an unsampled caller unsampled and exports nothing for it', async () => {
    const res = await rawRequest({
      port: setup.proxy.port,
      path: '/products',
      headers: [['traceparent', `00-${TRACE_ID}-${PARENT_ID}-00`]],
    });
    const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
    const [forwarded] = header(report, 'traceparent');
    assert.match(forwarded ?? '', new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-00$`));
    assert.equal(setup.proxy.exporter.getFinishedSpans().length, 0);
  });

  const invalid: [string, string][] = [
    ['version ff', `ff-${TRACE_ID}-${PARENT_ID}-01`],
    ['a short trace id', `00-${TRACE_ID.slice(1)}-${PARENT_ID}-01`],
    ['a long parent id', `00-${TRACE_ID}-${PARENT_ID}0-01`],
    ['a one-digit flags field', `00-${TRACE_ID}-${PARENT_ID}-1`],
    ['non-hex characters', `00-${TRACE_ID.slice(0, -1)}g-${PARENT_ID}-01`],
    ['uppercase hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_ID}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_ID}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['a version-00 header with extra fields', `${VALID}-extra`],
    ['garbage', 'not a traceparent'],
    ['an empty value', ''],
  ];
  for (const [what, value] of invalid) {
    it(`starts a new trace for ${what}, and does not forward the invalid header`, async () => {
      const { report, span, res } = await send(setup.proxy, [
        ['traceparent', value],
        ['tracestate', 'rojo=00f067aa0ba902b7'],
      ]);
      const ctx = span.spanContext();
      assert.notEqual(ctx.traceId, TRACE_ID);
      assert.equal(span.parentSpanContext, undefined, 'a root span');
      assert.deepEqual(header(report, 'traceparent'), [`00-${ctx.traceId}-${ctx.spanId}-01`]);
      assert.deepEqual(header(report, 'tracestate'), [], 'tracestate of an invalid parent is dropped too');
      assert.equal(res.headers.traceresponse, `00-${ctx.traceId}-${ctx.spanId}-01`);
    });
  }

  it('accepts a future version with extra fields, as the specification requires', async () => {
    const { span } = await send(setup.proxy, [['traceparent', `01-${TRACE_ID}-${PARENT_ID}-01-future`]]);
    assert.equal(span.spanContext().traceId, TRACE_ID);
  });

  it('starts a new trace when there is no traceparent, and returns it in traceresponse', async () => {
    const { res, report, span } = await send(setup.proxy, []);
    const ctx = span.spanContext();
    assert.match(ctx.traceId, /^[0-9a-f]{32}$/);
    assert.equal(res.headers.traceresponse, `00-${ctx.traceId}-${ctx.spanId}-01`);
    assert.deepEqual(header(report, 'traceparent'), [`00-${ctx.traceId}-${ctx.spanId}-01`]);
  });

  it('names the SERVER span "{METHOD} {route}" with the stable HTTP semantic conventions', async () => {
    const { span } = await send(
      setup.proxy,
      [
        ['user-agent', 'curl/8.5.0'],
        ['host', 'shop.example:8443'],
      ],
      '/product/7?secret=1',
    );
    assert.equal(span.name, 'GET /product/{id}');
    assert.equal(span.kind, SpanKind.SERVER);
    assert.deepEqual(
      { ...span.attributes },
      {
        'http.request.method': 'GET',
        'url.path': '/product/7',
        'url.scheme': 'http',
        'http.route': '/product/{id}',
        'http.response.status_code': 200,
        'server.address': 'shop.example',
        'server.port': 8443,
        'client.address': '127.0.0.1',
        'user_agent.original': 'curl/8.5.0',
        'network.protocol.version': '1.1',
        'spanscope.user_agent.category': 'curl',
        'spanscope.handler': 'get_product',
      },
      'no url.query unless CAPTURE_QUERY=true',
    );
    assert.equal(span.status.code, SpanStatusCode.UNSET);
  });

  it('marks 5xx answers as errors with error.type, and leaves 4xx alone', async () => {
    const five = await send(setup.proxy, [], '/__echo/status/503');
    assert.equal(five.span.attributes['http.response.status_code'], 503);
    assert.equal(five.span.attributes['error.type'], '503');
    assert.equal(five.span.status.code, SpanStatusCode.ERROR);
    const four = await send(setup.proxy, [], '/__echo/status/404');
    assert.equal(four.span.attributes['error.type'], undefined);
    assert.equal(four.span.status.code, SpanStatusCode.UNSET);
  });

  it('collapses unknown methods to _OTHER and keeps the original', async () => {
    const res = await rawRequest({ port: setup.proxy.port, method: 'PROPFIND', path: '/dav' });
    assert.equal(res.status, 200);
    const span = setup.proxy.exporter.getFinishedSpans().at(-1);
    assert.equal(span?.name, 'HTTP');
    assert.equal(span.attributes['http.request.method'], '_OTHER');
    assert.equal(span.attributes['http.request.method_original'], 'PROPFIND');
  });
});

describe('trace context: settings', () => {
  let backend: EchoBackend;
  before(async () => {
    backend = await startEchoBackend();
  });
  after(async () => {
    await backend.close();
  });

  it('records url.query only with CAPTURE_QUERY=true', async () => {
    const proxy = await startProxy({ BACKEND_URL: backend.url, CAPTURE_QUERY: 'true' });
    try {
      const { span } = await send(proxy, [], '/products?count=2&start=1');
      assert.equal(span.attributes['url.query'], 'count=2&start=1');
    } finally {
      await proxy.close();
    }
  });

  it("with OTEL_SDK_DISABLED=true passes the caller's trace headers through untouched and adds none", async () => {
    const proxy = await startProxy({ BACKEND_URL: backend.url, OTEL_SDK_DISABLED: 'true' });
    try {
      const res = await rawRequest({
        port: proxy.port,
        path: '/products',
        headers: [
          ['traceparent', `${VALID}-extra`],
          ['tracestate', 'a=b'],
        ],
      });
      const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
      assert.deepEqual(header(report, 'traceparent'), [`${VALID}-extra`]);
      assert.deepEqual(header(report, 'tracestate'), ['a=b']);
      assert.equal(res.headers.traceresponse, undefined);
      assert.equal(proxy.exporter.getFinishedSpans().length, 0);
    } finally {
      await proxy.close();
    }
  });

  it('with OTEL_TRACES_SAMPLER=always_off still propagates a new, unsampled trace', async () => {
    const proxy = await startProxy({ BACKEND_URL: backend.url, OTEL_TRACES_SAMPLER: 'always_off' });
    try {
      const res = await rawRequest({ port: proxy.port, path: '/products' });
      const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
      assert.match(header(report, 'traceparent')[0] ?? '', /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
      assert.equal(proxy.exporter.getFinishedSpans().length, 0);
    } finally {
      await proxy.close();
    }
  });
});

describe('OTLP export', () => {
  let backend: EchoBackend;
  before(async () => {
    backend = await startEchoBackend();
  });
  after(async () => {
    await backend.close();
  });

  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    it(`exports spans over OTLP ${protocol} with the service's resource`, async () => {
      const receiver = await startOtlpReceiver();
      const proxy = await startProxy(
        {
          BACKEND_URL: backend.url,
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_BSP_SCHEDULE_DELAY: '50',
          OTEL_SERVICE_NAME: 'checkout-sidecar',
          OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=test,service.name=ignored',
        },
        { tracing: {} },
      );
      try {
        const res = await rawRequest({
          port: proxy.port,
          path: '/product/3',
          headers: [['traceparent', VALID]],
        });
        const traceresponse = String(res.headers.traceresponse);
        const [span] = await receiver.waitForSpans({ where: (s) => s.name === 'GET /product/{id}' });
        assert.ok(span);
        assert.equal(span.kind, 'SERVER');
        assert.equal(span.traceId, TRACE_ID);
        assert.equal(span.parentSpanId, PARENT_ID);
        assert.equal(traceresponse, `00-${TRACE_ID}-${span.spanId}-01`);
        assert.equal(span.attributes['http.route'], '/product/{id}');
        assert.equal(span.attributes['http.response.status_code'], 200);
        assert.equal(span.resource['service.name'], 'checkout-sidecar', 'OTEL_SERVICE_NAME wins');
        assert.equal(span.resource['deployment.environment.name'], 'test');
        assert.equal(receiver.requests[0]?.encoding, protocol === 'http/json' ? 'json' : 'protobuf');
      } finally {
        await proxy.close();
        await receiver.close();
      }
    });
  }

  it('a collector that is down never fails or slows requests; drops are counted', async () => {
    const receiver = await startOtlpReceiver();
    receiver.setBehaviour({ status: 503 });
    const proxy = await startProxy(
      {
        BACKEND_URL: backend.url,
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '20',
        OTEL_BSP_MAX_QUEUE_SIZE: '5',
        OTEL_EXPORTER_OTLP_TIMEOUT: '200',
      },
      { tracing: {} },
    );
    try {
      for (let i = 0; i < 40; i++) {
        const res = await fetch(`${proxy.url}/products`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      await proxy.app.tracing.forceFlush().catch(() => undefined);
      const deadline = Date.now() + 5000;
      while (proxy.app.tracing.dropped().export_failed === 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const dropped = proxy.app.tracing.dropped();
      assert.ok(dropped.export_failed + dropped.queue_full > 0, JSON.stringify(dropped));
      const metrics = await (await fetch(`${proxy.adminUrl}/metrics`)).text();
      const counted = [...metrics.matchAll(/spanscope_dropped_spans_total\{reason="(\w+)"\} (\d+)/g)].reduce(
        (sum, m) => sum + Number(m[2]),
        0,
      );
      assert.ok(counted > 0, metrics);
      const warnings = proxy.logs.filter((l) => l.msg === 'spans dropped: trace collector slow or down');
      assert.equal(warnings.length, 1, 'logged at most once a minute');
    } finally {
      await proxy.close();
      await receiver.close();
    }
  });

  it('a collector that hangs fills the bounded queue and drops, while requests stay fast', async () => {
    const receiver = await startOtlpReceiver();
    receiver.setBehaviour({ delayMs: 3000 });
    const proxy = await startProxy(
      {
        BACKEND_URL: backend.url,
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_BSP_SCHEDULE_DELAY: '10',
        OTEL_BSP_MAX_QUEUE_SIZE: '10',
      },
      { tracing: {} },
    );
    try {
      // The first batch goes out and hangs; the queue behind it fills up and overflows.
      const first = await fetch(`${proxy.url}/products`);
      await first.arrayBuffer();
      await new Promise((r) => setTimeout(r, 100));
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${proxy.url}/products`);
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
      assert.equal(proxy.app.tracing.dropped().queue_full, 20);
    } finally {
      receiver.setBehaviour({});
      await proxy.close();
      await receiver.close();
    }
  });
});
