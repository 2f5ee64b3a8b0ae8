// Failures are explicit, never a hang or a crash: a backend refusing connections is a 502, a slow
// one a 504, a client leaving aborts the upstream request, a backend reset breaks the client's
// connection, and malformed or oversized requests get 400/431 while the proxy stays up.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import { connect } from 'node:net';
import { SpanStatusCode } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';
import type { EchoReport } from './support/echo-backend.ts';
import { IncompleteResponseError, rawRequest } from './support/http-client.ts';
import { freePort } from './support/proxy-process.ts';
import { echoBackendBehindProxy, startProxy } from './support/start-proxy.ts';
import type { ProxyUnderTest } from './support/start-proxy.ts';

async function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The last exported span, once there is one for `path`. */
function spanFor(proxy: ProxyUnderTest, path: string): Promise<ReadableSpan> {
  return waitFor(`a span for ${path}`, () =>
    proxy.exporter
      .getFinishedSpans()
      .filter((span) => span.attributes['url.path'] === path)
      .at(-1),
  );
}

/** The value of one series on the admin `/metrics` page. */
async function metric(proxy: ProxyUnderTest, series: string): Promise<string | undefined> {
  const res = await fetch(`${proxy.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  const text = await res.text();
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return line.slice(series.length + 1);
  }
  return undefined;
}

const upstreamErrors = (kind: string) => `spanscope_upstream_errors_total{kind="${kind}"}`;

/** Writes `request` on a fresh TCP connection and collects everything until the proxy closes it. */
function rawExchange(port: number, request: string | Buffer, timeoutMs = 5000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${Buffer.concat(chunks).toString('latin1')}`));
    }, timeoutMs);
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The proxy may close while a large request is still being written: what it answered counts.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.write(request);
  });
}

describe('backend refusing connections', () => {
  let port: number;
  let proxy: ProxyUnderTest;
  let revived: Server | undefined;
  before(async () => {
    // A port that was just free: nothing listens there, so connecting is refused.
    port = await freePort();
    proxy = await startProxy({ BACKEND_URL: `http://127.0.0.1:${port}` });
  });
  after(async () => {
    await proxy.close();
    if (revived) {
      revived.closeAllConnections();
      await new Promise((resolve) => revived?.close(resolve));
    }
  });

  it('answers 502 {"error":"upstream unavailable"} with traceresponse, an ERROR span and a metric', async () => {
    const res = await rawRequest({ port: proxy.port, path: '/products' });
    assert.equal(res.status, 502);
    assert.equal(res.body.toString('utf8'), '{"error":"upstream unavailable"}');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(res.headers['content-length'], String(res.body.length));

    const span = await spanFor(proxy, '/products');
    const { traceId, spanId } = span.spanContext();
    assert.equal(res.headers.traceresponse, `00-${traceId}-${spanId}-01`);
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['error.type'], 'upstream_unavailable');
    assert.equal(span.attributes['http.response.status_code'], 502);

    assert.equal(await metric(proxy, upstreamErrors('upstream_unavailable')), '1');
    assert.equal(await metric(proxy, upstreamErrors('upstream_timeout')), '0');
  });

  it('reports not ready while the backend is unreachable', async () => {
    const res = await fetch(`${proxy.adminUrl}/readyz`);
    assert.equal(res.status, 503);
    assert.deepEqual(await res.json(), { status: 'not ready', reason: 'backend unreachable' });
  });

  it('forwards again once the backend is back: no stuck pool', async () => {
    const before502 = await rawRequest({ port: proxy.port, path: '/product/1' });
    assert.equal(before502.status, 502);

    revived = createServer((req, res) => {
      req.resume();
      const body = JSON.stringify({ back: true, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve, reject) => {
      revived?.once('error', reject);
      revived?.listen(port, '127.0.0.1', resolve);
    });

    // More requests than one connection, at once and one after another.
    const parallel = await Promise.all(
      Array.from({ length: 8 }, (_, i) => rawRequest({ port: proxy.port, path: `/product/${i}` })),
    );
    for (const [i, res] of parallel.entries()) {
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body.toString('utf8')), { back: true, url: `/product/${i}` });
    }
    for (let i = 0; i < 3; i++) {
      const res = await rawRequest({ port: proxy.port, path: '/products' });
      assert.equal(res.status, 200);
    }
    assert.equal(await metric(proxy, upstreamErrors('upstream_unavailable')), '2');
    const ready = await fetch(`${proxy.adminUrl}/readyz`);
    assert.equal(ready.status, 200);
    await ready.arrayBuffer();
  });
});

describe('a backend too slow to answer', () => {
  const setup = echoBackendBehindProxy({ UPSTREAM_TIMEOUT_MS: '300' });

  it('answers 504 {"error":"upstream timeout"} after UPSTREAM_TIMEOUT_MS, not when the backend does', async () => {
    const started = performance.now();
    const res = await rawRequest({ port: setup.proxy.port, path: '/__echo/delay?ms=3000' });
    const elapsed = performance.now() - started;
    assert.equal(res.status, 504);
    assert.equal(res.body.toString('utf8'), '{"error":"upstream timeout"}');
    assert.equal(res.headers['content-type'], 'application/json');
    assert.ok(elapsed >= 250, `answered after ${elapsed.toFixed(0)} ms, before the 300 ms timeout`);
    // undici's headers timer is coarse (about ±0.5 s; see undici/lib/util/timers.js), but well
    // before the backend's 3 s it must be.
    assert.ok(elapsed < 2000, `answered after ${elapsed.toFixed(0)} ms`);

    const span = await spanFor(setup.proxy, '/__echo/delay');
    assert.equal(span.status.code, SpanStatusCode.ERROR);
    assert.equal(span.attributes['error.type'], 'upstream_timeout');
    assert.equal(span.attributes['http.response.status_code'], 504);
    assert.equal(
      res.headers.traceresponse,
      `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`,
    );
    assert.equal(await metric(setup.proxy, upstreamErrors('upstream_timeout')), '1');
    // The proxy gave up on the upstream request too; the backend saw it go.
    await setup.backend.waitForAborted(1, 2000);
  });

  it('still answers a fast request on the same proxy', async () => {
    const res = await rawRequest({ port: setup.proxy.port, path: '/__echo/delay?ms=10' });
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body.toString('utf8')) as EchoReport).url, '/__echo/delay?ms=10');
  });
});

describe('the client going away', () => {
  const setup = echoBackendBehindProxy();

  it('aborts the upstream request, counts client_abort and leaves nothing in flight', async () => {
    const controller = new AbortController();
    const pending = rawRequest({
      port: setup.proxy.port,
      path: '/__echo/delay?ms=2000',
      signal: controller.signal,
    });
    const started = performance.now();
    await waitFor('the request to reach the backend', () =>
      setup.backend.received.length > 0 ? true : undefined,
    );
    assert.equal(setup.proxy.app.handler.inFlight(), 1);
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort();
    await assert.rejects(pending, { name: 'AbortError' });

    await setup.backend.waitForAborted(1, 1500);
    assert.ok(performance.now() - started < 1500, 'the backend saw the abort before its own 2 s were up');
    await waitFor('no request in flight', () =>
      setup.proxy.app.handler.inFlight() === 0 ? true : undefined,
    );

    const line = await waitFor('the access-log line', () =>
      setup.proxy.logs.find((entry) => entry.msg === 'request' && entry.path === '/__echo/delay'),
    );
    assert.equal(line.upstream_error, 'client_abort');
    assert.equal(line.status, 499);
    const span = await spanFor(setup.proxy, '/__echo/delay');
    assert.equal(span.attributes['error.type'], 'client_abort');
    assert.equal(await metric(setup.proxy, upstreamErrors('client_abort')), '1');
  });
});

describe('the backend resetting mid-response', () => {
  const setup = echoBackendBehindProxy();

  for (const [how, query] of [
    ['closes', ''],
    ['sends a TCP RST', '?rst=1'],
  ] as const) {
    it(`breaks the client connection when the backend ${how} mid-body, never a complete-looking response`, async () => {
      setup.proxy.exporter.reset();
      const started = performance.now();
      const error = await rawRequest({
        port: setup.proxy.port,
        path: `/__echo/reset-mid-body${query}`,
        timeoutMs: 3000,
      }).then(
        (res) => assert.fail(`got a complete response: ${res.status}, ${res.body.length} body bytes`),
        (reason: unknown) => reason,
      );
      assert.ok(
        error instanceof IncompleteResponseError,
        `expected IncompleteResponseError, got ${String(error)}`,
      );
      assert.equal(error.status, 200);
      assert.ok(error.partialBody.length < 1024, `got ${error.partialBody.length} of 1024 bytes`);
      // Broken at once, not left hanging until the client gives up.
      assert.ok(performance.now() - started < 1500, 'the connection broke promptly');

      const span = await spanFor(setup.proxy, '/__echo/reset-mid-body');
      assert.equal(span.status.code, SpanStatusCode.ERROR);
      assert.equal(span.attributes['error.type'], 'upstream_reset');
      await waitFor('no request in flight', () =>
        setup.proxy.app.handler.inFlight() === 0 ? true : undefined,
      );
    });
  }

  it('counted both resets and keeps serving', async () => {
    assert.equal(await metric(setup.proxy, upstreamErrors('upstream_reset')), '2');
    const res = await rawRequest({ port: setup.proxy.port, path: '/products' });
    assert.equal(res.status, 200);
  });
});

describe('malformed and oversized requests', () => {
  const setup = echoBackendBehindProxy();

  const stillUp = async (): Promise<void> => {
    const res = await rawRequest({ port: setup.proxy.port, path: '/products' });
    assert.equal(res.status, 200);
    assert.equal((JSON.parse(res.body.toString('utf8')) as EchoReport).url, '/products');
  };

  it('answers a header line without a colon with 400 and stays up', async () => {
    const answer = await rawExchange(setup.proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    await stillUp();
  });

  it('answers a request line that is not HTTP with 400 and stays up', async () => {
    const answer = await rawExchange(setup.proxy.port, 'this is not http at all\r\n\r\n');
    assert.match(answer, /^HTTP\/1\.1 400 /);
    await stillUp();
  });

  it('answers 100 KB of request headers with 431 and stays up', async () => {
    const answer = await rawExchange(
      setup.proxy.port,
      `GET /products HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(100 * 1024)}\r\n\r\n`,
    );
    assert.match(answer, /^HTTP\/1\.1 431 /);
    await stillUp();
  });

  it('forwarded none of them to the backend', () => {
    assert.deepEqual(
      setup.backend.received.map((request) => request.url),
      ['/products', '/products', '/products'],
    );
  });
});
