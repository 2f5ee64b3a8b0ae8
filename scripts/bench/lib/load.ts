// Running the load generators, pinned to the load CPU, with hooks at the start and end of the measured
// window so that the caller can sample the CPU time of the process under test exactly around it.
import path from 'node:path';
import { createInterface } from 'node:readline';
import { assertLoopback } from './net.ts';
import { commandPath, nodeBin, spawnManaged, stopManaged } from './proc.ts';
import type { Managed } from './proc.ts';

const BENCH_DIR = path.resolve(import.meta.dirname, '..');

export interface WindowHooks {
  /** Called right before the first measured request. */
  onStart(): void;
  /** Called right after the last measured response. */
  onEnd(): void;
}

export interface SaturationResult {
  generator: 'wrk' | 'node';
  requests: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

export interface OpenLoopResult {
  targetRps: number;
  sent: number;
  completed: number;
  errors: number;
  achievedRps: number;
  maxSendLagMs: number;
  sendLagP99Ms: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  meanMs: number;
}

export function wrkAvailable(): boolean {
  return commandPath('wrk') !== undefined;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case 'us':
      return v / 1000;
    case 'ms':
      return v;
    case 's':
      return v * 1000;
    case 'm':
      return v * 60_000;
    case 'h':
      return v * 3_600_000;
    default:
      return NaN;
  }
}

/** Parses the text wrk prints with --latency. */
export function parseWrk(text: string): SaturationResult {
  const pct = (p: string): number => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, 'm').exec(text);
    return m?.[1] && m[2] ? toMs(m[1], m[2]) : NaN;
  };
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (!total?.[1] || !total[2] || !total[3] || !rps?.[1])
    throw new Error(`cannot parse wrk output:\n${text}`);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    generator: 'wrk',
    requests: Number(total[1]),
    seconds: toMs(total[2], total[3]) / 1000,
    rps: Number(rps[1]),
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    errors: sockErrors + Number(non2xx?.[1] ?? 0),
  };
}

function collectStdout(m: Managed): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    m.child.stdout?.setEncoding('utf8');
    m.child.stdout?.on('data', (c: string) => (out += c));
    m.child.stdout?.on('end', () => {
      resolve(out);
    });
  });
}

/** Kills `m` if it is still running after `ms` (every load must stop by itself; this is the backstop). */
function backstop(m: Managed, ms: number): NodeJS.Timeout {
  return setTimeout(() => {
    process.stderr.write(`  ! ${m.name} overran its time budget, killing it\n`);
    void stopManaged(m, 500);
  }, ms);
}

export interface SaturationOptions {
  url: string;
  durationS: number;
  connections: number;
  cpu: number | undefined;
  useWrk: boolean;
}

export async function runSaturation(o: SaturationOptions, hooks: WindowHooks): Promise<SaturationResult> {
  assertLoopback(o.url);
  if (o.useWrk) {
    const args = ['-t1', `-c${o.connections}`, `-d${o.durationS}s`, '--latency', o.url];
    hooks.onStart();
    const m = spawnManaged('wrk', 'wrk', args, { cpu: o.cpu, stdout: 'pipe' });
    const timer = backstop(m, (o.durationS + 15) * 1000);
    const out = await collectStdout(m);
    const status = await m.exited;
    hooks.onEnd();
    clearTimeout(timer);
    if (status !== 0) throw new Error(`wrk exited with ${status}: ${m.stderrTail()}`);
    return parseWrk(out);
  }
  const done = await runNodeGenerator(
    'closed-loop',
    ['--url', o.url, '--connections', String(o.connections), '--duration', String(o.durationS)],
    o.cpu,
    (o.durationS + 20) * 1000,
    hooks,
  );
  return {
    generator: 'node',
    requests: Number(done.requests),
    seconds: Number(done.seconds),
    rps: Number(done.rps),
    p50Ms: Number(done.p50Ms),
    p99Ms: Number(done.p99Ms),
    errors: Number(done.errors),
  };
}

export interface OpenLoopOptions {
  url: string;
  durationS: number;
  /** Seconds at the same rate before the measured window (not recorded). */
  warmupS: number;
  rate: number;
  connections: number;
  cpu: number | undefined;
}

export async function runOpenLoop(o: OpenLoopOptions, hooks: WindowHooks): Promise<OpenLoopResult> {
  assertLoopback(o.url);
  const done = await runNodeGenerator(
    'open-loop',
    [
      '--url',
      o.url,
      '--rate',
      String(o.rate),
      '--duration',
      String(o.durationS),
      '--connections',
      String(o.connections),
      '--warmup',
      String(o.warmupS),
    ],
    o.cpu,
    (o.warmupS + o.durationS + 25) * 1000,
    hooks,
  );
  const n = (k: string): number => Number(done[k]);
  return {
    targetRps: n('targetRps'),
    sent: n('sent'),
    completed: n('completed'),
    errors: n('errors'),
    achievedRps: n('achievedRps'),
    maxSendLagMs: n('maxSendLagMs'),
    sendLagP99Ms: n('sendLagP99Ms'),
    p50Ms: n('p50Ms'),
    p90Ms: n('p90Ms'),
    p99Ms: n('p99Ms'),
    p999Ms: n('p999Ms'),
    maxMs: n('maxMs'),
    meanMs: n('meanMs'),
  };
}

/** Runs one of our Node generators, firing the hooks on its {"event":"start"} and {"event":"done"} lines. */
async function runNodeGenerator(
  script: string,
  args: string[],
  cpu: number | undefined,
  budgetMs: number,
  hooks: WindowHooks,
): Promise<Record<string, unknown>> {
  // A larger young generation means fewer scavenges, and every scavenge pause in the generator would
  // otherwise be measured as latency of the requests due during it.
  const flags = ['--max-semi-space-size=64'];
  const m = spawnManaged(script, nodeBin(), [...flags, path.join(BENCH_DIR, `${script}.ts`), ...args], {
    cpu,
    stdout: 'pipe',
    stdinPipe: true,
  });
  const timer = backstop(m, budgetMs);
  let done: Record<string, unknown> | undefined;
  const stdout = m.child.stdout;
  if (stdout) {
    for await (const line of createInterface({ input: stdout })) {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
      if (msg.event === 'start') hooks.onStart();
      if (msg.event === 'done') {
        hooks.onEnd();
        done = msg;
      }
    }
  }
  const status = await m.exited;
  clearTimeout(timer);
  if (!done) throw new Error(`${script} exited with ${status} without a result: ${m.stderrTail()}`);
  return done;
}
