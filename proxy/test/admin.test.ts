import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { startEchoBackend } from './support/echo-backend.ts';
import { echoBackendBehindProxy, startProxy } from './support/start-proxy.ts';

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function get(url: string): Promise<{ status: number; body: string; type: string | null }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text(), type: res.headers.get('content-type') };
}

describe('admin port', () => {
  const setup = echoBackendBehindProxy();

  it('is a separate listener: client traffic never reaches it, and it never proxies', async () => {
    assert.notEqual(new URL(setup.proxy.adminUrl).port, String(setup.proxy.port));
    const res = await get(`${setup.proxy.adminUrl}/products`);
    assert.equal(res.status, 404);
    assert.deepEqual(JSON.parse(res.body), { error: 'not found' });
    assert.equal(setup.backend.received.length, 0);
  });

  it('/healthz answers for the process alone', async () => {
    const res = await get(`${setup.proxy.adminUrl}/healthz`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ok' });
  });

  it('/readyz is ready while the backend is reachable', async () => {
    const res = await get(`${setup.proxy.adminUrl}/readyz`);
    assert.equal(res.status, 200);
    assert.deepEqual(JSON.parse(res.body), { status: 'ready' });
  });

  it('refuses other methods with 405 and Allow', async () => {
    const res = await fetch(`${setup.proxy.adminUrl}/healthz`, { method: 'POST' });
    assert.equal(res.status, 405);
    assert.equal(res.headers.get('allow'), 'GET, HEAD');
  });

  it('/metrics counts requests and latency by handler, method, status class and user-agent category', async () => {
    await (
      await fetch(`${setup.proxy.url}/product/1`, { headers: { 'user-agent': 'curl/8.5.0' } })
    ).arrayBuffer();
    await (
      await fetch(`${setup.proxy.url}/product/2`, { headers: { 'user-agent': 'curl/8.5.0' } })
    ).arrayBuffer();
    await (
      await fetch(`${setup.proxy.url}/__echo/status/500`, {
        headers: { 'user-agent': 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)' },
      })
    ).arrayBuffer();
    const res = await get(`${setup.proxy.adminUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.type ?? '', /^text\/plain; version=0\.0\.4/);
    const text = res.body;
    assert.match(
      text,
      /^spanscope_requests_total\{handler="get_product",method="GET",status_class="2xx",user_agent="curl"\} 2$/m,
    );
    assert.match(
      text,
      /^spanscope_requests_total\{handler="unmatched",method="GET",status_class="5xx",user_agent="bot"\} 1$/m,
    );
    assert.match(
      text,
      /^spanscope_request_duration_seconds_count\{handler="get_product",method="GET",status_class="2xx",user_agent="curl"\} 2$/m,
    );
    assert.match(text, /^spanscope_request_duration_seconds_bucket\{le="\+Inf",handler="get_product"/m);
    assert.match(text, /^spanscope_upstream_errors_total\{kind="upstream_unavailable"\} 0$/m);
    assert.match(text, /^spanscope_dropped_spans_total\{reason="queue_full"\} 0$/m);
    assert.match(text, /^spanscope_requests_in_flight 0$/m);
    assert.match(text, /^process_cpu_seconds_total \d/m);
    assert.match(text, /^process_resident_memory_bytes \d/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds /m);
  });

  it('/metrics counts the requests in flight at the moment it is read', async () => {
    const held = fetch(`${setup.proxy.url}/__echo/delay?ms=1500`).then((res) => res.arrayBuffer());
    let during = '';
    for (let i = 0; i < 50 && !/^spanscope_requests_in_flight 1$/m.test(during); i++) {
      during = (await get(`${setup.proxy.adminUrl}/metrics`)).body;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(during, /^spanscope_requests_in_flight 1$/m);
    await held;
    assert.match((await get(`${setup.proxy.adminUrl}/metrics`)).body, /^spanscope_requests_in_flight 0$/m);
  });
});

describe('admin port: readiness', () => {
  it('is not ready while the backend is unreachable, and ready once it is back', async () => {
    const port = await closedPort();
    const proxy = await startProxy({ BACKEND_URL: `http://127.0.0.1:${port}` });
    try {
      const down = await get(`${proxy.adminUrl}/readyz`);
      assert.equal(down.status, 503);
      assert.deepEqual(JSON.parse(down.body), { status: 'not ready', reason: 'backend unreachable' });
      assert.equal(
        (await get(`${proxy.adminUrl}/healthz`)).status,
        200,
        'liveness does not depend on the backend',
      );
    } finally {
      await proxy.close();
    }
  });

  it('turns not ready as soon as shutdown begins, while in-flight requests finish', async () => {
    const backend = await startEchoBackend();
    const proxy = await startProxy({ BACKEND_URL: backend.url });
    try {
      const slow = fetch(`${proxy.url}/__echo/delay?ms=600`);
      await new Promise((r) => setTimeout(r, 100));
      const stopping = proxy.app.stop();
      const during = await get(`${proxy.adminUrl}/readyz`);
      assert.equal(during.status, 503);
      assert.deepEqual(JSON.parse(during.body), { status: 'not ready', reason: 'starting or shutting down' });
      const res = await slow;
      assert.equal(res.status, 200);
      await res.arrayBuffer();
      assert.deepEqual(await stopping, { drained: true });
    } finally {
      await proxy.close();
      await backend.close();
    }
  });
});
