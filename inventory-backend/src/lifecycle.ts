// Graceful shutdown: on SIGTERM/SIGINT stop accepting connections, let in-flight requests finish,
// close the database, exit 0 — or exit 1 when that takes longer than the configured timeout.
import type { Logger } from 'pino';

export interface Closable {
  close(): Promise<unknown>;
}

export interface GracefulShutdownOptions {
  /** The HTTP server (a Fastify instance): close() stops accepting and waits for in-flight requests. */
  readonly app: Closable;
  /** The database, closed once the server is. */
  readonly repository: Closable;
  readonly logger: Logger;
  readonly timeoutMs: number;
  /** Ends the process; injectable for tests. */
  readonly exit: (code: number) => void;
}

export type Shutdown = (reason: string) => Promise<void>;

export const EXIT_OK = 0;
export const EXIT_SHUTDOWN_FAILED = 1;

/** A shutdown function: the first call starts the shutdown, later calls return the same promise. */
export function createGracefulShutdown(options: GracefulShutdownOptions): Shutdown {
  const { app, repository, logger, timeoutMs } = options;
  let running: Promise<void> | undefined;
  let exited = false;
  const exit = (code: number): void => {
    if (exited) return;
    exited = true;
    options.exit(code);
  };

  return (reason) => {
    if (running !== undefined) {
      logger.info({ reason }, 'shutdown already in progress');
      return running;
    }
    logger.info({ reason, timeoutMs }, 'shutting down: finishing in-flight requests');
    const forceExit = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown timed out, forcing exit');
      exit(EXIT_SHUTDOWN_FAILED);
    }, timeoutMs);

    running = (async () => {
      let code = EXIT_OK;
      try {
        await app.close();
        await repository.close();
        logger.info('shutdown complete');
      } catch (error) {
        logger.error({ err: error }, 'shutdown failed');
        code = EXIT_SHUTDOWN_FAILED;
      }
      clearTimeout(forceExit);
      exit(code);
    })();
    return running;
  };
}

export const SHUTDOWN_SIGNALS = ['SIGTERM', 'SIGINT'] as const;

/** Routes SIGTERM and SIGINT to `shutdown`; returns a function removing the listeners. */
export function installSignalHandlers(shutdown: Shutdown): () => void {
  const listeners = SHUTDOWN_SIGNALS.map((signal) => {
    const listener = (): void => void shutdown(signal);
    process.on(signal, listener);
    return [signal, listener] as const;
  });
  return () => {
    for (const [signal, listener] of listeners) process.off(signal, listener);
  };
}
