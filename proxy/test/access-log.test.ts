import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { createAccessLog } from '../src/access-log.ts';
import { LineBatcher } from '../src/logger.ts';
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

describe('log line batching', () => {
  it('hands lines over in order, in chunks of at least the batch size, and everything on flush', () => {
    const chunks: string[] = [];
    let synced = 0;
    const batcher = new LineBatcher(
      {
        write: (chunk) => chunks.push(chunk),
        flushSync: () => {
          synced++;
        },
      },
      100,
    );
    const lines = Array.from(
      { length: 25 },
      (_, i) => `{"n":${String(i)},"path":"/caf\u00e9/${'x'.repeat(i)}"}\n`,
    );
    for (const line of lines) batcher.write(line);
    assert.ok(chunks.length > 1, 'written before the flush, once a batch has gathered');
    for (const chunk of chunks) assert.ok(chunk.length >= 100, `a chunk of ${String(chunk.length)} units`);
    batcher.flushSync();
    assert.equal(synced, 1);
    assert.equal(chunks.join(''), lines.join(''), 'every line, in order, unchanged');
    batcher.flush();
    assert.equal(chunks.join(''), lines.join(''), 'nothing written twice');
  });

  it('loses no line when the process exits with lines still gathered', () => {
    const logger = fileURLToPath(new URL('../src/logger.ts', import.meta.url));
    const script = `
      import { createLogger } from ${JSON.stringify(logger)};
      const log = createLogger('info', 'exit-test');
      for (let i = 0; i < 1000; i++) log.info({ i, path: '/caf\u00e9' }, 'request');
      process.exit(0);
    `;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
    assert.equal(child.status, 0, child.stderr);
    const lines = child.stdout
      .trimEnd()
      .split('\n')
      .map((line) => JSON.parse(line) as { i: number; path: string });
    assert.deepEqual(
      lines.map((line) => line.i),
      Array.from({ length: 1000 }, (_, i) => i),
    );
    assert.equal(lines[999]?.path, '/caf\u00e9');
  });

  it('writes the very line pino would, with its bindings, into the same stream', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        lines.push(
          ...chunk
            .toString('utf8')
            .split('\n')
            .filter((line) => line !== ''),
        );
        callback();
      },
    });
    const logger = pino({ level: 'info', name: 'spanscope-proxy', base: { pid: 42 } }, sink);
    const entry = {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      method: 'GET',
      path: '/product/"1"\u2028',
      handler: 'get_product',
      // Route files are the operator's: quotes and backslashes must come out escaped.
      route: '/product/{"id"}\\',
      userAgent: 'curl',
      status: 502,
      durationMs: 1.234,
      upstreamError: 'upstream_unavailable',
    };
    // Twice: the second line is built from the escaped values kept by the first.
    createAccessLog(logger)(entry);
    createAccessLog(logger)(entry);
    logger.info(
      {
        trace_id: entry.traceId,
        span_id: entry.spanId,
        method: entry.method,
        path: entry.path,
        handler: entry.handler,
        route: entry.route,
        user_agent: entry.userAgent,
        status: entry.status,
        duration_ms: entry.durationMs,
        upstream_error: entry.upstreamError,
      },
      'request',
    );
    const [ours, again, pinos] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.ok(ours && again && pinos);
    assert.deepEqual({ ...again, time: 0 }, { ...ours, time: 0 });
    assert.equal(typeof ours.time, 'number');
    assert.deepEqual({ ...ours, time: 0 }, { ...pinos, time: 0 });
    assert.deepEqual(Object.keys(ours), Object.keys(pinos), 'same field order');

    logger.level = 'warn';
    createAccessLog(logger)(entry);
    assert.equal(lines.length, 3, 'nothing below the logger level');
    assert.throws(() => createAccessLog(JSON.parse('{}') as typeof logger), TypeError, 'only a pino logger');
  });
});
