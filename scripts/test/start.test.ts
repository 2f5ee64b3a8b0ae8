// `npm start` as a user runs it: backend and proxy together, the seed's validation commands
// answered through the proxy port, and Ctrl-C stopping both cleanly.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PROXY_ENTRY, PROXY_MALLOC_ENV, PROXY_NODE_FLAGS } from '../../proxy/src/launch-settings.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** The command line and environment of each process whose parent is `ppid`, from /proc. */
function childrenOf(ppid: number): { argv: string[]; env: Map<string, string> }[] {
  const found: { argv: string[]; env: Map<string, string> }[] = [];
  for (const pid of readdirSync('/proc').filter((name) => /^\d+$/.test(name))) {
    try {
      // The command may hold spaces and parentheses: the parent pid is the 2nd field after the last ')'.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== ppid) continue;
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').slice(0, -1);
      const env = new Map(
        readFileSync(`/proc/${pid}/environ`, 'utf8')
          .split('\0')
          .filter((entry) => entry.includes('='))
          .map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)] as const),
      );
      found.push({ argv, env });
    } catch {
      // Gone since the directory was listed.
    }
  }
  return found;
}

async function waitFor(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} not ready within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('npm start', () => {
  let child: ChildProcess;
  let output = '';
  let proxy: string;
  let ports: { proxy: number; admin: number; backend: number };

  before(async () => {
    ports = { proxy: await freePort(), admin: await freePort(), backend: await freePort() };
    child = spawn(process.execPath, ['scripts/start.ts'], {
      cwd: root,
      env: {
        ...process.env,
        PROXY_HOST: '127.0.0.1',
        PROXY_PORT: String(ports.proxy),
        ADMIN_PORT: String(ports.admin),
        BACKEND_PORT: String(ports.backend),
        BACKEND_URL: `http://127.0.0.1:${ports.backend}`,
        DATABASE_URL: 'sqlite::memory:',
        SEED_SAMPLE_DATA: 'true',
        OTEL_TRACES_EXPORTER: 'none',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    proxy = `http://127.0.0.1:${ports.proxy}`;
    await waitFor(`http://127.0.0.1:${ports.admin}/readyz`, 20_000);
  });

  after(async () => {
    if (child.exitCode === null) {
      // SIGTERM first: start.ts must stop the backend and the proxy it runs, or they outlive the test.
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
  });

  it('serves the seed validation commands through the proxy port', async () => {
    const list = await fetch(`${proxy}/products`);
    assert.equal(list.status, 200);
    assert.ok(list.headers.get('traceresponse'), 'the trace id comes back');
    const products = (await list.json()) as { name: string }[];
    assert.deepEqual(
      products.map((p) => p.name),
      ['Notebook', 'Mouse', 'Teclado', 'Monitor', 'Cadeira Gamer'],
    );
    const created = await fetch(`${proxy}/product`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"name":"Test","price":10,"quantity":5}',
    });
    assert.equal(created.status, 201);
    const one = await fetch(`${proxy}/product/1`);
    assert.equal(one.status, 200);
    assert.equal(((await one.json()) as { name: string }).name, 'Notebook');
  });

  it('runs the proxy as its image does: stripped JavaScript, heap flags, malloc settings', () => {
    const proxyProcess = childrenOf(child.pid ?? -1).find((p) =>
      p.argv.some((arg) => arg.includes('proxy/')),
    );
    assert.ok(proxyProcess, 'a proxy child process');
    assert.deepEqual(proxyProcess.argv.slice(1), [
      ...PROXY_NODE_FLAGS,
      '--env-file-if-exists=.env.profiling',
      `proxy/${PROXY_ENTRY}`,
    ]);
    for (const [name, value] of Object.entries(PROXY_MALLOC_ENV)) {
      assert.equal(proxyProcess.env.get(name), value, name);
    }
  });

  it('prefixes both logs and stops both processes on Ctrl-C', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGINT');
    assert.equal(await exited, 0, output);
    assert.match(output, /^backend \| /m);
    assert.match(output, /^proxy {3}\| /m);
    for (const port of [ports.proxy, ports.backend]) {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/health`), `port ${port} is closed`);
    }
  });
});
