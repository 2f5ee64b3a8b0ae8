// Runs src/main.ts as a real child process (same Node binary as the tests) and follows its logs.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const MAIN_SCRIPT = fileURLToPath(new URL('../../src/main.ts', import.meta.url));
export const PACKAGE_DIR = path.dirname(path.dirname(MAIN_SCRIPT));

export interface LogLine {
  msg?: string;
  port?: number;
  [key: string]: unknown;
}

export interface BackendProcess {
  readonly child: ChildProcess;
  /** Everything written on stderr so far. */
  stderr(): string;
  /** The JSON log lines (stdout) so far. */
  logs(): readonly LogLine[];
  /** Resolves with the first JSON log line (stdout) matching `predicate`. */
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Resolves with the port once the service logs that it is ready. */
  ready(): Promise<number>;
  /** Resolves when the process exits. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  kill(): void;
}

const liveChildren = new Set<ChildProcess>();
// A test that times out never reaches its cleanup: never leave a backend running after the tests.
process.on('exit', () => {
  for (const child of liveChildren) child.kill('SIGKILL');
});

/**
 * Starts the backend with exactly `env` (plus PATH, and OTEL_TRACES_EXPORTER=none and ENABLE_PROFILING=false unless given), so
 * the caller's environment cannot leak in.
 */
export function spawnBackend(env: Record<string, string>, cwd: string = PACKAGE_DIR): BackendProcess {
  const child = spawn(process.execPath, [MAIN_SCRIPT], {
    cwd,
    // No trace export and no profiler unless a test asks: nothing listens on the default ports.
    env: {
      PATH: process.env.PATH ?? '',
      LOG_LEVEL: 'info',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      ENABLE_PROFILING: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  liveChildren.add(child);
  const lines: LogLine[] = [];
  const waiters: { predicate: (line: LogLine) => boolean; resolve: (line: LogLine) => void }[] = [];
  let stderr = '';
  let buffered = '';

  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    buffered += chunk;
    let newline = buffered.indexOf('\n');
    while (newline >= 0) {
      const text = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      newline = buffered.indexOf('\n');
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      for (const waiter of [...waiters]) {
        if (waiter.predicate(line)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(line);
        }
      }
    }
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr += chunk));

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      liveChildren.delete(child);
      resolve({ code, signal });
    });
  });

  const waitForLog = (predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> => {
    const seen = lines.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise<LogLine>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no matching log line within ${timeoutMs} ms; stderr: ${stderr}`));
      }, timeoutMs);
      waiters.push({
        predicate,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`backend exited before the expected log line; stderr: ${stderr}`));
      });
    });
  };

  return {
    child,
    stderr: () => stderr,
    logs: () => lines,
    waitForLog,
    ready: async () => {
      const line = await waitForLog((l) => l.msg === 'inventory-backend ready');
      if (typeof line.port !== 'number') throw new Error('ready log line without a port');
      return line.port;
    },
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
