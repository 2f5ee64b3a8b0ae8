// The whole product as deployed in a pod: `npm start` runs the inventory backend and the proxy
// in front of it, both exporting spans to an OTLP receiver and pushing profiles to a Pyroscope
// receiver. A request through the proxy yields one trace across both processes, and both
// processes' profiles carry the proxy's names for it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startOtlpReceiver } from '../../proxy/test/support/otlp-receiver.ts';
import type { OtlpReceiver } from '../../proxy/test/support/otlp-receiver.ts';
import { startPyroscopeReceiver } from '../../proxy/test/support/pyroscope-receiver.ts';
import type { DecodedSample, PyroscopeReceiver } from '../../proxy/test/support/pyroscope-receiver.ts';
import { startNpmStart } from './support/npm-start.ts';
import type { NpmStart } from './support/npm-start.ts';

describe('end to end: client → proxy → backend → database', () => {
  let otlp: OtlpReceiver;
  let pyroscope: PyroscopeReceiver;
  let app: NpmStart;
  let proxyUrl: string;
  let dir: string;

  before(async () => {
    otlp = await startOtlpReceiver();
    pyroscope = await startPyroscopeReceiver();
    dir = mkdtempSync(join(tmpdir(), 'spanscope-e2e-'));
    // The proxy's own names differ from the backend's, so the backend's labels show whose they are.
    const routes = join(dir, 'routes.json');
    writeFileSync(
      routes,
      JSON.stringify([
        { method: 'GET', path: '/products', handler: 'catalog_list' },
        { method: 'GET', path: '/product/{id}', handler: 'catalog_item' },
      ]),
    );
    app = await startNpmStart({
      ROUTES_FILE: routes,
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlp.url,
      OTEL_BSP_SCHEDULE_DELAY: '200',
      PYROSCOPE_SERVER_ADDRESS: pyroscope.url,
      PYROSCOPE_UPLOAD_RATE: '1',
    });
    proxyUrl = app.proxyUrl;
  });

  after(async () => {
    // SIGTERM, not SIGKILL: start.ts must stop the backend and the proxy it runs, or they outlive the test.
    await app.stop();
    await otlp.close();
    await pyroscope.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('makes one trace: the backend SERVER span is a child of the proxy span, DB CLIENT spans below it', async () => {
    const res = await fetch(`${proxyUrl}/product/2`, { headers: { 'user-agent': 'curl/8.5.0' } });
    assert.equal(res.status, 200, app.output());
    const [, traceId, proxySpanId] = (res.headers.get('traceresponse') ?? '').split('-');
    const spans = await otlp.waitForSpans({ where: (s) => s.traceId === traceId, count: 3 }, 10_000);
    const proxySpan = spans.find((s) => s.resource['service.name'] === 'spanscope-proxy');
    const backendSpan = spans.find(
      (s) => s.resource['service.name'] === 'inventory-backend' && s.kind === 'SERVER',
    );
    const dbSpan = spans.find((s) => s.kind === 'CLIENT');
    assert.ok(proxySpan && backendSpan && dbSpan, JSON.stringify(spans.map((s) => [s.name, s.kind])));
    assert.equal(proxySpan.spanId, proxySpanId);
    assert.equal(proxySpan.name, 'GET /product/{id}');
    assert.equal(backendSpan.parentSpanId, proxySpanId, 'the backend continues the proxy span');
    assert.equal(dbSpan.parentSpanId, backendSpan.spanId);
    assert.equal(dbSpan.attributes['db.operation.name'], 'SELECT');
    assert.equal(dbSpan.attributes['app.product.id'], 2);
    assert.equal(proxySpan.attributes['pyroscope.profile.id'], proxySpan.spanId);
    assert.equal(backendSpan.attributes['pyroscope.profile.id'], backendSpan.spanId);
    assert.equal(
      dbSpan.attributes['pyroscope.profile.id'],
      undefined,
      'only local root spans name a profile',
    );
  });

  it("labels both processes' profiles with the proxy's names, and the backend's DB calls with db_operation", async () => {
    const until = Date.now() + 3000;
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        while (Date.now() < until) {
          const res = await fetch(`${proxyUrl}/${i % 2 === 0 ? 'products' : 'product/1'}`, {
            headers: { 'user-agent': 'python-requests/2.32.3' },
          });
          await res.arrayBuffer();
        }
      }),
    );
    await new Promise((r) => setTimeout(r, 2500));
    const samplesOf = (app: string): DecodedSample[] =>
      pyroscope.uploads.filter((u) => u.appName === app && u.kind === 'wall').flatMap((u) => u.samples);
    for (const app of ['spanscope-proxy', 'inventory-backend']) {
      const labelled = samplesOf(app).filter((s) => s.labels.user_agent === 'python-client');
      assert.ok(labelled.length > 0, `${app} has samples of the python client's requests`);
      for (const sample of labelled) {
        assert.ok(
          ['catalog_list', 'catalog_item'].includes(sample.labels.handler ?? ''),
          `${app}: ${JSON.stringify(sample.labels)}`,
        );
        assert.match(sample.labels.span_id ?? '', /^[0-9a-f]{16}$/);
      }
    }
    const db = samplesOf('inventory-backend').filter((s) => s.labels.db_operation !== undefined);
    assert.ok(db.length > 0, 'samples inside database calls');
    for (const sample of db) {
      assert.ok(['get_products', 'get_product'].includes(sample.labels.db_operation ?? ''));
      assert.equal(sample.labels.component, 'database');
    }
  });
});
