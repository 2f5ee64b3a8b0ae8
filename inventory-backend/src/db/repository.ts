// The one door to the database. Every product query goes through a ProductRepository method, so
// cross-cutting concerns (tracing spans, profiler labels) wrap these methods and nothing else.
import type { Product, ProductInput, ProductPage } from '../products/product.ts';

export interface ProductRepository {
  /** Which engine backs this repository. */
  readonly kind: 'sqlite' | 'postgres';
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
} as const satisfies Record<Exclude<keyof ProductRepository, 'kind' | 'close'>, string>;

export type DbOperation = (typeof DB_OPERATIONS)[keyof typeof DB_OPERATIONS];

export interface OpenRepositoryOptions {
  /** Insert the sample products when the table is empty. */
  readonly seedSampleData?: boolean;
}
