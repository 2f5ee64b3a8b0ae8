// `npm start -w proxy`: load the config (the env file is loaded by node --env-file-if-exists,
// so a variable set in the environment wins), start, and stop cleanly on SIGTERM/SIGINT.
import { createProxyApp } from './app.ts';
import { loadConfig } from './config.ts';
import { SpanscopeError } from './errors.ts';
import { createLogger } from './logger.ts';

function fatal(message: string): never {
  process.stderr.write(`spanscope-proxy: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof SpanscopeError) fatal(error.message);
    throw error;
  }
  const logger = createLogger(config.LOG_LEVEL, 'spanscope-proxy');
  let app;
  try {
    app = createProxyApp(config, { logger });
  } catch (error) {
    if (error instanceof SpanscopeError) fatal(error.message);
    throw error;
  }
  try {
    const { port, adminPort } = await app.start();
    logger.info(
      {
        port,
        admin_port: adminPort,
        backend: config.BACKEND_URL,
        tracing: app.tracing.enabled ? config.OTEL_TRACES_EXPORTER : 'off',
      },
      'spanscope proxy listening',
    );
  } catch (error) {
    fatal(`cannot listen: ${(error as Error).message}`);
  }

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, in_flight: app.handler.inFlight() }, 'shutting down');
    app.stop().then(
      ({ drained }) => {
        logger.info({ drained }, 'stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

await main();
