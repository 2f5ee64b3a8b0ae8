// Helpers for the small processes the harness spawns (backend, contenders, sink, load generators).
import { parseArgs } from 'node:util';

/** Exit when the harness goes away: it holds our stdin pipe open for as long as it lives. */
export function exitWithParent(): void {
  if (process.stdin.isTTY) return;
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('close', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
  // Say so on stderr: the harness shows the tail of it when a process it did not stop has gone.
  const onSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${process.argv[1] ?? 'process'}: exiting on ${signal}\n`);
    process.exit(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);
}

function intArg(name: string, value: string | undefined): number {
  const n = Number(value);
  if (value === undefined || !Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`--${name} must be an integer port, got ${String(value)}\n`);
    process.exit(2);
  }
  return n;
}

/** `--port P [--target URL]`, the arguments every server script takes. */
export function serverArgs(): { port: number; target: string | undefined } {
  const { values } = parseArgs({
    options: { port: { type: 'string' }, target: { type: 'string' } },
    strict: true,
  });
  return { port: intArg('port', values.port), target: values.target };
}

export function requireTarget(target: string | undefined): URL {
  if (target === undefined) {
    process.stderr.write('--target http://127.0.0.1:PORT is required\n');
    process.exit(2);
  }
  const u = new URL(target);
  if (u.hostname !== '127.0.0.1' && u.hostname !== 'localhost') {
    process.stderr.write(`only loopback targets are allowed, got ${target}\n`);
    process.exit(2);
  }
  return u;
}
