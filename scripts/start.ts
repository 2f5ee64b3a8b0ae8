// `npm start`: the inventory backend and the spanscope proxy in front of it, in one terminal.
// Both read the root .env.profiling (a variable already set in the environment wins). Ctrl-C or
// SIGTERM stops both cleanly; if either exits on its own, the other is stopped too.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { PROXY_ENTRY, PROXY_MALLOC_ENV, PROXY_NODE_FLAGS } from '../proxy/src/launch-settings.ts';
import { stripProxy } from './strip-types.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const envFile = '--env-file-if-exists=.env.profiling';

interface Service {
  readonly name: string;
  readonly entry: string;
  readonly nodeOptions: readonly string[];
  readonly env: NodeJS.ProcessEnv;
}

// The backend pushes its profiles to the proxy's admin port: `ADMIN_PORT=19901 npm start` moves
// both ends unless TAGGING_ENDPOINT itself is set in the environment.
const backendEnv: NodeJS.ProcessEnv =
  process.env.TAGGING_ENDPOINT === undefined && process.env.ADMIN_PORT !== undefined
    ? { ...process.env, TAGGING_ENDPOINT: `http://127.0.0.1:${process.env.ADMIN_PORT}` }
    : process.env;

// The proxy starts as it does in its container (proxy/src/launch-settings.ts): from freshly
// stripped JavaScript, with its heap flags and malloc settings.
try {
  stripProxy(path.join(root, 'proxy'));
} catch (error) {
  process.stderr.write(`npm start: ${(error as Error).message}\n`);
  process.exit(1);
}

const SERVICES: readonly Service[] = [
  { name: 'backend', entry: 'inventory-backend/src/main.ts', nodeOptions: [], env: backendEnv },
  {
    name: 'proxy  ',
    entry: path.join('proxy', PROXY_ENTRY),
    nodeOptions: PROXY_NODE_FLAGS,
    env: { ...PROXY_MALLOC_ENV, ...process.env },
  },
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

for (const service of SERVICES) {
  const child = spawn(process.execPath, [...service.nodeOptions, envFile, service.entry], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: service.env,
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
