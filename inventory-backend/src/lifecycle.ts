// Graceful shutdown: on SIGTERM/SIGINT stop accepting connections, let in-flight requests finish,
// close the database, stop the profiler (pushing its last profile) and flush the spans, exit 0 —
// or exit 1 when that takes longer than the configured timeout.
import type { Logger } from 'pino';

export interface Closable {
  close(): Promise<unknown>;
}

export interface GracefulShutdownOptions {
  /** The HTTP server (a Fastify instance): close() stops accepting and waits for in-flight requests. */
  readonly app: Closable;
  /** The database, closed once the server is. */
  readonly repository: Closable;
  /** Stopped once the server has drained: no request runs under its labels any more. */
  readonly profiler?: { stop(): Promise<void> };
  /** Ends the export of spans after flushing the ones still queued. */
  readonly tracing?: { shutdown(): Promise<void> };
  /** Shut down last: the runtime metrics' final export and the conditional-profiling gate. */
  readonly runtime?: { shutdown(): Promise<void> };
  readonly logger: Logger;
  readonly timeoutMs: number;
  /** Ends the process; injectable for tests. */
  readonly exit: (code: number) => void;
}

export type Shutdown = (reason: string) => Promise<void>;

export const EXIT_OK = 0;
export const EXIT_SHUTDOWN_FAILED = 1;
/** Telemetry gets what is left of the timeout minus this, so a slow collector never forces exit 1. */
const TELEMETRY_MARGIN_MS = 100;

/**
 * Resolves when `work` settles or after `ms`, whichever comes first.
 * Failures are logged, never thrown: telemetry must not make a shutdown fail.
 */
async function boundedTelemetryStep(
  work: () => Promise<void>,
  ms: number,
  logger: Logger,
  what: string,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), Math.max(0, ms));
  });
  try {
    const finished = await Promise.race([work().then(() => true), timedOut]);
    if (!finished) logger.warn({ timeoutMs: Math.max(0, ms) }, `${what} did not finish in time`);
  } catch (error) {
    logger.warn({ err: error }, `${what} failed`);
  } finally {
    clearTimeout(timer);
  }
}

/** A shutdown function: the first call starts the shutdown, later calls return the same promise. */
export function createGracefulShutdown(options: GracefulShutdownOptions): Shutdown {
  const { app, repository, profiler, tracing, runtime, logger, timeoutMs } = options;
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
    const deadline = Date.now() + timeoutMs - TELEMETRY_MARGIN_MS;
    const forceExit = setTimeout(() => {
      logger.error({ timeoutMs }, 'shutdown timed out, forcing exit');
      exit(EXIT_SHUTDOWN_FAILED);
    }, timeoutMs);

    running = (async () => {
      let code = EXIT_OK;
      try {
        await app.close();
        await repository.close();
        // Telemetry trouble (a collector down) is logged and bounded by the time left; it does
        // not make the shutdown fail.
        const telemetry: [string, (() => Promise<void>) | undefined][] = [
          ['stopping the profiler', profiler && (() => profiler.stop())],
          ['flushing spans', tracing && (() => tracing.shutdown())],
          ['flushing runtime metrics', runtime && (() => runtime.shutdown())],
        ];
        for (const [what, step] of telemetry) {
          if (step !== undefined) await boundedTelemetryStep(step, deadline - Date.now(), logger, what);
        }
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
