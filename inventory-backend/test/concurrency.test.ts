// 200 concurrent creates over real HTTP produce 200 distinct ids, on SQLite and on PostgreSQL.
import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { Product } from '../src/products/product.ts';
import { describeEachDatabase } from './support/server.ts';

describeEachDatabase('concurrent writes', (ctx) => {
  it('gives 200 concurrent creates 200 distinct ids, all stored', async () => {
    const responses = await Promise.all(
      Array.from({ length: 200 }, (_, i) =>
        ctx.server.request('POST', '/product', { name: `Concurrent ${i}`, price: i + 0.99, quantity: i }),
      ),
    );
    for (const response of responses) assert.equal(response.status, 201, response.text);
    const products = responses.map((response) => response.body as Product);
    const ids = new Set(products.map((product) => product.id));
    assert.equal(ids.size, 200);
    products.forEach((product, i) => {
      assert.deepEqual(product, { id: product.id, name: `Concurrent ${i}`, price: i + 0.99, quantity: i });
    });

    assert.equal(await ctx.server.repository.count(), 200);
    const stored: Product[] = [];
    for (let start = 0; start < 200; start += 100) {
      const page = await ctx.server.request('GET', `/products?count=100&start=${start}`);
      stored.push(...(page.body as Product[]));
    }
    assert.deepEqual(
      stored.map((product) => product.id),
      [...ids].sort((a, b) => a - b),
    );
  });

  it('serves concurrent reads and writes on one product consistently', async () => {
    const created = await ctx.server.request('POST', '/product', { name: 'Shared', price: 1, quantity: 0 });
    const { id } = created.body as Product;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        i % 2 === 0
          ? ctx.server.request('PUT', `/product/${id}`, { name: 'Shared', price: 1, quantity: i })
          : ctx.server.request('GET', `/product/${id}`),
      ),
    );
    for (const result of results) assert.equal(result.status, 200, result.text);
  });
});
