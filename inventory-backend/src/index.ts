// Public surface of @spanscope/inventory-backend for other workspaces and tests.
export { buildApp } from './app.ts';
export type { BuildAppOptions } from './app.ts';
export {
  DEFAULT_SERVICE_NAME,
  DEFAULT_SQLITE_FILE,
  LOG_LEVELS,
  describeDatabase,
  loadConfig,
  redactUrl,
} from './config.ts';
export type { Config, DatabaseConfig, LogLevel } from './config.ts';
export { openRepository } from './db/open-repository.ts';
export { openPostgresRepository, PostgresProductRepository } from './db/postgres-repository.ts';
export {
  PRODUCT_ID_ATTRIBUTE,
  createProfiledDbOperation,
  profiledRepository,
} from './db/profiled-repository.ts';
export type { DbTelemetry, ProfiledDbOperation } from './db/profiled-repository.ts';
export { DB_OPERATIONS, PRODUCTS_TABLE } from './db/repository.ts';
export type {
  DatabaseDescription,
  DbOperation,
  OpenRepositoryOptions,
  ProductRepository,
  QueryDescription,
  RepositoryMethod,
} from './db/repository.ts';
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
export { registerRequestTelemetry, routeTemplate, UNMATCHED } from './http/request-telemetry.ts';
export { API_ROUTES, METHOD_NOT_ALLOWED_HANDLER } from './http/routes.ts';
export { createGracefulShutdown, installSignalHandlers } from './lifecycle.ts';
export type { GracefulShutdownOptions, Shutdown } from './lifecycle.ts';
export { createLogger, SERVICE_NAME } from './logger.ts';
export { LIMITS } from './products/product.ts';
export type { Product, ProductInput, ProductPage } from './products/product.ts';
export { baggageLabels } from './telemetry/baggage.ts';
export type { BaggageLabels } from './telemetry/baggage.ts';
export { TRACING_OFF, telemetryOff } from './telemetry/telemetry.ts';
export type { Telemetry } from './telemetry/telemetry.ts';
