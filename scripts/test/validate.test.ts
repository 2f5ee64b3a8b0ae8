// `npm run validate` against `npm start` in its embedded default (no Tempo, no Pyroscope: spans
// come to the validator's own OTLP receiver, profiles from the proxy's local store): every check
// passes, and each claim is checked again here against the store; against a deployment missing
// something, the checks that cannot pass say why. The OTLP receiver is checked against the real
// OpenTelemetry exporters (protobuf and JSON), the Tempo decoding against Tempo's answer shape.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { createTracing } from '@spanscope/proxy/tracing';
import type { TracingConfig } from '@spanscope/proxy/tracing';
import { startOtlpListener } from '../lib/otlp-listener.ts';
import { decodeOtlpJson } from '../lib/otlp-spans.ts';
import { freePort } from '../../proxy/test/support/proxy-process.ts';
import { decodeProfile } from '../../proxy/test/support/pyroscope-receiver.ts';
import { startNpmStart } from './support/npm-start.ts';
import type { NpmStart } from './support/npm-start.ts';
import { runScript } from './support/run-script.ts';
import type { ScriptRun } from './support/run-script.ts';

const CHECKS = [
  'proxy answers',
  'trace id returned',
  'backend span child of proxy span',
  'profile labels of spanscope-proxy',
  'profile labels of inventory-backend',
  'span profile of spanscope-proxy',
  'span profile of inventory-backend',
];

interface Run extends ScriptRun {
  /** check name → [PASS|FAIL, reason] */
  checks: Map<string, [string, string]>;
}

async function runValidate(args: readonly string[]): Promise<Run> {
  const run = await runScript('scripts/validate.ts', args);
  const checks = new Map<string, [string, string]>();
  for (const line of run.stdout.split('\n')) {
    const match = /^(PASS|FAIL) ([^:]+): (.*)$/.exec(line);
    if (match) checks.set(match[2]!, [match[1]!, match[3]!]);
  }
  return { ...run, checks };
}

describe('npm run validate against npm start (embedded default)', () => {
  let deployment: NpmStart;
  let otlpPort: number;

  before(async () => {
    otlpPort = await freePort();
    deployment = await startNpmStart({
      OTEL_TRACES_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpPort}`,
      LOG_LEVEL: 'warn',
      PYROSCOPE_UPLOAD_RATE: '1',
    });
  });

  after(async () => {
    await deployment.stop();
  });

  it('passes every check, and each passing claim holds in the store', async () => {
    const run = await runValidate([
      deployment.proxyUrl,
      '--admin',
      deployment.adminUrl,
      '--otlp-listen',
      String(otlpPort),
      '--load',
      '3',
    ]);
    assert.deepEqual([...run.checks.keys()], CHECKS, run.stdout);
    for (const [name, [verdict, reason]] of run.checks) assert.equal(verdict, 'PASS', `${name}: ${reason}`);
    assert.equal(run.code, 0, run.stderr);

    assert.match(
      run.checks.get('backend span child of proxy span')![1],
      /inventory-backend SERVER span "GET \/product\/\{id\}" \([0-9a-f]{16}\) is a child of spanscope-proxy span/,
    );
    assert.match(run.checks.get('profile labels of inventory-backend')![1], /db_operation=[^;]*get_product/);
    for (const service of ['spanscope-proxy', 'inventory-backend']) {
      const reason = run.checks.get(`span profile of ${service}`)![1];
      const id = /pyroscope\.profile\.id=([0-9a-f]{16})/.exec(reason)?.[1];
      assert.ok(id, reason);
      // Asked here without validate's code: the span's samples are in the store, labelled with it.
      const query = new URLSearchParams({ service_name: service, span_id: id });
      const res = await fetch(`${deployment.adminUrl}/debug/pprof?${query.toString()}`);
      assert.equal(res.status, 200);
      const profile = decodeProfile(new Uint8Array(await res.arrayBuffer()));
      assert.ok(profile.samples.length > 0, `${service} span ${id} has samples`);
      for (const sample of profile.samples) assert.equal(sample.labels.span_id, id);
    }
  });

  it('fails the profile checks with the reason when the admin URL is wrong, and the span checks when spans go elsewhere', async () => {
    const wrongAdmin = `http://127.0.0.1:${await freePort()}`;
    const elsewhere = await freePort();
    const run = await runValidate([
      deployment.proxyUrl,
      '--admin',
      wrongAdmin,
      '--otlp-listen',
      String(elsewhere),
      '--load',
      '0.5',
      '--timeout',
      '2',
    ]);
    assert.equal(run.code, 1);
    assert.deepEqual([...run.checks.keys()], CHECKS, run.stdout);
    assert.equal(run.checks.get('proxy answers')?.[0], 'PASS');
    assert.equal(run.checks.get('trace id returned')?.[0], 'PASS');
    const [verdict, reason] = run.checks.get('backend span child of proxy span')!;
    assert.equal(verdict, 'FAIL');
    assert.match(
      reason,
      new RegExp(
        `no export reached it: both processes need OTEL_EXPORTER_OTLP_ENDPOINT=http://<this host>:${elsewhere}`,
      ),
    );
    for (const service of ['spanscope-proxy', 'inventory-backend']) {
      const [labelVerdict, labelReason] = run.checks.get(`profile labels of ${service}`)!;
      assert.equal(labelVerdict, 'FAIL');
      assert.equal(
        labelReason,
        `cannot reach the admin port at ${wrongAdmin}/debug/pprof: connection refused (ECONNREFUSED); ` +
          "is --admin the proxy's admin port (ADMIN_HOST:ADMIN_PORT)?",
      );
      assert.equal(run.checks.get(`span profile of ${service}`)?.[0], 'FAIL');
    }
  });

  it('says the admin port has no store when --admin points at something else', async () => {
    const run = await runValidate([
      deployment.proxyUrl,
      '--admin',
      deployment.proxyUrl,
      '--otlp-listen',
      String(otlpPort),
      '--load',
      '0.5',
      '--timeout',
      '2',
    ]);
    assert.equal(run.code, 1);
    assert.match(
      run.checks.get('profile labels of spanscope-proxy')?.[1] ?? '',
      /\/debug\/pprof answered 404 .*no local profile store there/,
    );
  });
});

describe('npm run validate without a proxy', () => {
  it('fails the first check with the reason and does not run the others', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const run = await runValidate([url, '--otlp-listen', String(await freePort())]);
    assert.equal(run.code, 1);
    assert.deepEqual([...run.checks.keys()], CHECKS);
    assert.deepEqual(run.checks.get('proxy answers'), [
      'FAIL',
      `cannot reach ${url}/health: connection refused (ECONNREFUSED). Is the proxy running, and is the URL right?`,
    ]);
    for (const name of CHECKS.slice(1)) {
      assert.deepEqual(run.checks.get(name), ['FAIL', 'not checked: "proxy answers" failed']);
    }
  });

  it('refuses a bad flag with the usage and exit 2', async () => {
    const run = await runValidate(['--otlp-listen', 'here']);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /^validate: --otlp-listen must be PORT or HOST:PORT, got "here"\n\nusage: npm run validate/,
    );
  });
});

describe("validate's OTLP receiver", () => {
  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    it(`reads what the proxy's own exporter sends as ${protocol}`, async () => {
      const listener = await startOtlpListener(0, '127.0.0.1');
      const config: TracingConfig = {
        OTEL_SDK_DISABLED: false,
        OTEL_SERVICE_NAME: 'receiver-test',
        OTEL_RESOURCE_ATTRIBUTES: {},
        OTEL_TRACES_EXPORTER: 'otlp',
        OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${listener.port}`,
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
        OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
        OTEL_EXPORTER_OTLP_TIMEOUT: 5000,
        OTEL_TRACES_SAMPLER: 'always_on',
        OTEL_TRACES_SAMPLER_ARG: undefined,
        OTEL_BSP_MAX_QUEUE_SIZE: 100,
        OTEL_BSP_SCHEDULE_DELAY: 100,
      };
      const tracing = createTracing(config, { synchronousExport: true });
      try {
        const parent = tracing.tracer.startSpan('GET /products', {
          kind: SpanKind.SERVER,
          attributes: {
            'pyroscope.profile.id': 'x',
            'http.response.status_code': 200,
            flag: true,
            ratio: 0.5,
          },
        });
        const child = tracing.tracer.startSpan(
          'SELECT',
          { kind: SpanKind.CLIENT },
          trace.setSpan(context.active(), parent),
        );
        child.end();
        parent.end();
        await tracing.forceFlush();
        const { traceId, spanId } = parent.spanContext();
        const spans = await listener.trace(traceId);
        assert.equal(spans.length, 2, listener.noSpansHint());
        const server = spans.find((s) => s.spanId === spanId);
        const client = spans.find((s) => s.spanId === child.spanContext().spanId);
        assert.deepEqual(server, {
          traceId,
          spanId,
          parentSpanId: undefined,
          name: 'GET /products',
          kind: 'SERVER',
          service: 'receiver-test',
          attributes: {
            'pyroscope.profile.id': 'x',
            'http.response.status_code': 200,
            flag: true,
            ratio: 0.5,
          },
        });
        assert.equal(client?.kind, 'CLIENT');
        assert.equal(client.parentSpanId, spanId);
        assert.equal(listener.exports, 2);
      } finally {
        await tracing.shutdown();
        await listener.close();
      }
    });
  }

  it('decodes a Tempo trace-by-id answer: batches, base64 ids, enum names', () => {
    const b64 = (hex: string): string => Buffer.from(hex, 'hex').toString('base64');
    const spans = decodeOtlpJson({
      batches: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'inventory-backend' } }] },
          scopeSpans: [
            {
              scope: { name: 'inventory-backend' },
              spans: [
                {
                  traceId: b64('0af7651916cd43dd8448eb211c80319c'),
                  spanId: b64('b7ad6b7169203331'),
                  parentSpanId: b64('00f067aa0ba902b7'),
                  name: 'GET /product/{id}',
                  kind: 'SPAN_KIND_SERVER',
                  attributes: [
                    { key: 'pyroscope.profile.id', value: { stringValue: 'b7ad6b7169203331' } },
                    { key: 'app.product.id', value: { intValue: '2' } },
                  ],
                },
              ],
            },
          ],
        },
      ],
    });
    assert.deepEqual(spans, [
      {
        traceId: '0af7651916cd43dd8448eb211c80319c',
        spanId: 'b7ad6b7169203331',
        parentSpanId: '00f067aa0ba902b7',
        name: 'GET /product/{id}',
        kind: 'SERVER',
        service: 'inventory-backend',
        attributes: { 'pyroscope.profile.id': 'b7ad6b7169203331', 'app.product.id': 2 },
      },
    ]);
  });
});
