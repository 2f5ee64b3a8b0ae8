// `npm run traffic` against `npm start`: its table counts what it sent, per handler and client
// category, and the proxy's own metrics saw exactly that; a proxy that is down is one clear line.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createProgress, renderBar } from '../lib/progress.ts';
import { freePort, spawnProxyProcess } from '../../proxy/test/support/proxy-process.ts';
import { startNpmStart } from './support/npm-start.ts';
import type { NpmStart } from './support/npm-start.ts';
import { runScript } from './support/run-script.ts';
import type { ScriptRun } from './support/run-script.ts';

function runTraffic(args: readonly string[]): Promise<ScriptRun> {
  return runScript('scripts/traffic.ts', args);
}

/** The table as `handler` → column → number, columns named by the header. */
function parseTable(stdout: string): Map<string, Map<string, number>> {
  const lines = stdout.split('\n');
  const headerAt = lines.findIndex((l) => l.startsWith('handler '));
  assert.ok(headerAt >= 0, `no table in:\n${stdout}`);
  const columns = (lines[headerAt] ?? '').trim().split(/\s{2,}/);
  const table = new Map<string, Map<string, number>>();
  for (const line of lines.slice(headerAt + 2)) {
    if (line.trim() === '') break;
    const [name = '', ...cells] = line.trim().split(/\s+/);
    table.set(name, new Map(cells.map((cell, i) => [columns[i + 1] ?? '?', Number(cell)])));
  }
  return table;
}

/** `spanscope_requests_total` summed per handler and user_agent, and per status class. */
async function proxyCounts(
  adminUrl: string,
): Promise<{ byPair: Map<string, number>; byStatus: Map<string, number> }> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const byPair = new Map<string, number>();
  const byStatus = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('spanscope_requests_total{')) continue;
    const labels = new Map([...line.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    const value = Number(line.slice(line.lastIndexOf(' ') + 1));
    const pair = `${labels.get('handler')}/${labels.get('user_agent')}`;
    const status = labels.get('status_class') ?? '';
    byPair.set(pair, (byPair.get(pair) ?? 0) + value);
    byStatus.set(status, (byStatus.get(status) ?? 0) + value);
  }
  return { byPair, byStatus };
}

describe('npm run traffic', () => {
  let deployment: NpmStart;

  before(async () => {
    deployment = await startNpmStart({ LOG_LEVEL: 'warn' });
  });

  after(async () => {
    await deployment.stop();
  });

  it('drives every endpoint with every client and counts what the proxy counted', async () => {
    // 132 requests: two rounds of 66, in which each of the 11 requests of a cycle meets each of
    // the 6 clients once.
    const run = await runTraffic([deployment.proxyUrl, '--requests', '132', '--concurrency', '4']);
    assert.equal(run.code, 0, `${run.stderr}\n${deployment.output()}`);

    const categories = ['curl', 'browser', 'postman', 'python-client', 'load-test', 'bot'];
    const perCategory: Record<string, number> = {
      get_products: 6,
      create_product: 2,
      get_product: 6,
      update_product: 2,
      delete_product: 2,
      health: 2,
      unmatched: 2,
    };
    const table = parseTable(run.stdout);
    assert.deepEqual([...table.keys()], [...Object.keys(perCategory), 'total']);
    for (const [handler, count] of Object.entries(perCategory)) {
      const row = table.get(handler)!;
      for (const category of categories) assert.equal(row.get(category), count, `${handler}/${category}`);
      assert.equal(row.get('total'), count * 6, handler);
      assert.equal(row.get('unexpected status'), 0, handler);
    }
    assert.equal(table.get('total')?.get('total'), 132);

    const { byPair, byStatus } = await proxyCounts(deployment.adminUrl);
    for (const [handler, row] of table) {
      if (handler === 'total') continue;
      for (const category of categories) {
        assert.equal(
          byPair.get(`${handler}/${category}`) ?? 0,
          row.get(category),
          `proxy's ${handler}/${category}`,
        );
      }
    }
    assert.equal(
      [...byPair.values()].reduce((a, b) => a + b, 0),
      132,
      'the proxy saw nothing else',
    );
    assert.deepEqual(Object.fromEntries(byStatus), { '2xx': 120, '4xx': 12 });

    const traces = [...run.stdout.matchAll(/^ {2}(\w+) +([0-9a-f]{32}) /gm)].map((m) => m[1]);
    assert.deepEqual(traces, Object.keys(perCategory), 'one trace id per handler');
    // Not a terminal: progress comes as plain lines, never carriage returns.
    assert.match(run.stderr, /^traffic 100% {2}132 requests/m);
    assert.doesNotMatch(run.stderr, /\r/);
  });

  it('leaves the products as it found them', async () => {
    const products = (await (await fetch(`${deployment.backendUrl}/products`)).json()) as { name: string }[];
    assert.deepEqual(
      products.map((p) => p.name),
      ['Notebook', 'Mouse', 'Teclado', 'Monitor', 'Cadeira Gamer'],
    );
  });

  it('stops after --duration, and deletes the products of a cycle it cut short', async () => {
    const run = await runTraffic([deployment.proxyUrl, '--duration', '0.5', '--concurrency', '3']);
    assert.equal(run.code, 0, run.stderr);
    const total = parseTable(run.stdout).get('total')?.get('total') ?? 0;
    assert.ok(total > 0, run.stdout);
    const products = (await (await fetch(`${deployment.backendUrl}/products`)).json()) as unknown[];
    assert.equal(products.length, 5);
  });
});

describe('npm run traffic against a broken deployment', () => {
  it('says so in one line and exits 1', async () => {
    const url = `http://127.0.0.1:${await freePort()}`;
    const run = await runTraffic([url, '--requests', '10']);
    assert.equal(run.code, 1);
    assert.equal(run.stdout, '');
    assert.equal(
      run.stderr,
      `traffic: cannot reach ${url}/products: connection refused (ECONNREFUSED). Is the proxy running (npm start)?\n`,
    );
  });

  it('reports the 502s of a proxy whose backend is down, and exits 1', async () => {
    // Not ready (its backend is down), so started by hand and waited for on /healthz.
    const [port, adminPort] = [await freePort(), await freePort()];
    const proxy = spawnProxyProcess({
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_PORT: String(adminPort),
      BACKEND_URL: `http://127.0.0.1:${await freePort()}`,
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      ACCESS_LOG: 'false',
      LOG_LEVEL: 'warn',
    });
    try {
      for (;;) {
        const up = await fetch(`http://127.0.0.1:${adminPort}/healthz`).then(
          (r) => r.ok,
          () => false,
        );
        if (up) break;
        assert.equal(proxy.child.exitCode, null, proxy.stderr());
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const run = await runTraffic([`http://127.0.0.1:${port}`, '--requests', '11', '--concurrency', '2']);
      assert.equal(run.code, 1);
      assert.equal(parseTable(run.stdout).get('total')?.get('unexpected status'), 11);
      assert.match(
        run.stderr,
        /^traffic: 11 of 11 responses had an unexpected status \(11 × 502\); first: GET \/products → 502, expected 200$/m,
      );
    } finally {
      proxy.child.kill('SIGTERM');
      await proxy.exited;
    }
  });

  it('refuses a bad flag with the usage and exit 2', async () => {
    const run = await runTraffic(['--concurrency', 'many']);
    assert.equal(run.code, 2);
    assert.match(
      run.stderr,
      /^traffic: --concurrency must be a positive integer, got "many"\n\nusage: npm run traffic/,
    );
  });
});

describe('progress', () => {
  it('draws a bar in place on a terminal', () => {
    assert.equal(renderBar(0.5, 10), '[█████░░░░░]  50%');
    assert.equal(renderBar(2, 4), '[████] 100%');
    const writes: string[] = [];
    const progress = createProgress(
      { isTTY: true, columns: 80, write: (t) => writes.push(t) > 0 },
      'traffic',
    );
    progress.update(1, '10 requests');
    progress.finish();
    const ESC = '\u001b';
    assert.equal(writes[0], `\rtraffic ${renderBar(1)}  10 requests${ESC}[K`);
    assert.equal(writes[1], `\r${ESC}[K`);
  });
});
