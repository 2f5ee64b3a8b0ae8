// Picks the repository implementation for the configured database.
import type { Logger } from 'pino';
import type { DatabaseConfig } from '../config.ts';
import type { OpenRepositoryOptions, ProductRepository } from './repository.ts';

export interface OpenOptions extends OpenRepositoryOptions {
  readonly logger?: Logger;
}

/** Opens the configured database; the engine modules load only when used. */
export async function openRepository(
  database: DatabaseConfig,
  options: OpenOptions = {},
): Promise<ProductRepository> {
  if (database.kind === 'sqlite') {
    const { openSqliteRepository } = await import('./sqlite-repository.ts');
    return openSqliteRepository(database.path, options);
  }
  const { openPostgresRepository } = await import('./postgres-repository.ts');
  return openPostgresRepository(database.url, {
    ...options,
    onPoolError: (error) => options.logger?.warn({ err: error }, 'idle PostgreSQL connection failed'),
  });
}
