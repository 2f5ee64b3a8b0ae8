// Every route's success path over real HTTP, on SQLite and on PostgreSQL.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Product } from '../src/products/product.ts';
import { describeEachDatabase } from './support/server.ts';

describeEachDatabase('products API', (ctx) => {
  it('creates, reads, updates and deletes a product (round trip)', async () => {
    const created = await ctx.server.request('POST', '/product', {
      name: 'Webcam',
      price: 199.9,
      quantity: 7,
    });
    assert.equal(created.status, 201);
    assert.match(created.headers.get('content-type') ?? '', /^application\/json/);
    const product = created.body as Product;
    assert.ok(Number.isInteger(product.id) && product.id > 0);
    assert.deepEqual(product, { id: product.id, name: 'Webcam', price: 199.9, quantity: 7 });

    const read = await ctx.server.request('GET', `/product/${product.id}`);
    assert.equal(read.status, 200);
    assert.deepEqual(read.body, product);

    const updated = await ctx.server.request('PUT', `/product/${product.id}`, {
      name: 'Webcam HD',
      price: 249.5,
      quantity: 3,
    });
    assert.equal(updated.status, 200);
    assert.deepEqual(updated.body, { id: product.id, name: 'Webcam HD', price: 249.5, quantity: 3 });
    assert.deepEqual((await ctx.server.request('GET', `/product/${product.id}`)).body, updated.body);

    const deleted = await ctx.server.request('DELETE', `/product/${product.id}`);
    assert.equal(deleted.status, 200);
    assert.deepEqual(deleted.body, { result: 'success', message: `Product with ID ${product.id} deleted` });

    const gone = await ctx.server.request('GET', `/product/${product.id}`);
    assert.equal(gone.status, 404);
    assert.deepEqual(gone.body, { error: `product with ID ${product.id} not found` });
  });

  it('answers 404 with the product ID for a missing product on GET, PUT and DELETE', async () => {
    const missing = 987654;
    const expected = { error: `product with ID ${missing} not found` };
    const get = await ctx.server.request('GET', `/product/${missing}`);
    const put = await ctx.server.request('PUT', `/product/${missing}`, { name: 'x', price: 1, quantity: 1 });
    const del = await ctx.server.request('DELETE', `/product/${missing}`);
    for (const response of [get, put, del]) {
      assert.equal(response.status, 404);
      assert.deepEqual(response.body, expected);
    }
  });

  it('round-trips prices exactly, including 11.22 and the extremes of NUMERIC(10,2)', async () => {
    for (const price of [11.22, 0, 0.01, 0.1, 0.29, 1.15, 4.35, 1099.99, 99999999.99]) {
      const created = await ctx.server.request('POST', '/product', {
        name: `Price ${price}`,
        price,
        quantity: 1,
      });
      assert.equal(created.status, 201, created.text);
      const { id } = created.body as Product;
      assert.equal((created.body as Product).price, price);
      const read = await ctx.server.request('GET', `/product/${id}`);
      assert.equal((read.body as Product).price, price, `price ${price} read back`);
      assert.ok(read.text.includes(`"price":${JSON.stringify(price)}`), read.text);
    }
  });

  it('stores the name trimmed and accepts the limits: 255 characters, quantity 2^31-1, price 0', async () => {
    const name = 'ç'.repeat(254) + '🙂'; // 255 code points
    const created = await ctx.server.request('POST', '/product', {
      name: `  ${name}\t`,
      price: 0,
      quantity: 2_147_483_647,
    });
    assert.equal(created.status, 201, created.text);
    const product = created.body as Product;
    assert.equal(product.name, name);
    assert.equal(product.quantity, 2_147_483_647);
    assert.deepEqual((await ctx.server.request('GET', `/product/${product.id}`)).body, product);
  });

  it('lists products ordered by id and pages with count and start', async () => {
    const ids: number[] = [];
    for (const n of [1, 2, 3, 4, 5]) {
      const created = await ctx.server.request('POST', '/product', {
        name: `Page ${n}`,
        price: n,
        quantity: n,
      });
      ids.push((created.body as Product).id);
    }
    const all = await ctx.server.request('GET', '/products');
    assert.equal(all.status, 200);
    const list = all.body as Product[];
    assert.ok(Array.isArray(list));
    const listedIds = list.map((p) => p.id);
    assert.deepEqual(
      listedIds,
      [...listedIds].sort((a, b) => a - b),
    );
    for (const id of ids) assert.ok(listedIds.includes(id));

    const firstId = listedIds[0]!;
    const startAtSecond = listedIds.indexOf(ids[1]!);
    const page = await ctx.server.request('GET', `/products?count=2&start=${startAtSecond}`);
    assert.equal(page.status, 200);
    assert.deepEqual(
      (page.body as Product[]).map((p) => p.id),
      [ids[1], ids[2]],
    );
    const first = await ctx.server.request('GET', '/products?count=1');
    assert.deepEqual(
      (first.body as Product[]).map((p) => p.id),
      [firstId],
    );
    const beyond = await ctx.server.request('GET', '/products?start=100000');
    assert.equal(beyond.status, 200);
    assert.deepEqual(beyond.body, []);
    const trailingSlash = await ctx.server.request('GET', '/products/?count=1');
    assert.equal(trailingSlash.status, 200);
  });

  it('returns at most 100 products by default and with count=100', async () => {
    const existing = (await ctx.server.request('GET', '/products')).body as Product[];
    const missing = 105 - existing.length;
    await Promise.all(
      Array.from({ length: Math.max(0, missing) }, (_, i) =>
        ctx.server.request('POST', '/product', { name: `Bulk ${i}`, price: 1, quantity: 1 }),
      ),
    );
    const byDefault = await ctx.server.request('GET', '/products');
    assert.equal((byDefault.body as Product[]).length, 100);
    const explicit = await ctx.server.request('GET', '/products?count=100&start=0');
    assert.deepEqual(explicit.body, byDefault.body);
    const rest = await ctx.server.request('GET', '/products?start=100');
    assert.ok((rest.body as Product[]).length >= 5);
  });

  it('answers GET /health with the database connected', async () => {
    const health = await ctx.server.request('GET', '/health');
    assert.equal(health.status, 200);
    assert.deepEqual(health.body, { status: 'ok', database: 'connected' });
  });

  it('answers HEAD on GET routes without a body', async () => {
    const head = await fetch(`${ctx.server.baseUrl}/health`, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), '');
  });
});
