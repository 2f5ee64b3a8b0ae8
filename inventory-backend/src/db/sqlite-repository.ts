// ProductRepository on SQLite through the built-in node:sqlite (no native addon). Prices are stored
// as integer cents so they stay exact; conversion happens only here, at the boundary.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { StatementSync } from 'node:sqlite';
import { SQLITE_MEMORY } from '../config.ts';
import { DatabaseError, DatabaseUnavailableError, InventoryError, oneLineMessage } from '../errors.ts';
import { centsToPrice, priceToCents } from '../products/product.ts';
import type { Product, ProductInput, ProductPage } from '../products/product.ts';
import type {
  DatabaseDescription,
  OpenRepositoryOptions,
  ProductRepository,
  QueryDescription,
  RepositoryMethod,
} from './repository.ts';
import { SAMPLE_PRODUCTS } from './sample-products.ts';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS products (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT    NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
  price_cents INTEGER NOT NULL CHECK (price_cents >= 0 AND price_cents < 10000000000),
  quantity    INTEGER NOT NULL CHECK (quantity >= 0 AND quantity <= 2147483647)
)`;

const COLUMNS = 'id, name, price_cents, quantity';

/** The statement of each repository method: prepared once, and recorded as `db.query.text`. */
const QUERIES = {
  list: { operation: 'SELECT', text: `SELECT ${COLUMNS} FROM products ORDER BY id LIMIT ? OFFSET ?` },
  get: { operation: 'SELECT', text: `SELECT ${COLUMNS} FROM products WHERE id = ?` },
  create: {
    operation: 'INSERT',
    text: `INSERT INTO products (name, price_cents, quantity) VALUES (?, ?, ?) RETURNING ${COLUMNS}`,
  },
  update: {
    operation: 'UPDATE',
    text: `UPDATE products SET name = ?, price_cents = ?, quantity = ? WHERE id = ? RETURNING ${COLUMNS}`,
  },
  delete: { operation: 'DELETE', text: 'DELETE FROM products WHERE id = ?' },
  count: { operation: 'SELECT', text: 'SELECT COUNT(*) AS count FROM products' },
} as const satisfies Record<RepositoryMethod, QueryDescription>;

interface ProductRow {
  id: number;
  name: string;
  price_cents: number;
  quantity: number;
}

function toProduct(row: unknown): Product {
  const { id, name, price_cents, quantity } = row as ProductRow;
  return { id, name, price: centsToPrice(price_cents), quantity };
}

// Primary SQLite result codes meaning "the database cannot be used right now".
const UNAVAILABLE_SQLITE_CODES = new Set([5 /* BUSY */, 6 /* LOCKED */, 10 /* IOERR */, 14 /* CANTOPEN */]);

function translateError(error: unknown, action: string): InventoryError {
  if (error instanceof InventoryError) return error;
  const { code, errcode } = error as { code?: unknown; errcode?: unknown };
  const message = `SQLite ${action} failed: ${oneLineMessage(error)}`;
  const unavailable =
    code === 'ERR_INVALID_STATE' ||
    (typeof errcode === 'number' && UNAVAILABLE_SQLITE_CODES.has(errcode & 0xff));
  return unavailable
    ? new DatabaseUnavailableError(message, { cause: error })
    : new DatabaseError(message, { cause: error });
}

export class SqliteProductRepository implements ProductRepository {
  readonly kind = 'sqlite';
  readonly description: DatabaseDescription;
  readonly #db: DatabaseSync;
  readonly #statements: {
    list: StatementSync;
    get: StatementSync;
    create: StatementSync;
    update: StatementSync;
    delete: StatementSync;
    count: StatementSync;
  };

  /** Use openSqliteRepository(): it also creates the schema and seeds. */
  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#statements = {
      list: db.prepare(QUERIES.list.text),
      get: db.prepare(QUERIES.get.text),
      create: db.prepare(QUERIES.create.text),
      update: db.prepare(QUERIES.update.text),
      delete: db.prepare(QUERIES.delete.text),
      count: db.prepare(QUERIES.count.text),
    };
    // The file is the database; an in-memory one has no name worth recording.
    const file = db.location();
    this.description = Object.freeze({
      system: 'sqlite',
      namespace: file === null || file === '' ? undefined : file,
      queries: QUERIES,
    });
  }

  list(page: ProductPage): Promise<Product[]> {
    return this.#run('list products', () =>
      this.#statements.list.all(BigInt(page.count), BigInt(page.start)).map(toProduct),
    );
  }

  get(id: number): Promise<Product | null> {
    return this.#run('get product', () => {
      const row = this.#statements.get.get(BigInt(id));
      return row === undefined ? null : toProduct(row);
    });
  }

  create(input: ProductInput): Promise<Product> {
    return this.#run('create product', () =>
      toProduct(this.#statements.create.get(input.name, BigInt(priceToCents(input.price)), input.quantity)),
    );
  }

  update(id: number, input: ProductInput): Promise<Product | null> {
    return this.#run('update product', () => {
      const row = this.#statements.update.get(
        input.name,
        BigInt(priceToCents(input.price)),
        input.quantity,
        BigInt(id),
      );
      return row === undefined ? null : toProduct(row);
    });
  }

  delete(id: number): Promise<boolean> {
    return this.#run('delete product', () => Number(this.#statements.delete.run(BigInt(id)).changes) > 0);
  }

  count(): Promise<number> {
    return this.#run('count products', () => {
      const row = this.#statements.count.get() as { count: number } | undefined;
      return row?.count ?? 0;
    });
  }

  close(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
    return Promise.resolve();
  }

  /** Runs one synchronous SQLite call, turning its failure into a typed error. */
  #run<T>(action: string, call: () => T): Promise<T> {
    try {
      return Promise.resolve(call());
    } catch (error) {
      return Promise.reject(translateError(error, action));
    }
  }
}

function createSchema(db: DatabaseSync, seedSampleData: boolean): void {
  db.exec(SCHEMA);
  if (!seedSampleData) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    const { count } = db.prepare('SELECT COUNT(*) AS count FROM products').get() as { count: number };
    if (count === 0) {
      const insert = db.prepare('INSERT INTO products (name, price_cents, quantity) VALUES (?, ?, ?)');
      for (const product of SAMPLE_PRODUCTS) {
        insert.run(product.name, BigInt(priceToCents(product.price)), product.quantity);
      }
    }
    db.exec('COMMIT');
  } catch (error) {
    db.exec('ROLLBACK');
    throw error;
  }
}

/**
 * Opens (creating the file and its folder when needed) the SQLite database at `location` — an
 * absolute path or ':memory:' — creates the schema idempotently and seeds on request.
 */
export function openSqliteRepository(
  location: string,
  options: OpenRepositoryOptions = {},
): Promise<SqliteProductRepository> {
  let db: DatabaseSync | undefined;
  try {
    if (location !== SQLITE_MEMORY) mkdirSync(path.dirname(location), { recursive: true });
    db = new DatabaseSync(location);
    db.exec('PRAGMA busy_timeout = 5000');
    if (location !== SQLITE_MEMORY) db.exec('PRAGMA journal_mode = WAL');
    createSchema(db, options.seedSampleData ?? false);
    return Promise.resolve(new SqliteProductRepository(db));
  } catch (error) {
    if (db?.isOpen === true) db.close();
    return Promise.reject(
      new DatabaseUnavailableError(`cannot open SQLite database ${location}: ${oneLineMessage(error)}`, {
        cause: error,
      }),
    );
  }
}
