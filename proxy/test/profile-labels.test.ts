// The proxy's own profiles carry each request's labels and span id, after every await, and the
// same labels travel to the service in baggage; client-forged labels never do.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEchoBackend } from './support/echo-backend.ts';
import type { EchoBackend, EchoReport } from './support/echo-backend.ts';
import { rawRequest } from './support/http-client.ts';
import { startOtlpReceiver } from './support/otlp-receiver.ts';
import type { OtlpReceiver } from './support/otlp-receiver.ts';
import { startProxyProcess } from './support/proxy-process.ts';
import type { ProxyProcess } from './support/proxy-process.ts';
import { startPyroscopeReceiver } from './support/pyroscope-receiver.ts';
import type { DecodedSample, PyroscopeReceiver } from './support/pyroscope-receiver.ts';
import { startProxy } from './support/start-proxy.ts';
import type { ProxyUnderTest } from './support/start-proxy.ts';

const CURL = 'curl/8.5.0';

/** Drives `clients` keep-alive loops through the proxy for `ms`, so the profiler sees its work. */
async function drive(baseUrl: string, ms: number, clients = 8): Promise<number> {
  const until = Date.now() + ms;
  let count = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, client) => {
      while (Date.now() < until) {
        const res = await fetch(`${baseUrl}/product/${client}`, { headers: { 'user-agent': CURL } });
        await res.arrayBuffer();
        count++;
      }
    }),
  );
  return count;
}

function labelled(samples: readonly DecodedSample[], name: string): DecodedSample[] {
  return samples.filter((s) => s.labels[name] !== undefined);
}

function header(report: EchoReport, name: string): string[] {
  return report.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

describe('proxy profile labels', () => {
  let backend: EchoBackend;
  let pyroscope: PyroscopeReceiver;
  let proxy: ProxyUnderTest;
  before(async () => {
    backend = await startEchoBackend();
    pyroscope = await startPyroscopeReceiver();
    proxy = await startProxy({
      BACKEND_URL: backend.url,
      PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
      PYROSCOPE_UPLOAD_RATE: '1',
      OTEL_SERVICE_NAME: 'edge-proxy',
      ACCESS_LOG: 'false',
    });
  });
  after(async () => {
    await proxy.close();
    await pyroscope.close();
    await backend.close();
  });

  it("labels the proxy's samples with handler, route, method, user_agent and the span id of their request", async () => {
    assert.equal(proxy.app.profiler.labelling, true, 'the CPED self-test passed');
    await drive(proxy.url, 2500);
    await proxy.app.profiler.flush();
    const uploads = pyroscope.uploads.filter((u) => u.kind === 'wall');
    assert.ok(uploads.length > 0);
    assert.equal(uploads[0]?.appName, 'edge-proxy', 'the application name defaults to service.name');
    const samples = labelled(
      uploads.flatMap((u) => u.samples),
      'handler',
    );
    assert.ok(samples.length >= 5, `only ${samples.length} labelled samples`);
    const spanIds = new Set(proxy.exporter.getFinishedSpans().map((s) => s.spanContext().spanId));
    for (const sample of samples) {
      assert.equal(sample.labels.handler, 'get_product');
      assert.equal(sample.labels.route, '/product/{id}');
      assert.equal(sample.labels.method, 'GET');
      assert.equal(sample.labels.user_agent, 'curl');
      assert.equal(sample.labels.component, 'http');
      assert.equal(sample.labels.span_name, 'GET /product/{id}');
      assert.ok(
        spanIds.has(sample.labels.span_id ?? ''),
        `span ${String(sample.labels.span_id)} is one of the requests`,
      );
      assert.equal(sample.labels.trace_id, undefined, 'trace_id only with ENABLE_TRACE_ID_LABEL=true');
    }
  });

  it('marks exactly the local root span with pyroscope.profile.id = its span id', () => {
    const spans = proxy.exporter.getFinishedSpans();
    assert.ok(spans.length > 0);
    for (const span of spans) {
      assert.equal(span.attributes['pyroscope.profile.id'], span.spanContext().spanId);
    }
  });

  it('hands its labels to the backend in baggage and removes client-forged spanscope.* entries', async () => {
    const res = await rawRequest({
      port: proxy.port,
      path: '/product/9',
      headers: [
        ['user-agent', CURL],
        ['baggage', 'userId=alice,spanscope.handler=evil;prop=1, SPANSCOPE.route=x'],
        ['baggage', 'spanscope.user_agent=forged,isProduction=false'],
      ],
    });
    const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
    assert.deepEqual(header(report, 'baggage'), [
      'userId=alice,isProduction=false,spanscope.handler=get_product,spanscope.route=%2Fproduct%2F%7Bid%7D,spanscope.user_agent=curl',
    ]);
  });

  it('serves the label scheme as JSON on the admin port', async () => {
    const res = await fetch(`${proxy.adminUrl}/labels`);
    assert.equal(res.status, 200);
    const scheme = (await res.json()) as Record<string, unknown>;
    const text = JSON.stringify(scheme);
    for (const name of [
      'service_name',
      'handler',
      'method',
      'route',
      'user_agent',
      'db_operation',
      'component',
      'span_id',
      'span_name',
      'trace_id',
    ]) {
      assert.ok(text.includes(`"${name}"`), `${name} is described`);
    }
    assert.ok(text.includes('spanscope.handler'));
  });
});

describe('proxy profile label switches', () => {
  let backend: EchoBackend;
  let pyroscope: PyroscopeReceiver;
  let otlp: OtlpReceiver;
  const running: ProxyProcess[] = [];
  before(async () => {
    backend = await startEchoBackend();
    pyroscope = await startPyroscopeReceiver();
    otlp = await startOtlpReceiver();
  });
  after(async () => {
    await Promise.all(running.map((p) => p.kill()));
    await otlp.close();
    await pyroscope.close();
    await backend.close();
  });

  it('each switch turns its labels off, and ENABLE_TRACE_ID_LABEL turns trace_id on', async () => {
    const cases: Record<string, Record<string, string>> = {
      'no-endpoint': { ENABLE_ENDPOINT_PROFILING: 'false' },
      'no-user-agent': { ENABLE_USER_AGENT_PROFILING: 'false' },
      'no-dynamic': { ENABLE_DYNAMIC_TAGS: 'false' },
      'with-trace-id': { ENABLE_TRACE_ID_LABEL: 'true' },
    };
    const proxies = await Promise.all(
      Object.entries(cases).map(async ([name, env]) => {
        const child = await startProxyProcess(backend.url, {
          ...env,
          OTEL_SERVICE_NAME: name,
          PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
          PYROSCOPE_UPLOAD_RATE: '1',
          OTEL_TRACES_EXPORTER: 'otlp',
          OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
          OTEL_BSP_SCHEDULE_DELAY: '100',
        });
        running.push(child);
        return [name, child] as const;
      }),
    );
    await Promise.all(proxies.map(([, child]) => drive(child.url, 2500, 4)));
    // SIGTERM pushes the last profile and flushes the spans.
    await Promise.all(
      proxies.map(async ([, child]) => {
        child.child.kill('SIGTERM');
        assert.equal((await child.exited).code, 0);
      }),
    );
    const samplesOf = (app: string) =>
      pyroscope.uploads.filter((u) => u.appName === app && u.kind === 'wall').flatMap((u) => u.samples);

    const noEndpoint = samplesOf('no-endpoint');
    assert.equal(labelled(noEndpoint, 'handler').length, 0);
    assert.equal(labelled(noEndpoint, 'route').length, 0);
    assert.ok(labelled(noEndpoint, 'user_agent').length > 0, 'other labels stay');

    const noUserAgent = samplesOf('no-user-agent');
    assert.ok(labelled(noUserAgent, 'handler').length > 0);
    assert.equal(labelled(noUserAgent, 'user_agent').length, 0);

    const noDynamic = samplesOf('no-dynamic');
    assert.ok(labelled(noDynamic, 'handler').length > 0);
    assert.equal(labelled(noDynamic, 'span_id').length, 0);
    assert.equal(labelled(noDynamic, 'span_name').length, 0);
    const noDynamicSpans = otlp.spans.filter((s) => s.resource['service.name'] === 'no-dynamic');
    assert.ok(noDynamicSpans.length > 0);
    assert.ok(noDynamicSpans.every((s) => s.attributes['pyroscope.profile.id'] === undefined));

    const withTraceId = samplesOf('with-trace-id');
    const traced = labelled(withTraceId, 'trace_id');
    assert.ok(traced.length > 0);
    const traceIds = new Set(
      otlp.spans.filter((s) => s.resource['service.name'] === 'with-trace-id').map((s) => s.traceId),
    );
    for (const sample of traced) assert.ok(traceIds.has(sample.labels.trace_id ?? ''));
  });
});
