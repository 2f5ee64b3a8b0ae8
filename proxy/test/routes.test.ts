import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RoutesFileError } from '../src/errors.ts';
import { INVENTORY_ROUTES, createRouteTable, loadRouteTable } from '../src/routes.ts';
import { echoBackendBehindProxy } from './support/start-proxy.ts';

describe('route table: the inventory API by default', () => {
  const table = createRouteTable(INVENTORY_ROUTES);
  const cases: [string, string, string, string][] = [
    ['GET', '/products', 'get_products', '/products'],
    ['GET', '/products?count=10&start=0', 'get_products', '/products'],
    ['POST', '/product', 'create_product', '/product'],
    ['GET', '/product/1', 'get_product', '/product/{id}'],
    ['GET', '/product/987654', 'get_product', '/product/{id}'],
    ['PUT', '/product/42', 'update_product', '/product/{id}'],
    ['DELETE', '/product/42', 'delete_product', '/product/{id}'],
    ['GET', '/health', 'health', '/health'],
    ['GET', '/products/', 'get_products', '/products'],
    ['DELETE', '/products', 'unmatched', 'unmatched'],
    ['GET', '/product', 'unmatched', 'unmatched'],
    ['GET', '/product/1/extra', 'unmatched', 'unmatched'],
    ['GET', '/product//', 'unmatched', 'unmatched'],
    ['GET', '/wp-admin/install.php', 'unmatched', 'unmatched'],
    ['BREW', '/products', 'unmatched', 'unmatched'],
  ];
  for (const [method, path, handler, route] of cases) {
    it(`${method} ${path} → ${handler} ${route}`, () => {
      const match = table.match(method, path);
      assert.equal(match.handler, handler);
      assert.equal(match.route, route);
      assert.equal(match.matched, handler !== 'unmatched');
    });
  }

  it('maps a scan of 10,000 random paths onto the single unmatched value', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 10_000; i++) {
      const m = table.match('GET', `/${Math.random().toString(36).slice(2)}/${i}`);
      seen.add(`${m.handler} ${m.route}`);
    }
    assert.deepEqual([...seen], ['unmatched unmatched']);
  });
});

describe('ROUTES_FILE', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'spanscope-routes-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const write = (name: string, content: string) => {
    const file = join(dir, name);
    writeFileSync(file, content);
    return file;
  };

  it('loads a route table for another service, templates and the * method included', () => {
    const table = loadRouteTable(
      write(
        'ok.json',
        JSON.stringify([
          { method: 'get', path: '/orders/{orderId}/items/{itemId}', handler: 'get_order_item' },
          { method: '*', path: '/admin/{anything}', handler: 'admin' },
          { method: 'POST', path: '/orders', handler: 'create_order' },
        ]),
      ),
    );
    assert.deepEqual(table.match('GET', '/orders/7/items/9'), {
      handler: 'get_order_item',
      route: '/orders/{orderId}/items/{itemId}',
      matched: true,
    });
    assert.equal(table.match('PATCH', '/admin/x').handler, 'admin');
    assert.equal(table.match('POST', '/orders').handler, 'create_order');
    assert.equal(table.match('GET', '/products').handler, 'unmatched', 'the inventory defaults are replaced');
  });

  const bad: [string, string, RegExp][] = [
    ['not JSON', '{nope', /ROUTES_FILE=".*bad-0\.json" is invalid: cannot read it as JSON/],
    [
      'a handler that is no label name',
      JSON.stringify([{ method: 'GET', path: '/a', handler: 'get-a' }]),
      /handler must match/,
    ],
    [
      'a path without a leading slash',
      JSON.stringify([{ method: 'GET', path: 'a', handler: 'a' }]),
      /path must start with \//,
    ],
    ['an unknown field', JSON.stringify([{ method: 'GET', path: '/a', handler: 'a', extra: 1 }]), /entry 0/],
    ['not an array', JSON.stringify({ method: 'GET' }), /is invalid/],
  ];
  bad.forEach(([what, content, message], i) => {
    it(`rejects ${what} with a typed error naming the file`, () => {
      const file = write(`bad-${i}.json`, content);
      assert.throws(
        () => loadRouteTable(file),
        (error: unknown) =>
          error instanceof RoutesFileError &&
          error.code === 'SPANSCOPE_ERR_ROUTES_FILE' &&
          message.test(error.message),
      );
    });
  });

  it('rejects a missing file', () => {
    assert.throws(() => loadRouteTable(join(dir, 'missing.json')), RoutesFileError);
  });
});

describe('route names on real traffic', () => {
  const setup = echoBackendBehindProxy();

  it('names spans, metrics and log lines by template, never by raw path', async () => {
    for (const path of ['/product/1', '/product/2', '/nope/123']) {
      const res = await fetch(`${setup.proxy.url}${path}`);
      await res.arrayBuffer();
    }
    const names = setup.proxy.exporter.getFinishedSpans().map((s) => s.name);
    assert.deepEqual(names, ['GET /product/{id}', 'GET /product/{id}', 'GET']);
    const metrics = await (await fetch(`${setup.proxy.adminUrl}/metrics`)).text();
    assert.match(
      metrics,
      /spanscope_requests_total\{handler="get_product",method="GET",status_class="2xx",user_agent="node-client"\} 2/,
    );
    assert.match(
      metrics,
      /spanscope_requests_total\{handler="unmatched",method="GET",status_class="2xx",user_agent="node-client"\} 1/,
    );
    assert.doesNotMatch(metrics, /product\/1|nope/);
  });
});
