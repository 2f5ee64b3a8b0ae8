// The proxy as a process: SIGTERM turns readiness off, closes the listener, lets in-flight requests
// finish up to SHUTDOWN_TIMEOUT_MS and exits 0; a bad setting stops start-up with exit code 2 and
// one line on stderr.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { startEchoBackend } from './support/echo-backend.ts';
import type { EchoBackend, EchoReport } from './support/echo-backend.ts';
import { rawRequest } from './support/http-client.ts';
import type { RawResponse } from './support/http-client.ts';
import { freePort, spawnProxyProcess, startProxyProcess } from './support/proxy-process.ts';
import type { Exit, ProxyProcess } from './support/proxy-process.ts';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Whether a TCP connection to the port is accepted now. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      resolve(false);
    });
  });
}

/** Polls `probe` every 10 ms until it returns true; returns the ms it took, or fails after `timeoutMs`. */
async function within(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<number> {
  const started = performance.now();
  for (;;) {
    if (await probe()) return performance.now() - started;
    const elapsed = performance.now() - started;
    if (elapsed > timeoutMs) assert.fail(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

async function readyzStatus(adminUrl: string): Promise<number> {
  const res = await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
  await res.arrayBuffer();
  return res.status;
}

/** Resolves with the exit, or rejects if the process is still running after `timeoutMs`. */
async function exitWithin(exited: Promise<Exit>, timeoutMs: number): Promise<Exit> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      exited,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`process still running after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitForReceived(backend: EchoBackend, count: number): Promise<void> {
  await within(`the backend receiving ${count} request(s)`, 3000, () =>
    Promise.resolve(backend.received.length >= count),
  );
}

describe('SIGTERM', () => {
  let backend: EchoBackend;
  let proxy: ProxyProcess | undefined;
  before(async () => {
    backend = await startEchoBackend();
  });
  afterEach(async () => {
    // Even when an assertion failed half-way: never leave a proxy process behind.
    await proxy?.kill();
    proxy = undefined;
    backend.clear();
  });
  after(async () => {
    await backend.close();
  });

  it('turns readiness off, closes the listener, finishes the in-flight request and exits 0', async () => {
    const running = await startProxyProcess(backend.url);
    proxy = running;
    assert.equal(await readyzStatus(running.adminUrl), 200);

    let settled = false;
    const path = '/__echo/delay?ms=1500';
    const inFlight = rawRequest({ port: running.port, path, timeoutMs: 10_000 }).finally(() => {
      settled = true;
    });
    await waitForReceived(backend, 1);
    const signalled = performance.now();
    running.child.kill('SIGTERM');

    const notReadyAfter = await within('/readyz answering 503', 500, async () => {
      return (await readyzStatus(running.adminUrl)) === 503;
    });
    const refusedAfter = await within('new connections being refused', 1000, async () => {
      return !(await accepts(running.port));
    });
    assert.equal(settled, false, 'readiness and the listener went before the in-flight request ended');
    assert.ok(notReadyAfter < 500 && refusedAfter < 1000);

    const res: RawResponse = await inFlight;
    assert.equal(res.status, 200);
    assert.equal(res.headers['content-length'], String(res.body.length));
    const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
    assert.equal(report.url, path);
    const answeredAfter = performance.now() - signalled;
    assert.ok(answeredAfter > 1000, `answered ${answeredAfter.toFixed(0)} ms after SIGTERM: it was not cut`);

    const exit = await exitWithin(running.exited, 5000);
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(running.stderr(), '');
  });

  it('cuts a request still running at SHUTDOWN_TIMEOUT_MS and still exits 0 promptly', async () => {
    const running = await startProxyProcess(backend.url, { SHUTDOWN_TIMEOUT_MS: '300' });
    proxy = running;

    // Settled into a value at once, so its rejection is never unhandled while the test waits.
    const inFlight = rawRequest({
      port: running.port,
      path: '/__echo/delay?ms=5000',
      timeoutMs: 10_000,
    }).then(
      (res) => res,
      (error: unknown) => error,
    );
    await waitForReceived(backend, 1);
    const signalled = performance.now();
    running.child.kill('SIGTERM');

    const exit = await exitWithin(running.exited, 2000);
    const exitedAfter = performance.now() - signalled;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(exitedAfter >= 250, `exited ${exitedAfter.toFixed(0)} ms after SIGTERM, before the 300 ms`);
    // The client got no answer: its connection was closed under it.
    const outcome = await inFlight;
    assert.ok(outcome instanceof Error, `expected the request to fail, got ${String(outcome)}`);
    assert.equal((outcome as NodeJS.ErrnoException).code, 'ECONNRESET');
    assert.equal(running.stderr(), '');
  });
});

describe('a bad setting', () => {
  const cases: [variable: string, value: string, allowed: string][] = [
    ['PROXY_PORT', 'abc', 'expected an integer port 0-65535'],
    ['ADMIN_PORT', '70000', 'expected an integer port 0-65535'],
    ['UPSTREAM_TIMEOUT_MS', '-5', 'expected a whole number of milliseconds >= 1'],
    ['SHUTDOWN_TIMEOUT_MS', '1.5', 'expected a whole number of milliseconds >= 1'],
    ['OTEL_TRACES_EXPORTER', 'zipkin', 'expected one of otlp, console, none'],
    ['BACKEND_URL', 'ftp://x', 'expected an http:// or https:// URL'],
  ];
  const children: ReturnType<typeof spawnProxyProcess>[] = [];
  after(() => {
    for (const { child } of children) if (child.exitCode === null) child.kill('SIGKILL');
  });

  for (const [variable, value, allowed] of cases) {
    it(`${variable}=${value} stops start-up: exit code 2, one stderr line naming it and what is allowed`, async () => {
      const spawned = spawnProxyProcess({
        PROXY_HOST: '127.0.0.1',
        PROXY_PORT: String(await freePort()),
        ADMIN_PORT: String(await freePort()),
        BACKEND_URL: 'http://127.0.0.1:9',
        OTEL_TRACES_EXPORTER: 'none',
        [variable]: value,
      });
      children.push(spawned);
      const exit = await exitWithin(spawned.exited, 10_000);
      assert.deepEqual(exit, { code: 2, signal: null });
      const stderr = spawned.stderr();
      assert.ok(stderr.endsWith('\n'), `stderr ends its line: ${JSON.stringify(stderr)}`);
      const lines = stderr.slice(0, -1).split('\n');
      assert.equal(lines.length, 1, `exactly one line: ${JSON.stringify(stderr)}`);
      const [line] = lines as [string];
      assert.ok(line.includes(variable), `names ${variable}: ${line}`);
      assert.ok(line.includes(value), `shows the value ${value}: ${line}`);
      assert.ok(line.includes(allowed), `says what is allowed (${allowed}): ${line}`);
      assert.equal(spawned.stdout(), '', 'nothing else is printed');
    });
  }
});
