// The pod's tagging endpoint (POST /ingest on the admin port) on real sockets: profiles sent the
// way @pyroscope/nodejs sends them are tagged with the pod's shared tags, policed by the label
// scheme, and forwarded with the sidecar's own credentials and tenant to a real ingest receiver,
// or kept in the local store; bad and oversized bodies are refused and nothing of them goes on.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { gunzipSync } from 'node:zlib';
import { startProxy } from './support/start-proxy.ts';
import type { ProxyUnderTest } from './support/start-proxy.ts';
import { decodeProfile, startPyroscopeReceiver } from './support/pyroscope-receiver.ts';
import type { PyroscopeReceiver } from './support/pyroscope-receiver.ts';
import { buildProfile, gzipped } from './support/pprof-fixtures.ts';

const SPAN_ID = '0123456789abcdef';
const TRACE_ID = '0123456789abcdef0123456789abcdef';

/** A profile as the backend's profiler sends it, plus labels the scheme does not allow. */
function backendProfile(): Uint8Array {
  return gzipped(
    buildProfile({
      samples: [
        {
          stack: ['list_products', 'handler'],
          values: [3, 30_000_000, 20_000_000],
          labels: {
            handler: 'get_products',
            db_operation: 'get_products',
            span_id: SPAN_ID,
            trace_id: TRACE_ID,
            customer_id: '4711',
          },
        },
        {
          stack: ['idle'],
          values: [1, 10_000_000, 0],
          labels: { span_id: 'not-a-span-id' },
        },
        { stack: ['gc'], values: [2, 20_000_000, 20_000_000] },
      ],
    }),
  );
}

function ingestQuery(name: string): string {
  const params = new URLSearchParams({
    format: 'pprof',
    from: '1700000000',
    name,
    spyName: 'nodespy',
    until: '1700000010',
    sampleRate: '100',
  });
  return params.toString();
}

async function post(
  adminUrl: string,
  query: string,
  body: Uint8Array,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const response = await fetch(`${adminUrl}/ingest?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream', ...headers },
    body,
  });
  return { status: response.status, json: (await response.json()) as Record<string, unknown> };
}

async function metricsText(adminUrl: string): Promise<string> {
  return (await fetch(`${adminUrl}/metrics`)).text();
}

function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const SIDECAR_ENV = {
  PYROSCOPE_BASIC_AUTH_USER: 'tenant-user',
  PYROSCOPE_BASIC_AUTH_PASSWORD: 's3cret',
  PYROSCOPE_TENANT_ID: 'team-shop',
  OTEL_RESOURCE_ATTRIBUTES:
    'service.namespace=shop,deployment.environment.name=prod,service.version=1.4.2,team=checkout',
  POD_NAME: 'inventory-7d9f-x2k',
  POD_NAMESPACE: 'shop',
  NODE_NAME: 'node-a',
  // The proxy's own profiler stays out of these uploads.
  ENABLE_PROFILING: 'false',
};

describe('tagging endpoint: forwarding to Pyroscope', () => {
  let receiver: PyroscopeReceiver;
  let proxy: ProxyUnderTest;
  before(async () => {
    receiver = await startPyroscopeReceiver();
    proxy = await startProxy({ ...SIDECAR_ENV, PYROSCOPE_SERVER_ADDRESS: receiver.url });
  });
  after(async () => {
    await proxy.close();
    await receiver.close();
  });

  it('adds the shared tags, polices the labels and forwards with the sidecar credentials', async () => {
    receiver.clear();
    const name =
      'inventory-backend{handler=get_products,process.runtime.name=nodejs,customer=acme,environment=dev}';
    const sent = await post(proxy.adminUrl, ingestQuery(name), backendProfile(), {
      // A sender's own credentials never reach Pyroscope.
      authorization: 'Bearer from-the-backend',
      'x-scope-orgid': 'someone-else',
    });
    assert.equal(sent.status, 200);
    const [upload] = await receiver.waitForUploads(1);
    assert.ok(upload);
    assert.equal(upload.authorization, `Basic ${Buffer.from('tenant-user:s3cret').toString('base64')}`);
    assert.equal(upload.tenant, 'team-shop');
    assert.equal(upload.appName, 'inventory-backend');
    assert.deepEqual(upload.tags, {
      handler: 'get_products',
      'process.runtime.name': 'nodejs',
      // The sidecar's values win over the sender's.
      environment: 'prod',
      service_namespace: 'shop',
      version: '1.4.2',
      k8s_pod_name: 'inventory-7d9f-x2k',
      k8s_namespace_name: 'shop',
      k8s_node_name: 'node-a',
    });
    assert.equal(upload.query.from, '1700000000');
    assert.equal(upload.query.until, '1700000010');
    assert.equal(upload.query.sampleRate, '100');
    assert.equal(upload.query.spyName, 'nodespy');

    // customer_id is not a label of the scheme, trace_id is off, a malformed span_id goes.
    const labelled = upload.samples.find((s) => s.stack[0] === 'list_products');
    assert.deepEqual(labelled?.labels, {
      handler: 'get_products',
      db_operation: 'get_products',
      span_id: SPAN_ID,
    });
    assert.deepEqual(upload.samples.find((s) => s.stack[0] === 'idle')?.labels, {});
    assert.deepEqual(
      upload.samples.map((s) => s.values['wall/nanoseconds']),
      [30_000_000, 10_000_000, 20_000_000],
      'values untouched',
    );

    const metrics = await metricsText(proxy.adminUrl);
    assert.equal(
      metricValue(metrics, 'spanscope_ingest_labels_dropped_total{label="customer",where="series"}'),
      1,
    );
    assert.equal(
      metricValue(metrics, 'spanscope_ingest_labels_dropped_total{label="customer_id",where="sample"}'),
      1,
    );
    assert.equal(
      metricValue(metrics, 'spanscope_ingest_labels_dropped_total{label="trace_id",where="sample"}'),
      1,
    );
    assert.equal(
      metricValue(metrics, 'spanscope_ingest_labels_dropped_total{label="span_id",where="sample"}'),
      1,
    );
    assert.equal(metricValue(metrics, 'spanscope_ingest_profiles_total{result="accepted"}'), 1);
    assert.equal(metricValue(metrics, 'spanscope_profiles_forwarded_total'), 1);
  });

  it('a profile within the scheme travels byte for byte', async () => {
    receiver.clear();
    const body = gzipped(
      buildProfile({
        samples: [{ stack: ['work'], values: [1, 10, 10], labels: { handler: 'health', span_id: SPAN_ID } }],
      }),
    );
    assert.equal((await post(proxy.adminUrl, ingestQuery('inventory-backend{}'), body)).status, 200);
    const [upload] = await receiver.waitForUploads(1);
    assert.ok(upload);
    const raw = upload.profile.encode();
    assert.deepEqual(Buffer.from(raw), gunzipSync(body));
  });

  it('refuses what is not a pprof profile with 400, and forwards nothing', async () => {
    receiver.clear();
    const cases: [string, Uint8Array, Record<string, string>, RegExp][] = [
      [ingestQuery('app{}'), new TextEncoder().encode('hello, not a profile'), {}, /not pprof/],
      [ingestQuery('app{}'), gzipped(buildProfile({ samples: [] })).subarray(0, 12), {}, /not pprof/],
      [ingestQuery('app{broken'), backendProfile(), {}, /closing/],
      [ingestQuery(''), backendProfile(), {}, /name is missing/],
      [ingestQuery('app{}').replace('format=pprof', 'format=folded'), backendProfile(), {}, /only pprof/],
      [
        ingestQuery('app{}'),
        backendProfile(),
        { 'content-type': 'multipart/form-data; boundary=x' },
        /multipart/,
      ],
      [ingestQuery('app{}').replace('from=1700000000', 'from=yesterday'), backendProfile(), {}, /from=/],
    ];
    for (const [query, body, headers, message] of cases) {
      const answer = await post(proxy.adminUrl, query, body, headers);
      assert.equal(answer.status, 400, query);
      assert.match(String(answer.json.error), message);
      assert.equal(answer.json.code, 'SPANSCOPE_ERR_INGEST');
    }
    const metrics = await metricsText(proxy.adminUrl);
    assert.equal(metricValue(metrics, 'spanscope_ingest_profiles_total{result="rejected"}'), cases.length);
    assert.equal(receiver.uploads.length, 0);
  });

  it('refuses bodies over 4 MiB with 413, declared or streamed, and stays up', async () => {
    receiver.clear();
    const big = new Uint8Array(4 * 1024 * 1024 + 1);
    const declared = await post(proxy.adminUrl, ingestQuery('app{}'), big);
    assert.equal(declared.status, 413);
    assert.match(String(declared.json.error), /over 4 MiB/);

    // Chunked, with no length up front: refused once the count passes the limit.
    const admin = new URL(proxy.adminUrl);
    const streamed = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: admin.hostname,
          port: admin.port,
          method: 'POST',
          path: `/ingest?${ingestQuery('app{}')}`,
          headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      const chunk = new Uint8Array(256 * 1024);
      let written = 0;
      const pump = (): void => {
        while (written <= 5 * 1024 * 1024) {
          written += chunk.length;
          if (!req.write(chunk)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    }).catch((error: unknown) => (error as NodeJS.ErrnoException).code ?? 'error');
    // The answer is 413; a client still writing may instead see its connection closed.
    assert.ok(streamed === 413 || streamed === 'EPIPE' || streamed === 'ECONNRESET', String(streamed));
    const metrics = await metricsText(proxy.adminUrl);
    assert.equal(metricValue(metrics, 'spanscope_ingest_profiles_total{result="too_large"}'), 2);
    assert.equal(receiver.uploads.length, 0);
    assert.equal((await fetch(`${proxy.adminUrl}/healthz`)).status, 200);
  });

  it('answers other methods with 405', async () => {
    const response = await fetch(`${proxy.adminUrl}/ingest`);
    assert.equal(response.status, 405);
    assert.equal(response.headers.get('allow'), 'POST');
    await response.arrayBuffer();
  });
});

describe('tagging endpoint: ENABLE_TRACE_ID_LABEL=true keeps trace_id', () => {
  let receiver: PyroscopeReceiver;
  let proxy: ProxyUnderTest;
  before(async () => {
    receiver = await startPyroscopeReceiver();
    proxy = await startProxy({
      ...SIDECAR_ENV,
      PYROSCOPE_SERVER_ADDRESS: receiver.url,
      ENABLE_TRACE_ID_LABEL: 'true',
    });
  });
  after(async () => {
    await proxy.close();
    await receiver.close();
  });

  it('forwards trace_id sample labels', async () => {
    assert.equal((await post(proxy.adminUrl, ingestQuery('app{}'), backendProfile())).status, 200);
    const [upload] = await receiver.waitForUploads(1);
    assert.ok(upload);
    const labelled = upload.samples.find((s) => s.stack[0] === 'list_products');
    assert.ok(labelled);
    assert.equal(labelled.labels.trace_id, TRACE_ID);
    assert.ok(!('customer_id' in labelled.labels));
  });
});

describe('tagging endpoint: Pyroscope down', () => {
  let proxy: ProxyUnderTest;
  before(async () => {
    // A port nothing listens on.
    const gone = await startPyroscopeReceiver();
    const url = gone.url;
    await gone.close();
    proxy = await startProxy({ ...SIDECAR_ENV, PYROSCOPE_SERVER_ADDRESS: url, PYROSCOPE_QUEUE_MAX_MB: '1' });
  });
  after(async () => {
    await proxy.close();
  });

  it('still answers 200 at once and keeps at most PYROSCOPE_QUEUE_MAX_MB queued', async () => {
    const body = gzipped(
      buildProfile({
        samples: Array.from({ length: 2000 }, (_, i) => ({
          stack: [`fn_${String(i)}`, `caller_${String(i % 7)}`],
          values: [1, i, i],
          labels: { handler: `h${String(i % 5)}` },
        })),
      }),
    );
    for (let i = 0; i < 40; i++) {
      assert.equal((await post(proxy.adminUrl, ingestQuery('app{}'), body)).status, 200);
    }
    const metrics = await metricsText(proxy.adminUrl);
    const queued = metricValue(metrics, 'spanscope_profile_queue_bytes') ?? NaN;
    assert.ok(queued > 0 && queued <= 1024 * 1024, `queued ${String(queued)} bytes`);
    assert.ok(
      (metricValue(metrics, 'spanscope_profiles_dropped_total{reason="queue_full"}') ?? 0) > 0,
      'the oldest were dropped and counted',
    );
  });
});

describe('tagging endpoint: the local store (no PYROSCOPE_SERVER_ADDRESS)', () => {
  let proxy: ProxyUnderTest;
  before(async () => {
    proxy = await startProxy({ ...SIDECAR_ENV });
  });
  after(async () => {
    await proxy.close();
  });

  it('keeps the policed, tagged profile and serves it merged at /debug/pprof', async () => {
    const now = Math.floor(Date.now() / 1000);
    const query = ingestQuery('inventory-backend{}')
      .replace('from=1700000000', `from=${String(now - 10)}`)
      .replace('until=1700000010', `until=${String(now)}`);
    assert.equal((await post(proxy.adminUrl, query, backendProfile())).status, 200);

    const response = await fetch(
      `${proxy.adminUrl}/debug/pprof?service_name=inventory-backend&span_id=${SPAN_ID}`,
    );
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('x-spanscope-samples'), '1');
    const { samples } = decodeProfile(new Uint8Array(await response.arrayBuffer()));
    assert.deepEqual(
      samples.map((s) => [s.stack, s.labels]),
      [
        [
          ['list_products', 'handler'],
          { handler: 'get_products', db_operation: 'get_products', span_id: SPAN_ID },
        ],
      ],
    );
    const byTag = await fetch(
      `${proxy.adminUrl}/debug/pprof?service_name=inventory-backend&handler=get_products`,
    );
    assert.equal(byTag.headers.get('x-spanscope-samples'), '1');
    await byTag.arrayBuffer();
  });

  it('answers an unknown filter with 400 naming it', async () => {
    const response = await fetch(`${proxy.adminUrl}/debug/pprof?customer=acme`);
    assert.equal(response.status, 400);
    const body = (await response.json()) as { error: string; parameter: string };
    assert.equal(body.parameter, 'customer');
    assert.match(body.error, /customer/);
  });
});
