// Graceful shutdown: in-flight requests finish, the database closes, the process exits 0 — and
// exits 1 when that takes longer than the timeout. Tested in-process and on a real child process.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import type { ProductRepository } from '../src/db/repository.ts';
import { DatabaseUnavailableError } from '../src/errors.ts';
import { createGracefulShutdown } from '../src/lifecycle.ts';
import type { Product, ProductPage } from '../src/products/product.ts';
import { spawnBackend } from './support/backend-process.ts';
import { DATABASE_KINDS, createTestDatabase } from './support/databases.ts';
import type { TestDatabase } from './support/databases.ts';
import { startTestServer } from './support/server.ts';

const silent = pino({ level: 'silent' });

/** A repository whose list() waits for release(): a request held in flight on demand. */
function gateList(repository: ProductRepository) {
  let release!: () => void;
  let entered!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  const listEntered = new Promise<void>((resolve) => (entered = resolve));
  const gated: ProductRepository = {
    kind: repository.kind,
    description: repository.description,
    list: async (page: ProductPage): Promise<Product[]> => {
      entered();
      await released;
      return repository.list(page);
    },
    get: (id) => repository.get(id),
    create: (input) => repository.create(input),
    update: (id, input) => repository.update(id, input),
    delete: (id) => repository.delete(id),
    count: () => repository.count(),
    close: () => repository.close(),
  };
  return { gated, release, listEntered };
}

/** Resolves once a TCP connection to the port is refused (the listener is closed). */
async function waitUntilRefused(port: number): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const refused = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(false);
      });
      socket.once('error', () => {
        resolve(true);
      });
    });
    if (refused) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`port ${port} still accepts connections`);
}

describe('createGracefulShutdown', () => {
  for (const kind of DATABASE_KINDS) {
    describe(`[${kind}]`, () => {
      let database: TestDatabase;
      before(async () => {
        database = await createTestDatabase(kind, 'lifecycle');
      });
      after(async () => {
        await database.drop();
      });

      it('stops accepting, finishes the in-flight request, closes the database, exits 0', async () => {
        let gate: ReturnType<typeof gateList> | undefined;
        const server = await startTestServer(database, {
          wrapRepository: (repository) => (gate = gateList(repository)).gated,
        });
        assert.ok(gate);
        const exits: number[] = [];
        const shutdown = createGracefulShutdown({
          app: server.app,
          repository: server.repository,
          logger: silent,
          timeoutMs: 5_000,
          exit: (code) => exits.push(code),
        });

        const inFlight = server.request('GET', '/products');
        await gate.listEntered;
        const stopping = shutdown('SIGTERM');
        await waitUntilRefused(Number(new URL(server.baseUrl).port));
        assert.deepEqual(exits, [], 'must not exit while a request is in flight');

        gate.release();
        const response = await inFlight;
        assert.equal(response.status, 200);
        assert.ok(Array.isArray(response.body));
        await stopping;
        assert.deepEqual(exits, [0]);
        await assert.rejects(server.repository.count(), DatabaseUnavailableError);
        assert.equal(shutdown('SIGINT'), stopping, 'a second signal joins the running shutdown');
      });

      it('forces exit 1 when in-flight work outlasts the timeout', async () => {
        let gate: ReturnType<typeof gateList> | undefined;
        const server = await startTestServer(database, {
          wrapRepository: (repository) => (gate = gateList(repository)).gated,
        });
        assert.ok(gate);
        const exits: number[] = [];
        let forced!: () => void;
        const forcedExit = new Promise<void>((resolve) => (forced = resolve));
        const shutdown = createGracefulShutdown({
          app: server.app,
          repository: server.repository,
          logger: silent,
          timeoutMs: 100,
          exit: (code) => {
            exits.push(code);
            forced();
          },
        });
        const inFlight = server.request('GET', '/products');
        await gate.listEntered;
        const started = Date.now();
        const stopping = shutdown('SIGTERM');
        await forcedExit;
        assert.deepEqual(exits, [1]);
        assert.ok(Date.now() - started >= 90);
        // Let the held request end so the test leaves nothing behind.
        gate.release();
        await inFlight;
        await stopping;
        assert.deepEqual(exits, [1], 'exit is called once');
      });
    });
  }
});

describe('telemetry at shutdown', () => {
  let database: TestDatabase;
  before(async () => {
    database = await createTestDatabase('sqlite', 'lifecycle-telemetry');
  });
  after(async () => {
    await database.drop();
  });

  /** A logger whose warnings the test reads back. */
  function capturingLogger() {
    const lines: { level: number; msg: string }[] = [];
    const logger = pino(
      { level: 'warn' },
      { write: (line: string) => lines.push(JSON.parse(line) as { level: number; msg: string }) },
    );
    return { logger, warnings: () => lines.filter((line) => line.level === 40).map((line) => line.msg) };
  }

  it('after the database: stops the profiler, then flushes spans, then runtime metrics; exits 0', async () => {
    const order: string[] = [];
    const server = await startTestServer(database, {
      wrapRepository: (repository) => ({
        ...repository,
        close: async () => {
          await repository.close();
          order.push('database');
        },
      }),
    });
    const step = (name: string) => async () => {
      // A step that takes a while: the next one must still wait for it.
      await new Promise((resolve) => setTimeout(resolve, 20));
      order.push(name);
    };
    const exits: number[] = [];
    await createGracefulShutdown({
      app: server.app,
      repository: server.repository,
      profiler: { stop: step('profiler') },
      tracing: { shutdown: step('spans') },
      runtime: { shutdown: step('runtime metrics') },
      logger: silent,
      timeoutMs: 5_000,
      exit: (code) => exits.push(code),
    })('SIGTERM');
    assert.deepEqual(order, ['database', 'profiler', 'spans', 'runtime metrics']);
    assert.deepEqual(exits, [0]);
  });

  it('a failing or hanging step is logged and bounded by the time left; the exit is still 0', async () => {
    const server = await startTestServer(database);
    const { logger, warnings } = capturingLogger();
    let runtimeFlushed = false;
    const exits: number[] = [];
    const timeoutMs = 600;
    const started = Date.now();
    await createGracefulShutdown({
      app: server.app,
      repository: server.repository,
      profiler: { stop: () => Promise.reject(new Error('pyroscope unreachable')) },
      tracing: { shutdown: () => new Promise<void>(() => undefined) },
      runtime: {
        shutdown: () => {
          runtimeFlushed = true;
          return Promise.resolve();
        },
      },
      logger,
      timeoutMs,
      exit: (code) => exits.push(code),
    })('SIGTERM');
    assert.deepEqual(exits, [0], 'telemetry trouble does not fail the shutdown');
    assert.ok(Date.now() - started < timeoutMs, 'done before the forced exit');
    assert.ok(runtimeFlushed, 'the steps after a hanging one still run');
    assert.deepEqual(warnings(), ['stopping the profiler failed', 'flushing spans did not finish in time']);
  });
});

function postSlowly(port: number, body: string) {
  const req = httpRequest({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/product',
    agent: false,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body).toString() },
  });
  const response = new Promise<{ status: number; body: string }>((resolve, reject) => {
    req.on('response', (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: text });
      });
    });
    req.on('error', reject);
  });
  req.write(body.slice(0, 5));
  return { finish: () => req.end(body.slice(5)), response };
}

describe('the backend process', () => {
  for (const kind of DATABASE_KINDS) {
    it(`on SIGTERM finishes the in-flight request, then exits 0 [${kind}]`, async () => {
      const database = await createTestDatabase(kind, 'sigterm');
      const backend = spawnBackend({ DATABASE_URL: database.url, BACKEND_PORT: '0' });
      try {
        const port = await backend.ready();
        const body = JSON.stringify({ name: 'Last order', price: 11.22, quantity: 1 });
        const upload = postSlowly(port, body);
        await backend.waitForLog((line) => line.msg === 'incoming request');

        backend.child.kill('SIGTERM');
        await backend.waitForLog(
          (line) => typeof line.msg === 'string' && line.msg.startsWith('shutting down'),
        );
        await waitUntilRefused(port);
        upload.finish();

        const response = await upload.response;
        assert.equal(response.status, 201, response.body);
        assert.equal((JSON.parse(response.body) as Product).price, 11.22);
        const exit = await backend.exited;
        assert.deepEqual(exit, { code: 0, signal: null }, backend.stderr());
        await backend.waitForLog((line) => line.msg === 'shutdown complete', 100);
        assert.equal(backend.stderr(), '');
      } finally {
        backend.kill();
        await database.drop();
      }
    });
  }

  it('exits 0 on SIGINT when idle', async () => {
    const backend = spawnBackend({ DATABASE_URL: 'sqlite::memory:', BACKEND_PORT: '0' });
    try {
      const port = await backend.ready();
      const health = await fetch(`http://127.0.0.1:${port}/health`);
      assert.equal(health.status, 200);
      backend.child.kill('SIGINT');
      assert.deepEqual(await backend.exited, { code: 0, signal: null });
    } finally {
      backend.kill();
    }
  });

  it('exits non-zero when a request outlasts SHUTDOWN_TIMEOUT_MS', async () => {
    const backend = spawnBackend({
      DATABASE_URL: 'sqlite::memory:',
      BACKEND_PORT: '0',
      SHUTDOWN_TIMEOUT_MS: '200',
    });
    try {
      const port = await backend.ready();
      const upload = postSlowly(port, JSON.stringify({ name: 'Never sent', price: 1, quantity: 1 }));
      upload.response.catch(() => undefined);
      await backend.waitForLog((line) => line.msg === 'incoming request');
      const started = Date.now();
      backend.child.kill('SIGTERM');
      const exit = await backend.exited;
      assert.equal(exit.code, 1);
      assert.ok(Date.now() - started >= 150);
      await backend.waitForLog((line) => line.msg === 'shutdown timed out, forcing exit', 100);
    } finally {
      backend.kill();
    }
  });
});
