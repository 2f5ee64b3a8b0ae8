// Entry point: configuration, database, HTTP server, signals. A start-up failure prints one line
// on stderr and exits non-zero.
import { buildApp } from './app.ts';
import { describeDatabase, loadConfig } from './config.ts';
import { openRepository } from './db/open-repository.ts';
import type { ProductRepository } from './db/repository.ts';
import { InventoryError, oneLineMessage } from './errors.ts';
import { createGracefulShutdown, installSignalHandlers } from './lifecycle.ts';
import { SERVICE_NAME, createLogger } from './logger.ts';

export const EXIT_STARTUP_FAILED = 1;

export function formatStartupFailure(error: unknown): string {
  const code = error instanceof InventoryError ? ` [${error.code}]` : '';
  return `${SERVICE_NAME}: failed to start: ${oneLineMessage(error)}${code}`;
}

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const database = describeDatabase(config.database);

  const repository: ProductRepository = await openRepository(config.database, {
    seedSampleData: config.seedSampleData,
    logger,
  });
  logger.info({ database, seeded: config.seedSampleData }, 'database ready');

  const app = buildApp({ repository, logger });
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await repository.close().catch(() => undefined);
    throw error;
  }
  const address = app.server.address();
  logger.info(
    { port: typeof address === 'object' && address !== null ? address.port : config.port, database },
    `${SERVICE_NAME} ready`,
  );

  installSignalHandlers(
    createGracefulShutdown({
      app,
      repository,
      logger,
      timeoutMs: config.shutdownTimeoutMs,
      exit: (code) => process.exit(code),
    }),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`${formatStartupFailure(error)}\n`);
  process.exit(EXIT_STARTUP_FAILED);
});
