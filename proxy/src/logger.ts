// JSON logs on stdout. Lines are gathered and written synchronously once 4 KiB have gathered:
// in a one-off comparison that was about a quarter of the cost per access-log line of
// sonic-boom's asynchronous mode. A timer flushes at least once a second so a quiet proxy's lines
// still appear promptly, and what is gathered is flushed on exit so none is lost.
//
// The lines are gathered here rather than by sonic-boom's own `minLength`: that mode measures the
// UTF-8 length of everything pending on every write, flattening the growing string each time, about
// 8,000 instructions per access-log line with 4 KiB pending (one-off callgrind runs, README.md "Choosing the
// forwarding library"). sonic-boom still does the writing (partial writes, EAGAIN).
import { pino } from 'pino';
import type { Logger, LevelWithSilent } from 'pino';

const BATCH_BYTES = 4096;

interface LineSink {
  write(chunk: string): unknown;
  flushSync(): void;
}

/** Gathers log lines and hands them to `sink` in chunks of at least `batchBytes` UTF-16 units. */
export class LineBatcher {
  readonly #sink: LineSink;
  readonly #batch: number;
  #lines: string[] = [];
  #length = 0;

  constructor(sink: LineSink, batchBytes = BATCH_BYTES) {
    this.#sink = sink;
    this.#batch = batchBytes;
  }

  write(line: string): boolean {
    this.#lines.push(line);
    this.#length += line.length;
    if (this.#length >= this.#batch) this.flush();
    return true;
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    const chunk = this.#lines.length === 1 ? (this.#lines[0] as string) : this.#lines.join('');
    this.#lines = [];
    this.#length = 0;
    this.#sink.write(chunk);
  }

  flushSync(): void {
    this.flush();
    this.#sink.flushSync();
  }
}

export function createLogger(level: LevelWithSilent, name: string): Logger {
  const destination = new LineBatcher(pino.destination({ dest: 1, sync: true }));
  setInterval(() => {
    destination.flush();
  }, 1000).unref();
  // Request headers and bodies are never passed to the logger, so no redaction pass is paid per line.
  const logger = pino({ level, name, base: { pid: process.pid } }, destination);
  process.once('exit', () => {
    try {
      destination.flushSync();
    } catch {
      // stdout already closed: nothing left to save.
    }
  });
  return logger;
}
