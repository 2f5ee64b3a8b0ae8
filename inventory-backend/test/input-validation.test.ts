// Every input rule of the API answers its documented error, on SQLite and on PostgreSQL.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { it } from 'node:test';
import type { Product } from '../src/products/product.ts';
import { describeEachDatabase } from './support/server.ts';
import type { TestServer } from './support/server.ts';

const PAYLOAD_ERROR = { error: 'invalid request payload' };
const ID_ERROR = { error: 'invalid product ID' };
const valid = { name: 'Valid', price: 10.5, quantity: 2 };

/** Asserts the response is `status` with exactly `{"error": expected}` (string or regexp). */
function assertError(
  response: { status: number; body: unknown; text: string },
  status: number,
  expected: string | RegExp,
): void {
  assert.equal(response.status, status, response.text);
  const body = response.body as Record<string, unknown>;
  assert.deepEqual(Object.keys(body), ['error'], response.text);
  if (typeof expected === 'string') assert.equal(body.error, expected);
  else assert.match(String(body.error), expected);
}

async function existingId(server: TestServer): Promise<number> {
  const created = await server.request('POST', '/product', valid);
  return (created.body as Product).id;
}

describeEachDatabase('input validation', (ctx) => {
  it('refuses a product ID that is not a positive integer with 400 "invalid product ID"', async () => {
    for (const id of ['abc', '0', '-1', '1.5', '1e3', '%201', '0x10', '99999999999', '2147483648']) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const response = await ctx.server.request(
          method,
          `/product/${id}`,
          method === 'PUT' ? valid : undefined,
        );
        assert.equal(response.status, 400, `${method} /product/${id}: ${response.text}`);
        assert.deepEqual(response.body, ID_ERROR);
      }
    }
  });

  it('checks the ID before the payload on PUT', async () => {
    assertError(await ctx.server.request('PUT', '/product/abc', '{bad json'), 400, ID_ERROR.error);
  });

  it('refuses malformed JSON, an empty body and non-objects with "invalid request payload"', async () => {
    const id = await existingId(ctx.server);
    const bodies = [
      '{bad json',
      '{"name":"x",}',
      '',
      'null',
      '[]',
      '[{"name":"x","price":1,"quantity":1}]',
      '"text"',
      '42',
      'true',
    ];
    for (const body of bodies) {
      assertError(await ctx.server.request('POST', '/product', body), 400, PAYLOAD_ERROR.error);
      assertError(await ctx.server.request('PUT', `/product/${id}`, body), 400, PAYLOAD_ERROR.error);
    }
    const noBody = await fetch(`${ctx.server.baseUrl}/product`, { method: 'POST' });
    assert.equal(noBody.status, 400);
    assert.deepEqual(await noBody.json(), PAYLOAD_ERROR);
  });

  it('parses the body as JSON whatever the Content-Type, as the reference does', async () => {
    const response = await ctx.server.request('POST', '/product', JSON.stringify(valid), {
      'content-type': 'text/plain',
    });
    assert.equal(response.status, 201, response.text);
  });

  it('answers 415 JSON to a Content-Type header that does not parse', async () => {
    const response = await ctx.server.request('POST', '/product', JSON.stringify(valid), {
      'content-type': ';;;',
    });
    assertError(response, 415, 'unsupported media type');
  });

  it('refuses unknown fields with "invalid request payload"', async () => {
    for (const extra of [{ id: 5 }, { description: 'x' }, { Name: 'x' }]) {
      const body = JSON.stringify({ ...valid, ...extra });
      assertError(await ctx.server.request('POST', '/product', body), 400, PAYLOAD_ERROR.error);
    }
    const proto = '{"name":"x","price":1,"quantity":1,"__proto__":{"admin":true}}';
    assertError(await ctx.server.request('POST', '/product', proto), 400, PAYLOAD_ERROR.error);
  });

  it('refuses a field of the wrong type with "invalid request payload"', async () => {
    const wrongTypes = [
      { ...valid, name: 42 },
      { ...valid, name: null },
      { ...valid, name: ['x'] },
      { ...valid, price: '10.50' },
      { ...valid, price: null },
      { ...valid, price: { amount: 1 } },
      { ...valid, quantity: '2' },
      { ...valid, quantity: true },
    ];
    for (const body of wrongTypes) {
      assertError(await ctx.server.request('POST', '/product', body), 400, PAYLOAD_ERROR.error);
    }
  });

  it('names a missing field', async () => {
    assertError(
      await ctx.server.request('POST', '/product', { price: 1, quantity: 1 }),
      400,
      'name is required',
    );
    assertError(
      await ctx.server.request('POST', '/product', { name: 'x', quantity: 1 }),
      400,
      'price is required',
    );
    assertError(
      await ctx.server.request('POST', '/product', { name: 'x', price: 1 }),
      400,
      'quantity is required',
    );
  });

  it('refuses an empty or blank name, or one over 255 characters, naming the field', async () => {
    for (const name of ['', '   ', '\t\n']) {
      assertError(
        await ctx.server.request('POST', '/product', { ...valid, name }),
        400,
        'name must not be empty',
      );
    }
    assertError(
      await ctx.server.request('POST', '/product', { ...valid, name: 'a'.repeat(256) }),
      400,
      'name must be at most 255 characters',
    );
    assertError(await ctx.server.request('POST', '/product', { ...valid, name: 'a\u0000b' }), 400, /^name /);
    const id = await existingId(ctx.server);
    assertError(await ctx.server.request('PUT', `/product/${id}`, { ...valid, name: ' ' }), 400, /^name /);
  });

  it('refuses a negative price, more than 2 decimals or 10^8 and above, naming the field', async () => {
    const cases: [unknown, string][] = [
      [-0.01, 'price must not be negative'],
      [-5, 'price must not be negative'],
      [11.225, 'price must have at most 2 decimal places'],
      [0.001, 'price must have at most 2 decimal places'],
      [0.30000000000000004, 'price must have at most 2 decimal places'],
      [100_000_000, 'price must be below 100000000'],
      [1e300, 'price must be below 100000000'],
    ];
    for (const [price, message] of cases) {
      assertError(await ctx.server.request('POST', '/product', { ...valid, price }), 400, message);
    }
    // JSON allows exponents: 1.5e2 is 150, a valid price.
    const exponent = await ctx.server.request('POST', '/product', '{"name":"e","price":1.5e2,"quantity":1}');
    assert.equal(exponent.status, 201, exponent.text);
    assert.equal((exponent.body as Product).price, 150);
  });

  it('refuses a quantity that is not an integer between 0 and 2^31-1, naming the field', async () => {
    for (const quantity of [-1, 1.5, 2_147_483_648, 1e20]) {
      assertError(
        await ctx.server.request('POST', '/product', { ...valid, quantity }),
        400,
        'quantity must be an integer between 0 and 2147483647',
      );
    }
  });

  it('refuses bad paging values with 400 naming the parameter', async () => {
    const cases: [string, RegExp][] = [
      ['count=0', /^count /],
      ['count=101', /^count /],
      ['count=-1', /^count /],
      ['count=abc', /^count /],
      ['count=1.5', /^count /],
      ['count=', /^count /],
      ['count=1&count=2', /^count /],
      ['start=-1', /^start /],
      ['start=abc', /^start /],
      ['start=0.5', /^start /],
      ['start=99999999999999999999', /^start /],
    ];
    for (const [query, message] of cases) {
      assertError(await ctx.server.request('GET', `/products?${query}`), 400, message);
    }
  });

  it('answers 413 to a body over 1 MiB', async () => {
    const big = JSON.stringify({ ...valid, name: 'x'.repeat(1024 * 1024) });
    assertError(await ctx.server.request('POST', '/product', big), 413, /too large/);
    const id = await existingId(ctx.server);
    assertError(await ctx.server.request('PUT', `/product/${id}`, big), 413, /too large/);
  });

  it('answers 413 to an oversized chunked body too', async () => {
    const url = new URL('/product', ctx.server.baseUrl);
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, body: text });
          });
        },
      );
      req.on('error', reject);
      const chunk = 'x'.repeat(64 * 1024);
      for (let i = 0; i < 20; i++) req.write(chunk);
      req.end();
    });
    assert.equal(status, 413);
    assert.match(body, /^\{"error":"[^"]*too large[^"]*"\}$/);
  });

  it('answers 404 JSON to an unknown route', async () => {
    for (const path of ['/', '/nope', '/products/1', '/product/1/extra', '/api/products']) {
      assertError(await ctx.server.request('GET', path), 404, 'route not found');
    }
    assertError(await ctx.server.request('POST', '/nope', valid), 404, 'route not found');
  });

  it('answers 405 with an Allow header to a wrong method on a known route', async () => {
    const cases: [string, string, string][] = [
      ['POST', '/products', 'GET, HEAD'],
      ['DELETE', '/products', 'GET, HEAD'],
      ['GET', '/product', 'POST'],
      ['PUT', '/product', 'POST'],
      ['POST', '/product/1', 'GET, HEAD, PUT, DELETE'],
      ['PATCH', '/product/1', 'GET, HEAD, PUT, DELETE'],
      ['OPTIONS', '/product/1', 'GET, HEAD, PUT, DELETE'],
      ['POST', '/health', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const response = await ctx.server.request(method, path);
      assertError(response, 405, `method ${method} not allowed`);
      assert.equal(response.headers.get('allow'), allow, `${method} ${path}`);
    }
    // The verdict does not depend on the body, however bad it is.
    const withBody = await ctx.server.request('PATCH', '/product/1', '{bad json');
    assert.equal(withBody.status, 405);
  });

  it('answers JSON errors to a malformed URL and to malformed HTTP', async () => {
    assertError(await ctx.server.request('GET', '/product/%zz'), 400, /malformed/);
    const url = new URL(ctx.server.baseUrl);
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => {
        socket.write('THIS IS NOT HTTP\r\n\r\n');
      });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('close', () => {
        resolve(text);
      });
      socket.on('error', reject);
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.ok(raw.endsWith('{"error":"bad request"}'), raw);
  });

  it('leaves the stored data untouched after refused writes', async () => {
    const id = await existingId(ctx.server);
    await ctx.server.request('PUT', `/product/${id}`, { ...valid, price: -1 });
    await ctx.server.request('PUT', `/product/${id}`, { ...valid, extra: 1 });
    assert.deepEqual((await ctx.server.request('GET', `/product/${id}`)).body, { id, ...valid });
  });
});
