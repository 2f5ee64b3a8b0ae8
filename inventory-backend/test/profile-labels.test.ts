// The backend's profile labels on real servers: the profiler pushes every second to a real
// Pyroscope ingest receiver, which decodes the pprof. CPU is burnt in named functions inside a
// database call (after an await) and in an onSend hook after the handler (after an await), so a
// sample's stack says where it was taken and its labels must be those of its own request.
//
// pprof is process-wide: one profiler (the first started) samples and uploads; the other
// profilers started here share it and apply their own switches to the labels.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SpanKind } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { startProfiler } from '@spanscope/proxy';
import type { Profiler } from '@spanscope/proxy';
import { createTracing } from '@spanscope/proxy/tracing';
import type { Tracing } from '@spanscope/proxy/tracing';
import { startPyroscopeReceiver } from '../../proxy/test/support/pyroscope-receiver.ts';
import type { DecodedSample } from '../../proxy/test/support/pyroscope-receiver.ts';
import { loadConfig } from '../src/config.ts';
import type { ProductRepository } from '../src/db/repository.ts';
import { spawnBackend } from './support/backend-process.ts';
import { DATABASE_KINDS, createTestDatabase } from './support/databases.ts';
import type { DatabaseKind, TestDatabase } from './support/databases.ts';
import { startTestServer } from './support/server.ts';
import type { TestServer } from './support/server.ts';

const SILENT = { info: () => undefined, warn: () => undefined };
const LOAD_MS = 1200;
const CONCURRENCY = 8;
const BURN_MS = 1;

const pyroscope = await startPyroscopeReceiver();
// The profiler that samples and uploads, every second.
const owner = await startProfiler({
  ...loadConfig({ TAGGING_ENDPOINT: pyroscope.url, PYROSCOPE_UPLOAD_RATE: '1' }).profiling,
  logger: SILENT,
});
const exporter = new InMemorySpanExporter();
const tracing: Tracing = createTracing(loadConfig({}).tracing, { exporter, synchronousExport: true });

after(async () => {
  await owner.stop();
  await tracing.shutdown();
  await pyroscope.close();
});

// ---------------------------------------------------------------------------------------------
// Named CPU burners: a sample's stack tells which one it was taken in.

function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 1000; i++) x += Math.sqrt(i + x);
  return x;
}
function burn_in_db(ms: number): number {
  return spin(ms);
}
function burn_after_handler(ms: number): number {
  return spin(ms);
}

/** Each database call awaits, then burns, then runs the real query: all inside the db wrapper. */
function burningRepository(inner: ProductRepository): ProductRepository {
  const slow = async <T>(call: () => Promise<T>): Promise<T> => {
    await nextTurn();
    burn_in_db(BURN_MS);
    return call();
  };
  return {
    kind: inner.kind,
    description: inner.description,
    list: (page) => slow(() => inner.list(page)),
    get: (id) => slow(() => inner.get(id)),
    create: (input) => slow(() => inner.create(input)),
    update: (id, input) => slow(() => inner.update(id, input)),
    delete: (id) => slow(() => inner.delete(id)),
    count: () => slow(() => inner.count()),
    close: () => inner.close(),
  };
}

function inFunction(sample: DecodedSample, name: string): boolean {
  return sample.stack.some((frame) => frame === name || frame.includes(`:${name}:`));
}

// ---------------------------------------------------------------------------------------------
// Servers and load

const databases: TestDatabase[] = [];
after(async () => {
  for (const database of databases) await database.drop();
});

async function startServer(kind: DatabaseKind, profiler: Profiler): Promise<TestServer> {
  const database = await createTestDatabase(kind, 'profile-labels');
  databases.push(database);
  const server = await startTestServer(database, {
    seedSampleData: true,
    telemetry: { tracing, profiler },
    wrapRepository: burningRepository,
    configure: (app) => {
      app.addHook('onSend', async (_request, _reply, payload) => {
        await nextTurn();
        burn_after_handler(BURN_MS);
        return payload;
      });
    },
  });
  return server;
}

/** A profiler sharing the running pprof, with the switches of `env` (e.g. ENABLE_DYNAMIC_TAGS). */
function profilerWith(env: Record<string, string>): Promise<Profiler> {
  return startProfiler({
    ...loadConfig({ TAGGING_ENDPOINT: pyroscope.url, ...env }).profiling,
    logger: SILENT,
  });
}

interface Load {
  method: string;
  path: string;
  body?: unknown;
  headers?: Record<string, string>;
}

function traceparent(): string {
  return `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01`;
}

/**
 * Sends `load(i)` from CONCURRENCY clients for LOAD_MS and returns the wall samples taken
 * meanwhile: the receiver is cleared first, then an upload collected after the load is awaited.
 */
async function profileLoad(server: TestServer, load: (i: number) => Load): Promise<DecodedSample[]> {
  exporter.reset();
  pyroscope.clear();
  const end = Date.now() + LOAD_MS;
  let sent = 0;
  const statuses = new Map<number, number>();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (Date.now() < end) {
        const { method, path, body, headers } = load(sent++);
        const response = await server.request(method, path, body, { traceparent: traceparent(), ...headers });
        statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      }
    }),
  );
  const loadEnded = Date.now();
  for (const status of statuses.keys())
    assert.ok(status < 500, `no request failed: ${JSON.stringify([...statuses])}`);
  await pyroscope.waitForUploads(1, {
    where: (upload) => upload.kind === 'wall' && upload.until * 1000 >= loadEnded,
    timeoutMs: 5000,
  });
  return pyroscope.uploads.filter((upload) => upload.kind === 'wall').flatMap((upload) => upload.samples);
}

/** handler label of each exported SERVER span, by span id. */
function serverSpans(): Map<string, { handler: unknown; name: string }> {
  const spans = new Map<string, { handler: unknown; name: string }>();
  for (const span of exporter.getFinishedSpans()) {
    if (span.kind !== SpanKind.SERVER) continue;
    spans.set(span.spanContext().spanId, { handler: span.attributes['spanscope.handler'], name: span.name });
  }
  return spans;
}

function samplesIn(samples: DecodedSample[], name: string, atLeast = 3): DecodedSample[] {
  const found = samples.filter((sample) => inFunction(sample, name));
  assert.ok(found.length >= atLeast, `at least ${atLeast} samples in ${name}, got ${found.length}`);
  return found;
}

function labelValues(samples: DecodedSample[], name: string): string[] {
  return [...new Set(samples.map((sample) => sample.labels[name] ?? '(none)'))].sort();
}

const BAGGAGE_LIST =
  'spanscope.handler=proxy_list,spanscope.route=%2Fproxied%2Fproducts,spanscope.user_agent=load-test';
const BAGGAGE_CREATE = 'other=kept, spanscope.handler = proxy_create ;prop=1,spanscope.user_agent=bot';

// ---------------------------------------------------------------------------------------------

for (const kind of DATABASE_KINDS) {
  describe(`profile labels from the proxy [${kind}]`, () => {
    let server: TestServer;
    before(async () => {
      server = await startServer(kind, owner);
    });
    after(async () => {
      await server.close();
    });

    it("samples carry the proxy's labels from baggage, their own span, and db labels inside database calls", async () => {
      const samples = await profileLoad(server, (i) =>
        i % 4 === 3
          ? {
              method: 'POST',
              path: '/product',
              body: { name: `Item ${i}`, price: 1.5, quantity: 1 },
              headers: { baggage: BAGGAGE_CREATE, 'user-agent': 'curl/8.5.0' },
            }
          : {
              method: 'GET',
              path: '/products?count=50',
              headers: { baggage: BAGGAGE_LIST, 'user-agent': 'curl/8.5.0' },
            },
      );
      const spans = serverSpans();
      const expected = {
        proxy_list: {
          route: '/proxied/products',
          method: 'GET',
          user_agent: 'load-test',
          db_operation: 'get_products',
        },
        proxy_create: {
          route: '/product',
          method: 'POST',
          user_agent: 'bot',
          db_operation: 'create_product',
        },
      } as const;

      const inDb = samplesIn(samples, 'burn_in_db');
      const afterHandler = samplesIn(samples, 'burn_after_handler');
      for (const sample of [...inDb, ...afterHandler]) {
        const { labels } = sample;
        const handler = labels.handler as keyof typeof expected;
        assert.ok(handler in expected, `a labelled request sample: ${JSON.stringify(labels)}`);
        const want = expected[handler];
        assert.equal(labels.route, want.route);
        assert.equal(labels.method, want.method);
        assert.equal(labels.user_agent, want.user_agent, 'the proxy category wins over the own one (curl)');
        // Its own request's local root span: the SERVER span of a request of that handler.
        const span = spans.get(labels.span_id ?? '');
        assert.ok(span !== undefined, `span_id ${String(labels.span_id)} is an exported SERVER span`);
        assert.equal(span.handler, handler, 'never another request’s span');
        assert.equal(labels.span_name, span.name);
        assert.equal(labels.trace_id, undefined, 'trace_id is off by default');
        if (inFunction(sample, 'burn_in_db')) {
          assert.equal(labels.db_operation, want.db_operation);
          assert.equal(labels.component, 'database');
        } else {
          assert.equal(labels.db_operation, undefined, 'db labels end with the database call');
          assert.equal(labels.component, 'http');
        }
      }
      assert.deepEqual(labelValues(inDb, 'handler'), ['proxy_create', 'proxy_list'], 'POST bodies too');
      assert.ok(labelValues(samples, 'service_name').length === 1);
    });
  });
}

describe('profile labels of the backend on its own (sqlite)', () => {
  it('without baggage: its own handler names, route templates and user-agent category', async () => {
    const server = await startServer('sqlite', owner);
    try {
      const samples = await profileLoad(server, (i) =>
        i % 2 === 0
          ? {
              method: 'GET',
              path: `/product/${(i % 5) + 1}`,
              headers: { 'user-agent': 'python-requests/2.31' },
            }
          : { method: 'GET', path: '/health', headers: { 'user-agent': 'kube-probe/1.30' } },
      );
      const inDb = samplesIn(samples, 'burn_in_db');
      for (const { labels } of inDb) {
        if (labels.handler === 'get_product') {
          assert.equal(labels.route, '/product/{id}');
          assert.equal(labels.user_agent, 'python-client');
          assert.equal(labels.db_operation, 'get_product');
        } else {
          assert.equal(labels.handler, 'health');
          assert.equal(labels.route, '/health');
          assert.equal(labels.user_agent, 'kube-probe');
          assert.equal(labels.db_operation, 'count_products');
        }
        assert.equal(labels.method, 'GET');
        assert.equal(labels.component, 'database');
        assert.match(labels.span_id ?? '', /^[0-9a-f]{16}$/);
      }
      assert.deepEqual(labelValues(inDb, 'handler'), ['get_product', 'health']);
      assert.equal(
        samples.some((sample) => sample.labels.product_id !== undefined || sample.labels.id !== undefined),
        false,
        'a product id is never a label',
      );
    } finally {
      await server.close();
    }
  });

  it('an unsampled request (traceparent flags 00) gets no span_id or span_name', async () => {
    const server = await startServer('sqlite', owner);
    try {
      const samples = await profileLoad(server, () => ({
        method: 'GET',
        path: '/products?count=20',
        headers: {
          traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`,
        },
      }));
      const labelled = [...samplesIn(samples, 'burn_in_db'), ...samplesIn(samples, 'burn_after_handler')];
      assert.deepEqual(labelValues(labelled, 'span_id'), ['(none)']);
      assert.deepEqual(labelValues(labelled, 'span_name'), ['(none)']);
      assert.deepEqual(labelValues(labelled, 'handler'), ['get_products']);
    } finally {
      await server.close();
    }
  });

  it('a bad baggage value never fails the request: that label falls back to the own name', async () => {
    const server = await startServer('sqlite', owner);
    try {
      const long = 'h'.repeat(300);
      const samples = await profileLoad(server, (i) => ({
        method: 'GET',
        path: '/products?count=20',
        headers: {
          'user-agent': 'curl/8.5.0',
          baggage:
            i % 2 === 0
              ? // Not percent-decodable; empty once control characters are removed; no '='.
                'spanscope.handler=%E0%A4%A,spanscope.route=%00%01%02,spanscope.user_agent'
              : `spanscope.handler=${long},spanscope.route=%20%20,spanscope.user_agent=${'%FF'.repeat(3)}`,
        },
      }));
      const inDb = samplesIn(samples, 'burn_in_db');
      assert.deepEqual(labelValues(inDb, 'route'), ['/products'], 'refused routes: the own template');
      // A long value is accepted but cut to the scheme's length cap; an undecodable one is ignored.
      assert.deepEqual(labelValues(inDb, 'handler').sort(), ['get_products', 'h'.repeat(128)].sort());
      assert.deepEqual(labelValues(inDb, 'user_agent'), ['curl']);
    } finally {
      await server.close();
    }
  });
});

describe('label switches (sqlite)', () => {
  const load = (i: number): Load =>
    i % 3 === 2
      ? { method: 'POST', path: '/product', body: { name: 'Switch', price: 1, quantity: 1 } }
      : { method: 'GET', path: '/products?count=20', headers: { 'user-agent': 'curl/8.5.0' } };

  async function samplesWith(env: Record<string, string>): Promise<{
    inDb: DecodedSample[];
    afterHandler: DecodedSample[];
  }> {
    const profiler = await profilerWith(env);
    const server = await startServer('sqlite', profiler);
    try {
      const samples = await profileLoad(server, load);
      return {
        inDb: samplesIn(samples, 'burn_in_db'),
        afterHandler: samplesIn(samples, 'burn_after_handler'),
      };
    } finally {
      await server.close();
      await profiler.stop();
    }
  }

  it('ENABLE_DATABASE_PROFILING=false removes db_operation and component=database', async () => {
    const { inDb } = await samplesWith({ ENABLE_DATABASE_PROFILING: 'false' });
    assert.deepEqual(labelValues(inDb, 'db_operation'), ['(none)']);
    assert.deepEqual(labelValues(inDb, 'component'), ['http']);
    assert.deepEqual(labelValues(inDb, 'handler'), ['create_product', 'get_products']);
  });

  it('ENABLE_ENDPOINT_PROFILING=false removes handler, route, method and component=http', async () => {
    const { inDb, afterHandler } = await samplesWith({ ENABLE_ENDPOINT_PROFILING: 'false' });
    for (const name of ['handler', 'route', 'method']) {
      assert.deepEqual(labelValues([...inDb, ...afterHandler], name), ['(none)'], name);
    }
    assert.deepEqual(labelValues(afterHandler, 'component'), ['(none)']);
    assert.deepEqual(labelValues(inDb, 'component'), ['database']);
    assert.deepEqual(labelValues(inDb, 'db_operation'), ['create_product', 'get_products']);
    assert.ok(inDb.every((sample) => /^[0-9a-f]{16}$/.test(sample.labels.span_id ?? '')));
  });

  it('ENABLE_USER_AGENT_PROFILING=false removes user_agent', async () => {
    const { inDb, afterHandler } = await samplesWith({ ENABLE_USER_AGENT_PROFILING: 'false' });
    assert.deepEqual(labelValues([...inDb, ...afterHandler], 'user_agent'), ['(none)']);
    assert.deepEqual(labelValues(inDb, 'handler'), ['create_product', 'get_products']);
  });

  it('ENABLE_DYNAMIC_TAGS=false removes span_id and span_name; ENABLE_TRACE_ID_LABEL=true adds trace_id', async () => {
    const off = await samplesWith({ ENABLE_DYNAMIC_TAGS: 'false', ENABLE_TRACE_ID_LABEL: 'true' });
    for (const name of ['span_id', 'span_name', 'trace_id']) {
      assert.deepEqual(labelValues([...off.inDb, ...off.afterHandler], name), ['(none)'], name);
    }
    assert.deepEqual(labelValues(off.inDb, 'handler'), ['create_product', 'get_products']);

    const withTrace = await samplesWith({ ENABLE_TRACE_ID_LABEL: 'true' });
    assert.ok(withTrace.inDb.every((sample) => /^[0-9a-f]{32}$/.test(sample.labels.trace_id ?? '')));
    assert.deepEqual(labelValues(withTrace.inDb, 'span_name'), ['GET /products', 'POST /product']);
  });
});

describe('the backend process', () => {
  it('profiles under its service name, and stops the profiler only after the server drained', async () => {
    const backend = spawnBackend({
      DATABASE_URL: 'sqlite::memory:',
      BACKEND_PORT: '0',
      SEED_SAMPLE_DATA: 'true',
      // The profiles' application name defaults to the service name (this file's own is the default).
      OTEL_SERVICE_NAME: 'inventory-process',
      TAGGING_ENDPOINT: pyroscope.url,
      ENABLE_PROFILING: 'true',
      // Longer than the test: only the profile pushed when the profiler stops can arrive.
      PYROSCOPE_UPLOAD_RATE: '600',
    });
    try {
      const port = await backend.ready();
      const on = await backend.waitForLog((line) => line.msg === 'profiling on');
      assert.equal(on.application, 'inventory-process');
      assert.equal(on.labels, true, 'labels follow async work on this Node.js');

      // A POST held in flight (its body half sent) across SIGTERM.
      const body = JSON.stringify({ name: 'Last order', price: 1, quantity: 1 });
      const req = httpRequest({
        host: '127.0.0.1',
        port,
        method: 'POST',
        path: '/product',
        agent: false,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) },
      });
      const answered = new Promise<number>((resolve, reject) => {
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve(Date.now()));
        });
        req.on('error', reject);
      });
      req.write(body.slice(0, 5));
      await backend.waitForLog((line) => line.msg === 'incoming request');
      backend.child.kill('SIGTERM');
      await backend.waitForLog((line) => line.msg?.startsWith('shutting down') === true);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(
        pyroscope.uploads.some((upload) => upload.appName === 'inventory-process'),
        false,
        'no profile pushed while a request is still in flight',
      );
      req.end(body.slice(5));
      const answeredAt = await answered;
      assert.deepEqual(await backend.exited, { code: 0, signal: null }, backend.stderr());
      const [upload] = await pyroscope.waitForUploads(1, {
        where: (u) => u.appName === 'inventory-process' && u.kind === 'wall',
      });
      assert.ok(upload !== undefined);
      assert.ok(upload.receivedAt >= answeredAt, 'the last profile is pushed after the last answer');
      assert.ok(upload.sampleTypes.includes('cpu/nanoseconds'));
      assert.equal(upload.tags['process.runtime.name'], 'nodejs');
    } finally {
      backend.kill();
    }
  });
});
