import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EchoReport } from './support/echo-backend.ts';
import { rawRequest, websocketEcho } from './support/http-client.ts';
import { echoBackendBehindProxy } from './support/start-proxy.ts';

function values(headers: [string, string][], name: string): string[] {
  return headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

function report(body: Buffer): EchoReport {
  return JSON.parse(body.toString('utf8')) as EchoReport;
}

describe('forwarding: requests reach the backend as the client sent them', () => {
  const setup = echoBackendBehindProxy();

  for (const method of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']) {
    it(`passes ${method} with its path and query byte for byte`, async () => {
      const target = '/a%20b/%7Euser/x;y=1?q=%2F%3F&q=2&empty=&utf=%C3%A9#';
      const res = await rawRequest({ port: setup.proxy.port, method, path: target });
      assert.equal(res.status, 200);
      if (method === 'HEAD') {
        assert.equal(res.body.length, 0);
        assert.equal(setup.backend.received.at(-1)?.url, target);
        return;
      }
      const echoed = report(res.body);
      assert.equal(echoed.method, method);
      assert.equal(echoed.url, target);
    });
  }

  it('keeps header order, spelling and repeated headers', async () => {
    const res = await rawRequest({
      port: setup.proxy.port,
      path: '/',
      headers: [
        ['Host', 'api.example'],
        ['X-Custom', 'one'],
        ['x-custom', 'two'],
        ['Accept', 'application/json'],
        ['Cookie', 'a=1'],
        ['Authorization', 'Bearer secret'],
      ],
    });
    const echoed = report(res.body);
    // undici writes Host (and its own Connection) first; every other header keeps its place and spelling.
    const names = echoed.headers
      .map(([n]) => n)
      .filter((n) => !['host', 'connection'].includes(n.toLowerCase()));
    assert.deepEqual(names.slice(0, 5), ['X-Custom', 'x-custom', 'Accept', 'Cookie', 'Authorization']);
    assert.deepEqual(values(echoed.headers, 'host'), ['api.example']);
    assert.deepEqual(values(echoed.headers, 'x-custom'), ['one', 'two']);
    assert.deepEqual(values(echoed.headers, 'authorization'), ['Bearer secret'], 'end-to-end headers pass');
  });

  it('drops hop-by-hop request headers, including those named by Connection', async () => {
    const res = await rawRequest({
      port: setup.proxy.port,
      path: '/',
      headers: [
        ['Connection', 'keep-alive, X-Hop, x-other-hop'],
        ['Keep-Alive', 'timeout=5'],
        ['Proxy-Authorization', 'Basic abc'],
        ['Proxy-Connection', 'keep-alive'],
        ['TE', 'trailers'],
        ['Upgrade', 'h2c'],
        ['X-Hop', 'secret'],
        ['X-Other-Hop', 'secret'],
        ['X-End-To-End', 'kept'],
      ],
    });
    const echoed = report(res.body);
    for (const name of [
      'keep-alive',
      'proxy-authorization',
      'proxy-connection',
      'te',
      'upgrade',
      'x-hop',
      'x-other-hop',
    ]) {
      assert.deepEqual(values(echoed.headers, name), [], `${name} is not forwarded`);
    }
    assert.notEqual(values(echoed.headers, 'connection')[0], 'keep-alive, X-Hop, x-other-hop');
    assert.deepEqual(values(echoed.headers, 'x-end-to-end'), ['kept']);
  });

  it('drops hop-by-hop response headers and passes the rest', async () => {
    const res = await rawRequest({
      port: setup.proxy.port,
      path: '/__echo/headers?set=Connection:X-Secret-Hop&set=X-Secret-Hop:1&set=Keep-Alive:timeout%3D99&set=Proxy-Authenticate:Basic&set=X-Kept:yes&set=Set-Cookie:a%3D1&set=Set-Cookie:b%3D2',
    });
    assert.equal(res.status, 200);
    const names = res.rawHeaders.map(([n]) => n.toLowerCase());
    assert.ok(!names.includes('x-secret-hop'));
    assert.ok(!names.includes('proxy-authenticate'));
    assert.ok(!res.rawHeaders.some(([n, v]) => n.toLowerCase() === 'keep-alive' && v === 'timeout=99'));
    assert.deepEqual(values(res.rawHeaders, 'x-kept'), ['yes']);
    assert.deepEqual(
      values(res.rawHeaders, 'set-cookie'),
      ['a=1', 'b=2'],
      'repeated response headers stay separate',
    );
  });

  it('appends X-Forwarded-For, -Proto and -Host to what the client sent', async () => {
    const fresh = report(
      (await rawRequest({ port: setup.proxy.port, path: '/', headers: [['Host', 'shop.example:8080']] }))
        .body,
    );
    assert.deepEqual(values(fresh.headers, 'x-forwarded-for'), ['127.0.0.1']);
    assert.deepEqual(values(fresh.headers, 'x-forwarded-proto'), ['http']);
    assert.deepEqual(values(fresh.headers, 'x-forwarded-host'), ['shop.example:8080']);
    assert.deepEqual(values(fresh.headers, 'host'), ['shop.example:8080'], 'Host is preserved by default');

    const chained = report(
      (
        await rawRequest({
          port: setup.proxy.port,
          path: '/',
          headers: [
            ['Host', 'inner.example'],
            ['X-Forwarded-For', '203.0.113.7, 10.0.0.1'],
            ['X-Forwarded-Proto', 'https'],
            ['X-Forwarded-Host', 'shop.example'],
          ],
        })
      ).body,
    );
    assert.deepEqual(values(chained.headers, 'x-forwarded-for'), ['203.0.113.7, 10.0.0.1, 127.0.0.1']);
    assert.deepEqual(values(chained.headers, 'x-forwarded-proto'), ['https, http']);
    assert.deepEqual(values(chained.headers, 'x-forwarded-host'), ['shop.example, inner.example']);
  });

  it('passes status codes and bodies of every class', async () => {
    for (const status of [200, 201, 204, 301, 304, 400, 404, 409, 418, 500, 503]) {
      const res = await rawRequest({ port: setup.proxy.port, path: `/__echo/status/${status}` });
      assert.equal(res.status, status);
    }
  });

  it('streams a chunked response and a content-length response with their framing', async () => {
    const chunked = await rawRequest({ port: setup.proxy.port, path: '/__echo/download?bytes=100000' });
    assert.equal(chunked.body.length, 100000);
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    const sized = await rawRequest({
      port: setup.proxy.port,
      path: '/__echo/download?bytes=100000&length=1',
    });
    assert.equal(sized.body.length, 100000);
    assert.equal(sized.headers['content-length'], '100000');
  });

  it('answers Expect: 100-continue and delivers the body', async () => {
    const body = Buffer.from('{"name":"Test","price":10,"quantity":5}');
    const res = await rawRequest({
      port: setup.proxy.port,
      method: 'POST',
      path: '/__echo/continue',
      body,
      expectContinue: true,
    });
    assert.equal(res.status, 200);
    assert.deepEqual(res.informational, [100]);
    const echoed = report(res.body);
    assert.equal(echoed.bodyBytes, body.length);
    assert.deepEqual(values(echoed.headers, 'expect'), [], 'the proxy handled the expectation itself');
  });

  it('tunnels a WebSocket upgrade both ways', async () => {
    const reply = await websocketEcho(
      `${setup.proxy.url.replace('http', 'ws')}/ws`,
      'hello through the sidecar',
    );
    assert.equal(reply, 'hello through the sidecar');
    const upgrade = setup.backend.received.filter((r) => r.upgrade).at(-1);
    assert.equal(upgrade?.url, '/ws');
    assert.match(String(upgrade.headers.traceparent), /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('relays a refused upgrade as the backend answered it', async () => {
    const res = await rawRequest({
      port: setup.proxy.port,
      path: '/__echo/status/403',
      headers: [
        ['Connection', 'Upgrade'],
        ['Upgrade', 'websocket'],
        ['Sec-WebSocket-Version', '13'],
        ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='],
      ],
    });
    assert.ok(res.status >= 400, `status ${res.status}`);
  });
});

describe('forwarding: PRESERVE_HOST=false', () => {
  const setup = echoBackendBehindProxy({ PRESERVE_HOST: 'false' });

  it("sends the backend its own host and keeps the client's in X-Forwarded-Host", async () => {
    const echoed = report(
      (await rawRequest({ port: setup.proxy.port, path: '/', headers: [['Host', 'shop.example']] })).body,
    );
    assert.deepEqual(values(echoed.headers, 'host'), [`127.0.0.1:${setup.backend.port}`]);
    assert.deepEqual(values(echoed.headers, 'x-forwarded-host'), ['shop.example']);
  });
});
