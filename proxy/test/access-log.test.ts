import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rawRequest } from './support/http-client.ts';
import { echoBackendBehindProxy, startProxy } from './support/start-proxy.ts';

describe('access log', () => {
  const setup = echoBackendBehindProxy();

  it('writes one JSON line per request with trace, route, client category, status and duration', async () => {
    const before = setup.proxy.logs.length;
    const res = await rawRequest({
      port: setup.proxy.port,
      method: 'PUT',
      path: '/product/12?token=abc',
      headers: [
        ['user-agent', 'PostmanRuntime/7.39.0'],
        ['authorization', 'Bearer top-secret'],
        ['cookie', 'session=top-secret'],
        ['content-type', 'application/json'],
      ],
      body: '{"name":"top-secret-body","price":1,"quantity":1}',
    });
    assert.equal(res.status, 200);
    const lines = setup.proxy.logs.slice(before).filter((l) => l.msg === 'request');
    assert.equal(lines.length, 1);
    const line = lines[0]!;
    const [, traceId, spanId] = String(res.headers.traceresponse).split('-');
    assert.equal(line.trace_id, traceId);
    assert.equal(line.span_id, spanId);
    assert.equal(line.handler, 'update_product');
    assert.equal(line.route, '/product/{id}');
    assert.equal(line.method, 'PUT');
    assert.equal(line.path, '/product/12', 'the query string is not logged');
    assert.equal(line.user_agent, 'postman');
    assert.equal(line.status, 200);
    assert.equal(typeof line.duration_ms, 'number');
    assert.ok((line.duration_ms as number) > 0);
    assert.doesNotMatch(
      JSON.stringify(line),
      /top-secret|token=abc/,
      'never bodies, Authorization or Cookie',
    );
  });

  it('records upstream failures and client status codes', async () => {
    const before = setup.proxy.logs.length;
    await rawRequest({ port: setup.proxy.port, path: '/__echo/status/503' });
    const line = setup.proxy.logs.slice(before).find((l) => l.msg === 'request');
    assert.equal(line?.status, 503);
  });

  it('is off with ACCESS_LOG=false', async () => {
    const quiet = await startProxy({ BACKEND_URL: setup.backend.url, ACCESS_LOG: 'false' });
    try {
      await rawRequest({ port: quiet.port, path: '/products' });
      assert.equal(quiet.logs.filter((l) => l.msg === 'request').length, 0);
    } finally {
      await quiet.close();
    }
  });
});
