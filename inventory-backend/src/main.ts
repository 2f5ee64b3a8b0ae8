// Entry point: configuration, database, HTTP server, signals. A start-up failure prints one line
// on stderr and exits non-zero.
import { startProfiler } from '@spanscope/proxy';
import { createTracing } from '@spanscope/proxy/tracing';
import { startRuntimeTelemetry } from '@spanscope/proxy/runtime-telemetry';
import { buildApp } from './app.ts';
import { describeDatabase, loadConfig } from './config.ts';
import { openRepository } from './db/open-repository.ts';
import type { ProductRepository } from './db/repository.ts';
import { InventoryError, oneLineMessage } from './errors.ts';
import { createGracefulShutdown, installSignalHandlers } from './lifecycle.ts';
import { SERVICE_NAME, createLogger } from './logger.ts';

export const EXIT_STARTUP_FAILED = 1;
/** Dropped spans are summed and logged at most this often, so a slow collector cannot flood the log. */
const DROP_LOG_INTERVAL_MS = 60_000;

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

  let unloggedDrops = 0;
  let lastDropLog = 0;
  const tracing = createTracing(config.tracing, {
    tracerName: 'inventory-backend',
    onDrop(kind, count) {
      unloggedDrops += count;
      const now = Date.now();
      if (now - lastDropLog < DROP_LOG_INTERVAL_MS) return;
      logger.warn(
        { dropped_spans: unloggedDrops, reason: kind },
        'spans dropped: trace collector slow or down',
      );
      unloggedDrops = 0;
      lastDropLog = now;
    },
  });
  const runtime = startRuntimeTelemetry(config.runtime, { logger, meterName: 'inventory-backend' });
  // Pushes to the sidecar's tagging endpoint (TAGGING_ENDPOINT); ENABLE_PROFILING=false: off.
  const profiler = await startProfiler({
    ...config.profiling,
    logger,
    shouldUpload: () => runtime.gate.isOpen(),
  });

  const app = buildApp({ repository, logger, telemetry: { tracing, profiler, logger } });
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (error) {
    await repository.close().catch(() => undefined);
    await profiler.stop();
    await runtime.shutdown();
    throw error;
  }
  const address = app.server.address();
  logger.info(
    {
      port: typeof address === 'object' && address !== null ? address.port : config.port,
      database,
      tracing: tracing.enabled ? config.tracing.OTEL_TRACES_EXPORTER : 'off',
      profiling: profiler.status().state,
    },
    `${SERVICE_NAME} ready`,
  );

  installSignalHandlers(
    createGracefulShutdown({
      app,
      repository,
      profiler,
      tracing,
      runtime,
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
