// The real proxy as a child process (`node proxy/src/main.ts`), for tests that need what an
// in-process proxy cannot give: its own memory figures from /proc, signals, and its exit code.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

/** The repository root: the proxy is started from there as `node proxy/src/main.ts`. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface ProxyProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** e.g. http://127.0.0.1:43123 */
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly adminPort: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves once the process has exited (immediately if it already has). */
  readonly exited: Promise<Exit>;
  /** How the process ended, or undefined while it runs. */
  exit(): Exit | undefined;
  /** Fails, with the exit and stderr, if the process is no longer running. */
  assertRunning(): void;
  /** SIGKILLs the process if it is still running and waits for it to go. Safe to call twice. */
  kill(): Promise<void>;
}

/** A TCP port that was free a moment ago (listen on port 0, note the port, close). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * A minimal environment for the child: only PATH and HOME are inherited, so neither the test
 * runner's variables (NODE_TEST_CONTEXT, NODE_OPTIONS) nor a developer's OTEL_* settings leak in.
 */
function baseEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'HOME']) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return env;
}

/** Node's arguments by default: the TypeScript sources as they are. */
const SOURCE_ARGV: readonly string[] = ['proxy/src/main.ts'];

/**
 * Spawns `node <argv>` (default `proxy/src/main.ts`, from the repository root) with exactly `env`
 * (plus PATH and HOME); does not wait.
 */
export function spawnProxyProcess(
  env: Record<string, string>,
  argv: readonly string[] = SOURCE_ARGV,
): {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<Exit>;
} {
  const child = spawn(process.execPath, argv, {
    cwd: REPO_ROOT,
    env: { ...baseEnv(), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<Exit>((resolve) => {
    // 'close' rather than 'exit': stdout and stderr have been read to the end by then.
    child.once('close', (code, signal) => {
      resolve({ code, signal });
    });
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

export interface WaitForReadyOptions {
  readonly timeoutMs: number;
  /** True once the process that should answer has exited: waiting further is pointless. */
  hasExited(): boolean;
  /** Pause between polls. Default 50 ms. */
  readonly intervalMs?: number;
}

/**
 * Polls `${adminUrl}/readyz` until it answers 200. Says why it stopped rather than throwing, so
 * each caller can stop its own processes and word the error with the output it collected.
 */
export async function waitForReady(
  adminUrl: string,
  options: WaitForReadyOptions,
): Promise<'ready' | 'exited' | 'timed-out'> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (options.hasExited()) return 'exited';
    try {
      const res = await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) return 'ready';
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) return 'timed-out';
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 50));
  }
}

export interface StartProxyProcessOptions {
  /** How long to wait for `/readyz` to answer 200. Default 10000 ms. */
  readonly readyTimeoutMs?: number;
  /** Node's flags and entry script, from the repository root. Default `proxy/src/main.ts`. */
  readonly argv?: readonly string[];
}

/**
 * Starts the proxy on free ports in front of `backendUrl` with tracing export, the access log
 * and (unless a Pyroscope address is given) profiling off, and waits until `/readyz` answers 200. `env` overrides or adds settings.
 */
export async function startProxyProcess(
  backendUrl: string,
  env: Record<string, string> = {},
  options: StartProxyProcessOptions = {},
): Promise<ProxyProcess> {
  const port = await freePort();
  const adminPort = await freePort();
  const spawned = spawnProxyProcess(
    {
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(port),
      ADMIN_PORT: String(adminPort),
      BACKEND_URL: backendUrl,
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      ACCESS_LOG: 'false',
      LOG_LEVEL: 'warn',
      // Profiling only where a test points it at a Pyroscope receiver or asks for it.
      ENABLE_PROFILING: env.PYROSCOPE_SERVER_ADDRESS === undefined ? 'false' : 'true',
      ...env,
    },
    options.argv,
  );
  const { child, exited } = spawned;
  const state: { exited: boolean; exit: Exit | undefined } = { exited: false, exit: undefined };
  void exited.then((exit) => {
    state.exited = true;
    state.exit = exit;
  });
  const kill = async (): Promise<void> => {
    if (!state.exited) child.kill('SIGKILL');
    await exited;
  };

  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const readiness = await waitForReady(adminUrl, {
    timeoutMs: readyTimeoutMs,
    hasExited: () => state.exited,
  });
  if (readiness === 'exited') {
    const { code, signal } = await exited;
    throw new Error(
      `proxy exited before it was ready (code ${String(code)}, signal ${String(signal)}): ${spawned.stderr()}`,
    );
  }
  if (readiness === 'timed-out') {
    await kill();
    throw new Error(`proxy not ready after ${readyTimeoutMs} ms: ${spawned.stderr()}`);
  }

  if (child.pid === undefined) throw new Error('proxy child has no pid');
  return {
    child,
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    port,
    adminUrl,
    adminPort,
    stdout: spawned.stdout,
    stderr: spawned.stderr,
    exited,
    exit: () => state.exit,
    assertRunning() {
      // 'exit' comes before 'close': also check the child's own fields.
      const code = state.exit?.code ?? child.exitCode;
      const signal = state.exit?.signal ?? child.signalCode;
      if (code !== null || signal !== null) {
        throw new Error(
          `proxy process ${String(child.pid)} is gone (code ${String(code)}, signal ${String(signal)}); ` +
            `stderr: ${spawned.stderr().slice(-2000)}; stdout: ${spawned.stdout().slice(-2000)}`,
        );
      }
    },
    kill,
  };
}

export interface MemoryStatus {
  /** Resident set size now, in bytes. */
  readonly rss: number;
  /** Peak resident set size ("high water mark"), in bytes. */
  readonly hwm: number;
}

/** VmRSS and VmHWM of a process, from /proc/<pid>/status. */
export function readMemory(pid: number): MemoryStatus {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch (error) {
    throw new Error(`cannot read the memory of process ${pid}: has it exited?`, { cause: error });
  }
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
    if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(match[1]) * 1024;
  };
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/**
 * Resets the process's VmHWM to its current RSS (writing 5 to /proc/<pid>/clear_refs, Linux ≥ 4.0),
 * so a later VmHWM is the peak of what happened since. Returns false where that is not allowed;
 * VmHWM then still holds the peak since the process started.
 */
export function resetPeakMemory(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs `transfer` and reports how far the process's peak RSS rose above its RSS (or, where the
 * peak cannot be reset, above its earlier peak) just before.
 */
export async function peakMemoryGrowth(pid: number, transfer: () => Promise<void>): Promise<number> {
  const reset = resetPeakMemory(pid);
  const before = readMemory(pid);
  await transfer();
  const after = readMemory(pid);
  return after.hwm - (reset ? before.rss : before.hwm);
}

export const MiB = 1024 * 1024;
