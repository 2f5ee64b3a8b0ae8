// The README's walkthrough "From a trace id to a flamegraph, with no server", run as written:
// `npm start` with no Pyroscope (the local profile store), requests through the proxy, the trace
// id from `traceresponse`, and the admin port's /debug/pprof exports decoded as `go tool pprof`
// would read them: both processes' samples, filtered by handler, by span and by trace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProfile } from '../../proxy/test/support/pyroscope-receiver.ts';
import type { DecodedSample } from '../../proxy/test/support/pyroscope-receiver.ts';
import { startNpmStart } from './support/npm-start.ts';
import type { NpmStart } from './support/npm-start.ts';

const TRACERESPONSE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-0[01]$/;

async function exportOf(
  adminUrl: string,
  query: string,
): Promise<{ status: number; count: string | null; samples: DecodedSample[] }> {
  const response = await fetch(`${adminUrl}/debug/pprof?${query}`);
  const body = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) return { status: response.status, count: null, samples: [] };
  return {
    status: response.status,
    count: response.headers.get('x-spanscope-samples'),
    samples: decodeProfile(body).samples,
  };
}

describe('README walkthrough: trace id to flamegraph with the local profile store', () => {
  let app: NpmStart;
  /** trace id → the proxy's span id, from each response's traceresponse. */
  const traces = new Map<string, string>();

  /** Six clients for `ms`, then one upload period plus one for the backend's push to reach the sidecar. */
  async function drive(ms: number): Promise<void> {
    const until = Date.now() + ms;
    await Promise.all(
      Array.from({ length: 6 }, async (_, i) => {
        while (Date.now() < until) {
          const response = await fetch(`${app.proxyUrl}/${i % 2 === 0 ? 'products' : 'product/1'}`, {
            headers: { 'user-agent': 'curl/8.5.0' },
          });
          await response.arrayBuffer();
          const match = TRACERESPONSE.exec(response.headers.get('traceresponse') ?? '');
          if (match?.[1] !== undefined && match[2] !== undefined) traces.set(match[1], match[2]);
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 2500));
  }

  before(async () => {
    // As in the README: trace_id labels are safe in the local store (no series limit to exhaust).
    app = await startNpmStart({ PYROSCOPE_UPLOAD_RATE: '1', ENABLE_TRACE_ID_LABEL: 'true' });
    await drive(4000);
  });

  after(async () => {
    await app.stop();
  });

  it('returns the trace id to the client in traceresponse', () => {
    assert.ok(traces.size > 100, `${String(traces.size)} traced requests`);
  });

  it("serves both processes' profiles by handler, with the backend's database calls", async () => {
    const backend = await exportOf(app.adminUrl, 'service_name=inventory-backend&handler=get_products');
    assert.equal(backend.status, 200, app.output());
    assert.ok(backend.samples.length > 0, 'backend samples for get_products');
    assert.equal(backend.count, String(backend.samples.length));
    for (const sample of backend.samples) assert.equal(sample.labels.handler, 'get_products');
    assert.ok(
      backend.samples.some(
        (s) => s.labels.db_operation === 'get_products' && s.labels.component === 'database',
      ),
      'inside the database call',
    );
    const proxy = await exportOf(app.adminUrl, 'service_name=spanscope-proxy&user_agent=curl');
    assert.ok(proxy.samples.length > 0, 'proxy samples for curl clients');
    for (const sample of proxy.samples) assert.equal(sample.labels.user_agent, 'curl');
  });

  it("finds a request's own samples by the span id and the trace id of its traceresponse", async () => {
    // Sampling is every 10 ms: most requests are shorter and have no samples; some must. Every
    // sample is read once to find those requests (asking trace by trace found none in a few
    // hundred on a loaded machine), then each is asked for by its id, as the README does.
    const proxyAll = await exportOf(app.adminUrl, 'service_name=spanscope-proxy');
    const proxySpanIds = new Set(traces.values());
    const spanId = proxyAll.samples
      .map((sample) => sample.labels.span_id)
      .find((id) => id !== undefined && proxySpanIds.has(id));
    assert.ok(spanId !== undefined, "some request's proxy span id names samples");
    const span = await exportOf(app.adminUrl, `span_id=${spanId}`);
    assert.ok(span.samples.length > 0, `samples for span_id=${spanId}`);
    for (const sample of span.samples) assert.equal(sample.labels.span_id, spanId);

    // Both processes must have sampled the same request, which takes a few hundred requests on
    // a quiet machine and more on a loaded one: more traffic, up to three times, until one has.
    const inBoth = async (): Promise<string | undefined> => {
      const inProxy = new Set(
        (await exportOf(app.adminUrl, 'service_name=spanscope-proxy')).samples.map((s) => s.labels.trace_id),
      );
      return (await exportOf(app.adminUrl, 'service_name=inventory-backend')).samples
        .map((sample) => sample.labels.trace_id)
        .find((id) => id !== undefined && traces.has(id) && inProxy.has(id));
    };
    let traceId = await inBoth();
    for (let round = 0; traceId === undefined && round < 3; round++) {
      await drive(2000);
      traceId = await inBoth();
    }
    assert.ok(traceId !== undefined, 'some trace id names samples in both processes');
    const proxy = await exportOf(app.adminUrl, `service_name=spanscope-proxy&trace_id=${traceId}`);
    const backend = await exportOf(app.adminUrl, `service_name=inventory-backend&trace_id=${traceId}`);
    assert.ok(proxy.samples.length > 0, `proxy samples for trace_id=${traceId}`);
    assert.ok(backend.samples.length > 0, `backend samples for trace_id=${traceId}`);
    for (const sample of [...proxy.samples, ...backend.samples])
      assert.equal(sample.labels.trace_id, traceId);
  });

  it('refuses an unknown filter with 400', async () => {
    const answer = await exportOf(app.adminUrl, 'customer_id=1');
    assert.equal(answer.status, 400);
  });
});
