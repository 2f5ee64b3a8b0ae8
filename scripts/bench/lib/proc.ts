// Spawning and reaping the processes a benchmark needs. Every process is started in its own process
// group (detached) so that it and anything it forks (nginx workers) can be stopped by group id, and
// every one is registered so that exit, errors and SIGINT/SIGTERM stop them all.
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess, StdioOptions } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { cpus } from 'node:os';
import path from 'node:path';

export interface SpawnOptions {
  /** Pin to this CPU with `taskset -c` when pinning is available. */
  cpu?: number | undefined;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** `pipe` to read stdout, `ignore` to send it to /dev/null (default). */
  stdout?: 'pipe' | 'ignore';
  /** Give the child a stdin pipe; our own child scripts exit when it closes (see child.ts). */
  stdinPipe?: boolean;
}

export interface Managed {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  readonly exited: Promise<number | string>;
  exitStatus(): number | string | undefined;
  /** The last few KiB of stderr, for error messages. */
  stderrTail(): string;
}

const live = new Set<Managed>();
const exitHooks: (() => void)[] = [];
let pinning: boolean | undefined;
let stopping = false;

/** True once the harness has been interrupted: no new process may start, loops should bail out. */
export function isStopping(): boolean {
  return stopping;
}

/** Registers synchronous cleanup (e.g. removing a temp dir) to run however the harness exits. */
export function onExitCleanup(fn: () => void): void {
  exitHooks.push(fn);
}

export function commandPath(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin'])) {
    if (!dir) continue;
    const file = path.join(dir, cmd);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Pinning needs taskset and at least two CPUs (proxy+backend on CPU 0, load generator on CPU 1). */
export function pinningAvailable(): boolean {
  pinning ??= commandPath('taskset') !== undefined && cpus().length >= 2;
  return pinning;
}

export function disablePinning(): void {
  pinning = false;
}

/** Move this (harness) process onto one CPU, so its sampling and bookkeeping stay off the proxy's core. */
export function pinSelf(cpu: number): boolean {
  if (!pinningAvailable()) return false;
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
  return r.status === 0;
}

export function spawnManaged(name: string, cmd: string, args: string[], opts: SpawnOptions = {}): Managed {
  if (stopping) throw new Error(`interrupted: not starting ${name}`);
  const pinned = opts.cpu !== undefined && pinningAvailable();
  const file = pinned ? 'taskset' : cmd;
  const argv = pinned ? ['-c', String(opts.cpu), cmd, ...args] : args;
  const stdio: StdioOptions = [opts.stdinPipe ? 'pipe' : 'ignore', opts.stdout ?? 'ignore', 'pipe'];
  const child = spawn(file, argv, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio,
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`could not spawn ${name} (${cmd})`);
  let tail = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    tail = (tail + chunk).slice(-4096);
  });
  let status: number | string | undefined;
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => {
      status = code ?? signal ?? 'unknown';
      resolve(status);
    });
    child.once('error', (err) => {
      status = `spawn error: ${err.message}`;
      resolve(status);
    });
  });
  const managed: Managed = {
    name,
    pid: child.pid,
    child,
    exited,
    exitStatus: () => status,
    stderrTail: () => tail.trim(),
  };
  live.add(managed);
  void exited.then(() => live.delete(managed));
  return managed;
}

function signalGroup(m: Managed, signal: NodeJS.Signals): void {
  try {
    process.kill(-m.pid, signal);
  } catch {
    try {
      process.kill(m.pid, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGTERM the process group, SIGKILL it after `graceMs`. */
export async function stopManaged(m: Managed, graceMs = 3000): Promise<void> {
  if (m.exitStatus() !== undefined) {
    signalGroup(m, 'SIGKILL'); // the leader is gone, reap any stragglers in its group
    return;
  }
  signalGroup(m, 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = await Promise.race([
    m.exited.then(() => false),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        resolve(true);
      }, graceMs);
    }),
  ]);
  clearTimeout(timer);
  if (timedOut) {
    signalGroup(m, 'SIGKILL');
    await m.exited;
  }
  signalGroup(m, 'SIGKILL');
}

export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((m) => stopManaged(m)));
}

function killAllNow(): void {
  for (const m of live) signalGroup(m, 'SIGKILL');
  for (const fn of exitHooks.splice(0)) {
    try {
      fn();
    } catch {
      // best effort
    }
  }
}

let installed = false;
/** Stop every spawned process when the harness exits, fails or is interrupted. */
export function installCleanupHandlers(): void {
  if (installed) return;
  installed = true;
  process.on('exit', killAllNow);
  const onSignal = (signal: NodeJS.Signals): void => {
    stopping = true;
    process.stderr.write(`\n${signal}: stopping all benchmark processes…\n`);
    void stopAll().finally(() => {
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
    setTimeout(() => {
      killAllNow();
      process.exit(1);
    }, 5000).unref();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('SIGHUP', onSignal);
  process.on('uncaughtException', (err) => {
    process.stderr.write(`uncaught: ${err.stack ?? err.message}\n`);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(
      `unhandled rejection: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    killAllNow();
    process.exit(1);
  });
}

/** The Node binary running the harness (Node 24 from node_modules/.bin, not the machine's node). */
export function nodeBin(): string {
  return process.execPath;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
