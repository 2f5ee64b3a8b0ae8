// The forwarder from the tagging endpoint to Pyroscope, on real sockets: credentials, tenant,
// query and body as the ingest receiver sees them, and what happens when Pyroscope refuses
// connections, answers 5xx, 429 or 4xx, hangs, or is shut out by the byte cap or close().
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { createForwarder } from '../src/profiling/forwarder.ts';
import type { Forwarder, ForwarderEvent, ForwarderOptions } from '../src/profiling/forwarder.ts';
import type { ProfileUpload } from '../src/profiling/upload.ts';
import { buildProfile, gzipped } from './support/pprof-fixtures.ts';
import { freePort } from './support/proxy-process.ts';
import { decodeProfile, startPyroscopeReceiver } from './support/pyroscope-receiver.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

/** A real gzipped pprof whose one sample's leaf is `marker`, labelled with it. */
function pprofBody(marker: string): Uint8Array {
  return gzipped(
    buildProfile({
      samples: [
        { stack: [marker, 'main'], values: [3, 30_000_000, 20_000_000], labels: { handler: marker } },
      ],
    }),
  );
}

const SHARED_BODY = pprofBody('shared_profile');

function makeUpload(applicationName: string, overrides: Partial<ProfileUpload> = {}): ProfileUpload {
  return {
    applicationName,
    tags: {},
    from: new Date(1_700_000_000_000),
    until: new Date(1_700_000_010_000),
    sampleRate: 100,
    spyName: 'nodespy',
    body: SHARED_BODY,
    ...overrides,
  };
}

/** A port nothing listens on (just freed), so connecting to it is refused. */
const refusedPort = freePort;

/**
 * Conditions re-checked on every `changed()`: `waitFor` resolves as soon as `done()` holds, and
 * fails after 10 s with `describe()` (what did happen) instead of hanging.
 */
function conditions(describe: () => string) {
  const checks = new Set<() => void>();
  const changed = (): void => {
    for (const check of [...checks]) check();
  };
  const waitFor = (what: string, done: () => boolean): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!done()) return;
        checks.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        checks.delete(check);
        reject(new Error(`timed out waiting for ${what}; ${describe()}`));
      }, 10_000);
      checks.add(check);
      check();
    });
  return { changed, waitFor };
}

interface LogLine {
  readonly level: 'info' | 'warn';
  readonly msg: string;
  readonly fields: Record<string, unknown>;
}

/** Records events and log lines; `waitFor` resolves once a condition on them holds. */
function observer() {
  const events: ForwarderEvent[] = [];
  const logs: LogLine[] = [];
  const { changed, waitFor } = conditions(() => `events: ${JSON.stringify(events)}`);
  return {
    events,
    logs,
    onEvent: (event: ForwarderEvent): void => {
      events.push(event);
      changed();
    },
    logger: {
      info: (fields: object, msg: string) =>
        logs.push({ level: 'info', msg, fields: fields as Record<string, unknown> }),
      warn: (fields: object, msg: string) =>
        logs.push({ level: 'warn', msg, fields: fields as Record<string, unknown> }),
    },
    count(type: ForwarderEvent['type'], reason?: string): number {
      return events.filter(
        (e) => e.type === type && (reason === undefined || ('reason' in e && e.reason === reason)),
      ).length;
    },
    /** Resolves as soon as `done()` holds (checked on every event); fails after 10 s instead of hanging. */
    waitFor,
  };
}

type Observer = ReturnType<typeof observer>;

interface RawRequest {
  readonly url: URL;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** The client closed the connection before the answer was complete. */
  abandoned: boolean;
}

type Reply = number | 'hang' | { readonly status: number; readonly headers: Record<string, string> };

/**
 * A raw ingest upstream: keeps every request's exact bytes, and answers as `reply` says
 * (`hang`: never answers). Listens on `port` when given (to bring a refused port back up).
 */
async function startUpstream(reply: (request: RawRequest, index: number) => Reply, port = 0) {
  const requests: RawRequest[] = [];
  const { changed, waitFor } = conditions(() => `${requests.length} request(s)`);
  const server: Server = createServer((req, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const request: RawRequest = {
        url: new URL(req.url ?? '/', 'http://upstream'),
        headers: req.headers,
        body: Buffer.concat(chunks),
        abandoned: false,
      };
      requests.push(request);
      res.on('close', () => {
        if (!res.writableFinished) {
          request.abandoned = true;
          changed();
        }
      });
      const answer = reply(request, requests.length - 1);
      if (answer !== 'hang') {
        const { status, headers } = typeof answer === 'number' ? { status: answer, headers: {} } : answer;
        res.writeHead(status, { 'content-type': 'text/plain', ...headers });
        res.end(status < 300 ? '' : `answered ${status} by the test`);
      }
      changed();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    requests,
    waitFor,
    close(): Promise<void> {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

/** Short waits so retries happen within the test; never asserted on. */
const FAST: Pick<ForwarderOptions, 'requestTimeoutMs' | 'backoff' | 'maxQueueBytes'> = {
  requestTimeoutMs: 5_000,
  backoff: { initialMs: 10, maxMs: 40 },
  maxQueueBytes: 10 * 1024 * 1024,
};

const forwarders: Forwarder[] = [];
const closers: (() => Promise<void>)[] = [];

function forwarder(options: ForwarderOptions, seen: Observer): Forwarder {
  const created = createForwarder({ ...options, onEvent: seen.onEvent, logger: seen.logger });
  forwarders.push(created);
  return created;
}

after(async () => {
  await Promise.all(forwarders.map((f) => f.close(0)));
  await Promise.all(closers.map((close) => close()));
});

async function upstream(...args: Parameters<typeof startUpstream>) {
  const started = await startUpstream(...args);
  closers.push(() => started.close());
  return started;
}

function names(requests: readonly RawRequest[]): (string | null)[] {
  return requests.map((r) => r.url.searchParams.get('name'));
}

// ---------------------------------------------------------------------------------------------

describe('profile forwarder: the wire', () => {
  it('forwards with basic auth and tenant: the receiver gets the series, window and samples as the SDK sends them', async () => {
    const receiver = await startPyroscopeReceiver();
    closers.push(() => receiver.close());
    const seen = observer();
    const body = pprofBody('burn_handler_alpha');
    const f = forwarder(
      {
        ...FAST,
        target: {
          serverAddress: receiver.url,
          basicAuth: { user: 'ingest-user', password: 'p@ss:word' },
          tenantId: 'team-a',
        },
      },
      seen,
    );
    f.enqueue(
      makeUpload('checkout', {
        tags: { service_namespace: 'shop', handler: 'get_products', k8s_pod_name: 'checkout-7d9f' },
        from: new Date(1_700_000_000_900),
        until: new Date(1_700_000_015_100),
        sampleRate: 99,
        body,
      }),
    );
    const [upload] = await receiver.waitForUploads(1);
    assert.ok(upload);
    assert.equal(upload.authorization, `Basic ${Buffer.from('ingest-user:p@ss:word').toString('base64')}`);
    assert.equal(upload.tenant, 'team-a');
    assert.equal(upload.contentType, 'application/octet-stream');
    assert.equal(
      upload.name,
      'checkout{service_namespace=shop,handler=get_products,k8s_pod_name=checkout-7d9f}',
    );
    assert.deepEqual(upload.tags, {
      service_namespace: 'shop',
      handler: 'get_products',
      k8s_pod_name: 'checkout-7d9f',
    });
    assert.deepEqual(upload.query, {
      format: 'pprof',
      from: '1700000000',
      name: upload.name,
      spyName: 'nodespy',
      until: '1700000015',
      sampleRate: '99',
    });
    assert.deepEqual(
      upload.samples.map((s) => ({ stack: s.stack, labels: s.labels })),
      [{ stack: ['burn_handler_alpha', 'main'], labels: { handler: 'burn_handler_alpha' } }],
    );
    await seen.waitFor('the sent event', () => seen.count('sent') === 1);
    const stats = f.stats();
    assert.equal(stats.sent, 1);
    assert.equal(stats.sentBytes, body.byteLength);
    assert.equal(stats.queued, 0);
    assert.equal(stats.queuedBytes, 0);
    assert.equal(stats.failing, false);
    assert.deepEqual(seen.events, [{ type: 'sent', bytes: body.byteLength, attempts: 1 }]);
    assert.deepEqual(seen.logs, []);
  });

  it('sends the bearer token (over basic auth), no tenant header without a tenant, the body byte for byte, the sender’s spy name', async () => {
    const up = await upstream(() => 200);
    const seen = observer();
    const f = forwarder(
      {
        ...FAST,
        target: {
          serverAddress: up.url,
          authToken: 'glc_token-123',
          basicAuth: { user: 'ignored', password: 'ignored' },
        },
      },
      seen,
    );
    const body = pprofBody('go_handler');
    f.enqueue(makeUpload('inventory', { tags: { env: 'prod' }, spyName: 'gospy', body }));
    await up.waitFor('one request', () => up.requests.length === 1);
    const [request] = up.requests;
    assert.ok(request);
    assert.equal(request.url.pathname, '/ingest');
    assert.equal(request.headers.authorization, 'Bearer glc_token-123');
    assert.equal(request.headers['x-scope-orgid'], undefined);
    assert.equal(request.headers['content-length'], String(body.byteLength));
    assert.ok(request.body.equals(body), 'the body must arrive byte for byte');
    // The SDK's parameter order, with the relayed upload's own spy name.
    assert.deepEqual(
      [...request.url.searchParams],
      [
        ['format', 'pprof'],
        ['from', '1700000000'],
        ['name', 'inventory{env=prod}'],
        ['spyName', 'gospy'],
        ['until', '1700000010'],
        ['sampleRate', '100'],
      ],
    );
    assert.equal(decodeProfile(request.body).samples[0]?.stack[0], 'go_handler');
  });

  it('sends one upload at a time, in the order they came', async () => {
    const up = await upstream(() => 200);
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: up.url } }, seen);
    for (let i = 0; i < 8; i++) f.enqueue(makeUpload(`app_${i}`));
    await seen.waitFor('8 sent', () => seen.count('sent') === 8);
    assert.deepEqual(
      names(up.requests),
      Array.from({ length: 8 }, (_, i) => `app_${i}{}`),
    );
    assert.equal(f.stats().sent, 8);
  });
});

describe('profile forwarder: Pyroscope down, failing or slow', () => {
  it('retries while the port refuses connections, delivers once it is up, logs the streak once and its end once', async () => {
    const port = await refusedPort();
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: `http://127.0.0.1:${port}` } }, seen);
    const body = pprofBody('while_down');
    f.enqueue(makeUpload('down_then_up', { body }));
    await seen.waitFor('3 retries', () => seen.count('retried', 'network') >= 3);
    const down = f.stats();
    assert.equal(down.sent, 0);
    assert.equal(down.queued, 1);
    assert.equal(down.queuedBytes, body.byteLength);
    assert.equal(down.failing, true);
    assert.deepEqual(down.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 });
    const warnings = seen.logs.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(seen.logs));
    const [warning] = warnings;
    assert.ok(warning);
    assert.equal(warning.fields.reason, 'network');
    assert.match(String(warning.fields.error), /ECONNREFUSED/);

    const up = await upstream(() => 200, port);
    await seen.waitFor('delivery', () => seen.count('sent') === 1);
    assert.equal(up.requests.length, 1);
    assert.ok(up.requests[0]?.body.equals(body));
    const stats = f.stats();
    assert.equal(stats.sent, 1);
    assert.equal(stats.retried, seen.count('retried'));
    assert.equal(stats.queued, 0);
    assert.equal(stats.failing, false);
    const sent = seen.events.find((e) => e.type === 'sent');
    assert.equal(sent?.type === 'sent' ? sent.attempts : 0, stats.retried + 1);
    const infos = seen.logs.filter((l) => l.level === 'info');
    assert.equal(infos.length, 1);
    assert.equal(infos[0]?.fields.retried, stats.retried);
    assert.equal(seen.logs.filter((l) => l.level === 'warn').length, 1);
  });

  it('retries a 500 until the receiver answers 200', async () => {
    const receiver = await startPyroscopeReceiver();
    closers.push(() => receiver.close());
    receiver.setStatus(500);
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: receiver.url } }, seen);
    f.enqueue(makeUpload('flaky', { body: pprofBody('after_500') }));
    await seen.waitFor('2 retries', () => seen.count('retried', 'server_error') >= 2);
    assert.equal(receiver.uploads.length, 0);
    receiver.setStatus(200);
    const [upload] = await receiver.waitForUploads(1);
    assert.equal(upload?.appName, 'flaky');
    assert.equal(upload.samples[0]?.stack[0], 'after_500');
    await seen.waitFor('sent', () => seen.count('sent') === 1);
    const stats = f.stats();
    assert.equal(stats.sent, 1);
    assert.ok(stats.retried >= 2);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 0 });
    assert.match(String(seen.logs.find((l) => l.level === 'warn')?.fields.error), /HTTP 500/);
  });

  it('retries a 429, waiting at least its Retry-After (capped by the backoff maximum)', async () => {
    const up = await upstream((_request, index) =>
      index === 0 ? { status: 429, headers: { 'retry-after': '30' } } : 200,
    );
    const seen = observer();
    const f = forwarder(
      { ...FAST, backoff: { initialMs: 10, maxMs: 50, jitter: 0 }, target: { serverAddress: up.url } },
      seen,
    );
    f.enqueue(makeUpload('throttled'));
    await seen.waitFor('sent', () => seen.count('sent') === 1);
    // Retry-After (30 s) outweighs the 10 ms exponential step, and the 50 ms maximum caps it.
    assert.deepEqual(seen.events[0], { type: 'retried', reason: 'throttled', delayMs: 50 });
    assert.equal(up.requests.length, 2);
  });

  it('does not retry a 400 or a 401: dropped as rejected, counted, logged once, and the queue moves on', async () => {
    const up = await upstream((request) => {
      const name = request.url.searchParams.get('name') ?? '';
      if (name.startsWith('bad')) return 400;
      if (name.startsWith('unauthorized')) return 401;
      return 200;
    });
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: up.url } }, seen);
    f.enqueue(makeUpload('bad'));
    f.enqueue(makeUpload('unauthorized'));
    f.enqueue(makeUpload('good'));
    await seen.waitFor('the good one sent', () => seen.count('sent') === 1);
    assert.deepEqual(names(up.requests), ['bad{}', 'unauthorized{}', 'good{}']);
    const stats = f.stats();
    assert.equal(stats.retried, 0);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 2, retries_exhausted: 0, shutdown: 0 });
    assert.equal(seen.count('dropped', 'rejected'), 2);
    const warnings = seen.logs.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1);
    assert.match(String(warnings[0]?.fields.error), /^HTTP 400: answered 400 by the test$/);
  });

  it('byte cap with Pyroscope down: the oldest dropped first and counted, the newest delivered once it is back', async () => {
    const port = await refusedPort();
    const seen = observer();
    const size = SHARED_BODY.byteLength;
    const f = forwarder(
      { ...FAST, maxQueueBytes: 3 * size, target: { serverAddress: `http://127.0.0.1:${port}` } },
      seen,
    );
    for (let i = 0; i < 6; i++) f.enqueue(makeUpload(`p${i}`));
    let stats = f.stats();
    assert.equal(stats.queued, 3);
    assert.equal(stats.queuedBytes, 3 * size);
    assert.equal(stats.dropped.queue_full, 3);
    assert.deepEqual(
      seen.events,
      Array.from({ length: 3 }, () => ({ type: 'dropped', reason: 'queue_full', bytes: size })),
    );
    assert.equal(seen.logs.filter((l) => l.msg.includes('queue full')).length, 1);

    // p3 failed and waits at the head for its retry: a newer upload pushes it out.
    await seen.waitFor('a retry', () => seen.count('retried') >= 1);
    assert.equal(f.stats().inFlight, 0);
    f.enqueue(makeUpload('p6'));
    stats = f.stats();
    assert.equal(stats.dropped.queue_full, 4);
    assert.equal(stats.queuedBytes, 3 * size);

    const up = await upstream(() => 200, port);
    await seen.waitFor('3 sent', () => seen.count('sent') === 3);
    assert.deepEqual(names(up.requests), ['p4{}', 'p5{}', 'p6{}']);
    stats = f.stats();
    assert.equal(stats.sent, 3);
    assert.equal(stats.sentBytes, 3 * size);
    assert.equal(stats.queued, 0);
    assert.equal(stats.queuedBytes, 0);
    assert.deepEqual(stats.dropped, { queue_full: 4, rejected: 0, retries_exhausted: 0, shutdown: 0 });
  });

  it('drops an upload bigger than the whole cap alone, and never evicts the one on the wire', async () => {
    const up = await upstream((_request, index) => (index === 0 ? 'hang' : 200));
    const seen = observer();
    const size = SHARED_BODY.byteLength;
    const f = forwarder(
      { ...FAST, requestTimeoutMs: 60_000, maxQueueBytes: 2 * size, target: { serverAddress: up.url } },
      seen,
    );
    f.enqueue(makeUpload('on_the_wire'));
    await up.waitFor('the first request', () => up.requests.length === 1);
    f.enqueue(makeUpload('first_waiting'));
    f.enqueue(makeUpload('too_big', { body: new Uint8Array(2 * size + 1) }));
    assert.equal(f.stats().queuedBytes, 2 * size, 'the upload that could never fit evicts nothing');
    f.enqueue(makeUpload('second_waiting'));
    const stats = f.stats();
    assert.equal(stats.inFlight, 1);
    assert.equal(stats.queued, 2);
    assert.equal(stats.queuedBytes, 2 * size);
    assert.equal(stats.dropped.queue_full, 2);
    assert.deepEqual(
      seen.events.map((e) => (e.type === 'dropped' ? e.bytes : e.type)),
      [2 * size + 1, size],
    );
    assert.equal(seen.logs.filter((l) => l.level === 'warn').length, 2, JSON.stringify(seen.logs));
  });

  it('abandons an attempt that gets no answer within the request timeout and retries it', async () => {
    const up = await upstream((_request, index) => (index === 0 ? 'hang' : 200));
    const seen = observer();
    const f = forwarder({ ...FAST, requestTimeoutMs: 200, target: { serverAddress: up.url } }, seen);
    const body = pprofBody('slow_upstream');
    f.enqueue(makeUpload('slow', { body }));
    await seen.waitFor('sent', () => seen.count('sent') === 1);
    await up.waitFor('the first attempt abandoned', () => up.requests[0]?.abandoned === true);
    assert.equal(seen.count('retried', 'timeout'), 1);
    assert.equal(up.requests.length, 2);
    assert.ok(up.requests.every((r) => r.body.equals(body)));
    assert.equal(f.stats().sent, 1);
    assert.match(String(seen.logs[0]?.fields.error), /no answer within 200 ms/);
  });

  it('maxAttempts: an upload that keeps failing is dropped as retries_exhausted, and the next one goes', async () => {
    let healthy = false;
    const up = await upstream((request) =>
      request.url.searchParams.get('name') === 'poison{}' || !healthy ? 503 : 200,
    );
    const seen = observer();
    const f = forwarder({ ...FAST, maxAttempts: 3, target: { serverAddress: up.url } }, seen);
    f.enqueue(makeUpload('poison'));
    await seen.waitFor('the drop', () => seen.count('dropped', 'retries_exhausted') === 1);
    healthy = true;
    f.enqueue(makeUpload('next'));
    await seen.waitFor('sent', () => seen.count('sent') === 1);
    assert.deepEqual(names(up.requests), ['poison{}', 'poison{}', 'poison{}', 'next{}']);
    const stats = f.stats();
    assert.equal(stats.retried, 2);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 1, shutdown: 0 });
  });
});

describe('profile forwarder: close, and never in the way', () => {
  it('close() sends what is queued, resolves, and later uploads are dropped as shutdown', async () => {
    const up = await upstream(() => 200);
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: up.url } }, seen);
    for (let i = 0; i < 3; i++) f.enqueue(makeUpload(`last_${i}`));
    await f.close(10_000);
    assert.deepEqual(names(up.requests), ['last_0{}', 'last_1{}', 'last_2{}']);
    f.enqueue(makeUpload('too_late'));
    await nextTurn();
    assert.equal(up.requests.length, 3);
    const stats = f.stats();
    assert.equal(stats.closed, true);
    assert.equal(stats.sent, 3);
    assert.equal(stats.queued, 0);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 1 });
    assert.equal(f.close(10_000), f.close(0), 'close() is idempotent');
  });

  it('close() with Pyroscope down gives up by the deadline and counts what it drops', async () => {
    const port = await refusedPort();
    const seen = observer();
    const f = forwarder({ ...FAST, target: { serverAddress: `http://127.0.0.1:${port}` } }, seen);
    for (let i = 0; i < 3; i++) f.enqueue(makeUpload(`stranded_${i}`));
    await f.close(300);
    const stats = f.stats();
    assert.equal(stats.sent, 0);
    assert.equal(stats.queued, 0);
    assert.equal(stats.queuedBytes, 0);
    assert.ok(stats.retried >= 1);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 3 });
    assert.equal(seen.count('dropped', 'shutdown'), 3);
  });

  // The timeout turns a close() that never resolves into a failure instead of a hung run.
  it('close() aborts the attempt still on the wire at the deadline', { timeout: 30_000 }, async () => {
    const up = await upstream(() => 'hang');
    const seen = observer();
    const f = forwarder({ ...FAST, requestTimeoutMs: 60_000, target: { serverAddress: up.url } }, seen);
    f.enqueue(makeUpload('hanging'));
    f.enqueue(makeUpload('behind_it'));
    await up.waitFor('the request', () => up.requests.length === 1);
    await f.close(100);
    await up.waitFor('the connection closed', () => up.requests[0]?.abandoned === true);
    assert.equal(up.requests.length, 1);
    const stats = f.stats();
    assert.equal(stats.inFlight, 0);
    assert.equal(stats.queued, 0);
    assert.equal(stats.retried, 0);
    assert.deepEqual(stats.dropped, { queue_full: 0, rejected: 0, retries_exhausted: 0, shutdown: 2 });
  });

  it('enqueue never throws, not even when the onEvent callback does', async () => {
    const up = await upstream(() => 200);
    const seen = observer();
    const f = createForwarder({
      ...FAST,
      maxQueueBytes: SHARED_BODY.byteLength,
      target: { serverAddress: up.url },
      logger: seen.logger,
      onEvent: () => {
        throw new Error('a broken metrics callback');
      },
    });
    forwarders.push(f);
    f.enqueue(makeUpload('fits'));
    f.enqueue(makeUpload('too_big', { body: new Uint8Array(SHARED_BODY.byteLength + 1) }));
    f.enqueue({ applicationName: 'no_body' } as unknown as ProfileUpload);
    await up.waitFor('the one that fits', () => up.requests.length === 1);
    assert.equal(f.stats().dropped.queue_full, 1);
    assert.ok(seen.logs.some((l) => l.msg.includes('onEvent threw')));
    assert.ok(seen.logs.some((l) => l.msg.includes('could not be queued')));
  });

  // The timeout only turns a hang (a referenced timer holding the child for an hour) into a failure.
  it(
    'its timers never keep the process alive: a process backing off for an hour exits on its own',
    { timeout: 30_000 },
    async (t) => {
      const port = await refusedPort();
      const moduleUrl = pathToFileURL(
        new URL('../src/profiling/forwarder.ts', import.meta.url).pathname,
      ).href;
      const script = `
      import { createForwarder } from ${JSON.stringify(moduleUrl)};
      const keepAlive = setInterval(() => {}, 1000);
      const forwarder = createForwarder({
        target: { serverAddress: 'http://127.0.0.1:${port}' },
        maxQueueBytes: 1 << 20,
        requestTimeoutMs: 3_600_000,
        backoff: { initialMs: 3_600_000, maxMs: 3_600_000, jitter: 0 },
        onEvent(event) {
          console.log(JSON.stringify(event));
          if (event.type === 'retried') clearInterval(keepAlive);
        },
      });
      forwarder.enqueue({
        applicationName: 'child', tags: {}, from: new Date(), until: new Date(),
        sampleRate: 100, spyName: 'nodespy', body: new Uint8Array(16),
      });
    `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      t.after(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill();
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      assert.equal(code, 0, stderr);
      assert.deepEqual(JSON.parse(stdout.trim()), { type: 'retried', reason: 'network', delayMs: 3_600_000 });
    },
  );

  it('refuses options it cannot work with', () => {
    const base: ForwarderOptions = { ...FAST, target: { serverAddress: 'http://127.0.0.1:4040' } };
    assert.throws(() => createForwarder({ ...base, maxQueueBytes: 0 }), RangeError);
    assert.throws(() => createForwarder({ ...base, requestTimeoutMs: Number.NaN }), RangeError);
    assert.throws(() => createForwarder({ ...base, backoff: { initialMs: 100, maxMs: 10 } }), RangeError);
    assert.throws(
      () => createForwarder({ ...base, backoff: { initialMs: 1, maxMs: 10, jitter: 2 } }),
      RangeError,
    );
    assert.throws(() => createForwarder({ ...base, maxAttempts: 0 }), RangeError);
    assert.throws(
      () => createForwarder({ ...base, target: { serverAddress: 'pyroscope:4040' } }),
      RangeError,
    );
    assert.throws(
      () => createForwarder({ ...base, target: { serverAddress: 'http://user:secret@127.0.0.1:4040' } }),
      /must not carry credentials/,
    );
  });
});
