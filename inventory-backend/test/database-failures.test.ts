// Health reporting and database failures: clients get a generic message, never SQL or a stack.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { PostgresProductRepository, openPostgresRepository } from '../src/db/postgres-repository.ts';
import { DatabaseError, DatabaseUnavailableError } from '../src/errors.ts';
import { buildApp } from '../src/app.ts';
import { DATABASE_KINDS, createTestDatabase } from './support/databases.ts';
import type { TestDatabase } from './support/databases.ts';
import { startTestServer } from './support/server.ts';
import type { TestServer } from './support/server.ts';

const LEAK_PATTERN = /select|insert|update|delete|from|products|relation|table|sqlite|postgres|\bat\b|\.ts/i;

for (const kind of DATABASE_KINDS) {
  describe(`database failures [${kind}]`, () => {
    let database: TestDatabase;
    let server: TestServer;
    before(async () => {
      database = await createTestDatabase(kind, 'db failures');
      server = await startTestServer(database);
    });
    after(async () => {
      await server.close();
      await database.drop();
    });

    it('answers 500 with a generic message when a query fails (table dropped behind its back)', async () => {
      const created = await server.request('POST', '/product', { name: 'Doomed', price: 1, quantity: 1 });
      assert.equal(created.status, 201);
      await database.exec('DROP TABLE products');

      const requests: [string, string, unknown?][] = [
        ['GET', '/products'],
        ['GET', '/product/1'],
        ['POST', '/product', { name: 'x', price: 1, quantity: 1 }],
        ['PUT', '/product/1', { name: 'x', price: 1, quantity: 1 }],
        ['DELETE', '/product/1'],
      ];
      for (const [method, path, body] of requests) {
        const response = await server.request(method, path, body);
        assert.equal(response.status, 500, `${method} ${path}: ${response.text}`);
        assert.deepEqual(response.body, { error: 'internal server error' });
        assert.doesNotMatch(response.text.replace('internal server error', ''), LEAK_PATTERN);
      }
      const health = await server.request('GET', '/health');
      assert.equal(health.status, 503);
      assert.deepEqual(health.body, {
        status: 'error',
        database: 'disconnected',
        error: 'internal server error',
      });
    });

    it('raises typed errors from the repository, keeping the detail for logs', async () => {
      await assert.rejects(server.repository.list({ count: 1, start: 0 }), (error: unknown) => {
        assert.ok(error instanceof DatabaseError);
        assert.equal(error.code, 'INV_ERR_DB');
        assert.match(error.message, /products/);
        assert.equal(error.publicMessage, 'internal server error');
        return true;
      });
    });

    it('answers 503 "database unavailable" and an unhealthy /health once the database is closed', async () => {
      await server.repository.close();
      const health = await server.request('GET', '/health');
      assert.equal(health.status, 503);
      assert.deepEqual(health.body, {
        status: 'error',
        database: 'disconnected',
        error: 'database unavailable',
      });
      const list = await server.request('GET', '/products');
      assert.equal(list.status, 503);
      assert.deepEqual(list.body, { error: 'database unavailable' });
      await assert.rejects(server.repository.count(), DatabaseUnavailableError);
    });
  });
}

describe('unreachable PostgreSQL', () => {
  it('fails to open with DatabaseUnavailableError naming the redacted target', async () => {
    await assert.rejects(
      openPostgresRepository('postgres://postgres:s3cret@127.0.0.1:1/test'),
      (error: unknown) => {
        assert.ok(error instanceof DatabaseUnavailableError);
        assert.equal(error.code, 'INV_ERR_DB_UNAVAILABLE');
        assert.match(error.message, /127\.0\.0\.1:1/);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      },
    );
  });

  it('answers /health 503 and requests 503 "database unavailable" while PostgreSQL is unreachable', async () => {
    const pool = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/test' });
    const repository = new PostgresProductRepository(pool);
    const app = buildApp({ repository });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      const health = await fetch(`${address}/health`);
      assert.equal(health.status, 503);
      assert.deepEqual(await health.json(), {
        status: 'error',
        database: 'disconnected',
        error: 'database unavailable',
      });
      const list = await fetch(`${address}/products`);
      assert.equal(list.status, 503);
      assert.deepEqual(await list.json(), { error: 'database unavailable' });
    } finally {
      await app.close();
      await repository.close();
    }
  });

  it('recovers without a restart when the server drops its connections', async () => {
    const database = await createTestDatabase('postgres', 'server gone');
    const applicationName = `inv_test_recover_${process.pid.toString()}`;
    const url = new URL(database.url);
    url.searchParams.set('application_name', applicationName);
    const repository = await openPostgresRepository(url.toString());
    const app = buildApp({ repository });
    const address = await app.listen({ port: 0, host: '127.0.0.1' });
    try {
      assert.equal((await fetch(`${address}/health`)).status, 200);
      // Kill this pool's sessions (and only them), as a database restart would.
      await database.exec(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${applicationName}'`,
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      let status = 0;
      for (let attempt = 0; attempt < 5 && status !== 200; attempt++) {
        status = (await fetch(`${address}/health`)).status;
      }
      assert.equal(status, 200);
    } finally {
      await app.close();
      await repository.close();
      await database.drop();
    }
  });
});
