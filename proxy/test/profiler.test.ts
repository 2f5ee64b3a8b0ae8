// The profiler on real servers: it pushes to a real ingest receiver over HTTP, and samples of CPU
// burnt in named functions after awaits must carry the labels of their own request.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import {
  ConfigError,
  LabelError,
  disabledProfiler,
  profileLabels,
  profilerSettingsFromConfig,
  profilingConfigSchema,
  profilingConfigShape,
  startProfiler,
} from '@spanscope/proxy';
import type { LabelSwitches, Profiler, ProfileLabels, StartProfilerOptions } from '@spanscope/proxy';
import { configSchema } from '../src/config.ts';
import { startPyroscopeReceiver } from './support/pyroscope-receiver.ts';
import type { DecodedSample, PyroscopeReceiver, ReceivedUpload } from './support/pyroscope-receiver.ts';

// ---------------------------------------------------------------------------------------------
// Helpers

interface LogLine {
  level: 'info' | 'warn';
  msg: string;
  fields: Record<string, unknown>;
}

function captureLogger(): {
  lines: LogLine[];
  info: StartProfilerOptions['logger']['info'];
  warn: StartProfilerOptions['logger']['warn'];
} {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (fields, msg) => lines.push({ level: 'info', msg, fields: fields as Record<string, unknown> }),
    warn: (fields, msg) => lines.push({ level: 'warn', msg, fields: fields as Record<string, unknown> }),
  };
}

const ALL_ON: LabelSwitches = {
  endpoint: true,
  database: true,
  userAgent: true,
  dynamicTags: true,
  traceId: true,
};

function options(
  receiver: PyroscopeReceiver | undefined,
  overrides: Partial<StartProfilerOptions> = {},
): StartProfilerOptions & { logger: ReturnType<typeof captureLogger> } {
  const logger = captureLogger();
  return {
    serverAddress: receiver?.url,
    applicationName: 'spanscope-test',
    uploadRateSeconds: 1,
    switches: ALL_ON,
    ...overrides,
    logger,
  };
}

// Distinct named functions, so a sample's stack says whose work it was.
function spin(ms: number): number {
  const end = performance.now() + ms;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 2000; i++) x += Math.sqrt(i + x);
  return x;
}
function burn_handler_alpha(ms: number): number {
  return spin(ms);
}
function burn_handler_beta(ms: number): number {
  return spin(ms);
}
function burn_in_db_call(ms: number): number {
  return spin(ms);
}
function burn_after_db_call(ms: number): number {
  return spin(ms);
}
function burn_in_timer(ms: number): number {
  return spin(ms);
}
function burn_in_client_callback(ms: number): number {
  return spin(ms);
}
function burn_unlabelled(ms: number): number {
  return spin(ms);
}

const hex = (bytes: number): string => randomBytes(bytes).toString('hex');

function samplesIn(uploads: readonly ReceivedUpload[], fn: string): DecodedSample[] {
  return uploads
    .filter((upload) => upload.kind === 'wall')
    .flatMap((upload) => upload.samples)
    .filter(
      (sample) =>
        (sample.values['samples/count'] ?? 0) > 0 && sample.stack.some((frame) => frame.includes(fn)),
    );
}

function count(samples: readonly DecodedSample[]): number {
  return samples.reduce((sum, sample) => sum + (sample.values['samples/count'] ?? 0), 0);
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function get(
  port: number,
  path: string,
  agent: Agent,
  headers: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/** Stops the profiler and returns every upload it made (the last one is pushed at stop). */
async function stopAndCollect(profiler: Profiler, receiver: PyroscopeReceiver): Promise<ReceivedUpload[]> {
  const before = receiver.uploads.length;
  await profiler.stop();
  await receiver.waitForUploads(before + 1);
  return [...receiver.uploads];
}

// ---------------------------------------------------------------------------------------------

describe('profiling config', () => {
  it('has the documented defaults and treats blank values as unset', () => {
    const config = profilingConfigSchema.parse({ PYROSCOPE_SERVER_ADDRESS: '', PYROSCOPE_UPLOAD_RATE: ' ' });
    assert.equal(config.PYROSCOPE_SERVER_ADDRESS, undefined);
    assert.equal(config.PYROSCOPE_UPLOAD_RATE, 10);
    assert.equal(config.ENABLE_ENDPOINT_PROFILING, true);
    assert.equal(config.ENABLE_DATABASE_PROFILING, true);
    assert.equal(config.ENABLE_USER_AGENT_PROFILING, true);
    assert.equal(config.ENABLE_DYNAMIC_TAGS, true);
    assert.equal(config.ENABLE_TRACE_ID_LABEL, false);
  });

  it('reads every variable', () => {
    const config = profilingConfigSchema.parse({
      PYROSCOPE_SERVER_ADDRESS: 'https://profiles.example.com/pyroscope/',
      PYROSCOPE_APPLICATION_NAME: 'shop-proxy',
      PYROSCOPE_BASIC_AUTH_USER: '1234',
      PYROSCOPE_BASIC_AUTH_PASSWORD: 'secret',
      PYROSCOPE_TENANT_ID: 'team-a',
      PYROSCOPE_UPLOAD_RATE: '15',
      ENABLE_ENDPOINT_PROFILING: 'false',
      ENABLE_DATABASE_PROFILING: '0',
      ENABLE_USER_AGENT_PROFILING: 'no',
      ENABLE_DYNAMIC_TAGS: 'FALSE',
      ENABLE_TRACE_ID_LABEL: 'true',
    });
    const settings = profilerSettingsFromConfig(config, { serviceName: 'spanscope-proxy' });
    assert.equal(settings.serverAddress, 'https://profiles.example.com/pyroscope');
    assert.equal(settings.applicationName, 'shop-proxy');
    assert.deepEqual(settings.basicAuth, { user: '1234', password: 'secret' });
    assert.equal(settings.tenantId, 'team-a');
    assert.equal(settings.uploadRateSeconds, 15);
    assert.deepEqual(settings.switches, {
      endpoint: false,
      database: false,
      userAgent: false,
      dynamicTags: false,
      traceId: true,
    });
  });

  it('rejects bad values', () => {
    for (const [variable, value] of [
      ['PYROSCOPE_UPLOAD_RATE', '0'],
      ['PYROSCOPE_UPLOAD_RATE', '1.5'],
      ['PYROSCOPE_UPLOAD_RATE', '10s'],
      ['PYROSCOPE_SERVER_ADDRESS', 'localhost:4040'],
      ['PYROSCOPE_APPLICATION_NAME', 'app{x=1}'],
      ['ENABLE_TRACE_ID_LABEL', 'maybe'],
    ] as const) {
      const result = profilingConfigSchema.safeParse({ [variable]: value });
      assert.equal(result.success, false, `${variable}=${value} is rejected`);
      assert.equal(result.error.issues[0]?.path[0], variable);
    }
  });

  it('defaults the application name to the service name, made fit for a series name', () => {
    const config = profilingConfigSchema.parse({});
    assert.equal(
      profilerSettingsFromConfig(config, { serviceName: 'inventory-backend' }).applicationName,
      'inventory-backend',
    );
    assert.equal(
      profilerSettingsFromConfig(config, { serviceName: 'my app{1}' }).applicationName,
      'my_app_1_',
    );
  });

  it('refuses half-set basic auth, and a token together with basic auth', () => {
    const half = profilingConfigSchema.parse({ PYROSCOPE_BASIC_AUTH_USER: 'u' });
    assert.throws(
      () => profilerSettingsFromConfig(half, { serviceName: 's' }),
      (error: unknown) => error instanceof ConfigError && error.variable === 'PYROSCOPE_BASIC_AUTH_PASSWORD',
    );
    const both = profilingConfigSchema.parse({
      PYROSCOPE_BASIC_AUTH_USER: 'u',
      PYROSCOPE_BASIC_AUTH_PASSWORD: 'p',
      PYROSCOPE_AUTH_TOKEN: 't',
    });
    assert.throws(
      () => profilerSettingsFromConfig(both, { serviceName: 's' }),
      (error: unknown) => error instanceof ConfigError && error.variable === 'PYROSCOPE_AUTH_TOKEN',
    );
  });

  it("merges into the proxy's config schema", () => {
    const merged = z.object({ ...configSchema.shape, ...profilingConfigShape });
    const config = merged.parse({
      PYROSCOPE_SERVER_ADDRESS: 'http://127.0.0.1:4040',
      ENABLE_DYNAMIC_TAGS: 'false',
    });
    assert.equal(config.PROXY_PORT, 8080);
    assert.equal(config.PYROSCOPE_SERVER_ADDRESS, 'http://127.0.0.1:4040');
    assert.equal(
      profilerSettingsFromConfig(config, { serviceName: config.OTEL_SERVICE_NAME }).applicationName,
      'spanscope-proxy',
    );
    assert.equal(config.ENABLE_DYNAMIC_TAGS, false);
  });
});

describe('profiler without a server', () => {
  it('is off with one log line; run* just run the function; labels are still validated', async () => {
    const opts = options(undefined);
    const profiler = await startProfiler(opts);
    assert.equal(profiler.status().state, 'off');
    assert.equal(profiler.labelling, false);
    assert.equal(opts.logger.lines.length, 1);
    assert.equal(opts.logger.lines[0]?.level, 'info');
    assert.match(opts.logger.lines[0].msg, /profiling off: no server to upload to/);

    const labels = profiler.requestLabels({ handler: 'health', route: '/health', method: 'GET' });
    assert.equal(await profiler.runWithLabels(labels, async () => Promise.resolve(7)), 7);
    assert.equal(
      profiler.runDatabaseOperation('count_products', () => 'done'),
      'done',
    );
    assert.equal(profiler.currentLabels(), undefined);
    assert.throws(() => profiler.requestLabels({ handler: '', route: '/health', method: 'GET' }), LabelError);
    assert.throws(() => profiler.runDatabaseOperation(' ', () => 0), LabelError);
    await profiler.flush();
    await profiler.stop();
    assert.equal(opts.logger.lines.length, 1);

    const off = disabledProfiler({ applicationName: 'x', switches: ALL_ON }, opts.logger);
    assert.equal(
      off.runWithAddedLabels(profileLabels({ db_operation: 'get_products' }), () => 1),
      1,
    );
  });
});

describe('profiler on a real ingest receiver', () => {
  let receiver: PyroscopeReceiver;
  before(async () => {
    receiver = await startPyroscopeReceiver();
  });
  after(async () => {
    await receiver.close();
  });

  it('pushes wall profiles with CPU time at the upload rate, in the ingest wire format', async () => {
    receiver.clear();
    const opts = options(receiver, { uploadRateSeconds: 1 });
    const profiler = await startProfiler(opts);
    assert.equal(profiler.status().state, 'running');
    assert.equal(profiler.labelling, true, 'CPED self-test passed');
    const infoLine = opts.logger.lines.find((line) => line.msg === 'profiling on');
    assert.ok(infoLine);
    const started = Date.now();
    const timer = setInterval(() => burn_unlabelled(20), 50);
    try {
      await receiver.waitForUploads(3, { timeoutMs: 8000 });
    } finally {
      clearInterval(timer);
      await profiler.stop();
    }
    const [first, second, third] = receiver.uploads;
    assert.ok(first && second && third);
    // Upload every second: the first after about 1 s, then about 1 s apart.
    assert.ok(first.receivedAt - started >= 800, `first upload after ${first.receivedAt - started} ms`);
    const gap = third.receivedAt - second.receivedAt;
    assert.ok(gap >= 700 && gap <= 1800, `uploads ${gap} ms apart`);

    assert.equal(first.path, '/ingest');
    assert.equal(first.method, 'POST');
    assert.equal(first.contentType, 'application/octet-stream');
    assert.equal(first.appName, 'spanscope-test');
    assert.equal(first.tags['process.runtime.name'], 'nodejs');
    assert.deepEqual(Object.keys(first.query).sort(), [
      'format',
      'from',
      'name',
      'sampleRate',
      'spyName',
      'until',
    ]);
    assert.equal(first.query.format, 'pprof');
    assert.equal(first.query.spyName, 'nodespy');
    assert.equal(first.query.sampleRate, '100');
    assert.ok(first.from <= first.until && first.until <= second.from + 1);
    assert.equal(first.kind, 'wall');
    assert.deepEqual(first.sampleTypes, ['samples/count', 'wall/nanoseconds', 'cpu/nanoseconds']);
    assert.equal(first.authorization, undefined);
    assert.equal(first.tenant, undefined);
    const burnt = samplesIn(receiver.uploads, 'burn_unlabelled');
    assert.ok(count(burnt) > 0, 'CPU burnt in burn_unlabelled was sampled');
    assert.ok(
      burnt.some((sample) => (sample.values['cpu/nanoseconds'] ?? 0) > 0),
      'with CPU time',
    );
    assert.ok(
      burnt.every((sample) => Object.keys(sample.labels).length === 0),
      'no labels outside a labelled scope',
    );
    // ENABLE_DETAILED_STACK_TRACES (default): /full/path/file.ts:function:line, the .ts lines.
    const fullPath = `${process.cwd()}/proxy/test/profiler.test.ts:burn_unlabelled:`;
    assert.ok(burnt.some((sample) => sample.stack.some((frame) => frame.startsWith(fullPath))));
  });

  it('labels follow each request across awaits, timers and keep-alive client callbacks', async () => {
    receiver.clear();
    const profiler = await startProfiler(options(receiver, { uploadRateSeconds: 30 }));
    // A second server the handlers call through one keep-alive socket: the socket is created in
    // one request's context and its later callbacks belong to other requests.
    const downstream = createServer((_req, res) => res.end('ok'));
    const downstreamPort = await listen(downstream);
    const clientAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const spans = new Map<string, { handler: string; traceId: string }>();

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const alpha = req.url === '/alpha';
      await sleep(1);
      await Promise.resolve();
      await nextTurn();
      if (alpha) burn_handler_alpha(8);
      else burn_handler_beta(8);
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          burn_in_timer(2);
          resolve();
        }, 1),
      );
      await new Promise<void>((resolve, reject) => {
        request({ host: '127.0.0.1', port: downstreamPort, agent: clientAgent }, (response) => {
          response.resume();
          response.on('end', () => {
            burn_in_client_callback(2);
            resolve();
          });
        })
          .on('error', reject)
          .end();
      });
      res.end('done');
    };
    const server = createServer((req, res) => {
      const handler = req.url === '/alpha' ? 'alpha' : 'beta';
      const spanId = hex(8);
      const traceId = hex(16);
      spans.set(spanId, { handler, traceId });
      const labels = profiler.requestLabels({
        handler,
        route: `/${handler}`,
        method: 'GET',
        userAgent: 'node-client',
        span: { spanId, traceId, name: `GET /${handler}`, sampled: true },
      });
      void profiler.runWithLabels(labels, () => handle(req, res));
    });
    const port = await listen(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const started = performance.now();
    await Promise.all(
      Array.from({ length: 8 }, async (_, i) => {
        while (performance.now() - started < 1500) await get(port, i % 2 === 0 ? '/alpha' : '/beta', agent);
      }),
    );
    const uploads = await stopAndCollect(profiler, receiver);
    agent.destroy();
    clientAgent.destroy();
    server.close();
    downstream.close();

    for (const [fn, handler] of [
      ['burn_handler_alpha', 'alpha'],
      ['burn_handler_beta', 'beta'],
      ['burn_in_timer', undefined],
      ['burn_in_client_callback', undefined],
    ] as const) {
      const samples = samplesIn(uploads, fn);
      const total = count(samples);
      assert.ok(total >= 3, `${fn}: ${total} samples`);
      const right = count(
        samples.filter((sample) => {
          const span = spans.get(sample.labels.span_id ?? '');
          return (
            span !== undefined &&
            sample.labels.handler === span.handler &&
            (handler === undefined || handler === span.handler) &&
            sample.labels.trace_id === span.traceId &&
            sample.labels.route === `/${span.handler}` &&
            sample.labels.span_name === `GET /${span.handler}` &&
            sample.labels.method === 'GET' &&
            sample.labels.component === 'http' &&
            sample.labels.user_agent === 'node-client'
          );
        }),
      );
      assert.equal(right, total, `${fn}: ${right} of ${total} samples carry their own request's labels`);
    }
  });

  it('a database scope adds db_operation and component=database for the call and its awaits only', async () => {
    receiver.clear();
    const profiler = await startProfiler(options(receiver, { uploadRateSeconds: 30 }));
    const labels = profiler.requestLabels({ handler: 'get_products', route: '/products', method: 'GET' });
    let inside: ProfileLabels | undefined;
    let afterwards: ProfileLabels | undefined;
    for (let i = 0; i < 20; i++) {
      await profiler.runWithLabels(labels, async () => {
        await sleep(1);
        await profiler.runDatabaseOperation('get_products', async () => {
          await sleep(1);
          await Promise.resolve();
          inside = profiler.currentLabels();
          burn_in_db_call(10);
        });
        await nextTurn();
        afterwards = profiler.currentLabels();
        burn_after_db_call(10);
      });
    }
    assert.equal(inside?.db_operation, 'get_products');
    assert.equal(inside.component, 'database');
    assert.equal(afterwards?.db_operation, undefined);
    const uploads = await stopAndCollect(profiler, receiver);
    const db = samplesIn(uploads, 'burn_in_db_call');
    const rest = samplesIn(uploads, 'burn_after_db_call');
    assert.ok(count(db) >= 3 && count(rest) >= 3, `${count(db)} and ${count(rest)} samples`);
    for (const sample of db) {
      assert.deepEqual(sample.labels, {
        handler: 'get_products',
        route: '/products',
        method: 'GET',
        component: 'database',
        db_operation: 'get_products',
      });
    }
    for (const sample of rest) {
      assert.deepEqual(sample.labels, {
        handler: 'get_products',
        route: '/products',
        method: 'GET',
        component: 'http',
      });
    }
  });

  it('each switch turns its labels off', async () => {
    const span = { spanId: hex(8), traceId: hex(16), name: 'GET /products', sampled: true };
    const cases: [string, Partial<LabelSwitches>, string[]][] = [
      // component=http goes too, but inside the database call component=database stays.
      ['ENABLE_ENDPOINT_PROFILING=false', { endpoint: false }, ['handler', 'route', 'method']],
      ['ENABLE_USER_AGENT_PROFILING=false', { userAgent: false }, ['user_agent']],
      ['ENABLE_DYNAMIC_TAGS=false', { dynamicTags: false }, ['span_id', 'span_name', 'trace_id']],
      ['ENABLE_TRACE_ID_LABEL=false', { traceId: false }, ['trace_id']],
      ['ENABLE_DATABASE_PROFILING=false', { database: false }, ['db_operation']],
    ];
    for (const [name, off, dropped] of cases) {
      receiver.clear();
      const profiler = await startProfiler(
        options(receiver, { uploadRateSeconds: 30, switches: { ...ALL_ON, ...off } }),
      );
      const labels = profiler.requestLabels({
        handler: 'get_products',
        route: '/products',
        method: 'GET',
        userAgent: 'curl',
        span,
      });
      for (let i = 0; i < 10; i++) {
        await profiler.runWithLabels(labels, async () => {
          await sleep(1);
          await profiler.runDatabaseOperation('get_products', async () => {
            await Promise.resolve();
            burn_in_db_call(12);
          });
        });
      }
      const samples = samplesIn(await stopAndCollect(profiler, receiver), 'burn_in_db_call');
      assert.ok(count(samples) >= 3, `${name}: ${count(samples)} samples`);
      const expected: Record<string, string> = {
        handler: 'get_products',
        route: '/products',
        method: 'GET',
        user_agent: 'curl',
        span_id: span.spanId,
        span_name: span.name,
        trace_id: span.traceId,
        db_operation: 'get_products',
        component: 'database',
      };
      for (const label of dropped) Reflect.deleteProperty(expected, label);
      // With database labels off the request's own component stays.
      if (off.database === false) expected.component = 'http';
      for (const sample of samples) assert.deepEqual(sample.labels, expected, name);
    }
  });

  it('sends basic auth, a bearer token and the tenant id', async () => {
    receiver.clear();
    const basic = await startProfiler(
      options(receiver, { basicAuth: { user: '12345', password: 'glc_secret' }, tenantId: 'team-a' }),
    );
    await basic.stop();
    const token = await startProfiler(options(receiver, { authToken: 'psx_token' }));
    await token.stop();
    const [first, second] = await receiver.waitForUploads(2);
    assert.equal(first?.authorization, `Basic ${Buffer.from('12345:glc_secret').toString('base64')}`);
    assert.equal(first.tenant, 'team-a');
    assert.equal(second?.authorization, 'Bearer psx_token');
    assert.equal(second.tenant, undefined);
  });

  it('logs a failing upload once, never throws, and says when uploads succeed again', async () => {
    receiver.clear();
    const opts = options(receiver, { uploadRateSeconds: 30 });
    const profiler = await startProfiler(opts);
    receiver.setStatus(500);
    await profiler.flush();
    await profiler.flush();
    await profiler.flush();
    receiver.setStatus(200);
    await profiler.flush();
    await profiler.stop();
    const warnings = opts.logger.lines.filter((line) => line.level === 'warn');
    assert.equal(warnings.length, 1, JSON.stringify(opts.logger.lines));
    assert.match(warnings[0]?.msg ?? '', /profile upload failed/);
    assert.match(String(warnings[0]?.fields.err), /HTTP 500/);
    assert.ok(opts.logger.lines.some((line) => line.msg === 'profile uploads succeed again'));
    assert.deepEqual(
      { ...profiler.status(), reason: undefined },
      {
        state: 'stopped',
        reason: undefined,
        labelling: false,
        uploads: 2,
        failedUploads: 3,
        droppedProfiles: 0,
        skippedProfiles: 0,
      },
    );
  });

  it('an unreachable server is logged once and requests go on', async () => {
    const closed = createServer();
    const port = await listen(closed);
    await new Promise((resolve) => closed.close(resolve));
    const opts = options(undefined, { serverAddress: `http://127.0.0.1:${port}`, uploadRateSeconds: 30 });
    const profiler = await startProfiler(opts);
    const labels = profiler.requestLabels({ handler: 'health', route: '/health', method: 'GET' });
    await profiler.flush();
    assert.equal(await profiler.runWithLabels(labels, async () => (await sleep(1), 'served')), 'served');
    await profiler.flush();
    await profiler.stop();
    assert.equal(opts.logger.lines.filter((line) => line.level === 'warn').length, 1);
    assert.equal(profiler.status().failedUploads, 3);
  });

  it('stop ends label propagation before the profiler, pushes the last profile and is idempotent', async () => {
    receiver.clear();
    const profiler = await startProfiler(options(receiver, { uploadRateSeconds: 30 }));
    const labels = profiler.requestLabels({ handler: 'get_products', route: '/products', method: 'GET' });
    let seenAfterStop: ProfileLabels | undefined | 'unset' = 'unset';
    const inFlight = profiler.runWithLabels(labels, async () => {
      await sleep(20);
      // The request outlives the profiler: it must neither fail nor touch pprof.
      seenAfterStop = profiler.currentLabels();
      return profiler.runDatabaseOperation('get_products', async () => {
        await Promise.resolve();
        return 'finished';
      });
    });
    const stopping = profiler.stop();
    assert.equal(profiler.labelling, false, 'labels stop at once');
    assert.equal(profiler.stop(), stopping);
    await stopping;
    assert.equal(await inFlight, 'finished');
    assert.equal(seenAfterStop, undefined);
    assert.equal(
      profiler.runWithLabels(labels, () => 'plain'),
      'plain',
    );
    assert.equal(profiler.status().state, 'stopped');
    assert.equal((await receiver.waitForUploads(1)).length, 1, 'the last profile was pushed at stop');
  });

  it('refuses label sets that did not pass the scheme', async () => {
    const profiler = await startProfiler(options(receiver, { uploadRateSeconds: 30 }));
    try {
      const forged = { handler: 'x', product_id: '42' } as unknown as ProfileLabels;
      assert.throws(() => profiler.runWithLabels(forged, () => 0), LabelError);
      assert.throws(() => profiler.runWithAddedLabels(forged, () => 0), LabelError);
      assert.throws(
        () =>
          profiler.requestLabels({
            handler: 'h',
            route: '/r',
            method: 'GET',
            span: { spanId: 'nope', traceId: hex(16), name: 'n', sampled: true },
          }),
        LabelError,
      );
      // An unsampled span adds no span labels (and its ids are not looked at).
      const unsampled = profiler.requestLabels({
        handler: 'h',
        route: '/r',
        method: 'GET',
        span: { spanId: hex(8), traceId: hex(16), name: 'n', sampled: false },
      });
      assert.equal(unsampled.span_id, undefined);
    } finally {
      await profiler.stop();
    }
  });

  it('a second profiler in the same process shares the running one for its labels', async () => {
    receiver.clear();
    const first = await startProfiler(options(receiver, { uploadRateSeconds: 30 }));
    const secondOptions = options(receiver, { applicationName: 'second', uploadRateSeconds: 30 });
    const second = await startProfiler(secondOptions);
    assert.ok(secondOptions.logger.lines.some((line) => /already running/.test(line.msg)));
    const labels = second.requestLabels({ handler: 'from_second', route: '/s', method: 'GET' });
    await second.runWithLabels(labels, async () => {
      await sleep(1);
      burn_handler_beta(60);
    });
    await second.stop();
    const uploads = await stopAndCollect(first, receiver);
    assert.equal(uploads.length, 1);
    assert.equal(uploads[0]?.appName, 'spanscope-test');
    const samples = samplesIn(uploads, 'burn_handler_beta');
    assert.ok(count(samples) >= 2);
    assert.ok(samples.every((sample) => sample.labels.handler === 'from_second'));
  });
});

describe('wire format parity with @pyroscope/nodejs 0.6.4', () => {
  it('sends the same query parameters, headers and sample types as the SDK', async () => {
    const receiver = await startPyroscopeReceiver();
    try {
      const sdk = (await import('@pyroscope/nodejs')).default;
      sdk.init({
        appName: 'parity',
        serverAddress: receiver.url,
        authToken: 'tok',
        tenantID: 'tenant',
        flushIntervalMs: 60_000,
        wall: { collectCpuTime: true },
      });
      sdk.startWallProfiling();
      // Long enough that both profilers sample it even on a loaded machine (at 100 Hz, 30 ms was
      // sometimes missed by the SDK's profile).
      burn_unlabelled(200);
      await sdk.stopWallProfiling();
      const [fromSdk] = await receiver.waitForUploads(1);

      const ours = await startProfiler(
        options(receiver, { applicationName: 'parity', authToken: 'tok', tenantId: 'tenant' }),
      );
      burn_unlabelled(200);
      await ours.stop();
      const [, fromUs] = await receiver.waitForUploads(2);
      assert.ok(fromSdk && fromUs);

      assert.deepEqual(Object.keys(fromUs.query).sort(), Object.keys(fromSdk.query).sort());
      for (const key of ['format', 'spyName'] as const)
        assert.equal(fromUs.query[key], fromSdk.query[key], key);
      // The SDK divides by its sampling *duration* (60,000 ms) and sends 17; ours is the real rate.
      assert.equal(fromSdk.query.sampleRate, '17');
      assert.equal(fromUs.query.sampleRate, '100');
      assert.equal(fromUs.appName, fromSdk.appName);
      assert.equal(fromUs.tags['process.runtime.version'], fromSdk.tags['process.runtime.version']);
      assert.equal(fromUs.contentType, fromSdk.contentType);
      assert.equal(fromUs.authorization, fromSdk.authorization);
      assert.equal(fromUs.tenant, fromSdk.tenant);
      assert.deepEqual(fromUs.sampleTypes, fromSdk.sampleTypes);
      const frame = (upload: ReceivedUpload): string | undefined =>
        upload.samples.flatMap((sample) => sample.stack).find((name) => name.includes('burn_unlabelled'));
      // The SDK's `./path` form, with the full path ENABLE_DETAILED_STACK_TRACES asks for.
      assert.equal(
        frame(fromUs),
        frame(fromSdk)?.replace(/^\.\//, `${process.cwd()}/`),
        'frames are named alike',
      );
    } finally {
      await receiver.close();
    }
  });
});
