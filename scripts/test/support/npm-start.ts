// `npm start` (scripts/start.ts: the backend and the proxy in front of it) on free ports, for the
// scripts' tests: started as a user runs it, with only PATH and HOME from the caller's environment
// (neither the test runner's variables nor a developer's OTEL_* settings leak in), ready once the
// proxy's /readyz answers 200, stopped with SIGTERM so start.ts stops both processes it runs and
// none outlives the test.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { freePort, REPO_ROOT, waitForReady } from '../../../proxy/test/support/proxy-process.ts';

export interface NpmStart {
  /** e.g. http://127.0.0.1:43123 */
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly backendUrl: string;
  /** Everything both processes printed so far (stdout and stderr). */
  output(): string;
  /** SIGTERM (SIGKILL after 15 s), then waits for the exit; resolves with the exit code. */
  stop(): Promise<number | null>;
}

const READY_TIMEOUT_MS = 30_000;

async function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const code = await exited;
  clearTimeout(timer);
  return code;
}

/**
 * Runs `node scripts/start.ts` with the ports chosen here, SQLite in memory with the sample data,
 * no span or metric export and no access log; `env` overrides or adds settings. Waits until the
 * proxy is ready, and fails with both processes' output if start.ts exits or is not ready in time.
 * The backend's profiles go to this proxy's tagging endpoint: start.ts derives TAGGING_ENDPOINT
 * from ADMIN_PORT.
 */
export async function startNpmStart(env: Readonly<Record<string, string>> = {}): Promise<NpmStart> {
  const [proxyPort, adminPort, backendPort] = [await freePort(), await freePort(), await freePort()];
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const backendUrl = `http://127.0.0.1:${backendPort}`;
  const inherited: Record<string, string> = {};
  for (const name of ['PATH', 'HOME']) {
    const value = process.env[name];
    if (value !== undefined) inherited[name] = value;
  }
  const child = spawn(process.execPath, ['scripts/start.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...inherited,
      PROXY_HOST: '127.0.0.1',
      PROXY_PORT: String(proxyPort),
      ADMIN_PORT: String(adminPort),
      BACKEND_PORT: String(backendPort),
      BACKEND_URL: backendUrl,
      DATABASE_URL: 'sqlite::memory:',
      SEED_SAMPLE_DATA: 'true',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_METRICS_EXPORTER: 'none',
      ACCESS_LOG: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));

  const readiness = await waitForReady(adminUrl, {
    timeoutMs: READY_TIMEOUT_MS,
    hasExited: () => child.exitCode !== null,
    intervalMs: 100,
  });
  if (readiness === 'exited') {
    throw new Error(`npm start exited with ${String(child.exitCode)} before it was ready:\n${output}`);
  }
  if (readiness === 'timed-out') {
    await stopChild(child);
    throw new Error(`npm start not ready within ${READY_TIMEOUT_MS} ms:\n${output}`);
  }

  return {
    proxyUrl: `http://127.0.0.1:${proxyPort}`,
    adminUrl,
    backendUrl,
    output: () => output,
    stop: () => stopChild(child),
  };
}
