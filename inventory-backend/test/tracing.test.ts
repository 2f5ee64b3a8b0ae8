// The backend's traces on real servers, exported over OTLP/HTTP to a real receiver that decodes
// them: the SERVER span continues the caller's trace, each database call is a CLIENT span with the
// database semantic conventions, and `pyroscope.profile.id` marks exactly the local root span.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, describe, it } from 'node:test';
import { startProfiler } from '@spanscope/proxy';
import type { Profiler } from '@spanscope/proxy';
import { createTracing } from '@spanscope/proxy/tracing';
import type { Tracing } from '@spanscope/proxy/tracing';
import { startOtlpReceiver } from '../../proxy/test/support/otlp-receiver.ts';
import type { DecodedSpan } from '../../proxy/test/support/otlp-receiver.ts';
import { startPyroscopeReceiver } from '../../proxy/test/support/pyroscope-receiver.ts';
import { loadConfig } from '../src/config.ts';
import { telemetryOff } from '../src/telemetry/telemetry.ts';
import type { Telemetry } from '../src/telemetry/telemetry.ts';
import { spawnBackend } from './support/backend-process.ts';
import { createTestDatabase } from './support/databases.ts';
import type { TestDatabase } from './support/databases.ts';
import { describeEachDatabase, startTestServer } from './support/server.ts';
import type { TestServer } from './support/server.ts';

const SILENT = { info: () => undefined, warn: () => undefined };

const receiver = await startOtlpReceiver();
const pyroscope = await startPyroscopeReceiver();
// Profiles are not inspected here, but `pyroscope.profile.id` is only set while samples do carry
// the span's id, so a profiler runs (pushing to a receiver so it is on).
const profiler = await startProfiler({
  ...loadConfig({ TAGGING_ENDPOINT: pyroscope.url, PYROSCOPE_UPLOAD_RATE: '60' }).profiling,
  logger: SILENT,
});

/** Tracing as the process configures it, exporting each span at its end to the receiver. */
function tracingTo(env: Record<string, string> = {}): Tracing {
  const { tracing } = loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, ...env });
  return createTracing(tracing, { synchronousExport: true });
}

const tracing = tracingTo();
const telemetry: Telemetry = { tracing, profiler };

after(async () => {
  await tracing.shutdown();
  await profiler.stop();
  await receiver.close();
  await pyroscope.close();
});

function newTraceId(): string {
  return randomBytes(16).toString('hex');
}
function newSpanId(): string {
  return randomBytes(8).toString('hex');
}

/** The spans of one trace, once the SERVER span (ended last) has arrived. */
async function spansOfTrace(traceId: string, clientSpans: number): Promise<DecodedSpan[]> {
  await receiver.waitForSpans({
    where: (span) => span.traceId === traceId && span.kind === 'CLIENT',
    count: clientSpans,
  });
  await receiver.waitForSpans((span) => span.traceId === traceId && span.kind === 'SERVER');
  return receiver.spans.filter((span) => span.traceId === traceId);
}

function only<T>(items: readonly T[], what: string): T {
  assert.equal(items.length, 1, `exactly one ${what}, got ${items.length}`);
  return items[0]!;
}

/** Sends a request in a new trace whose caller span is `parent`; returns the trace's spans. */
async function tracedRequest(
  server: TestServer,
  method: string,
  path: string,
  options: { body?: unknown; clientSpans?: number; headers?: Record<string, string> } = {},
) {
  const traceId = newTraceId();
  const parent = newSpanId();
  const response = await server.request(method, path, options.body, {
    traceparent: `00-${traceId}-${parent}-01`,
    ...options.headers,
  });
  const spans = await spansOfTrace(traceId, options.clientSpans ?? 1);
  const serverSpan = only(
    spans.filter((span) => span.kind === 'SERVER'),
    'SERVER span',
  );
  const clientSpans = spans.filter((span) => span.kind === 'CLIENT');
  return { response, traceId, parent, serverSpan, clientSpans };
}

/** The `db.namespace` each engine's test database has. */
function expectedNamespace(database: TestDatabase): string {
  if (database.config.kind === 'sqlite') return database.config.path;
  const url = new URL(database.url);
  const schema = /search_path=(\S+)/.exec(url.searchParams.get('options') ?? '')?.[1];
  assert.ok(schema !== undefined, 'the test database selects a schema');
  return `${url.pathname.slice(1)}.${schema}`;
}

const SQL = {
  sqlite: {
    list: 'SELECT id, name, price_cents, quantity FROM products ORDER BY id LIMIT ? OFFSET ?',
    get: 'SELECT id, name, price_cents, quantity FROM products WHERE id = ?',
    create:
      'INSERT INTO products (name, price_cents, quantity) VALUES (?, ?, ?) RETURNING id, name, price_cents, quantity',
    update:
      'UPDATE products SET name = ?, price_cents = ?, quantity = ? WHERE id = ? RETURNING id, name, price_cents, quantity',
    delete: 'DELETE FROM products WHERE id = ?',
    count: 'SELECT COUNT(*) AS count FROM products',
  },
  postgres: {
    list: 'SELECT id, name, price, quantity FROM products ORDER BY id LIMIT $1 OFFSET $2',
    get: 'SELECT id, name, price, quantity FROM products WHERE id = $1',
    create:
      'INSERT INTO products (name, price, quantity) VALUES ($1, $2, $3) RETURNING id, name, price, quantity',
    update:
      'UPDATE products SET name = $1, price = $2, quantity = $3 WHERE id = $4 RETURNING id, name, price, quantity',
    delete: 'DELETE FROM products WHERE id = $1 RETURNING id',
    count: 'SELECT COUNT(*) AS count FROM products',
  },
} as const;

describeEachDatabase(
  'backend spans',
  (suite) => {
    const system = suite.kind === 'sqlite' ? 'sqlite' : 'postgresql';
    const sql = SQL[suite.kind];

    it('the SERVER span is a child of the incoming traceparent, named by its route, with HTTP attributes', async () => {
      const created = await suite.server.request('POST', '/product', {
        name: 'Lamp',
        price: 9.5,
        quantity: 2,
      });
      const id = (created.body as { id: number }).id;
      const { response, traceId, parent, serverSpan } = await tracedRequest(
        suite.server,
        'GET',
        `/product/${id}?verbose=1`,
        { headers: { 'user-agent': 'curl/8.5.0' } },
      );
      assert.equal(response.status, 200);
      assert.equal(serverSpan.traceId, traceId);
      assert.equal(serverSpan.parentSpanId, parent);
      assert.equal(serverSpan.name, 'GET /product/{id}');
      assert.equal(serverSpan.status.code, 'UNSET');
      assert.equal(serverSpan.resource['service.name'], 'inventory-backend');
      const port = Number(new URL(suite.server.baseUrl).port);
      assert.deepEqual(
        {
          method: serverSpan.attributes['http.request.method'],
          route: serverSpan.attributes['http.route'],
          path: serverSpan.attributes['url.path'],
          scheme: serverSpan.attributes['url.scheme'],
          status: serverSpan.attributes['http.response.status_code'],
          address: serverSpan.attributes['server.address'],
          port: serverSpan.attributes['server.port'],
          client: serverSpan.attributes['client.address'],
          protocol: serverSpan.attributes['network.protocol.version'],
          userAgent: serverSpan.attributes['user_agent.original'],
          category: serverSpan.attributes['spanscope.user_agent.category'],
          handler: serverSpan.attributes['spanscope.handler'],
        },
        {
          method: 'GET',
          route: '/product/{id}',
          path: `/product/${id}`,
          scheme: 'http',
          status: 200,
          address: '127.0.0.1',
          port,
          client: '127.0.0.1',
          protocol: '1.1',
          userAgent: 'curl/8.5.0',
          category: 'curl',
          handler: 'get_product',
        },
      );
    });

    it('pyroscope.profile.id is on the local root (SERVER) span only, equal to its span id', async () => {
      const { serverSpan, clientSpans } = await tracedRequest(suite.server, 'GET', '/products');
      assert.equal(serverSpan.attributes['pyroscope.profile.id'], serverSpan.spanId);
      assert.equal(clientSpans.length, 1);
      assert.equal(clientSpans[0]!.attributes['pyroscope.profile.id'], undefined);
    });

    it('each repository call is a CLIENT span, child of the SERVER span, with the database conventions', async () => {
      const namespace = expectedNamespace(suite.server.database);
      const check = (
        span: DecodedSpan,
        serverSpan: DecodedSpan,
        operation: string,
        text: string,
        extra: Record<string, unknown> = {},
      ): void => {
        assert.equal(span.kind, 'CLIENT');
        assert.equal(span.parentSpanId, serverSpan.spanId, `${span.name} is a child of ${serverSpan.name}`);
        assert.equal(span.name, `${operation} products`);
        assert.equal(span.status.code, 'UNSET');
        const expected: Record<string, unknown> = {
          'db.system.name': system,
          'db.operation.name': operation,
          'db.collection.name': 'products',
          'db.query.text': text,
          'db.namespace': namespace,
          ...extra,
        };
        for (const [key, value] of Object.entries(expected)) {
          assert.deepEqual(span.attributes[key], value, `${span.name}: ${key}`);
        }
        if (suite.kind === 'postgres') {
          assert.equal(span.attributes['server.address'], '127.0.0.1');
          assert.equal(span.attributes['server.port'], 5432);
        } else {
          assert.equal(span.attributes['server.address'], undefined);
        }
        // Span start times have millisecond resolution (Date.now()): allow that much.
        const ms = 1_000_000n;
        assert.ok(span.startTimeUnixNano + ms >= serverSpan.startTimeUnixNano, `${span.name} starts within`);
        assert.ok(span.endTimeUnixNano <= serverSpan.endTimeUnixNano + ms, `${span.name} ends within`);
      };

      // POST reads a body: the trace context must survive body parsing.
      const create = await tracedRequest(suite.server, 'POST', '/product', {
        body: { name: 'Secret Lamp', price: 12.34, quantity: 3 },
      });
      assert.equal(create.response.status, 201);
      const id = (create.response.body as { id: number }).id;
      assert.equal(create.serverSpan.name, 'POST /product');
      const insert = only(create.clientSpans, 'INSERT span');
      check(insert, create.serverSpan, 'INSERT', sql.create, { 'app.product.id': id });
      assert.doesNotMatch(JSON.stringify(insert.attributes), /Secret Lamp|12\.34|1234/, 'no values');

      const get = await tracedRequest(suite.server, 'GET', `/product/${id}`);
      check(only(get.clientSpans, 'SELECT span'), get.serverSpan, 'SELECT', sql.get, {
        'app.product.id': id,
        'db.response.returned_rows': 1,
      });

      const update = await tracedRequest(suite.server, 'PUT', `/product/${id}`, {
        body: { name: 'Lamp II', price: 1, quantity: 1 },
      });
      assert.equal(update.serverSpan.name, 'PUT /product/{id}');
      check(only(update.clientSpans, 'UPDATE span'), update.serverSpan, 'UPDATE', sql.update, {
        'app.product.id': id,
      });

      const list = await tracedRequest(suite.server, 'GET', '/products?count=1');
      check(only(list.clientSpans, 'SELECT span'), list.serverSpan, 'SELECT', sql.list, {
        'db.response.returned_rows': 1,
      });

      const health = await tracedRequest(suite.server, 'GET', '/health');
      assert.equal(health.serverSpan.name, 'GET /health');
      check(only(health.clientSpans, 'COUNT span'), health.serverSpan, 'SELECT', sql.count);

      const remove = await tracedRequest(suite.server, 'DELETE', `/product/${id}`);
      assert.equal(remove.serverSpan.name, 'DELETE /product/{id}');
      check(only(remove.clientSpans, 'DELETE span'), remove.serverSpan, 'DELETE', sql.delete, {
        'app.product.id': id,
      });
    });

    it('a body arriving after the headers keeps the request context: INSERT is still a child of the SERVER span', async () => {
      const traceId = newTraceId();
      const body = JSON.stringify({ name: 'Late body', price: 1, quantity: 1 });
      const { port } = new URL(suite.server.baseUrl);
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/product',
        agent: false,
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(body)),
          traceparent: `00-${traceId}-${newSpanId()}-01`,
        },
      });
      const status = new Promise<number>((resolve, reject) => {
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
      });
      // The body is read from socket events that run outside the request's async context.
      req.flushHeaders();
      await new Promise((resolve) => setTimeout(resolve, 50));
      req.write(body.slice(0, 10));
      await new Promise((resolve) => setTimeout(resolve, 50));
      req.end(body.slice(10));
      assert.equal(await status, 201);
      const spans = await spansOfTrace(traceId, 1);
      const serverSpan = only(
        spans.filter((span) => span.kind === 'SERVER'),
        'SERVER span',
      );
      const insert = only(
        spans.filter((span) => span.kind === 'CLIENT'),
        'INSERT span',
      );
      assert.equal(insert.parentSpanId, serverSpan.spanId);
      assert.equal(insert.traceId, traceId);
    });

    it('a failed query ends its CLIENT span and the SERVER span with ERROR status and error.type', async () => {
      await suite.server.database.exec('ALTER TABLE products RENAME TO products_away');
      try {
        const { response, serverSpan, clientSpans } = await tracedRequest(suite.server, 'GET', '/products');
        assert.equal(response.status, 500);
        const span = only(clientSpans, 'CLIENT span');
        assert.equal(span.status.code, 'ERROR');
        assert.equal(span.status.message, 'INV_ERR_DB');
        assert.equal(span.attributes['error.type'], 'DatabaseError');
        if (suite.kind === 'postgres') {
          assert.equal(span.attributes['db.response.status_code'], '42P01', 'SQLSTATE undefined_table');
        }
        assert.equal(serverSpan.status.code, 'ERROR');
        assert.equal(serverSpan.attributes['error.type'], 'DatabaseError');
        assert.equal(serverSpan.attributes['http.response.status_code'], 500);
      } finally {
        await suite.server.database.exec('ALTER TABLE products_away RENAME TO products');
      }
    });
  },
  { telemetry },
);

describe('backend spans without a proxy in front', () => {
  let database: TestDatabase;
  let server: TestServer;
  after(async () => {
    await server.close();
    await database.drop();
  });

  it('starts a new trace without traceparent; unknown paths are named by the method only', async () => {
    database = await createTestDatabase('sqlite', 'tracing-direct');
    server = await startTestServer(database, { telemetry });
    const before = receiver.spans.length;
    const missing = await server.request('GET', '/nowhere/42');
    assert.equal(missing.status, 404);
    const [span] = await receiver.waitForSpans(
      (s) => s.kind === 'SERVER' && s.attributes['url.path'] === '/nowhere/42',
    );
    assert.ok(span !== undefined);
    assert.equal(span.parentSpanId, undefined, 'a root span');
    assert.equal(span.name, 'GET');
    assert.equal(span.attributes['http.route'], undefined);
    assert.equal(span.attributes['spanscope.handler'], 'unmatched');
    assert.equal(span.attributes['http.response.status_code'], 404);
    assert.equal(span.status.code, 'UNSET', 'a 404 is not a server error');
    assert.equal(span.attributes['pyroscope.profile.id'], span.spanId);

    const refused = await server.request('PATCH', '/product/1');
    assert.equal(refused.status, 405);
    const [patch] = await receiver.waitForSpans(
      (s) => s.kind === 'SERVER' && s.attributes['http.request.method'] === 'PATCH',
    );
    assert.equal(patch?.name, 'PATCH /product/{id}');
    assert.equal(patch.attributes['spanscope.handler'], 'method_not_allowed');
    assert.ok(receiver.spans.length > before);
  });

  it('an unsampled caller (flags 00): no span is exported and the request is served', async () => {
    const traceId = newTraceId();
    const response = await server.request('GET', '/health', undefined, {
      traceparent: `00-${traceId}-${newSpanId()}-00`,
    });
    assert.equal(response.status, 200);
    // A sampled request after it: once its span is in, the unsampled one would be too.
    const marker = newTraceId();
    await server.request('GET', '/health', undefined, { traceparent: `00-${marker}-${newSpanId()}-01` });
    await receiver.waitForSpans((s) => s.traceId === marker && s.kind === 'SERVER');
    assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
  });

  it('no pyroscope.profile.id when profiling is off or ENABLE_DYNAMIC_TAGS=false', async () => {
    const noSpanLabels = await startProfiler({
      ...loadConfig({
        TAGGING_ENDPOINT: pyroscope.url,
        PYROSCOPE_UPLOAD_RATE: '60',
        ENABLE_DYNAMIC_TAGS: 'false',
      }).profiling,
      logger: SILENT,
    });
    const cases: [string, Profiler][] = [
      ['profiling off', telemetryOff().profiler],
      ['ENABLE_DYNAMIC_TAGS=false', noSpanLabels],
    ];
    for (const [label, other] of cases) {
      const otherServer = await startTestServer(database, { telemetry: { tracing, profiler: other } });
      try {
        const { serverSpan } = await tracedRequest(otherServer, 'GET', '/products');
        assert.equal(serverSpan.attributes['pyroscope.profile.id'], undefined, label);
      } finally {
        await otherServer.close();
      }
    }
    await noSpanLabels.stop();
  });

  it('with OTEL_SDK_DISABLED=true no span is made and trace headers are ignored', async () => {
    const disabled = tracingTo({ OTEL_SDK_DISABLED: 'true' });
    assert.equal(disabled.enabled, false);
    const otherServer = await startTestServer(database, { telemetry: { tracing: disabled, profiler } });
    try {
      const traceId = newTraceId();
      const response = await otherServer.request('GET', '/products', undefined, {
        traceparent: `00-${traceId}-${newSpanId()}-01`,
      });
      assert.equal(response.status, 200);
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0);
    } finally {
      await otherServer.close();
    }
  });
});

describe('the backend process', () => {
  it('exports its spans over OTLP (batched) and flushes them on SIGTERM after draining', async () => {
    const backend = spawnBackend({
      DATABASE_URL: 'sqlite::memory:',
      BACKEND_PORT: '0',
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'inventory-under-test',
      // Longer than the test: only the shutdown flush can deliver these spans.
      OTEL_BSP_SCHEDULE_DELAY: '600000',
      ENABLE_PROFILING: 'false',
    });
    try {
      const port = await backend.ready();
      const off = await backend.waitForLog((line) => line.msg?.startsWith('profiling off') === true);
      assert.equal(off.msg, 'profiling off: ENABLE_PROFILING=false');
      const traceId = newTraceId();
      const parent = newSpanId();
      const response = await fetch(`http://127.0.0.1:${port}/products`, {
        headers: { traceparent: `00-${traceId}-${parent}-01` },
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      assert.equal(receiver.spans.filter((s) => s.traceId === traceId).length, 0, 'not exported yet');

      backend.child.kill('SIGTERM');
      assert.deepEqual(await backend.exited, { code: 0, signal: null }, backend.stderr());
      const spans = await receiver.waitForSpans({ where: (s) => s.traceId === traceId, count: 2 });
      const serverSpan = only(
        spans.filter((s) => s.kind === 'SERVER'),
        'SERVER span',
      );
      assert.equal(serverSpan.parentSpanId, parent);
      assert.equal(serverSpan.resource['service.name'], 'inventory-under-test');
      assert.equal(serverSpan.attributes['pyroscope.profile.id'], undefined, 'profiling is off');
      const clientSpan = only(
        spans.filter((s) => s.kind === 'CLIENT'),
        'CLIENT span',
      );
      assert.equal(clientSpan.parentSpanId, serverSpan.spanId);
      const profilingLines = backend.logs().filter((line) => line.msg?.startsWith('profiling') === true);
      assert.equal(profilingLines.length, 1, 'one line says profiling is off');
    } finally {
      backend.kill();
    }
  });
});
