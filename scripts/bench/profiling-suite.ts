// The profiling benchmark (issue 4, "Benchmarks"), on the profiler core every process shares:
//   - attribution accuracy: a server whose handlers each burn CPU in their own named function after
//     1-4 awaits, 8 concurrent keep-alive clients; of the samples inside those functions, the share
//     that carries the right `handler` and the `span_id` of their own request (target >= 98%);
//   - cost: CPU time per request of a trivial handler (one await) with no profiler, with the profiler
//     only, and with the profiler and per-request labels (target: labels <= 1.2x no profiler).
// The server under test runs on CPU 0, the load generator, the ingest receiver and the harness on CPU 1.
// This file is also the server: `node profiling-suite.ts --child --port P --mode off|profiler|labels`.
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import path from 'node:path';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { startProfiler } from '@spanscope/proxy';
import type { Profiler } from '@spanscope/proxy';
import { startPyroscopeReceiver } from '../../proxy/test/support/pyroscope-receiver.ts';
import type { PyroscopeReceiver, ReceivedUpload } from '../../proxy/test/support/pyroscope-receiver.ts';
import { fixedBody } from './lib/body.ts';
import { exitWithParent } from './lib/child.ts';
import { freePort, waitHttp } from './lib/net.ts';
import { isStopping, nodeBin, pinSelf, spawnManaged, stopAll, stopManaged } from './lib/proc.ts';
import type { Managed } from './lib/proc.ts';
import { cpuDelta, readCpu, treeOf } from './lib/procfs.ts';
import type { CpuSample } from './lib/procfs.ts';
import { runSaturation, wrkAvailable } from './lib/load.ts';
import { median } from './lib/stats.ts';
import { writeResults } from './lib/suite.ts';
import type { CommonOptions, FlagValues, Suite } from './lib/suite.ts';
import { fmt, renderTable } from './lib/table.ts';

const SERVER_CPU = 0;
const LOAD_CPU = 1;
const CLIENTS = 8;
const HANDLERS = 4;
const MODES = ['off', 'profiler', 'labels'] as const;
type Mode = (typeof MODES)[number];

// ---------------------------------------------------------------------------------------------------
// The server under test (child process)

function spin(us: number): number {
  const end = performance.now() + us / 1000;
  let x = 0;
  while (performance.now() < end) for (let i = 0; i < 500; i++) x += Math.sqrt(i + x);
  return x;
}
// One named function per handler: a sample's stack says whose work it was.
function burn_work_0(us: number): number {
  return spin(us);
}
function burn_work_1(us: number): number {
  return spin(us);
}
function burn_work_2(us: number): number {
  return spin(us);
}
function burn_work_3(us: number): number {
  return spin(us);
}
const BURNERS = [burn_work_0, burn_work_1, burn_work_2, burn_work_3];

async function hop(i: number): Promise<void> {
  if (i % 3 === 0) await nextTurn();
  else if (i % 3 === 1) await Promise.resolve();
  else await sleep(0);
}

async function runChild(): Promise<void> {
  const { values } = parseArgs({
    options: {
      child: { type: 'boolean' },
      port: { type: 'string' },
      mode: { type: 'string' },
      pyroscope: { type: 'string' },
      'upload-rate': { type: 'string' },
      'burn-us': { type: 'string' },
    },
    strict: true,
  });
  exitWithParent();
  const mode = values.mode as Mode;
  const burnUs = Number(values['burn-us'] ?? '1000');
  const body = fixedBody();
  const logger = {
    info: (fields: object, message: string) => process.stderr.write(`${message} ${JSON.stringify(fields)}\n`),
    warn: (fields: object, message: string) => process.stderr.write(`${message} ${JSON.stringify(fields)}\n`),
  };
  const profiler: Profiler | undefined =
    mode === 'off'
      ? undefined
      : await startProfiler({
          serverAddress: values.pyroscope,
          applicationName: 'profiling-bench',
          uploadRateSeconds: Number(values['upload-rate'] ?? '10'),
          switches: { endpoint: true, database: true, userAgent: true, dynamicTags: true, traceId: false },
          logger,
        });

  const work = async (k: number, spanId: string, res: ServerResponse): Promise<void> => {
    for (let i = 0; i <= k; i++) await hop(i);
    BURNERS[k]?.(burnUs);
    res.writeHead(200, { 'x-span-id': spanId, 'content-length': '2' }).end('ok');
  };
  const cost = async (res: ServerResponse): Promise<void> => {
    await Promise.resolve();
    res
      .writeHead(200, { 'content-type': 'application/json', 'content-length': String(body.length) })
      .end(body);
  };
  const handle = (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    if (url === '/__flush') {
      return (profiler?.flush() ?? Promise.resolve()).then(() => void res.writeHead(204).end());
    }
    // Span ids come from the tracer in real processes: made in every mode, so only labelling differs.
    const spanId = randomBytes(8).toString('hex');
    const traceId = randomBytes(16).toString('hex');
    const k = url.startsWith('/work/') ? Number(url.slice(6)) : -1;
    const run = (): Promise<void> => (k >= 0 ? work(k, spanId, res) : cost(res));
    if (mode !== 'labels' || profiler === undefined) return run();
    const handler = k >= 0 ? `work_${k}` : 'cost';
    const labels = profiler.requestLabels({
      handler,
      route: k >= 0 ? '/work/{k}' : '/',
      method: 'GET',
      userAgent: 'load-test',
      span: { spanId, traceId, name: `GET ${handler}`, sampled: true },
    });
    return profiler.runWithLabels(labels, run);
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      res.destroy(error instanceof Error ? error : new Error(String(error)));
    });
  });
  server.keepAliveTimeout = 60_000;
  server.listen(Number(values.port), '127.0.0.1');
}

// ---------------------------------------------------------------------------------------------------
// The harness

interface ChildOptions {
  repoRoot: string;
  mode: Mode;
  pyroscope: string;
  uploadRateS: number;
  burnUs: number;
}

async function startChild(o: ChildOptions): Promise<{ managed: Managed; url: string }> {
  const port = await freePort();
  const managed = spawnManaged(
    `profiled-${o.mode}`,
    nodeBin(),
    [
      path.join(import.meta.dirname, 'profiling-suite.ts'),
      '--child',
      '--port',
      String(port),
      '--mode',
      o.mode,
      '--pyroscope',
      o.pyroscope,
      '--upload-rate',
      String(o.uploadRateS),
      '--burn-us',
      String(o.burnUs),
    ],
    { cpu: SERVER_CPU, stdinPipe: true, cwd: o.repoRoot },
  );
  const url = `http://127.0.0.1:${port}`;
  const failure = await waitHttp(`${url}/`, {
    timeoutMs: 10_000,
    abort: () => {
      const status = managed.exitStatus();
      return status === undefined ? undefined : `exited with ${status}: ${managed.stderrTail()}`;
    },
  });
  if (failure !== undefined) {
    await stopManaged(managed);
    throw new Error(`profiled server (${o.mode}) did not start: ${failure}`);
  }
  return { managed, url };
}

function get(url: string, agent: Agent): Promise<{ status: number; spanId: string | undefined }> {
  return new Promise((resolve, reject) => {
    request(url, { agent }, (res) => {
      res.resume();
      res.on('end', () => {
        const spanId = res.headers['x-span-id'];
        resolve({ status: res.statusCode ?? 0, spanId: typeof spanId === 'string' ? spanId : undefined });
      });
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

export interface AttributionResult {
  requests: number;
  samples: number;
  correct: number;
  wrongHandler: number;
  wrongSpan: number;
  unlabelled: number;
  accuracyPct: number;
}

/** Samples inside `burn_work_k`, judged against the span ids each handler's requests were given. */
export function judgeAttribution(
  uploads: readonly ReceivedUpload[],
  spans: ReadonlyMap<string, number>,
  requests: number,
): AttributionResult {
  const result = { requests, samples: 0, correct: 0, wrongHandler: 0, wrongSpan: 0, unlabelled: 0 };
  for (const upload of uploads) {
    if (upload.kind !== 'wall') continue;
    for (const sample of upload.samples) {
      const hits = sample.values['samples/count'] ?? 0;
      if (hits === 0) continue;
      const k = BURNERS.findIndex((fn) => sample.stack.some((frame) => frame.includes(`:${fn.name}:`)));
      if (k === -1) continue;
      result.samples += hits;
      const { handler, span_id: spanId } = sample.labels;
      if (handler === undefined) result.unlabelled += hits;
      else if (handler !== `work_${k}`) result.wrongHandler += hits;
      else if (spanId === undefined || spans.get(spanId) !== k) result.wrongSpan += hits;
      else result.correct += hits;
    }
  }
  return { ...result, accuracyPct: result.samples === 0 ? 0 : (100 * result.correct) / result.samples };
}

async function measureAttribution(
  common: CommonOptions,
  receiver: PyroscopeReceiver,
  durationS: number,
): Promise<AttributionResult> {
  receiver.clear();
  const { managed, url } = await startChild({
    repoRoot: common.repoRoot,
    mode: 'labels',
    pyroscope: receiver.url,
    uploadRateS: 5,
    burnUs: 1000,
  });
  const agent = new Agent({ keepAlive: true, maxSockets: CLIENTS });
  const spans = new Map<string, number>();
  let requests = 0;
  try {
    const end = performance.now() + durationS * 1000;
    await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        for (let i = client; performance.now() < end && !isStopping(); i++) {
          const k = i % HANDLERS;
          const { status, spanId } = await get(`${url}/work/${k}`, agent);
          if (status !== 200 || spanId === undefined) throw new Error(`/work/${k} answered ${status}`);
          spans.set(spanId, k);
          requests++;
        }
      }),
    );
    const before = receiver.uploads.length;
    await get(`${url}/__flush`, agent);
    await receiver.waitForUploads(before + 1, { timeoutMs: 15_000 });
  } finally {
    agent.destroy();
    await stopManaged(managed);
  }
  return judgeAttribution(receiver.uploads, spans, requests);
}

interface CostRun {
  mode: Mode;
  round: number;
  requests: number;
  rps: number;
  cpuUs: number;
  usPerRequest: number;
}

async function measureCost(
  common: CommonOptions,
  receiver: PyroscopeReceiver,
  uploadRateS: number,
): Promise<CostRun[]> {
  const useWrk = !common.nodeLoad && wrkAvailable();
  const runs: CostRun[] = [];
  for (let round = 0; round < common.rounds && !isStopping(); round++) {
    // Rotate the order from round to round so that drift on the machine spreads over every mode.
    const order = MODES.map((_, i) => MODES[(i + round) % MODES.length] ?? 'off');
    for (const mode of order) {
      const { managed, url } = await startChild({
        repoRoot: common.repoRoot,
        mode,
        pyroscope: receiver.url,
        uploadRateS,
        burnUs: 0,
      });
      try {
        const load = { url: `${url}/`, connections: CLIENTS, cpu: LOAD_CPU, useWrk };
        await runSaturation({ ...load, durationS: 1 }, { onStart: () => undefined, onEnd: () => undefined });
        let start: CpuSample | undefined;
        let end: CpuSample | undefined;
        const pids = (): number[] => treeOf([managed.pid]);
        const result = await runSaturation(
          { ...load, durationS: common.durationS },
          { onStart: () => (start = readCpu(pids())), onEnd: () => (end = readCpu(pids())) },
        );
        if (start === undefined || end === undefined) throw new Error('CPU was not sampled');
        const cpuUs = cpuDelta(start, end).us;
        runs.push({
          mode,
          round,
          requests: result.requests,
          rps: result.rps,
          cpuUs,
          usPerRequest: result.requests > 0 ? cpuUs / result.requests : Number.NaN,
        });
        console.log(
          `  round ${round + 1} ${mode.padEnd(8)} ${fmt(cpuUs / result.requests, 2)} µs/request, ${fmt(result.rps, 0)} req/s`,
        );
      } finally {
        await stopManaged(managed);
      }
    }
  }
  return runs;
}

async function runSuite(common: CommonOptions, flags: FlagValues): Promise<string> {
  const accuracyS = Number(flags['accuracy-duration'] ?? (common.quick ? 5 : 30));
  const uploadRateS = Number(flags['upload-rate'] ?? 10);
  if (!(accuracyS > 0) || !(uploadRateS >= 1))
    throw new Error('--accuracy-duration and --upload-rate must be positive');
  pinSelf(LOAD_CPU);
  const receiver = await startPyroscopeReceiver();
  try {
    console.log(`profiling: attribution, ${CLIENTS} clients, ${accuracyS} s`);
    const attribution = await measureAttribution(common, receiver, accuracyS);
    console.log(
      renderTable(
        [
          'attribution',
          'requests',
          'samples',
          'correct',
          'wrong handler',
          'wrong span',
          'unlabelled',
          'accuracy %',
        ],
        [
          [
            'handler + own span_id',
            attribution.requests,
            attribution.samples,
            attribution.correct,
            attribution.wrongHandler,
            attribution.wrongSpan,
            attribution.unlabelled,
            fmt(attribution.accuracyPct, 2),
          ],
        ],
      ),
    );
    console.log(
      `\nprofiling: cost, ${common.rounds} round(s) × ${common.durationS} s, upload every ${uploadRateS} s`,
    );
    const runs = await measureCost(common, receiver, uploadRateS);
    const perMode = Object.fromEntries(
      MODES.map((mode) => [mode, median(runs.filter((r) => r.mode === mode).map((r) => r.usPerRequest))]),
    ) as Record<Mode, number | undefined>;
    const base = perMode.off;
    console.log(
      renderTable(
        ['mode', 'CPU µs/request (median)', '× off', 'req/s (median)'],
        MODES.map((mode) => [
          mode,
          fmt(perMode[mode], 2),
          fmt(base === undefined ? undefined : (perMode[mode] ?? Number.NaN) / base, 3),
          fmt(median(runs.filter((r) => r.mode === mode).map((r) => r.rps)), 0),
        ]),
      ),
    );
    const costRatio = base === undefined ? undefined : (perMode.labels ?? Number.NaN) / base;
    console.log(
      `\nattribution ${fmt(attribution.accuracyPct, 2)}% (target >= 98%), cost ${fmt(costRatio, 3)}× (target <= 1.2×)`,
    );
    const result = {
      attribution,
      cost: { runs, medianUsPerRequest: perMode, ratioLabelsVsOff: costRatio, uploadRateS },
      targets: { accuracyPct: 98, costRatio: 1.2 },
    };
    return writeResults(common.outDir, 'profiling', result);
  } finally {
    await stopAll();
    await receiver.close();
  }
}

export const profilingSuite: Suite = {
  name: 'profiling',
  description: 'profile label attribution across awaits and the CPU cost of profiling (issue 4)',
  options: {
    'accuracy-duration': { type: 'string' },
    'upload-rate': { type: 'string' },
  },
  help: [
    '--accuracy-duration S   seconds of load for the attribution measurement (default 30; 5 with --quick)',
    '--upload-rate S         profile upload period in the cost measurement (default 10, as deployed)',
  ],
  contenders: [...MODES],
  run: runSuite,
};

if (import.meta.main && process.argv.includes('--child')) {
  runChild().catch((error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  });
}
