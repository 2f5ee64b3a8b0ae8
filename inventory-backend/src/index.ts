// Public surface of @spanscope/inventory-backend for other workspaces and tests.
export { buildApp } from './app.ts';
export type { BuildAppOptions } from './app.ts';
export { DEFAULT_SQLITE_FILE, LOG_LEVELS, describeDatabase, loadConfig, redactUrl } from './config.ts';
export type { Config, DatabaseConfig, LogLevel } from './config.ts';
export { openRepository } from './db/open-repository.ts';
export { openPostgresRepository, PostgresProductRepository } from './db/postgres-repository.ts';
export { DB_OPERATIONS } from './db/repository.ts';
export type { DbOperation, OpenRepositoryOptions, ProductRepository } from './db/repository.ts';
export { SAMPLE_PRODUCTS } from './db/sample-products.ts';
export { openSqliteRepository, SqliteProductRepository } from './db/sqlite-repository.ts';
export {
  ConfigError,
  DatabaseError,
  DatabaseUnavailableError,
  ErrorCode,
  InventoryError,
  ProductNotFoundError,
  ValidationError,
} from './errors.ts';
export { API_ROUTES } from './http/routes.ts';
export { createGracefulShutdown, installSignalHandlers } from './lifecycle.ts';
export type { GracefulShutdownOptions, Shutdown } from './lifecycle.ts';
export { createLogger, SERVICE_NAME } from './logger.ts';
export { LIMITS } from './products/product.ts';
export type { Product, ProductInput, ProductPage } from './products/product.ts';
