// The proxy benchmark (issue 3, "Benchmark"): the same backend behind every contender, driven
// interleaved, several rounds each, with two loads per contender per round:
//   - saturation: wrk -t1 -c32 (or the Node closed-loop fallback) → req/s, p50/p99, CPU µs/request, RSS;
//   - open loop at a fixed 2000 req/s, latency from the intended send time → p50/p99 added vs direct.
// Proxy and backend are pinned to CPU 0, load generators (and the OTLP sink) to CPU 1.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import path from 'node:path';
import { PROXY_ENTRY, PROXY_MALLOC_ENV, PROXY_NODE_FLAGS } from '../../proxy/src/launch-settings.ts';
import { stripProxy } from '../strip-types.ts';
import { BODY_BYTES } from './lib/body.ts';
import { freePort, httpGet, waitHttp } from './lib/net.ts';
import {
  commandPath,
  disablePinning,
  isStopping,
  nodeBin,
  onExitCleanup,
  pinSelf,
  pinningAvailable,
  sleep,
  spawnManaged,
  stopAll,
  stopManaged,
} from './lib/proc.ts';
import type { Managed } from './lib/proc.ts';
import {
  clockTicksPerSecond,
  cpuDelta,
  cpuModel,
  interference,
  loadAverage,
  readCpu,
  readMachine,
  RssSampler,
  treeOf,
} from './lib/procfs.ts';
import type { CpuSample, Interference, MachineSample } from './lib/procfs.ts';
import { runOpenLoop, runSaturation, wrkAvailable } from './lib/load.ts';
import type { OpenLoopResult, SaturationResult } from './lib/load.ts';
import { pairedRatio, sliceMedian } from './lib/paired.ts';
import type { PairedRatio, Slice } from './lib/paired.ts';
import { median } from './lib/stats.ts';
import { writeResults } from './lib/suite.ts';
import type { CommonOptions, FlagValues, Suite } from './lib/suite.ts';
import { fmt, fmtSigned, renderTable } from './lib/table.ts';

const BENCH_DIR = import.meta.dirname;
const PROXY_CPU = 0;
const LOAD_CPU = 1;
const MiB = 1024 * 1024;
const SETTLE_MS = 300;
const READY_TIMEOUT_MS = 10_000;
/** Other processes taking this much of a CPU during a run make its figures suspect; say so. */
const BUSY_PCT = 10;
/** With fewer interleaved slices than this, the CPU targets take the rounds' figures. */
const MIN_SLICES = 20;
const DEFAULT_SLICES = 40;
/** Steal (the hypervisor running something else on our vCPUs) from which figures are marked. */
const STEAL_PCT = 2;

// ---------------------------------------------------------------------------------------------------
// Contenders

interface Context {
  repoRoot: string;
  tmpDir: string;
  backendUrl: string;
  backend: Managed;
  sinkPort: number | undefined;
  fullEnv: Record<string, string>;
  pin: boolean;
}

interface Running {
  url: string;
  /** Root processes whose whole tree (threads and children) is measured. */
  measured: Managed[];
  /** Processes to stop at the end (the shared backend is not one of them). */
  owned: Managed[];
  detail: string;
}

type StartResult = Running | { skip: string };

interface ContenderDef {
  name: string;
  description: string;
  /** Exports spans to the OTLP sink: the sink is started for it, and what it receives is counted. */
  exportsSpans?: boolean;
  start(ctx: Context): Promise<StartResult>;
}

function exitReason(m: Managed): () => string | undefined {
  return () => {
    const s = m.exitStatus();
    if (s === undefined) return undefined;
    const tail = m.stderrTail().split('\n').slice(-5).join('\n    ');
    return `exited with ${s}${tail ? `:\n    ${tail}` : ''}`;
  };
}

/** One of our own Node contenders in scripts/bench/contenders/. */
function nodeContender(name: string, description: string): ContenderDef {
  return {
    name,
    description,
    async start(ctx) {
      const port = await freePort();
      const script = path.join(BENCH_DIR, 'contenders', `${name}.ts`);
      const m = spawnManaged(name, nodeBin(), [script, '--port', String(port), '--target', ctx.backendUrl], {
        cpu: ctx.pin ? PROXY_CPU : undefined,
        stdinPipe: true,
      });
      const url = `http://127.0.0.1:${port}/`;
      const failed = await waitHttp(url, { timeoutMs: READY_TIMEOUT_MS, abort: exitReason(m) });
      if (failed !== undefined) {
        await stopManaged(m);
        return { skip: failed };
      }
      return { url, measured: [m], owned: [m], detail: `pid ${m.pid}` };
    },
  };
}

/** Settings the proxy reads from the environment; dropped from the inherited environment. */
const PROXY_ENV =
  /^(OTEL_|PROXY_|ADMIN_|UPSTREAM_|BACKEND_URL$|ACCESS_LOG$|LOG_LEVEL$|CAPTURE_QUERY$|PRESERVE_HOST$|ROUTES_FILE$|SHUTDOWN_TIMEOUT_MS$)/;

/** The environment of a spanscope contender: fully instrumented when `sinkPort` is given, else bare. */
export function spanscopeEnv(o: {
  port: number;
  adminPort: number;
  backendUrl: string;
  /** The OTLP sink of the fully instrumented proxy; absent for tracing off (OTEL_SDK_DISABLED). */
  sinkPort: number | undefined;
  /**
   * With tracing off: the access log on, as shipped (the issue's "proxy with tracing off"), rather
   * than off as well (the bare proxy).
   */
  accessLog?: boolean;
  profiled?: boolean;
  extra?: Record<string, string>;
}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!PROXY_ENV.test(k)) env[k] = v;
  Object.assign(env, {
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: String(o.port),
    ADMIN_HOST: '127.0.0.1',
    ADMIN_PORT: String(o.adminPort),
    BACKEND_URL: o.backendUrl,
    LOG_LEVEL: 'warn',
    ENABLE_PROFILING: o.profiled === true ? 'true' : 'false',
  });
  if (o.sinkPort === undefined) {
    Object.assign(env, { OTEL_SDK_DISABLED: 'true', ACCESS_LOG: String(o.accessLog === true) });
    // The access log is written at level info: with LOG_LEVEL=warn it would be silently off.
    return o.accessLog === true ? Object.assign(env, { LOG_LEVEL: 'info' }) : env;
  }
  return Object.assign(env, {
    OTEL_SDK_DISABLED: 'false',
    OTEL_TRACES_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${String(o.sinkPort)}`,
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
    ACCESS_LOG: 'true',
    LOG_LEVEL: 'info',
    // The sink takes Pyroscope's /ingest as well: the profiler's upload cost is counted too.
    ...(o.profiled === true
      ? { PYROSCOPE_SERVER_ADDRESS: `http://127.0.0.1:${String(o.sinkPort)}`, PYROSCOPE_UPLOAD_RATE: '10' }
      : {}),
    ...o.extra,
  });
}

/**
 * How a spanscope contender starts.
 * - `shipped`: as `npm start` and the image run it (proxy/src/launch-settings.ts), from sources
 *   stripped to JavaScript just now.
 * - `sources`: as it ran before those settings (the `.ts` sources, 16 MiB semi-spaces, glibc's
 *   default malloc), so what they change is measured side by side.
 */
export type SpanscopeLaunch = 'shipped' | 'sources';

/**
 * Node's arguments (relative to `proxyDir`) and the environment they need; `extraFlags` go after the
 * launch's own, so a V8 flag given there wins.
 */
export function spanscopeLaunch(
  proxyDir: string,
  launch: SpanscopeLaunch,
  extraFlags: readonly string[] = [],
): { args: string[]; env: Readonly<Record<string, string>> } {
  if (launch === 'sources')
    return { args: ['--max-semi-space-size=16', ...extraFlags, 'src/main.ts'], env: {} };
  stripProxy(proxyDir);
  return { args: [...PROXY_NODE_FLAGS, ...extraFlags, PROXY_ENTRY], env: PROXY_MALLOC_ENV };
}

interface SpanscopeOptions {
  /** Tracing, OTLP export and the access log on. */
  readonly full: boolean;
  /** With `full: false`: the access log on all the same. */
  readonly accessLog?: boolean;
  /** The profiler with per-request labels on as well. */
  readonly profiled?: boolean;
  readonly launch?: SpanscopeLaunch;
  /** Node or V8 flags after the launch's own, for a variant measured beside the shipped proxy. */
  readonly nodeFlags?: readonly string[];
}

function spanscope(name: string, description: string, o: SpanscopeOptions): ContenderDef {
  return {
    name,
    description,
    exportsSpans: o.full,
    async start(ctx) {
      const proxyDir = path.join(ctx.repoRoot, 'proxy');
      const [port, adminPort] = [await freePort(), await freePort()];
      if (o.full && ctx.sinkPort === undefined) return { skip: 'the OTLP sink is not running' };
      const launch = spanscopeLaunch(proxyDir, o.launch ?? 'shipped', o.nodeFlags);
      const env = spanscopeEnv({
        port,
        adminPort,
        backendUrl: ctx.backendUrl,
        sinkPort: o.full ? ctx.sinkPort : undefined,
        accessLog: o.accessLog,
        profiled: o.profiled,
        extra: o.full ? ctx.fullEnv : {},
      });
      // stdout (the access log) goes to /dev/null.
      const m = spawnManaged(name, nodeBin(), launch.args, {
        cpu: ctx.pin ? PROXY_CPU : undefined,
        cwd: proxyDir,
        env: { ...launch.env, ...env },
        stdout: 'ignore',
      });
      const failed = await waitHttp(`http://127.0.0.1:${adminPort}/readyz`, {
        timeoutMs: READY_TIMEOUT_MS,
        abort: exitReason(m),
      });
      if (failed !== undefined) {
        await stopManaged(m);
        return { skip: `proxy not ready: ${failed}` };
      }
      const extra = o.full && Object.keys(ctx.fullEnv).length > 0 ? ` + ${JSON.stringify(ctx.fullEnv)}` : '';
      const flags = o.nodeFlags === undefined ? '' : ` + ${o.nodeFlags.join(' ')}`;
      return {
        url: `http://127.0.0.1:${port}/`,
        measured: [m],
        owned: [m],
        detail: `pid ${m.pid}${flags}${extra}`,
      };
    },
  };
}

function nginxVersion(bin: string): string {
  const r = spawnSync(bin, ['-v'], { encoding: 'utf8' });
  return (r.stderr || r.stdout).trim().replace(/^nginx version:\s*/, '');
}

const nginx: ContenderDef = {
  name: 'nginx',
  description: 'nginx, 1 worker, upstream keepalive 64 (reference proxy)',
  async start(ctx) {
    const bin = commandPath('nginx');
    if (bin === undefined) return { skip: 'nginx is not installed (apt-get install nginx-light)' };
    const dir = mkdtempSync(path.join(ctx.tmpDir, 'nginx-'));
    const port = await freePort();
    const backendPort = new URL(ctx.backendUrl).port;
    const conf = path.join(dir, 'nginx.conf');
    writeFileSync(
      conf,
      `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  # Node's http server has no per-connection request limit; nginx's default (1000) would make the
  # load generator and nginx reconnect all the time, so lift it on both sides.
  keepalive_requests 1000000;
  upstream be {
    server 127.0.0.1:${backendPort};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
    );
    const m = spawnManaged('nginx', bin, ['-e', `${dir}/error.log`, '-c', conf, '-p', dir], {
      cpu: ctx.pin ? PROXY_CPU : undefined,
    });
    const url = `http://127.0.0.1:${port}/`;
    const failed = await waitHttp(url, { timeoutMs: READY_TIMEOUT_MS, abort: exitReason(m) });
    if (failed !== undefined) {
      await stopManaged(m);
      return { skip: `nginx not ready: ${failed}` };
    }
    return {
      url,
      measured: [m],
      owned: [m],
      detail: `${nginxVersion(bin)}, pids ${treeOf([m.pid]).join('+')} (master+worker)`,
    };
  },
};

const CONTENDERS: ContenderDef[] = [
  {
    name: 'direct',
    description: 'the load generator hits the backend itself',
    start(ctx) {
      return Promise.resolve({
        url: ctx.backendUrl,
        measured: [ctx.backend],
        owned: [],
        detail: `backend pid ${ctx.backend.pid}`,
      });
    },
  },
  nodeContender('http-proxy', 'http-proxy 1.18 + keep-alive http.Agent (maxSockets 128)'),
  nodeContender('http-proxy-3', 'http-proxy-3 + keep-alive http.Agent (maxSockets 128)'),
  nodeContender('undici-stream', 'node:http server + undici Pool (128 connections), pool.stream()'),
  nodeContender('node-pipe', 'node:http server + keep-alive http.Agent, req/res piped'),
  nodeContender(
    'native-parser',
    "node:http server + keep-alive sockets parsed by node:http's own llhttp (the floor under undici; bodiless requests only)",
  ),
  spanscope('spanscope-bare', 'spanscope proxy, OTEL_SDK_DISABLED=true, ACCESS_LOG=false', { full: false }),
  spanscope(
    'spanscope-tracing-off',
    'spanscope proxy, OTEL_SDK_DISABLED=true, ACCESS_LOG=true as shipped (the issue\'s "proxy with tracing off")',
    { full: false, accessLog: true },
  ),
  spanscope('spanscope-full', 'spanscope proxy, OTLP/protobuf export to a local sink, ACCESS_LOG=true', {
    full: true,
  }),
  spanscope(
    'spanscope-full-sources',
    'spanscope-full started as before proxy/src/launch-settings.ts: .ts sources, 16 MiB semi-spaces, default malloc',
    { full: true, launch: 'sources' },
  ),
  spanscope(
    'spanscope-profiled',
    'spanscope-full plus the wall/CPU profiler with per-request labels, pushed to the sink',
    { full: true, profiled: true },
  ),
  nginx,
];

// ---------------------------------------------------------------------------------------------------
// Measurement

interface SaturationRun extends SaturationResult {
  cpuUs: number;
  cpuUsPerReq: number;
  /** The same from /proc/<pid>/stat clock ticks, a coarse cross-check. */
  cpuUsPerReqStat: number;
  cpuSource: 'schedstat' | 'stat';
  rssMaxMiB: number;
  interference: Interference;
  otlp?: { requests: number; bytes: number };
}

interface OpenLoopRun extends OpenLoopResult {
  cpuUsPerReq: number;
  rssMaxMiB: number;
  interference: Interference;
}

interface RunRecord {
  round: number;
  contender: string;
  saturation?: SaturationRun;
  openLoop?: OpenLoopRun;
  /** Measurements thrown away because the backend or the contender died during the run. */
  discarded?: { saturation?: SaturationRun; openLoop?: OpenLoopRun };
  error?: string;
}

interface Settings {
  rounds: number;
  durationS: number;
  warmupS: number;
  connections: number;
  rate: number;
  openLoopConnections: number;
  useWrk: boolean;
  pin: boolean;
  /** Interleaved saturation slices per contender after the rounds (0: none), and their length. */
  slices: number;
  sliceS: number;
}

async function sinkStats(port: number | undefined): Promise<{ requests: number; bytes: number } | undefined> {
  if (port === undefined) return undefined;
  try {
    const r = await httpGet(`http://127.0.0.1:${port}/stats`);
    return JSON.parse(r.body.toString()) as { requests: number; bytes: number };
  } catch {
    return undefined;
  }
}

/** Samples CPU of the measured trees exactly around the generator's window, and RSS during it. */
async function measured<T>(
  c: Running,
  run: (hooks: { onStart(): void; onEnd(): void }) => Promise<T>,
): Promise<{ result: T; cpu: ReturnType<typeof cpuDelta>; rssMaxMiB: number; interference: Interference }> {
  const roots = c.measured.map((m) => m.pid);
  const w: { a?: CpuSample; b?: CpuSample; ma?: MachineSample; mb?: MachineSample } = {};
  const rss = new RssSampler(roots);
  let result: T;
  let rssMax: number;
  try {
    result = await run({
      onStart: () => {
        w.ma = readMachine();
        w.a = readCpu(treeOf(roots));
      },
      onEnd: () => {
        w.b = readCpu(treeOf(roots));
        w.mb = readMachine();
      },
    });
  } finally {
    rssMax = rss.stop();
  }
  if (!w.a || !w.b || !w.ma || !w.mb)
    throw new Error('the load generator never reported its measurement window');
  return {
    result,
    cpu: cpuDelta(w.a, w.b),
    rssMaxMiB: rssMax / MiB,
    interference: interference(w.ma, w.mb),
  };
}

async function measureSaturation(
  c: Running,
  s: Settings,
  sinkPort: number | undefined,
): Promise<SaturationRun> {
  const before = await sinkStats(sinkPort);
  const {
    result,
    cpu,
    rssMaxMiB,
    interference: noise,
  } = await measured(c, (hooks) =>
    runSaturation(
      {
        url: c.url,
        durationS: s.durationS,
        connections: s.connections,
        cpu: s.pin ? LOAD_CPU : undefined,
        useWrk: s.useWrk,
      },
      hooks,
    ),
  );
  const after = await sinkStats(sinkPort);
  const n = Math.max(1, result.requests);
  return {
    ...result,
    cpuUs: cpu.us,
    cpuUsPerReq: cpu.us / n,
    cpuUsPerReqStat: cpu.statUs / n,
    cpuSource: cpu.schedUs === undefined ? 'stat' : 'schedstat',
    rssMaxMiB,
    interference: noise,
    ...(before && after
      ? { otlp: { requests: after.requests - before.requests, bytes: after.bytes - before.bytes } }
      : {}),
  };
}

async function measureOpenLoop(c: Running, s: Settings): Promise<OpenLoopRun> {
  const {
    result,
    cpu,
    rssMaxMiB,
    interference: noise,
  } = await measured(c, (hooks) =>
    runOpenLoop(
      {
        url: c.url,
        durationS: s.durationS,
        warmupS: Math.min(1, s.durationS / 2),
        rate: s.rate,
        connections: s.openLoopConnections,
        cpu: s.pin ? LOAD_CPU : undefined,
      },
      hooks,
    ),
  );
  return { ...result, cpuUsPerReq: cpu.us / Math.max(1, result.completed), rssMaxMiB, interference: noise };
}

// ---------------------------------------------------------------------------------------------------
// Summary, ratios, targets

interface Summary {
  contender: string;
  rounds: number;
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerReq?: number;
  cpuUsPerReqStat?: number;
  vcpuPer1kRps?: number;
  rssPeakMiB?: number;
  saturationErrors: number;
  openLoop: {
    p50Ms?: number;
    p99Ms?: number;
    maxMs?: number;
    achievedRps?: number;
    cpuUsPerReq?: number;
    sendLagP99Ms?: number;
    errors: number;
    addedP50Ms?: number;
    addedP99Ms?: number;
  };
  cpuVsNginx?: number;
  cpuVsBare?: number;
  cpuVsTracingOff?: number;
  /** From the interleaved slices, when they were taken: CPU ratios paired slice by slice. */
  slices?: {
    n: number;
    cpuUsPerReq?: number;
    vsNginx?: PairedRatio;
    vsBare?: PairedRatio;
    vsTracingOff?: PairedRatio;
  };
  throughputVsDirect?: number;
  otlpRequestsPerRound?: number;
  /** Highest CPU share other processes took during any of this contender's runs, % of one CPU. */
  otherLoadMaxPct?: number;
  /** Highest steal during any of this contender's runs, % of one CPU. */
  stealMaxPct?: number;
}

function pick<T>(xs: (T | undefined)[]): T[] {
  return xs.filter((x): x is T => x !== undefined);
}

function maxOf(xs: number[]): number | undefined {
  return xs.length > 0 ? Math.max(...xs) : undefined;
}

function summarize(names: string[], runs: RunRecord[], slices: readonly Slice[]): Summary[] {
  const get = (round: number, name: string): RunRecord | undefined =>
    runs.find((r) => r.round === round && r.contender === name);
  const perRoundRatio = (
    name: string,
    ref: string,
    f: (r: RunRecord) => number | undefined,
  ): number | undefined => {
    const ratios = pick(
      runs
        .filter((r) => r.contender === name)
        .map((r) => {
          const other = get(r.round, ref);
          const a = f(r);
          const b = other ? f(other) : undefined;
          return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
        }),
    );
    return median(ratios);
  };
  const perRoundDiff = (name: string, f: (r: RunRecord) => number | undefined): number | undefined => {
    const diffs = pick(
      runs
        .filter((r) => r.contender === name)
        .map((r) => {
          const d = get(r.round, 'direct');
          const a = f(r);
          const b = d ? f(d) : undefined;
          return a !== undefined && b !== undefined ? a - b : undefined;
        }),
    );
    return median(diffs);
  };
  const cpu = (r: RunRecord): number | undefined => r.saturation?.cpuUsPerReq;
  const rps = (r: RunRecord): number | undefined => r.saturation?.rps;
  return names.map((name) => {
    const mine = runs.filter((r) => r.contender === name);
    const sat = pick(mine.map((r) => r.saturation));
    const ol = pick(mine.map((r) => r.openLoop));
    const cpuMed = median(sat.map((x) => x.cpuUsPerReq));
    const otlp = pick(sat.map((x) => x.otlp?.requests));
    return {
      contender: name,
      rounds: sat.length,
      rps: median(sat.map((x) => x.rps)),
      p50Ms: median(sat.map((x) => x.p50Ms)),
      p99Ms: median(sat.map((x) => x.p99Ms)),
      cpuUsPerReq: cpuMed,
      cpuUsPerReqStat: median(sat.map((x) => x.cpuUsPerReqStat)),
      vcpuPer1kRps: cpuMed === undefined ? undefined : cpuMed / 1000,
      rssPeakMiB: maxOf([...sat.map((x) => x.rssMaxMiB), ...ol.map((x) => x.rssMaxMiB)]),
      saturationErrors: sat.reduce((a, x) => a + x.errors, 0),
      openLoop: {
        p50Ms: median(ol.map((x) => x.p50Ms)),
        p99Ms: median(ol.map((x) => x.p99Ms)),
        maxMs: maxOf(ol.map((x) => x.maxMs)),
        achievedRps: median(ol.map((x) => x.achievedRps)),
        cpuUsPerReq: median(ol.map((x) => x.cpuUsPerReq)),
        sendLagP99Ms: median(ol.map((x) => x.sendLagP99Ms)),
        errors: ol.reduce((a, x) => a + x.errors, 0),
        addedP50Ms: name === 'direct' ? undefined : perRoundDiff(name, (r) => r.openLoop?.p50Ms),
        addedP99Ms: name === 'direct' ? undefined : perRoundDiff(name, (r) => r.openLoop?.p99Ms),
      },
      cpuVsNginx: perRoundRatio(name, 'nginx', cpu),
      cpuVsBare: perRoundRatio(name, 'spanscope-bare', cpu),
      cpuVsTracingOff: perRoundRatio(name, 'spanscope-tracing-off', cpu),
      ...(slices.length > 0
        ? {
            slices: {
              n: slices.filter((x) => x.cpuUsPerReq[name] !== undefined).length,
              cpuUsPerReq: sliceMedian(slices, name),
              vsNginx: pairedRatio(slices, name, 'nginx'),
              vsBare: pairedRatio(slices, name, 'spanscope-bare'),
              vsTracingOff: pairedRatio(slices, name, 'spanscope-tracing-off'),
            },
          }
        : {}),
      throughputVsDirect: perRoundRatio(name, 'direct', rps),
      ...(otlp.length > 0 ? { otlpRequestsPerRound: median(otlp) } : {}),
      otherLoadMaxPct: maxOf([...sat, ...ol].map((x) => x.interference.otherPct)),
      stealMaxPct: maxOf([...sat, ...ol].map((x) => x.interference.stealPct)),
    };
  });
}

interface TargetResult {
  target: string;
  status: 'PASS' | 'FAIL' | 'SKIP';
  value: number | null;
  limit: number;
  display: string;
  why?: string;
}

function evaluateTargets(summary: Summary[], rate: number): TargetResult[] {
  const row = (n: string): Summary | undefined => summary.find((s) => s.contender === n && s.rounds > 0);
  const bare = row('spanscope-bare');
  const full = row('spanscope-full');
  const direct = row('direct');
  /** Why a figure may not be trustworthy on this (shared) machine, if it may not. */
  const caveat = (rows: (Summary | undefined)[], latency: boolean): string | undefined => {
    const present = pick(rows);
    const other = maxOf(pick(present.map((r) => r.otherLoadMaxPct)));
    const steal = maxOf(pick(present.map((r) => r.stealMaxPct)));
    const lag = maxOf(pick(present.map((r) => r.openLoop.sendLagP99Ms)));
    const reasons = [
      ...(other !== undefined && other >= BUSY_PCT
        ? [`other processes took up to ${other.toFixed(0)}% CPU`]
        : []),
      ...(steal !== undefined && steal >= STEAL_PCT ? [`steal up to ${steal.toFixed(0)}% CPU`] : []),
      ...(latency && lag !== undefined && lag > 1 ? [`load generator lag p99 ${lag.toFixed(1)} ms`] : []),
    ];
    return reasons.length > 0 ? `unreliable: ${reasons.join(', ')}` : undefined;
  };
  const check = (
    target: string,
    value: number | undefined,
    limit: number,
    unit: string,
    rows: (Summary | undefined)[],
    names: string[],
    opts: { digits?: number; latency?: boolean; extra?: string } = {},
  ): TargetResult => {
    if (value === undefined) {
      const missing = names.filter((n) => row(n) === undefined);
      return {
        target,
        status: 'SKIP',
        value: null,
        limit,
        display: '-',
        why: `needs rows: ${missing.join(', ')}`,
      };
    }
    const why = [opts.extra, caveat(rows, opts.latency ?? false)]
      .filter((x) => x !== undefined && x !== '')
      .join('; ');
    return {
      target,
      status: value <= limit ? 'PASS' : 'FAIL',
      value,
      limit,
      display: `${value.toFixed(opts.digits ?? 2)}${unit}`,
      ...(why ? { why } : {}),
    };
  };
  const atRate = full?.openLoop.cpuUsPerReq;
  /**
   * A CPU figure from the interleaved slices when there are enough of them, else the median per
   * round; when the slices decide, the per-round figure is shown beside theirs.
   */
  const steadier = (
    sliced: { value: number; n: number; spread?: string } | undefined,
    perRound: number | undefined,
    digits: number,
  ): { value: number | undefined; how: string[] } => {
    if (sliced === undefined || sliced.n < MIN_SLICES) return { value: perRound, how: [] };
    const spread = sliced.spread === undefined ? '' : `, ${sliced.spread}`;
    const rounds = perRound === undefined ? '' : `; per round ${perRound.toFixed(digits)}`;
    return {
      value: sliced.value,
      how: [`median of ${String(sliced.n)} interleaved slices${spread}${rounds}`],
    };
  };
  /** A CPU ratio paired slice by slice, or per round. */
  const cpuRatio = (paired: PairedRatio | undefined, perRound: number | undefined) =>
    steadier(
      paired && {
        value: paired.median,
        n: paired.n,
        spread: `quartiles ${paired.q1.toFixed(2)}–${paired.q3.toFixed(2)}`,
      },
      perRound,
      2,
    );
  const bareVsNginx = cpuRatio(bare?.slices?.vsNginx, bare?.cpuVsNginx);
  const fullVsBare = cpuRatio(full?.slices?.vsBare, full?.cpuVsBare);
  // The Node forwarders measured in the same run, for what the bare proxy's ratio is up against.
  const floors = ['undici-stream', 'native-parser'].flatMap((n) => {
    const ratio = cpuRatio(row(n)?.slices?.vsNginx, row(n)?.cpuVsNginx).value;
    return ratio === undefined ? [] : [`${n} ${ratio.toFixed(2)}×`];
  });
  const fullSliced = full?.slices;
  const fullVcpu = steadier(
    fullSliced?.cpuUsPerReq === undefined
      ? undefined
      : { value: fullSliced.cpuUsPerReq / 1000, n: fullSliced.n },
    full?.vcpuPer1kRps,
    3,
  );
  // The issue names the bare proxy "the proxy with tracing off"; spanscope-bare has its access log off too.
  const fullVsTracingOff = cpuRatio(full?.slices?.vsTracingOff, full?.cpuVsTracingOff).value;
  return [
    check(
      'spanscope-bare CPU/req ≤ 3× nginx',
      bareVsNginx.value,
      3,
      '×',
      [bare, row('nginx')],
      ['spanscope-bare', 'nginx'],
      {
        extra: [...bareVsNginx.how, ...(floors.length > 0 ? [`same run: ${floors.join(', ')}`] : [])].join(
          '; ',
        ),
      },
    ),
    check(
      'spanscope-full CPU/req ≤ 1.3× bare',
      fullVsBare.value,
      1.3,
      '×',
      [full, bare],
      ['spanscope-full', 'spanscope-bare'],
      {
        extra: [
          ...fullVsBare.how,
          ...(fullVsTracingOff === undefined
            ? []
            : [`÷ spanscope-tracing-off, access log on in both: ${fullVsTracingOff.toFixed(2)}×`]),
        ].join('; '),
      },
    ),
    check(
      `spanscope-full added p50 @${rate} rps ≤ 0.3 ms`,
      full?.openLoop.addedP50Ms,
      0.3,
      ' ms',
      [full, direct],
      ['spanscope-full', 'direct'],
      { digits: 3, latency: true },
    ),
    check(
      `spanscope-full added p99 @${rate} rps ≤ 2 ms`,
      full?.openLoop.addedP99Ms,
      2,
      ' ms',
      [full, direct],
      ['spanscope-full', 'direct'],
      { digits: 3, latency: true },
    ),
    check(
      'spanscope-full ≤ 0.2 vCPU per 1000 rps',
      fullVcpu.value,
      0.2,
      ' vCPU',
      [full],
      ['spanscope-full'],
      {
        digits: 3,
        extra: [
          'at saturation',
          ...fullVcpu.how,
          ...(atRate === undefined
            ? []
            : [`at ${rate} rps it costs ${(atRate / 1000).toFixed(3)} vCPU per 1000 rps`]),
        ].join('; '),
      },
    ),
    check(
      'spanscope-full RSS under load ≤ 120 MiB',
      full?.rssPeakMiB,
      120,
      ' MiB',
      [full],
      ['spanscope-full'],
      {
        digits: 1,
      },
    ),
  ];
}

function printReport(summary: Summary[], targets: TargetResult[], s: Settings): void {
  const gen = s.useWrk ? `wrk -t1 -c${s.connections}` : `Node closed loop, ${s.connections} connections`;
  console.log(
    `\nSaturation (${gen}, ${s.durationS} s; median of ${s.rounds} round(s); CPU of the contender only)`,
  );
  console.log(
    renderTable(
      [
        'contender',
        'req/s',
        'p50 ms',
        'p99 ms',
        'CPU µs/req',
        '(ticks)',
        'vCPU/1k rps',
        'RSS peak MiB',
        '÷nginx',
        '÷bare',
        'req/s÷direct',
        'errors',
      ],
      summary.map((r) => [
        r.contender,
        fmt(r.rps, 0),
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        fmt(r.cpuUsPerReq, 1),
        fmt(r.cpuUsPerReqStat, 0),
        fmt(r.vcpuPer1kRps, 3),
        fmt(r.rssPeakMiB, 1),
        fmt(r.cpuVsNginx, 2),
        fmt(r.cpuVsBare, 2),
        fmt(r.throughputVsDirect, 2),
        r.rounds > 0 ? r.saturationErrors : '-',
      ]),
    ),
  );
  console.log(
    `\nOpen loop (${s.rate} req/s for ${s.durationS} s, latency from the intended send time; added = minus direct, same round)`,
  );
  console.log(
    renderTable(
      [
        'contender',
        'achieved rps',
        'p50 ms',
        'p99 ms',
        'max ms',
        'added p50',
        'added p99',
        'CPU µs/req',
        'errors',
        'gen lag p99',
        'other load',
        'steal',
      ],
      summary.map((r) => [
        r.contender,
        fmt(r.openLoop.achievedRps, 0),
        fmt(r.openLoop.p50Ms, 3),
        fmt(r.openLoop.p99Ms, 3),
        fmt(r.openLoop.maxMs, 2),
        fmtSigned(r.openLoop.addedP50Ms, 3),
        fmtSigned(r.openLoop.addedP99Ms, 3),
        fmt(r.openLoop.cpuUsPerReq, 1),
        r.rounds > 0 ? r.openLoop.errors : '-',
        fmt(r.openLoop.sendLagP99Ms, 2),
        r.otherLoadMaxPct === undefined ? '-' : `${r.otherLoadMaxPct.toFixed(0)}%`,
        r.stealMaxPct === undefined ? '-' : `${r.stealMaxPct.toFixed(0)}%`,
      ]),
    ),
  );
  if (summary.some((r) => r.slices !== undefined)) {
    console.log(
      `\nInterleaved slices (${gen}, ${s.sliceS} s per contender, ${s.slices} passes; ratios paired slice by slice: median [quartiles])`,
    );
    const paired = (p: PairedRatio | undefined): string =>
      p === undefined ? '-' : `${p.median.toFixed(2)} [${p.q1.toFixed(2)}–${p.q3.toFixed(2)}]`;
    console.log(
      renderTable(
        ['contender', 'slices', 'CPU µs/req', '÷nginx', '÷bare', '÷tracing-off'],
        summary.map((r) => [
          r.contender,
          r.slices?.n ?? 0,
          fmt(r.slices?.cpuUsPerReq, 1),
          paired(r.slices?.vsNginx),
          paired(r.slices?.vsBare),
          paired(r.slices?.vsTracingOff),
        ]),
      ),
    );
  }
  console.log('\nTargets (issue 3)');
  for (const t of targets) {
    console.log(`  ${t.status.padEnd(4)}  ${t.target.padEnd(46)} ${t.display}${t.why ? `  (${t.why})` : ''}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// The suite

/** The values of a repeatable string flag, as parseArgs hands them over. */
function flagList(values: (string | boolean)[] | string | boolean | undefined): (string | boolean)[] {
  return Array.isArray(values) ? values : values === undefined ? [] : [values];
}

export function parseFullEnv(
  values: (string | boolean)[] | string | boolean | undefined,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of flagList(values)) {
    const s = String(item);
    const eq = s.indexOf('=');
    if (eq <= 0) throw new Error(`--full-env expects K=V, got ${s}`);
    env[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return env;
}

/** A numeric flag's value, `dflt` when absent; `accepts` says what it must be, for the error. */
function numberFlag(
  name: string,
  v: string | boolean | (string | boolean)[] | undefined,
  dflt: number,
  accepts: { test: (n: number) => boolean; what: string },
): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !accepts.test(n))
    throw new Error(`--${name} must be ${accepts.what}, got ${String(v)}`);
  return n;
}

const POSITIVE = { test: (n: number) => n > 0, what: 'a positive number' };
const WHOLE = { test: (n: number) => Number.isInteger(n) && n >= 0, what: 'a whole number, 0 or more' };

/**
 * `--variant-flags=<flags>`, repeatable (the `=` is needed, as the value starts with `--`): the
 * fully instrumented proxy started with these Node or V8 flags as well, as `spanscope-variant1`,
 * `-2`, …, always run, beside whatever `--only` selects, so a launch setting is measured against
 * the shipped one in the same run.
 */
export function variantContenders(
  values: (string | boolean)[] | string | boolean | undefined,
): ContenderDef[] {
  return flagList(values).map((item, i) => {
    const nodeFlags = String(item)
      .split(/\s+/)
      .filter((f) => f !== '');
    if (nodeFlags.length === 0 || nodeFlags.some((f) => !f.startsWith('--')))
      throw new Error(`--variant-flags expects flags such as "--no-concurrent-marking", got ${String(item)}`);
    return spanscope(`spanscope-variant${String(i + 1)}`, `spanscope-full + ${nodeFlags.join(' ')}`, {
      full: true,
      nodeFlags,
    });
  });
}

async function runProxySuite(common: CommonOptions, flags: FlagValues): Promise<string> {
  const notes: string[] = [];
  const note = (msg: string): void => {
    notes.push(msg);
    console.log(`note: ${msg}`);
  };
  const fullEnv = parseFullEnv(flags['full-env']);
  const selected = [
    ...CONTENDERS.filter((c) => common.only?.includes(c.name) ?? true),
    ...variantContenders(flags['variant-flags']),
  ];

  let pin = common.pin;
  if (!pin) disablePinning();
  else if (!pinningAvailable()) {
    pin = false;
    note(
      `pinning disabled: ${commandPath('taskset') ? `only ${cpus().length} CPU(s)` : 'taskset not found'}; proxy, backend and load generator share the CPUs`,
    );
  }
  if (pin && !pinSelf(LOAD_CPU)) note('could not pin the harness itself to CPU 1');
  const useWrk = !common.nodeLoad && wrkAvailable();
  if (!useWrk) {
    note(
      common.nodeLoad
        ? 'saturation load: Node closed-loop generator (--node-load)'
        : 'wrk not found: saturation load falls back to the Node closed-loop generator (undici Pool); its req/s ceiling is lower than wrk’s',
    );
  }
  const s: Settings = {
    rounds: common.rounds,
    durationS: common.durationS,
    warmupS: Math.min(2, Math.max(0.5, common.durationS / 2)),
    connections: numberFlag('connections', flags.connections, 32, POSITIVE),
    rate: numberFlag('rate', flags.rate, 2000, POSITIVE),
    openLoopConnections: 64,
    useWrk,
    pin,
    slices: numberFlag('slices', flags.slices, common.quick ? 0 : DEFAULT_SLICES, WHOLE),
    sliceS: numberFlag('slice-seconds', flags['slice-seconds'], 1, POSITIVE),
  };
  if (useWrk && !Number.isInteger(s.sliceS))
    throw new Error('--slice-seconds must be whole seconds with wrk');
  if (!Number.isInteger(s.connections)) throw new Error('--connections must be an integer');
  if (useWrk && !Number.isInteger(s.durationS)) {
    note(
      `wrk takes whole seconds: duration ${s.durationS} s rounded to ${Math.max(1, Math.round(s.durationS))} s`,
    );
    s.durationS = Math.max(1, Math.round(s.durationS));
  }
  if (useWrk) s.warmupS = Math.max(1, Math.round(s.warmupS));

  const tmpDir = mkdtempSync(path.join(tmpdir(), 'spanscope-bench-'));
  onExitCleanup(() => {
    rmSync(tmpDir, { recursive: true, force: true });
  });
  const startedAt = new Date().toISOString();
  const loadavgStart = loadAverage();
  const runs: RunRecord[] = [];
  const status: Record<
    string,
    { status: 'ok' | 'skipped'; description: string; detail?: string; reason?: string }
  > = {};
  const running = new Map<string, Running>();
  try {
    // The shared backend, and the OTLP sink when spanscope-full runs.
    const backendPort = await freePort();
    const backendUrl = `http://127.0.0.1:${backendPort}/`;
    const startBackend = async (): Promise<Managed> => {
      const m = spawnManaged(
        'backend',
        nodeBin(),
        [path.join(BENCH_DIR, 'backend.ts'), '--port', String(backendPort)],
        {
          cpu: pin ? PROXY_CPU : undefined,
          stdinPipe: true,
        },
      );
      const bad = await waitHttp(backendUrl, { timeoutMs: READY_TIMEOUT_MS, abort: exitReason(m) });
      if (bad !== undefined) throw new Error(`backend did not start: ${bad}`);
      return m;
    };
    const backend = await startBackend();
    let sinkPort: number | undefined;
    if (selected.some((c) => c.exportsSpans === true)) {
      sinkPort = await freePort();
      const sink = spawnManaged(
        'otlp-sink',
        nodeBin(),
        [path.join(BENCH_DIR, 'otlp-sink.ts'), '--port', String(sinkPort)],
        { cpu: pin ? LOAD_CPU : undefined, stdinPipe: true },
      );
      const sinkBad = await waitHttp(`http://127.0.0.1:${sinkPort}/stats`, {
        timeoutMs: READY_TIMEOUT_MS,
        abort: exitReason(sink),
      });
      if (sinkBad !== undefined) {
        note(`OTLP sink did not start: ${sinkBad}`);
        sinkPort = undefined;
      }
    }
    const ctx: Context = { repoRoot: common.repoRoot, tmpDir, backendUrl, backend, sinkPort, fullEnv, pin };

    console.log(
      `proxy suite: ${s.rounds} round(s) × ${s.durationS} s per load, saturation ${useWrk ? 'wrk' : 'Node closed loop'} ` +
        `-c${s.connections}, open loop ${s.rate} req/s; ${pin ? `contender+backend on CPU ${PROXY_CPU}, load on CPU ${LOAD_CPU}` : 'unpinned'}`,
    );
    console.log(`backend ${backendUrl} (pid ${ctx.backend.pid}, ${BODY_BYTES}-byte JSON body)`);
    for (const c of selected) {
      const r = await c.start(ctx);
      if ('skip' in r) {
        status[c.name] = { status: 'skipped', description: c.description, reason: r.skip };
        console.log(`  ${c.name.padEnd(15)} SKIPPED: ${r.skip}`);
        continue;
      }
      // The data path must answer like the backend before it is worth measuring.
      let problem: string | undefined;
      try {
        const g = await httpGet(r.url);
        if (g.status !== 200 || g.body.length !== BODY_BYTES) {
          problem = `GET / answered ${g.status} with ${g.body.length} bytes, expected 200 with ${BODY_BYTES}`;
        }
      } catch (err) {
        problem = `GET / failed: ${err instanceof Error ? err.message : String(err)}`;
      }
      if (problem !== undefined) {
        await Promise.all(r.owned.map((m) => stopManaged(m)));
        status[c.name] = { status: 'skipped', description: c.description, reason: problem };
        console.log(`  ${c.name.padEnd(15)} SKIPPED: ${problem}`);
        continue;
      }
      running.set(c.name, r);
      status[c.name] = { status: 'ok', description: c.description, detail: r.detail };
      console.log(`  ${c.name.padEnd(15)} ${r.url}  ${r.detail}`);
    }
    const names = [...running.keys()];
    if (names.length === 0) throw new Error('no contender could be started');
    if (!running.has('direct')) note('direct is not running: no added latency and no throughput ratio');
    if (!running.has('nginx'))
      note('nginx is not running: no CPU ratio to nginx, and that target is skipped');

    const alive = (name: string, r: Running): string | undefined => {
      for (const m of r.measured) {
        const why = exitReason(m)();
        if (why !== undefined) return `${name} ${why}`;
      }
      return undefined;
    };

    console.log(`\nwarm-up: ${s.warmupS} s of saturation per contender (not recorded)`);
    for (const [name, r] of running) {
      if (isStopping()) throw new Error('interrupted');
      try {
        await runSaturation(
          {
            url: r.url,
            durationS: s.warmupS,
            connections: s.connections,
            cpu: pin ? LOAD_CPU : undefined,
            useWrk,
          },
          { onStart: () => undefined, onEnd: () => undefined },
        );
      } catch (err) {
        note(`warm-up of ${name} failed: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sleep(SETTLE_MS);
    }

    for (let round = 1; round <= s.rounds; round++) {
      // Rotate the order each round so that no contender always runs first or right after another.
      const order = names.map((_, i) => names[(i + round - 1) % names.length] ?? '');
      console.log(`\nround ${round}/${s.rounds}`);
      for (const name of order) {
        let r = running.get(name);
        if (!r) continue;
        const rec: RunRecord = { round, contender: name };
        runs.push(rec);
        if (isStopping()) throw new Error('interrupted');
        const backendDead = exitReason(ctx.backend)();
        if (backendDead !== undefined) {
          // Not us: something else on this shared machine stopped it. Same port, so the proxies reconnect.
          ctx.backend = await startBackend();
          note(`the backend ${backendDead}; restarted it on the same port (pid ${ctx.backend.pid})`);
          const direct = CONTENDERS.find((c) => c.name === 'direct');
          if (direct && running.has('direct')) {
            const again = await direct.start(ctx);
            if (!('skip' in again)) running.set('direct', again);
          }
          r = running.get(name) ?? r;
        }
        try {
          const dead = alive(name, r);
          if (dead !== undefined) {
            // Something outside the harness may have stopped it (it is a shared machine): start it again.
            const def = selected.find((c) => c.name === name);
            const again = def ? await def.start(ctx) : { skip: 'unknown contender' };
            if ('skip' in again) throw new Error(`${dead}; restart failed: ${again.skip}`);
            note(`${dead}; restarted it before round ${round} (now ${again.detail})`);
            await Promise.all(r.owned.map((m) => stopManaged(m)));
            running.set(name, again);
            r = again;
          }
          rec.saturation = await measureSaturation(
            r,
            s,
            selected.find((c) => c.name === name)?.exportsSpans === true ? sinkPort : undefined,
          );
          await sleep(SETTLE_MS);
          rec.openLoop = await measureOpenLoop(r, s);
          await sleep(SETTLE_MS);
          const diedDuring = exitReason(ctx.backend)() ?? alive(name, r);
          if (diedDuring !== undefined) {
            rec.discarded = { saturation: rec.saturation, openLoop: rec.openLoop };
            delete rec.saturation;
            delete rec.openLoop;
            throw new Error(`discarded, a process exited during the run: ${diedDuring}`);
          }
          const sat = rec.saturation;
          const ol = rec.openLoop;
          const other = Math.max(sat.interference.otherPct, ol.interference.otherPct);
          const steal = Math.max(sat.interference.stealPct, ol.interference.stealPct);
          const busy =
            (other >= BUSY_PCT ? `  [other processes: ${other.toFixed(0)}% CPU]` : '') +
            (steal >= STEAL_PCT ? `  [steal: ${steal.toFixed(0)}% CPU]` : '');
          const otlp = sat.otlp
            ? `  otlp ${sat.otlp.requests} POSTs/${(sat.otlp.bytes / 1024).toFixed(0)} KiB`
            : '';
          console.log(
            `  ${name.padEnd(15)} ${fmt(sat.rps, 0).padStart(6)} req/s  p99 ${fmt(sat.p99Ms, 2)} ms  ` +
              `${fmt(sat.cpuUsPerReq, 1).padStart(6)} µs/req  RSS ${fmt(sat.rssMaxMiB, 0)} MiB  ` +
              `| ${s.rate}/s: p50 ${fmt(ol.p50Ms, 3)} p99 ${fmt(ol.p99Ms, 3)} ms` +
              `${sat.errors + ol.errors > 0 ? `  errors ${sat.errors}+${ol.errors}` : ''}${otlp}${busy}`,
          );
        } catch (err) {
          rec.error = err instanceof Error ? err.message : String(err);
          console.log(`  ${name.padEnd(15)} FAILED: ${rec.error}`);
        }
      }
    }

    // CPU ratios paired slice by slice (lib/paired.ts): `direct` is no proxy and takes no slices.
    const slices: Slice[] = [];
    /** Slices left out of the pairs, and why. */
    const lostSlices: string[] = [];
    const sliced = names.filter((n) => n !== 'direct');
    if (s.slices > 0 && sliced.length > 1) {
      console.log(`\ninterleaved slices: ${s.slices} × ${s.sliceS} s of saturation per contender`);
      for (let i = 1; i <= s.slices; i++) {
        if (isStopping()) throw new Error('interrupted');
        // Forward, then backward: contenders listed next to each other (bare, tracing-off, full)
        // always take their slices seconds apart, and each one's place evens out over two passes.
        const order = i % 2 === 1 ? sliced : [...sliced].reverse();
        const cpuUsPerReq: Record<string, number> = {};
        for (const name of order) {
          const r = running.get(name);
          if (r === undefined) continue;
          const dead = exitReason(ctx.backend)() ?? alive(name, r);
          if (dead !== undefined) {
            lostSlices.push(`${name}: ${dead}`);
            continue;
          }
          try {
            const sat = await measureSaturation(r, { ...s, durationS: s.sliceS }, undefined);
            if (sat.requests > 0 && sat.errors === 0) cpuUsPerReq[name] = sat.cpuUsPerReq;
            else lostSlices.push(`${name}: ${String(sat.errors)} errors in ${String(sat.requests)} requests`);
          } catch (err) {
            lostSlices.push(`${name}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
        slices.push({ slice: i, cpuUsPerReq });
        if (i % 10 === 0 || i === s.slices) console.log(`  ${String(i)}/${String(s.slices)}`);
      }
      if (lostSlices.length > 0) {
        note(
          `${String(lostSlices.length)} slice(s) left out of the pairs; the first: ${lostSlices[0] ?? ''}`,
        );
      }
    }

    const summary = summarize(names, runs, slices);
    const targets = evaluateTargets(summary, s.rate);
    printReport(summary, targets, s);
    const full = summary.find((x) => x.contender === 'spanscope-full');
    if (full && full.rounds > 0 && !full.otlpRequestsPerRound) {
      note('spanscope-full sent nothing to the OTLP sink during saturation: is it really exporting?');
    }
    const stolen = maxOf(pick(summary.map((x) => x.stealMaxPct)));
    if (stolen !== undefined && stolen >= STEAL_PCT) {
      note(
        `the hypervisor took up to ${stolen.toFixed(0)}% of a CPU from this machine during the runs (steal), ` +
          'in slices in which the pinned processes do not run, and which open-loop p99s include',
      );
    }
    const busiest = maxOf(pick(summary.map((x) => x.otherLoadMaxPct)));
    if (busiest !== undefined && busiest >= BUSY_PCT) {
      note(
        `other processes on this machine took up to ${busiest.toFixed(0)}% of a CPU during the runs: ` +
          'latencies (and, less so, CPU/request) are disturbed; rerun on a quiet machine or with more --rounds',
      );
    }
    for (const x of summary) {
      if (x.cpuUsPerReq && x.cpuUsPerReqStat && Math.abs(x.cpuUsPerReqStat / x.cpuUsPerReq - 1) > 0.25) {
        note(
          `${x.contender}: schedstat (${fmt(x.cpuUsPerReq, 1)} µs/req) and clock ticks (${fmt(x.cpuUsPerReqStat, 1)}) disagree by >25%`,
        );
      }
    }

    const result = {
      startedAt,
      finishedAt: new Date().toISOString(),
      settings: { ...s, fullEnv, only: common.only ?? null },
      environment: {
        nginx: commandPath('nginx') ? nginxVersion(commandPath('nginx') ?? 'nginx') : null,
        wrk: commandPath('wrk') ?? null,
        cpuModel: cpuModel(),
        cpus: cpus().length,
        clockTicksPerSecond: clockTicksPerSecond(),
        loadavgStart,
        loadavgEnd: loadAverage(),
        gitCommit: gitCommit(common.repoRoot),
        backendBodyBytes: BODY_BYTES,
        pinning: pin ? { contenderAndBackend: PROXY_CPU, loadGenerator: LOAD_CPU } : null,
      },
      contenders: status,
      summary,
      targets,
      runs,
      slices,
      notes,
    };
    return writeResults(common.outDir, 'proxy', result);
  } finally {
    await Promise.all([...running.values()].flatMap((r) => r.owned.map((m) => stopManaged(m))));
    await stopAll();
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

function gitCommit(repoRoot: string): string | null {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) return null;
  const dirty = spawnSync('git', ['status', '--porcelain'], {
    cwd: repoRoot,
    encoding: 'utf8',
  }).stdout.trim();
  return r.stdout.trim() + (dirty ? '+dirty' : '');
}

export const proxySuite: Suite = {
  name: 'proxy',
  description: 'the sidecar proxy against direct, other Node proxies and nginx (issue 3)',
  options: {
    'full-env': { type: 'string', multiple: true },
    'variant-flags': { type: 'string', multiple: true },
    rate: { type: 'string' },
    connections: { type: 'string' },
    slices: { type: 'string' },
    'slice-seconds': { type: 'string' },
  },
  help: [
    '--full-env K=V     extra environment for spanscope-full (repeatable), e.g. --full-env OTEL_TRACES_SAMPLER_ARG=0.1',
    '--variant-flags F  also run spanscope-full with these node/V8 flags as spanscope-variantN (repeatable),',
    '                   e.g. --variant-flags=--no-concurrent-marking (the = is needed)',
    '--rate N           open-loop request rate (default 2000)',
    '--connections N    saturation connections (default 32)',
    `--slices N         after the rounds, N passes of short saturation slices, each contender in turn; CPU ratios`,
    `                   are then paired slice by slice (default ${String(DEFAULT_SLICES)}; 0 with --quick; 0: none)`,
    '--slice-seconds S  length of a slice (default 1)',
  ],
  contenders: CONTENDERS.map((c) => c.name),
  run: runProxySuite,
};
