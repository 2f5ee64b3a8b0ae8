// JSON logs on stdout. Writes are buffered (one write call per ~16 KiB instead of one per line:
// per-line writes were the access log's main cost under load), flushed at least once a second so
// a quiet proxy's lines still appear promptly, and flushed synchronously on exit so none is lost.
import { pino } from 'pino';
import type { Logger, LevelWithSilent } from 'pino';

export function createLogger(level: LevelWithSilent, name: string): Logger {
  const destination = pino.destination({
    dest: 1,
    sync: false,
    minLength: 16 * 1024 - 1,
    maxWrite: 64 * 1024,
  });
  setInterval(() => {
    destination.flush();
  }, 1000).unref();
  const logger = pino(
    {
      level,
      name,
      base: { pid: process.pid },
      // Headers are never logged whole; these paths are redacted should anyone add them.
      redact: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie'],
    },
    destination,
  );
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed: nothing left to save.
    }
  });
  return logger;
}
