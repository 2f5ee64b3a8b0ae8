// `npm start`: the inventory backend and the spanscope proxy in front of it, in one terminal.
// Both read the root .env.profiling (a variable already set in the environment wins). Ctrl-C or
// SIGTERM stops both cleanly; if either exits on its own, the other is stopped too.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const envFile = '--env-file-if-exists=.env.profiling';

interface Service {
  readonly name: string;
  readonly entry: string;
  readonly nodeOptions: readonly string[];
}

// V8 sizes the young generation from the machine's memory: on a 24 GiB host it grows to two
// 64 MiB semi-spaces under load. Capped at 16 MiB, the proxy's RSS under load is lower (the
// proxy benchmark reports it) with no CPU change we could measure; smaller caps cost CPU.
// A V8 heap flag only takes effect on the command line, not once the process has started.
const PROXY_NODE_OPTIONS = ['--max-semi-space-size=16'];

const SERVICES: readonly Service[] = [
  { name: 'backend', entry: 'inventory-backend/src/main.ts', nodeOptions: [] },
  { name: 'proxy  ', entry: 'proxy/src/main.ts', nodeOptions: PROXY_NODE_OPTIONS },
];

const children = new Map<string, ChildProcess>();
let stopping = false;
let exitCode = 0;

function prefixLines(stream: NodeJS.ReadableStream, prefix: string, out: NodeJS.WritableStream): void {
  createInterface({ input: stream }).on('line', (line) => out.write(`${prefix} | ${line}\n`));
}

function stopAll(signal: NodeJS.Signals): void {
  if (stopping) return;
  stopping = true;
  for (const child of children.values()) child.kill(signal);
}

// The backend pushes its profiles to the proxy's admin port: `ADMIN_PORT=19901 npm start` moves
// both ends unless TAGGING_ENDPOINT itself is set in the environment.
const backendEnv: NodeJS.ProcessEnv =
  process.env.TAGGING_ENDPOINT === undefined && process.env.ADMIN_PORT !== undefined
    ? { ...process.env, TAGGING_ENDPOINT: `http://127.0.0.1:${process.env.ADMIN_PORT}` }
    : process.env;

for (const service of SERVICES) {
  const child = spawn(process.execPath, [...service.nodeOptions, envFile, service.entry], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: service.name === 'backend' ? backendEnv : process.env,
  });
  children.set(service.name, child);
  prefixLines(child.stdout, service.name, process.stdout);
  prefixLines(child.stderr, service.name, process.stderr);
  child.on('exit', (code, signal) => {
    children.delete(service.name);
    if (!stopping) {
      process.stderr.write(`${service.name} | exited (${signal ?? String(code)}); stopping the rest\n`);
      exitCode = code === 0 ? 1 : (code ?? 1);
      stopAll('SIGTERM');
    } else if (code !== 0 && code !== null) {
      exitCode = code;
    }
    if (children.size === 0) process.exit(exitCode);
  });
}

process.on('SIGINT', () => stopAll('SIGTERM'));
process.on('SIGTERM', () => stopAll('SIGTERM'));
