// The one door to the database. Every product query goes through a ProductRepository method, so
// cross-cutting concerns (tracing spans, profiler labels) wrap these methods and nothing else.
import type { Product, ProductInput, ProductPage } from '../products/product.ts';

export interface ProductRepository {
  /** Which engine backs this repository. */
  readonly kind: 'sqlite' | 'postgres';
  /** What a trace records about this database and each method's statement (never values). */
  readonly description: DatabaseDescription;
  /** Products ordered by id, `start` skipped, at most `count` returned. */
  list(page: ProductPage): Promise<Product[]>;
  /** The product, or null when no product has this id. */
  get(id: number): Promise<Product | null>;
  /** Stores a new product and returns it with its new id. */
  create(input: ProductInput): Promise<Product>;
  /** Replaces the product's fields; null when no product has this id. */
  update(id: number, input: ProductInput): Promise<Product | null>;
  /** Deletes the product; false when no product had this id. */
  delete(id: number): Promise<boolean>;
  /** How many products are stored (also the health check's probe). */
  count(): Promise<number>;
  /** Releases the connection(s). Idempotent. */
  close(): Promise<void>;
}

/** The method of the repository each traced database operation name stands for. */
export const DB_OPERATIONS = {
  list: 'get_products',
  get: 'get_product',
  create: 'create_product',
  update: 'update_product',
  delete: 'delete_product',
  count: 'count_products',
} as const satisfies Record<Exclude<keyof ProductRepository, 'kind' | 'description' | 'close'>, string>;

export type DbOperation = (typeof DB_OPERATIONS)[keyof typeof DB_OPERATIONS];

/** The repository methods that query the database. */
export type RepositoryMethod = keyof typeof DB_OPERATIONS;

/** The one table of the service (`db.collection.name`). */
export const PRODUCTS_TABLE = 'products';

export interface QueryDescription {
  /** `db.operation.name`: the SQL verb. */
  readonly operation: 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';
  /** `db.query.text`: the statement exactly as sent, with placeholders, never values. */
  readonly text: string;
}

/** OpenTelemetry database attributes of a repository, known without asking the database. */
export interface DatabaseDescription {
  /** `db.system.name`. */
  readonly system: 'sqlite' | 'postgresql';
  /** `db.namespace`: the SQLite file, or PostgreSQL's `database.schema`; unset when unknown. */
  readonly namespace?: string | undefined;
  /** `server.address` and `server.port` (PostgreSQL). */
  readonly serverAddress?: string | undefined;
  readonly serverPort?: number | undefined;
  /** The statement each method runs. */
  readonly queries: Readonly<Record<RepositoryMethod, QueryDescription>>;
}

export interface OpenRepositoryOptions {
  /** Insert the sample products when the table is empty. */
  readonly seedSampleData?: boolean;
}
