// Proves the test-support servers and clients against the real things: the real OTLP exporters
// sending to the receiver, and direct (proxy-less) requests to every echo-backend route.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import type { SpanContext } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import type { ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as OTLPProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as OTLPJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { deterministicBytes, downloadBody, startEchoBackend } from './support/echo-backend.ts';
import type { EchoBackend, EchoReport } from './support/echo-backend.ts';
import { IncompleteResponseError, rawRequest, websocketEcho } from './support/http-client.ts';
import { startOtlpReceiver } from './support/otlp-receiver.ts';
import type { DecodedSpan, OtlpReceiver } from './support/otlp-receiver.ts';

const SERVICE_NAME = 'support-test-service';
const LINKED: SpanContext = {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: 1,
  isRemote: true,
};

function makeProvider(exporter: SpanExporter): TracerProvider {
  return new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': SERVICE_NAME, 'deployment.environment.name': 'test' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter })],
  });
}

/** A SERVER span with a CLIENT child; returns their span contexts. */
function emitTrace(provider: TracerProvider): { parent: SpanContext; child: SpanContext } {
  const tracer = provider.getTracer('support-test-scope', '1.2.3');
  const parent = tracer.startSpan('GET /inventory', {
    kind: SpanKind.SERVER,
    attributes: {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'test.double': 1.5,
      'test.bool': true,
      'test.strings': ['a', 'b'],
      'test.ints': [1, 2, 3],
      'test.big': 2 ** 40,
    },
  });
  parent.addEvent('parent.event', { 'event.attr': 'x' });
  parent.setStatus({ code: SpanStatusCode.OK });
  const child = tracer.startSpan(
    'GET upstream',
    { kind: SpanKind.CLIENT, links: [{ context: LINKED, attributes: { 'link.attr': 7 } }] },
    trace.setSpan(context.active(), parent),
  );
  child.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream failed' });
  child.end();
  parent.end();
  return { parent: parent.spanContext(), child: child.spanContext() };
}

function byName(spans: DecodedSpan[], name: string): DecodedSpan {
  const span = spans.find((candidate) => candidate.name === name);
  assert.ok(span, `no span named ${name}`);
  return span;
}

function assertDecodedTrace(spans: DecodedSpan[], ids: { parent: SpanContext; child: SpanContext }): void {
  assert.equal(spans.length, 2);
  const server = byName(spans, 'GET /inventory');
  const client = byName(spans, 'GET upstream');

  assert.equal(server.traceId, ids.parent.traceId);
  assert.match(server.traceId, /^[0-9a-f]{32}$/);
  assert.equal(server.spanId, ids.parent.spanId);
  assert.match(server.spanId, /^[0-9a-f]{16}$/);
  assert.equal(server.parentSpanId, undefined);
  assert.equal(server.kind, 'SERVER');
  assert.deepEqual(server.attributes, {
    'http.request.method': 'GET',
    'http.response.status_code': 200,
    'test.double': 1.5,
    'test.bool': true,
    'test.strings': ['a', 'b'],
    'test.ints': [1, 2, 3],
    'test.big': 2 ** 40,
  });
  assert.deepEqual(server.status, { code: 'OK' });
  assert.equal(server.events.length, 1);
  assert.equal(server.events[0]!.name, 'parent.event');
  assert.deepEqual(server.events[0]!.attributes, { 'event.attr': 'x' });
  assert.equal(typeof server.startTimeUnixNano, 'bigint');
  assert.ok(server.startTimeUnixNano > 1_600_000_000n * 1_000_000_000n);
  assert.ok(server.endTimeUnixNano >= server.startTimeUnixNano);
  assert.equal((server.flags ?? 0) & 0xff, 1, 'sampled flag');

  assert.equal(client.traceId, ids.parent.traceId);
  assert.equal(client.spanId, ids.child.spanId);
  assert.equal(client.parentSpanId, ids.parent.spanId);
  assert.equal(client.kind, 'CLIENT');
  assert.deepEqual(client.status, { code: 'ERROR', message: 'upstream failed' });
  assert.deepEqual(client.links, [
    { traceId: LINKED.traceId, spanId: LINKED.spanId, traceState: undefined, attributes: { 'link.attr': 7 } },
  ]);

  for (const span of [server, client]) {
    assert.equal(span.resource['service.name'], SERVICE_NAME);
    assert.equal(span.resource['deployment.environment.name'], 'test');
    assert.deepEqual(span.scope, { name: 'support-test-scope', version: '1.2.3' });
  }
}

function exportOnce(exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => {
    exporter.export(spans, resolve);
  });
}

/** Finished spans from a provider that exports to memory, for feeding exporters directly. */
function finishedSpans(): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  emitTrace(makeProvider(memory));
  return memory.getFinishedSpans();
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

function json(body: Buffer): unknown {
  return JSON.parse(body.toString('utf8'));
}

describe('OTLP receiver', () => {
  let receiver: OtlpReceiver;
  before(async () => {
    receiver = await startOtlpReceiver();
  });
  after(async () => {
    await receiver.close();
  });
  beforeEach(() => {
    receiver.clear();
    receiver.setBehaviour({});
  });

  it('decodes protobuf exports from the real OTLPTraceExporter (exporter-trace-otlp-proto)', async () => {
    const provider = makeProvider(new OTLPProtoExporter({ url: receiver.tracesUrl }));
    const ids = emitTrace(provider);
    await provider.forceFlush();
    const spans = await receiver.waitForSpans(2);
    await provider.shutdown();

    assertDecodedTrace(spans, ids);
    assert.ok(receiver.requests.length >= 1);
    for (const exportRequest of receiver.requests) {
      assert.equal(exportRequest.contentType, 'application/x-protobuf');
      assert.equal(exportRequest.encoding, 'protobuf');
      assert.equal(exportRequest.method, 'POST');
      assert.equal(exportRequest.url, '/v1/traces');
      assert.equal(exportRequest.responseStatus, 200);
      assert.match(exportRequest.userAgent ?? '', /OTel-OTLP-Exporter-JavaScript/);
    }
  });

  it('decodes OTLP/JSON exports from the real OTLPTraceExporter (exporter-trace-otlp-http)', async () => {
    const provider = makeProvider(new OTLPJsonExporter({ url: receiver.tracesUrl }));
    const ids = emitTrace(provider);
    await provider.forceFlush();
    const spans = await receiver.waitForSpans(2);
    await provider.shutdown();

    assertDecodedTrace(spans, ids);
    for (const exportRequest of receiver.requests) {
      assert.equal(exportRequest.contentType, 'application/json');
      assert.equal(exportRequest.encoding, 'json');
      assert.equal(exportRequest.responseStatus, 200);
    }
  });

  it('answers an empty ExportTraceServiceResponse in the request encoding', async () => {
    const spans = finishedSpans();
    const proto = new OTLPProtoExporter({ url: receiver.tracesUrl });
    const jsonExporter = new OTLPJsonExporter({ url: receiver.tracesUrl });
    assert.equal((await exportOnce(proto, spans)).code, ExportResultCode.SUCCESS);
    assert.equal((await exportOnce(jsonExporter, spans)).code, ExportResultCode.SUCCESS);
    await Promise.all([proto.shutdown(), jsonExporter.shutdown()]);

    const protoAnswer = await rawRequest({
      port: receiver.port,
      method: 'POST',
      path: '/v1/traces',
      headers: [['Content-Type', 'application/x-protobuf']],
      body: Buffer.alloc(0),
    });
    assert.equal(protoAnswer.status, 200);
    assert.equal(protoAnswer.headers['content-type'], 'application/x-protobuf');
    assert.equal(protoAnswer.body.length, 0);
    const jsonAnswer = await rawRequest({
      port: receiver.port,
      method: 'POST',
      path: '/v1/traces',
      headers: [['Content-Type', 'application/json; charset=utf-8']],
      body: '{}',
    });
    assert.equal(jsonAnswer.status, 200);
    assert.equal(jsonAnswer.headers['content-type'], 'application/json');
    assert.deepEqual(json(jsonAnswer.body), {});
  });

  it('decodes hand-written gzip OTLP/JSON with string enums and 64-bit values as strings', async () => {
    const payload = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hand-written' } }] },
          scopeSpans: [
            {
              scope: { name: 'manual' },
              spans: [
                {
                  traceId: '5B8EFFF798038103D269B633813FC60C',
                  spanId: 'EEE19B7EC3C1B174',
                  parentSpanId: '',
                  name: 'manual span',
                  kind: 'SPAN_KIND_PRODUCER',
                  startTimeUnixNano: '1544712660000000000',
                  endTimeUnixNano: '1544712661000000000',
                  attributes: [
                    { key: 'int', value: { intValue: '42' } },
                    {
                      key: 'kv',
                      value: { kvlistValue: { values: [{ key: 'k', value: { boolValue: false } }] } },
                    },
                    { key: 'bytes', value: { bytesValue: Buffer.from('hi').toString('base64') } },
                  ],
                  status: { code: 'STATUS_CODE_ERROR' },
                },
              ],
            },
          ],
        },
      ],
    };
    const answer = await rawRequest({
      port: receiver.port,
      method: 'POST',
      path: '/v1/traces',
      headers: [
        ['Content-Type', 'application/json'],
        ['Content-Encoding', 'gzip'],
      ],
      body: gzipSync(JSON.stringify(payload)),
    });
    assert.equal(answer.status, 200);
    const [span] = await receiver.waitForSpans((candidate) => candidate.name === 'manual span');
    assert.ok(span);
    assert.equal(span.traceId, '5b8efff798038103d269b633813fc60c');
    assert.equal(span.spanId, 'eee19b7ec3c1b174');
    assert.equal(span.parentSpanId, undefined);
    assert.equal(span.kind, 'PRODUCER');
    assert.equal(span.startTimeUnixNano, 1544712660000000000n);
    assert.deepEqual(span.attributes, { int: 42, kv: { k: false }, bytes: Buffer.from('hi') });
    assert.deepEqual(span.status, { code: 'ERROR' });
    assert.deepEqual(span.resource, { 'service.name': 'hand-written' });
    assert.deepEqual(span.scope, { name: 'manual' });
    assert.equal(receiver.requests[0]!.contentEncoding, 'gzip');
  });

  it('rejects unknown paths, methods, content types and undecodable bodies', async () => {
    const post = (path: string, contentType: string, body: string | Buffer) =>
      rawRequest({
        port: receiver.port,
        method: 'POST',
        path,
        headers: [['Content-Type', contentType]],
        body,
      });
    assert.equal((await post('/v1/metrics', 'application/x-protobuf', '')).status, 404);
    assert.equal((await post('/v1/traces', 'text/plain', 'x')).status, 415);
    assert.equal((await post('/v1/traces', 'application/json', '{not json')).status, 400);
    assert.equal((await post('/v1/traces', 'application/x-protobuf', Buffer.from([0x0a, 0xff]))).status, 400);
    assert.equal((await rawRequest({ port: receiver.port, path: '/v1/traces' })).status, 405);
    assert.equal(receiver.requests.length, 5);
    assert.ok(receiver.requests[2]!.decodeError);
    assert.equal(receiver.spans.length, 0);
  });

  it('waitForSpans supports predicates and counts, and times out listing what arrived', async () => {
    const provider = makeProvider(new OTLPProtoExporter({ url: receiver.tracesUrl }));
    emitTrace(provider);
    await provider.forceFlush();
    const clients = await receiver.waitForSpans({ where: (span) => span.kind === 'CLIENT', count: 1 });
    assert.deepEqual(
      clients.map((span) => span.name),
      ['GET upstream'],
    );
    await receiver.waitForSpans(2);
    await assert.rejects(receiver.waitForSpans(3, 100), (error: Error) => {
      assert.match(error.message, /Timed out after 100 ms waiting for 3 span\(s\)/);
      assert.match(error.message, /2 span\(s\) arrived/);
      assert.match(error.message, /SERVER "GET \/inventory"/);
      assert.match(error.message, /CLIENT "GET upstream"/);
      return true;
    });
    await provider.shutdown();
  });

  it('can fail like a broken collector (non-retryable status)', async () => {
    receiver.setBehaviour({ status: 400 });
    const exporter = new OTLPProtoExporter({ url: receiver.tracesUrl });
    const result = await exportOnce(exporter, finishedSpans());
    await exporter.shutdown();
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.equal(receiver.spans.length, 0);
    assert.equal(receiver.requests[0]!.responseStatus, 400);
    assert.equal(receiver.requests[0]!.spanCount, 2);
  });

  it('can be slow enough for the exporter to time out, and recovers with setBehaviour({})', async () => {
    receiver.setBehaviour({ delayMs: 1000 });
    const exporter = new OTLPProtoExporter({ url: receiver.tracesUrl, timeoutMillis: 100 });
    const started = performance.now();
    const result = await exportOnce(exporter, finishedSpans());
    assert.equal(result.code, ExportResultCode.FAILED);
    assert.ok(performance.now() - started < 900, 'the exporter gave up before the receiver answered');

    receiver.clear();
    receiver.setBehaviour({});
    const healthy = new OTLPProtoExporter({ url: receiver.tracesUrl });
    assert.equal((await exportOnce(healthy, finishedSpans())).code, ExportResultCode.SUCCESS);
    await Promise.all([exporter.shutdown(), healthy.shutdown()]);
    assert.equal(receiver.spans.length, 2);
  });

  it('can drop the connection, and send Retry-After with retryable statuses', async () => {
    receiver.setBehaviour({ destroyConnection: true });
    await assert.rejects(
      rawRequest({
        port: receiver.port,
        method: 'POST',
        path: '/v1/traces',
        headers: [['Content-Type', 'application/json']],
        body: '{}',
      }),
    );
    receiver.setBehaviour({ status: 503, retryAfter: '7' });
    const answer = await rawRequest({
      port: receiver.port,
      method: 'POST',
      path: '/v1/traces',
      headers: [['Content-Type', 'application/json']],
      body: '{}',
    });
    assert.equal(answer.status, 503);
    assert.equal(answer.headers['retry-after'], '7');
  });
});

describe('echo backend', () => {
  let backend: EchoBackend;
  before(async () => {
    backend = await startEchoBackend();
  });
  after(async () => {
    await backend.close();
  });
  beforeEach(() => {
    backend.clear();
  });

  it('reports the raw URL, raw header pairs and a streamed body hash', async () => {
    const body = deterministicBytes(7, 300_000);
    async function* chunks(): AsyncGenerator<Buffer> {
      for (let offset = 0; offset < body.length; offset += 65_536) {
        yield body.subarray(offset, offset + 65_536);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
    const path = '/a/../b//c?q=%2F&empty=&x=%zz&q=2';
    const answer = await rawRequest({
      port: backend.port,
      method: 'POST',
      path,
      headers: [
        ['X-Dup', 'one'],
        ['x-dup', 'two'],
        ['Connection', 'keep-alive, X-Hop'],
        ['X-Hop', 'hop'],
      ],
      body: chunks(),
    });
    assert.equal(answer.status, 200);
    const report = json(answer.body) as EchoReport;
    assert.equal(report.method, 'POST');
    assert.equal(report.url, path);
    assert.equal(report.httpVersion, '1.1');
    assert.deepEqual(report.headers, [
      ['Host', `127.0.0.1:${backend.port}`],
      ['X-Dup', 'one'],
      ['x-dup', 'two'],
      ['Connection', 'keep-alive, X-Hop'],
      ['X-Hop', 'hop'],
      ['Transfer-Encoding', 'chunked'],
    ]);
    assert.equal(report.bodyBytes, body.length);
    assert.equal(report.bodySha256, sha256(body));
    assert.equal(report.sentContinue, false);

    assert.equal(backend.received.length, 1);
    assert.equal(backend.received[0]!.url, path);
    assert.equal(backend.received[0]!.headers['x-dup'], 'one, two');
    assert.equal(backend.received[0]!.upgrade, false);
  });

  it('accepts requests without a Host header', async () => {
    const answer = await rawRequest({ port: backend.port, omitHost: true, path: '/no-host' });
    assert.equal(answer.status, 200);
    const report = json(answer.body) as EchoReport;
    assert.ok(!report.headers.some(([name]) => name.toLowerCase() === 'host'));
    assert.equal(report.bodySha256, sha256(Buffer.alloc(0)));
  });

  it('/__echo/status/:code answers that status', async () => {
    const notFound = await rawRequest({ port: backend.port, path: '/__echo/status/404' });
    assert.equal(notFound.status, 404);
    assert.deepEqual(json(notFound.body), { status: 404 });
    const unavailable = await rawRequest({
      port: backend.port,
      method: 'POST',
      path: '/__echo/status/503',
      body: 'x',
    });
    assert.equal(unavailable.status, 503);
    const noContent = await rawRequest({ port: backend.port, path: '/__echo/status/204' });
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body.length, 0);
    assert.equal((await rawRequest({ port: backend.port, path: '/__echo/status/42' })).status, 400);
  });

  it('/__echo/download streams deterministic bytes, chunked or with a content-length', async () => {
    const chunked = await rawRequest({ port: backend.port, path: '/__echo/download?bytes=100000' });
    assert.equal(chunked.status, 200);
    assert.equal(chunked.headers['transfer-encoding'], 'chunked');
    assert.equal(chunked.headers['content-length'], undefined);
    assert.ok(chunked.body.equals(downloadBody(100_000)));

    const sized = await rawRequest({ port: backend.port, path: '/__echo/download?bytes=100000&length=1' });
    assert.equal(sized.headers['content-length'], '100000');
    assert.equal(sized.headers['transfer-encoding'], undefined);
    assert.ok(sized.body.equals(downloadBody(100_000)));

    const empty = await rawRequest({ port: backend.port, path: '/__echo/download?bytes=0&length=1' });
    assert.equal(empty.body.length, 0);
  });

  it('/__echo/delay waits before answering', async () => {
    const started = performance.now();
    const answer = await rawRequest({ port: backend.port, path: '/__echo/delay?ms=150' });
    assert.ok(performance.now() - started >= 140);
    assert.equal((json(answer.body) as EchoReport).url, '/__echo/delay?ms=150');
    assert.equal(backend.aborted, 0);
  });

  it('/__echo/delay notices and records a client that goes away', async () => {
    const controller = new AbortController();
    const pending = rawRequest({
      port: backend.port,
      path: '/__echo/delay?ms=10000',
      signal: controller.signal,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(backend.activeConnections, 1);
    controller.abort();
    await assert.rejects(pending, { name: 'AbortError' });
    await backend.waitForAborted(1);
    assert.equal(backend.aborted, 1);
    assert.equal(backend.received[0]!.aborted, true);
  });

  it('/__echo/reset-mid-body cuts a content-length body short', async () => {
    await assert.rejects(
      rawRequest({ port: backend.port, path: '/__echo/reset-mid-body?bytes=1000' }),
      (error: unknown) => {
        assert.ok(error instanceof IncompleteResponseError);
        assert.equal(error.status, 200);
        assert.ok(error.rawHeaders.some(([name, value]) => name === 'content-length' && value === '1000'));
        assert.ok(error.partialBody.equals(deterministicBytes(0, 500)));
        return true;
      },
    );
    await assert.rejects(rawRequest({ port: backend.port, path: '/__echo/reset-mid-body?rst=1' }));
    assert.equal(backend.aborted, 0, 'a deliberate reset is not a client abort');
  });

  it('/__echo/headers sends the requested (hop-by-hop) response headers', async () => {
    const query = new URLSearchParams();
    for (const header of [
      'Connection: x-custom',
      'X-Custom: dropped-by-proxies',
      'Keep-Alive: timeout=5',
      'Transfer-Encoding: chunked',
      'X-End-To-End: kept',
      'X-End-To-End: twice',
    ]) {
      query.append('set', header);
    }
    const answer = await rawRequest({ port: backend.port, path: `/__echo/headers?${query.toString()}` });
    assert.equal(answer.status, 200);
    const sent = answer.rawHeaders.filter(([name]) => !['date', 'content-type'].includes(name.toLowerCase()));
    assert.deepEqual(sent, [
      ['Connection', 'x-custom'],
      ['X-Custom', 'dropped-by-proxies'],
      ['Keep-Alive', 'timeout=5'],
      ['Transfer-Encoding', 'chunked'],
      ['X-End-To-End', 'kept'],
      ['X-End-To-End', 'twice'],
    ]);
    assert.deepEqual(json(answer.body), {
      set: [
        ['Connection', 'x-custom'],
        ['X-Custom', 'dropped-by-proxies'],
        ['Keep-Alive', 'timeout=5'],
        ['Transfer-Encoding', 'chunked'],
        ['X-End-To-End', 'kept'],
        ['X-End-To-End', 'twice'],
      ],
    });
  });

  it('/__echo/continue answers 100 Continue before the body is sent', async () => {
    const body = Buffer.from('held back until 100 Continue');
    const answer = await rawRequest({
      port: backend.port,
      method: 'PUT',
      path: '/__echo/continue',
      body,
      expectContinue: true,
    });
    assert.equal(answer.status, 200);
    assert.deepEqual(answer.informational, [100]);
    const report = json(answer.body) as EchoReport;
    assert.equal(report.sentContinue, true);
    assert.equal(report.bodyBytes, body.length);
    assert.equal(report.bodySha256, sha256(body));
    assert.ok(report.headers.some(([name, value]) => name === 'Expect' && value === '100-continue'));

    const refused = await rawRequest({
      port: backend.port,
      method: 'PUT',
      path: '/__echo/continue?reject=417',
      body,
      expectContinue: true,
    });
    assert.equal(refused.status, 417);
    assert.deepEqual(refused.informational, []);
  });

  it('echoes WebSocket text frames after a real RFC 6455 handshake', async () => {
    assert.equal(await websocketEcho(`ws://127.0.0.1:${backend.port}/socket?x=1`, 'hello'), 'hello');
    const long = 'x'.repeat(70_000) + 'é';
    assert.equal(await websocketEcho(`ws://127.0.0.1:${backend.port}/socket`, long), long);
    assert.equal(
      await websocketEcho(`ws://127.0.0.1:${backend.port}/socket`, 'y'.repeat(300)),
      'y'.repeat(300),
    );
    const upgrade = backend.received[0]!;
    assert.equal(upgrade.upgrade, true);
    assert.equal(upgrade.url, '/socket?x=1');
    assert.equal(upgrade.headers.upgrade, 'websocket');
    assert.ok(upgrade.headers['sec-websocket-key']);
    await assert.rejects(websocketEcho(`ws://127.0.0.1:${backend.port}/__echo/status/403`, 'refused'));
  });

  it('echoes raw bytes after a non-WebSocket upgrade', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: backend.port,
        path: '/tunnel',
        agent: false,
        headers: { Connection: 'Upgrade', Upgrade: 'x-echo' },
      });
      req.on('error', reject);
      req.on('upgrade', (res, socket: Socket) => {
        assert.equal(res.statusCode, 101);
        assert.equal(res.headers.upgrade, 'x-echo');
        socket.once('data', (data: Buffer) => {
          socket.destroy();
          resolve(data.toString());
        });
        socket.write('raw bytes');
      });
      req.end();
    });
    assert.equal(echoed, 'raw bytes');
  });

  it('counts connections and closes every socket, upgraded ones included', async () => {
    const own = await startEchoBackend();
    const socketClosed = new Promise<void>((resolve, reject) => {
      const req = request({
        host: '127.0.0.1',
        port: own.port,
        path: '/tunnel',
        agent: false,
        headers: { Connection: 'Upgrade', Upgrade: 'x-echo' },
      });
      req.on('error', reject);
      req.on('upgrade', (_res, socket: Socket) => {
        socket.on('close', () => {
          resolve();
        });
        socket.on('error', () => {
          // Destroyed by close() below.
        });
        void own.close();
      });
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 0));
    await socketClosed;
    assert.equal(own.activeConnections, 0);
  });
});
