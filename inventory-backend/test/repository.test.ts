// The ProductRepository contract, schema creation and sample seeding, on SQLite and PostgreSQL.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { openRepository } from '../src/db/open-repository.ts';
import type { ProductRepository } from '../src/db/repository.ts';
import { SAMPLE_PRODUCTS } from '../src/db/sample-products.ts';
import { DATABASE_KINDS, createTestDatabase } from './support/databases.ts';
import type { TestDatabase } from './support/databases.ts';

for (const kind of DATABASE_KINDS) {
  describe(`ProductRepository [${kind}]`, () => {
    let database: TestDatabase;
    let repository: ProductRepository;
    before(async () => {
      database = await createTestDatabase(kind, 'repository');
      repository = await openRepository(database.config);
    });
    after(async () => {
      await repository.close();
      await database.drop();
    });

    it('reports its engine', () => {
      assert.equal(repository.kind, kind);
    });

    it('implements create, get, update, delete, list and count', async () => {
      assert.equal(await repository.count(), 0);
      assert.deepEqual(await repository.list({ count: 10, start: 0 }), []);
      const a = await repository.create({ name: 'A', price: 11.22, quantity: 1 });
      const b = await repository.create({ name: 'B', price: 99999999.99, quantity: 2_147_483_647 });
      assert.ok(b.id > a.id);
      assert.deepEqual(await repository.get(a.id), { id: a.id, name: 'A', price: 11.22, quantity: 1 });
      assert.equal(await repository.count(), 2);
      assert.deepEqual(await repository.list({ count: 10, start: 0 }), [a, b]);
      assert.deepEqual(await repository.list({ count: 1, start: 1 }), [b]);

      const updated = await repository.update(a.id, { name: 'A2', price: 0.07, quantity: 0 });
      assert.deepEqual(updated, { id: a.id, name: 'A2', price: 0.07, quantity: 0 });
      assert.equal(await repository.update(424242, { name: 'x', price: 1, quantity: 1 }), null);
      assert.equal(await repository.get(424242), null);

      assert.equal(await repository.delete(a.id), true);
      assert.equal(await repository.delete(a.id), false);
      assert.equal(await repository.get(a.id), null);
      assert.equal(await repository.count(), 1);
    });

    it('never reuses the id of a deleted product', async () => {
      const first = await repository.create({ name: 'Temp', price: 1, quantity: 1 });
      await repository.delete(first.id);
      const second = await repository.create({ name: 'Next', price: 1, quantity: 1 });
      assert.ok(second.id > first.id);
    });

    it('treats SQL in values as plain data (parameterized queries)', async () => {
      const name = "Robert'); DROP TABLE products; --";
      const created = await repository.create({ name, price: 1, quantity: 1 });
      assert.equal((await repository.get(created.id))?.name, name);
      assert.ok((await repository.count()) > 0);
    });

    it('closes idempotently', async () => {
      const other = await openRepository(database.config);
      await other.close();
      await other.close();
    });
  });

  describe(`schema and sample data [${kind}]`, () => {
    let database: TestDatabase;
    before(async () => {
      database = await createTestDatabase(kind, 'seed');
    });
    after(async () => {
      await database.drop();
    });

    it('creates the schema idempotently and seeds the five sample products only into an empty table', async () => {
      const first = await openRepository(database.config, { seedSampleData: true });
      const seeded = await first.list({ count: 100, start: 0 });
      await first.close();
      assert.deepEqual(
        seeded.map(({ name, price, quantity }) => ({ name, price, quantity })),
        SAMPLE_PRODUCTS,
      );
      assert.deepEqual(
        seeded.map((product) => product.name),
        ['Notebook', 'Mouse', 'Teclado', 'Monitor', 'Cadeira Gamer'],
      );

      // Reopening with seeding on keeps the data as it is: the table is not empty.
      const second = await openRepository(database.config, { seedSampleData: true });
      assert.equal(await second.count(), 5);
      await second.delete(seeded[0]!.id);
      await second.close();
      const third = await openRepository(database.config, { seedSampleData: true });
      assert.equal(await third.count(), 4);
      await third.close();
    });

    it('opens concurrently without failing on the shared schema', async () => {
      const repositories = await Promise.all(
        [1, 2, 3].map(() => openRepository(database.config, { seedSampleData: true })),
      );
      for (const repository of repositories) assert.equal(await repository.count(), 4);
      await Promise.all(repositories.map((repository) => repository.close()));
    });
  });
}

describe('schema and sample data [sqlite, empty table]', () => {
  it('does not seed unless asked', async () => {
    const repository = await openRepository({ kind: 'sqlite', path: ':memory:' });
    assert.equal(await repository.count(), 0);
    await repository.close();
  });

  it('seeds an in-memory database', async () => {
    const repository = await openRepository({ kind: 'sqlite', path: ':memory:' }, { seedSampleData: true });
    assert.equal(await repository.count(), 5);
    await repository.close();
  });
});
