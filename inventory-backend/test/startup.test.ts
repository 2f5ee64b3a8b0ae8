// Start-up of the real process: serving with the defaults, and failing with one clear line.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { spawnBackend } from './support/backend-process.ts';

/** Runs the backend expecting it to fail; returns its exit code and stderr lines. */
async function failedStart(env: Record<string, string>): Promise<{ code: number | null; lines: string[] }> {
  const backend = spawnBackend(env);
  try {
    const { code } = await backend.exited;
    return {
      code,
      lines: backend
        .stderr()
        .split('\n')
        .filter((line) => line !== ''),
    };
  } finally {
    backend.kill();
  }
}

describe('backend start-up', () => {
  it('serves on SQLite at ./data/inventory.db under its working directory by default, seeding on request', async () => {
    const cwd = await mkdtemp(path.join(tmpdir(), 'inv-startup-'));
    const backend = spawnBackend({ BACKEND_PORT: '0', SEED_SAMPLE_DATA: 'true' }, cwd);
    try {
      const port = await backend.ready();
      const listening = await backend.waitForLog((line) => line.msg === 'database ready');
      assert.equal(listening.database, `sqlite:${path.join(cwd, 'data', 'inventory.db')}`);
      assert.ok(existsSync(path.join(cwd, 'data', 'inventory.db')));
      const products = (await (await fetch(`http://127.0.0.1:${port}/products`)).json()) as {
        name: string;
      }[];
      assert.deepEqual(
        products.map((product) => product.name),
        ['Notebook', 'Mouse', 'Teclado', 'Monitor', 'Cadeira Gamer'],
      );
      backend.child.kill('SIGTERM');
      assert.equal((await backend.exited).code, 0);
    } finally {
      backend.kill();
      await rm(cwd, { recursive: true, force: true });
    }
  });

  it('fails on a bad environment value with one line naming it, exit 1', async () => {
    const { code, lines } = await failedStart({ BACKEND_PORT: 'abc' });
    assert.equal(code, 1);
    assert.deepEqual(lines, [
      'inventory-backend: failed to start: BACKEND_PORT="abc" is invalid: expected an integer port 0-65535 [INV_ERR_CONFIG]',
    ]);
  });

  it('fails on an unsupported DATABASE_URL with one line, without the password', async () => {
    const { code, lines } = await failedStart({ DATABASE_URL: 'mysql://root:hunter2@127.0.0.1/inv' });
    assert.equal(code, 1);
    assert.equal(lines.length, 1);
    assert.match(
      lines[0]!,
      /^inventory-backend: failed to start: DATABASE_URL="mysql:\/\/root:\*\*\*@127\.0\.0\.1\/inv" is invalid/,
    );
  });

  it('fails when PostgreSQL is unreachable with one line naming the target, exit 1', async () => {
    const { code, lines } = await failedStart({
      DATABASE_URL: 'postgres://postgres:s3cret@127.0.0.1:1/test',
      BACKEND_PORT: '0',
    });
    assert.equal(code, 1);
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.match(
      lines[0]!,
      /^inventory-backend: failed to start: cannot open PostgreSQL database postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test: .*ECONNREFUSED.* \[INV_ERR_DB_UNAVAILABLE\]$/,
    );
  });

  it('fails when the SQLite file cannot be created with one line, exit 1', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'inv-startup-'));
    const notAFolder = path.join(dir, 'not-a-folder');
    await writeFile(notAFolder, '');
    try {
      const { code, lines } = await failedStart({
        DATABASE_URL: `sqlite:${notAFolder}/inventory.db`,
        BACKEND_PORT: '0',
      });
      assert.equal(code, 1);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.ok(
        lines[0]!.startsWith(
          `inventory-backend: failed to start: cannot open SQLite database ${notAFolder}/inventory.db: `,
        ),
        lines[0],
      );
      assert.ok(lines[0]!.endsWith(' [INV_ERR_DB_UNAVAILABLE]'), lines[0]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('fails when the port is taken with one line, exit 1', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    assert.ok(typeof address === 'object' && address !== null);
    try {
      const { code, lines } = await failedStart({
        DATABASE_URL: 'sqlite::memory:',
        BACKEND_PORT: String(address.port),
      });
      assert.equal(code, 1);
      assert.equal(lines.length, 1, lines.join('\n'));
      assert.match(lines[0]!, /^inventory-backend: failed to start: .*EADDRINUSE/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});
