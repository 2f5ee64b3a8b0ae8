// ProductRepository on PostgreSQL through a pg Pool. Prices are NUMERIC(10,2): they travel as
// decimal text both ways, so they stay exact.
import pg from 'pg';
import type { QueryResultRow } from 'pg';
import { redactUrl } from '../config.ts';
import { DatabaseError, DatabaseUnavailableError, InventoryError, oneLineMessage } from '../errors.ts';
import { runOutsideRequests } from '../telemetry/request-context.ts';
import { decimalTextToPrice, priceToDecimalText } from '../products/product.ts';
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
  id       SERIAL PRIMARY KEY,
  name     VARCHAR(255)  NOT NULL CHECK (length(name) >= 1),
  price    NUMERIC(10,2) NOT NULL CHECK (price >= 0),
  quantity INTEGER       NOT NULL CHECK (quantity >= 0)
)`;

/** Serialises concurrent schema creation/seeding by several instances on one database. */
const SCHEMA_LOCK_KEY = 727_001;

const COLUMNS = 'id, name, price, quantity';

/** The statement of each repository method: sent as is, and recorded as `db.query.text`. */
const QUERIES = {
  list: { operation: 'SELECT', text: `SELECT ${COLUMNS} FROM products ORDER BY id LIMIT $1 OFFSET $2` },
  get: { operation: 'SELECT', text: `SELECT ${COLUMNS} FROM products WHERE id = $1` },
  create: {
    operation: 'INSERT',
    text: `INSERT INTO products (name, price, quantity) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`,
  },
  update: {
    operation: 'UPDATE',
    text: `UPDATE products SET name = $1, price = $2, quantity = $3 WHERE id = $4 RETURNING ${COLUMNS}`,
  },
  delete: { operation: 'DELETE', text: 'DELETE FROM products WHERE id = $1 RETURNING id' },
  count: { operation: 'SELECT', text: 'SELECT COUNT(*) AS count FROM products' },
} as const satisfies Record<RepositoryMethod, QueryDescription>;

const DEFAULT_POSTGRES_PORT = 5432;

/** Where the pool connects, from its connection string (never the user or password). */
function describeConnection(
  pool: pg.Pool,
  names: { database?: string | undefined; schema?: string | undefined },
): DatabaseDescription {
  const options = pool.options as {
    connectionString?: string;
    host?: string;
    port?: number;
    database?: string;
  };
  let host = options.host;
  let port = options.port;
  let database = names.database ?? options.database;
  if (options.connectionString !== undefined && URL.canParse(options.connectionString)) {
    const url = new URL(options.connectionString);
    if (url.hostname !== '') host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (url.port !== '') port = Number(url.port);
    const path = decodeURIComponent(url.pathname.slice(1));
    if (names.database === undefined && path !== '') database = path;
  }
  const isSocket = host?.startsWith('/') ?? false;
  return Object.freeze({
    system: 'postgresql',
    // PostgreSQL semantic conventions: the connection's schema, qualified by the database name.
    namespace:
      database === undefined
        ? undefined
        : names.schema === undefined
          ? database
          : `${database}.${names.schema}`,
    serverAddress: isSocket ? undefined : host,
    serverPort: isSocket || host === undefined ? undefined : (port ?? DEFAULT_POSTGRES_PORT),
    queries: QUERIES,
  });
}

interface ProductRow extends QueryResultRow {
  id: number;
  name: string;
  price: string;
  quantity: number;
}

function toProduct(row: ProductRow): Product {
  return { id: row.id, name: row.name, price: decimalTextToPrice(row.price), quantity: row.quantity };
}

const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EPIPE',
]);

/** True for failures meaning the server cannot be reached or used, as opposed to a bad query. */
function isUnavailable(error: unknown): boolean {
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (typeof code === 'string') {
    if (UNAVAILABLE_NODE_CODES.has(code)) return true;
    // SQLSTATE 08 connection exception, 57P0x shutdown/cannot connect now, 53300 too many connections,
    // 3D000 database does not exist, 28xxx authentication.
    if (/^(08|57P0|28)/.test(code) || code === '53300' || code === '3D000') return true;
  }
  return (
    typeof message === 'string' &&
    /Connection terminated|timeout exceeded when trying to connect|Cannot use a pool after calling end|Client has encountered a connection error/i.test(
      message,
    )
  );
}

function translateError(error: unknown, action: string): InventoryError {
  if (error instanceof InventoryError) return error;
  const message = `PostgreSQL ${action} failed: ${oneLineMessage(error)}`;
  return isUnavailable(error)
    ? new DatabaseUnavailableError(message, { cause: error })
    : new DatabaseError(message, { cause: error });
}

export interface PostgresRepositoryOptions extends OpenRepositoryOptions {
  /** Called with errors of idle pooled connections (the pool must not crash the process). */
  readonly onPoolError?: (error: Error) => void;
}

/** The database and schema a session of the pool works in, read once at start-up. */
export interface PostgresNames {
  readonly database?: string | undefined;
  readonly schema?: string | undefined;
}

export class PostgresProductRepository implements ProductRepository {
  readonly kind = 'postgres';
  readonly description: DatabaseDescription;
  readonly #pool: pg.Pool;
  #closed: Promise<void> | undefined;

  /** Use openPostgresRepository(): it also checks the connection, creates the schema and seeds. */
  constructor(pool: pg.Pool, names: PostgresNames = {}) {
    this.#pool = pool;
    this.description = describeConnection(pool, names);
  }

  async list(page: ProductPage): Promise<Product[]> {
    const rows = await this.#query<ProductRow>('list products', QUERIES.list.text, [page.count, page.start]);
    return rows.map(toProduct);
  }

  async get(id: number): Promise<Product | null> {
    const rows = await this.#query<ProductRow>('get product', QUERIES.get.text, [id]);
    const row = rows[0];
    return row === undefined ? null : toProduct(row);
  }

  async create(input: ProductInput): Promise<Product> {
    const rows = await this.#query<ProductRow>('create product', QUERIES.create.text, [
      input.name,
      priceToDecimalText(input.price),
      input.quantity,
    ]);
    const row = rows[0];
    if (row === undefined) throw new DatabaseError('PostgreSQL create product returned no row');
    return toProduct(row);
  }

  async update(id: number, input: ProductInput): Promise<Product | null> {
    const rows = await this.#query<ProductRow>('update product', QUERIES.update.text, [
      input.name,
      priceToDecimalText(input.price),
      input.quantity,
      id,
    ]);
    const row = rows[0];
    return row === undefined ? null : toProduct(row);
  }

  async delete(id: number): Promise<boolean> {
    const rows = await this.#query<{ id: number }>('delete product', QUERIES.delete.text, [id]);
    return rows.length > 0;
  }

  async count(): Promise<number> {
    const rows = await this.#query<{ count: string }>('count products', QUERIES.count.text, []);
    return Number(rows[0]?.count ?? 0);
  }

  close(): Promise<void> {
    this.#closed ??= this.#pool.end();
    return this.#closed;
  }

  /** Runs one parameterized query, turning its failure into a typed error. */
  async #query<Row extends QueryResultRow>(action: string, sql: string, params: unknown[]): Promise<Row[]> {
    try {
      const result = await this.#pool.query<Row>(sql, params);
      return result.rows;
    } catch (error) {
      throw translateError(error, action);
    }
  }
}

async function createSchema(pool: pg.Pool, seedSampleData: boolean): Promise<PostgresNames> {
  const client = await pool.connect();
  try {
    const { rows: names } = await client.query<{ database: string | null; schema: string | null }>(
      'SELECT current_database() AS database, current_schema() AS schema',
    );
    await client.query('BEGIN');
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    await client.query(SCHEMA);
    if (seedSampleData) {
      const { rows } = await client.query<{ empty: boolean }>(
        'SELECT NOT EXISTS (SELECT 1 FROM products) AS empty',
      );
      if (rows[0]?.empty === true) {
        for (const product of SAMPLE_PRODUCTS) {
          await client.query('INSERT INTO products (name, price, quantity) VALUES ($1, $2, $3)', [
            product.name,
            priceToDecimalText(product.price),
            product.quantity,
          ]);
        }
      }
    }
    await client.query('COMMIT');
    client.release();
    return { database: names[0]?.database ?? undefined, schema: names[0]?.schema ?? undefined };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    client.release(true);
    throw error;
  }
}

/**
 * Connects a pool to `url`, creates the schema idempotently (in the connection's search_path) and
 * seeds on request. Fails with DatabaseUnavailableError when the server cannot be reached.
 */
export async function openPostgresRepository(
  url: string,
  options: PostgresRepositoryOptions = {},
): Promise<PostgresProductRepository> {
  const pool = new pg.Pool({
    connectionString: url,
    max: 10,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'inventory-backend',
    Client: clientOutsideRequests(),
  });
  pool.on('error', (error) => {
    options.onPoolError?.(error);
  });
  let names: PostgresNames;
  try {
    names = await createSchema(pool, options.seedSampleData ?? false);
  } catch (error) {
    await pool.end().catch(() => undefined);
    const message = `cannot open PostgreSQL database ${redactUrl(url)}: ${oneLineMessage(error)}`;
    throw isUnavailable(error)
      ? new DatabaseUnavailableError(message, { cause: error })
      : new DatabaseError(message, { cause: error });
  }
  return new PostgresProductRepository(pool, names);
}

/**
 * A pg Client that opens its connection outside any request, not in the context of the request
 * that happened to make the pool grow. A socket's callbacks run in the context it was opened in,
 * so otherwise pg's parsing of every later reply on that pooled connection would carry that first
 * request's profile labels (its span_id included). With this, that work is unlabelled; what runs
 * after `await` in the caller is labelled with its own request.
 */
function clientOutsideRequests(): typeof pg.Client {
  type ConnectCallback = ((error: Error) => void) | ((error: null, client: pg.Client) => void);
  return class ClientOutsideRequests extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ConnectCallback): void;
    override connect(callback?: ConnectCallback): Promise<pg.Client> | undefined {
      return runOutsideRequests(() => {
        if (callback === undefined) return super.connect();
        super.connect(callback);
        return undefined;
      });
    }
  };
}
