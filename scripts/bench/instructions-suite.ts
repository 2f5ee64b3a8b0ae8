// User-space instructions per proxied request, counted by valgrind's callgrind: the same figure
// whatever else the machine is doing, where CPU time moves by ±20–50% from run to run here.
//
// Each contender runs under callgrind in front of the shared backend. After a warm-up (so the JIT
// has optimized the request path), the counters are zeroed, a fixed number of requests is sent over
// keep-alive connections, and the counters are dumped: instructions ÷ requests. Kernel time
// (socket syscalls) is not counted, so these ratios are larger than CPU-time ratios. Under
// callgrind everything runs many times slower (the table shows the start-up time and the requests/s
// served while counting), so V8's time-driven GC heuristics fire more often per
// request than in a real run: the GC share is reported separately. So is the optimizing compilers'
// work on V8's background threads: on the same binary it moved by 24,000 instructions per request
// when the proxy sent one more header upstream (2,400 on the main thread), so it is a property of
// the counted window, not of the request path.
import { mkdirSync, readFileSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { freePort, waitHttp } from './lib/net.ts';
import { commandPath, nodeBin, spawnManaged, stopManaged } from './lib/proc.ts';
import type { Managed } from './lib/proc.ts';
import { writeResults } from './lib/suite.ts';
import type { CommonOptions, FlagValues, Suite } from './lib/suite.ts';
import { fmt, renderTable } from './lib/table.ts';
import { parseFullEnv, spanscopeEnv, spanscopeLaunch } from './proxy-suite.ts';

const CONTENDERS = [
  'native-parser',
  'undici-stream',
  'spanscope-bare',
  'spanscope-tracing-off',
  'spanscope-full',
] as const;
type ContenderName = (typeof CONTENDERS)[number];
const BENCH_DIR = import.meta.dirname;
const READY_TIMEOUT_MS = 300_000;
/** V8's garbage collector, by the names callgrind reports for the node binary. */
const GC_FUNCTION =
  /Mark|Sweep|Scaveng|heap::base|ConcurrentMarking|IteratePointers|SizeFromMap|Evacuat|Heap::/;
/** V8's compilers (Maglev, TurboFan, Sparkplug, the parser and bytecode generator) and deoptimizer. */
const COMPILER_FUNCTION =
  /compiler::|maglev::|turboshaft|Maglev|Turbofan|TurboFan|Compiler|Parser|Scanner|BytecodeGenerator|baseline::|Zone::|Sparkplug|AstNode|DeclarationScope|OptimizedCompilationJob|Deoptimizer/;

/**
 * V8's runtime entry for a computed key in an object literal whose map was deprecated. Under
 * callgrind, some runs of the proxy with tracing off call it about 40 times per request (node's
 * `process.nextTick` builds each tick as such a literal), and each call migrates the new object
 * (`JSObject::MigrateToMap`): about 52,000 instructions per request in all, 2026-11-29. In a real
 * run of the same build under wrk, sampled with `perf record` (one-off; scripts/bench/README.md,
 * "Instructions suite: method"), it had no samples and the inline cache in front of it 0.02%, so it
 * belongs to the slowed-down process, not to the request path: it is reported apart.
 */
const LITERAL_MIGRATION = 'v8::internal::Runtime_DefineKeyedOwnPropertyInLiteral';

/**
 * A callgrind function's name without its parameter types, when the function is V8's own. Both
 * patterns above apply to these only: node's HTTP parser (`node::http_parser::Parser`, about 1,900
 * instructions per request) and node's GC performance hooks
 * (`node::performance::MarkGarbageCollection…`, a few) are not V8 compiling or collecting.
 */
function v8Name(fn: string): string | undefined {
  const name = fn.split('(', 1)[0] ?? fn;
  return /v8::internal::|heap::base::|cppgc::/.test(name) ? name : undefined;
}

/** Sends exactly `count` GETs over the agent's keep-alive connections; resolves with the failures. */
function fixedLoad(url: string, count: number, agent: http.Agent): Promise<number> {
  let sent = 0;
  let finished = 0;
  let failed = 0;
  return new Promise((resolve) => {
    const next = (): void => {
      if (sent >= count) {
        if (finished === count) {
          resolve(failed);
        }
        return;
      }
      sent++;
      const done = (ok: boolean): void => {
        if (!ok) failed++;
        finished++;
        next();
      };
      http
        .get(url, { agent, headers: { 'user-agent': 'curl/8.5.0' } }, (res) => {
          res.resume();
          res.on('end', () => {
            done(res.statusCode === 200);
          });
        })
        .on('error', () => {
          done(false);
        });
    };
    for (let i = 0; i < agent.maxSockets; i++) next();
  });
}

interface Totals {
  total: number;
  gc: number;
  compiler: number;
  /** Inclusive cost of the calls into LITERAL_MIGRATION. */
  literalMigration: number;
}

/**
 * Total, GC- and compiler-named instructions of a callgrind dump (exclusive costs summed per
 * function), and the inclusive cost of the calls into LITERAL_MIGRATION.
 */
export function callgrindTotals(file: string): Totals {
  const names = new Map<string, string>();
  let fn = '';
  let callee = '';
  let skipNext = false;
  let total = 0;
  let gc = 0;
  let compiler = 0;
  let literalMigration = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.startsWith('fn=') || line.startsWith('cfn=')) {
      const m = /^c?fn=\((\d+)\)(?: (.*))?$/.exec(line);
      if (m?.[2] !== undefined) names.set(m[1] as string, m[2]);
      const name = m ? (names.get(m[1] as string) ?? '') : line.slice(line.indexOf('=') + 1);
      if (line.startsWith('fn=')) fn = name;
      else callee = name;
      continue;
    }
    if (line.startsWith('calls=')) {
      skipNext = true; // the next cost line is the callee's inclusive cost, not this function's
      continue;
    }
    if (!/^[0-9+*-]/.test(line)) continue;
    const cost = Number(line.split(' ')[1]);
    if (!Number.isFinite(cost)) continue;
    if (skipNext) {
      skipNext = false;
      if (v8Name(callee) === LITERAL_MIGRATION && v8Name(fn) !== LITERAL_MIGRATION) literalMigration += cost;
      continue;
    }
    total += cost;
    const v8 = v8Name(fn);
    if (v8 === undefined) continue;
    if (GC_FUNCTION.test(v8)) gc += cost;
    else if (COMPILER_FUNCTION.test(v8)) compiler += cost;
  }
  return { total, gc, compiler, literalMigration };
}

interface Counted {
  instructionsPerRequest: number;
  gcPerRequest: number;
  /** Mostly on V8's background threads; see the header. */
  compilerPerRequest: number;
  /** LITERAL_MIGRATION's calls, which real runs do not make; see there. */
  literalMigrationPerRequest: number;
  /** Instructions outside GC, the compilers and LITERAL_MIGRATION: the request path's own. */
  requestPathPerRequest: number;
  requests: number;
  /** From spawning valgrind to the first ready answer. */
  startSeconds: number;
  /** Requests per second served while counting, under callgrind. */
  countedRps: number;
}

async function countOne(
  name: ContenderName,
  o: {
    backendUrl: string;
    sinkPort: number;
    outDir: string;
    warmup: number;
    requests: number;
    /** V8 flags put before the script (--predictable). */
    nodeFlags: string[];
    fullEnv: Record<string, string>;
  },
): Promise<Counted | { skip: string }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const outFile = path.join(o.outDir, `callgrind-${name}.out`);
  // One dump per thread, so the figures say where the work ran (the main thread is the event loop).
  const valgrind = [
    '--tool=callgrind',
    '--separate-threads=yes',
    `--callgrind-out-file=${outFile}`,
    nodeBin(),
    ...o.nodeFlags,
  ];
  const spawnedAt = performance.now();
  let m: Managed;
  let ready: string;
  if (name === 'undici-stream' || name === 'native-parser') {
    const script = path.join(BENCH_DIR, 'contenders', `${name}.ts`);
    m = spawnManaged(
      name,
      'valgrind',
      [...valgrind, script, '--port', String(port), '--target', o.backendUrl],
      {
        stdinPipe: true,
      },
    );
    ready = `http://127.0.0.1:${String(port)}/`;
  } else {
    const env = spanscopeEnv({
      port,
      adminPort,
      backendUrl: o.backendUrl,
      sinkPort: name === 'spanscope-full' ? o.sinkPort : undefined,
      accessLog: name === 'spanscope-tracing-off',
      extra: name === 'spanscope-full' ? o.fullEnv : {},
    });
    const proxyDir = path.join(BENCH_DIR, '..', '..', 'proxy');
    const launch = spanscopeLaunch(proxyDir, 'shipped');
    m = spawnManaged(name, 'valgrind', [...valgrind, ...launch.args], {
      cwd: proxyDir,
      env: { ...launch.env, ...env, OTEL_METRICS_EXPORTER: 'none' },
    });
    ready = `http://127.0.0.1:${String(adminPort)}/readyz`;
  }
  try {
    const failed = await waitHttp(ready, { timeoutMs: READY_TIMEOUT_MS });
    if (failed !== undefined) return { skip: `not ready under valgrind: ${failed}` };
    const startSeconds = (performance.now() - spawnedAt) / 1000;
    const url = `http://127.0.0.1:${String(port)}/`;
    // The counted requests reuse the warm-up's connections: a load generator's keep-alive
    // connections stay open, and new ones would add their own one-off work to the count.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
    await fixedLoad(url, o.warmup, agent);
    spawnSync('callgrind_control', ['-z', String(m.pid)], { stdio: 'ignore' });
    const countFrom = performance.now();
    const errors = await fixedLoad(url, o.requests, agent);
    agent.destroy();
    const countedRps = o.requests / ((performance.now() - countFrom) / 1000);
    spawnSync('callgrind_control', ['-d', String(m.pid)], { stdio: 'ignore' });
    if (errors > 0) return { skip: `${String(errors)} of ${String(o.requests)} requests failed` };
    const dumps = readdirSync(o.outDir).filter((f) => f.startsWith(`callgrind-${name}.out.`));
    if (dumps.length === 0) return { skip: 'callgrind wrote no dump' };
    const sum: Totals = { total: 0, gc: 0, compiler: 0, literalMigration: 0 };
    for (const dump of dumps) {
      const t = callgrindTotals(path.join(o.outDir, dump));
      sum.total += t.total;
      sum.gc += t.gc;
      sum.compiler += t.compiler;
      sum.literalMigration += t.literalMigration;
    }
    return {
      instructionsPerRequest: sum.total / o.requests,
      gcPerRequest: sum.gc / o.requests,
      compilerPerRequest: sum.compiler / o.requests,
      literalMigrationPerRequest: sum.literalMigration / o.requests,
      // A collection that starts inside LITERAL_MIGRATION counts in both; it is rare enough to leave.
      requestPathPerRequest: (sum.total - sum.gc - sum.compiler - sum.literalMigration) / o.requests,
      requests: o.requests,
      startSeconds,
      countedRps,
    };
  } finally {
    await stopManaged(m, 10_000);
  }
}

async function runSuite(common: CommonOptions, flags: FlagValues): Promise<string> {
  const wanted = (common.only ?? [...CONTENDERS]) as ContenderName[];
  // Whole batches of the span export (512 spans each): warm-up and count both end on a batch's
  // last span, so every run counts the same number of exports.
  const requests = common.quick ? 512 : 2048;
  const warmup = common.quick ? 1024 : 3072;
  const nodeFlags = flags.predictable === true ? ['--predictable'] : [];
  const fullEnv = parseFullEnv(flags['full-env']);
  const results: Record<string, Counted | { skip: string }> = {};
  const missing = ['valgrind', 'callgrind_control'].filter((c) => commandPath(c) === undefined);
  const outDir = path.join(common.outDir, `instructions-${String(Date.now())}`);
  mkdirSync(outDir, { recursive: true });
  if (missing.length > 0) {
    for (const name of wanted) results[name] = { skip: `${missing.join(' and ')} not installed` };
  } else {
    const backendPort = await freePort();
    const sinkPort = await freePort();
    const backend = spawnManaged(
      'backend',
      nodeBin(),
      [path.join(BENCH_DIR, 'backend.ts'), '--port', String(backendPort)],
      {
        stdinPipe: true,
      },
    );
    const sink = spawnManaged(
      'otlp-sink',
      nodeBin(),
      [path.join(BENCH_DIR, 'otlp-sink.ts'), '--port', String(sinkPort)],
      {
        stdinPipe: true,
      },
    );
    const backendUrl = `http://127.0.0.1:${String(backendPort)}/`;
    try {
      await waitHttp(backendUrl, { timeoutMs: 10_000 });
      for (const name of wanted) {
        console.log(
          `${name}: starting under callgrind, then ${String(warmup)} warm-up and ${String(requests)} counted requests`,
        );
        results[name] = await countOne(name, {
          backendUrl,
          sinkPort,
          outDir,
          warmup,
          requests,
          nodeFlags,
          fullEnv,
        });
      }
    } finally {
      await stopManaged(backend);
      await stopManaged(sink);
    }
  }
  const counted = (name: string) => {
    const r = results[name];
    return r !== undefined && 'instructionsPerRequest' in r ? r : undefined;
  };
  const bare = counted('spanscope-bare');
  // The "proxy with tracing off": the access log stays on, as shipped.
  const tracingOff = counted('spanscope-tracing-off');
  console.log(
    renderTable(
      [
        'contender',
        'instructions/request',
        'in GC',
        'in JIT compilers',
        'in literal migration',
        'request path',
        '÷ bare',
        'request path ÷ bare',
        '÷ tracing-off',
        'start s',
        'req/s counted',
        'note',
      ],
      wanted.map((name) => {
        const r = results[name];
        if (r === undefined || !('instructionsPerRequest' in r))
          return [name, '', '', '', '', '', '', '', '', '', '', r?.skip ?? ''];
        return [
          name,
          fmt(r.instructionsPerRequest, 0),
          fmt(r.gcPerRequest, 0),
          fmt(r.compilerPerRequest, 0),
          fmt(r.literalMigrationPerRequest, 0),
          fmt(r.requestPathPerRequest, 0),
          bare ? fmt(r.instructionsPerRequest / bare.instructionsPerRequest, 2) : '',
          bare ? fmt(r.requestPathPerRequest / bare.requestPathPerRequest, 2) : '',
          tracingOff ? fmt(r.requestPathPerRequest / tracingOff.requestPathPerRequest, 2) : '',
          fmt(r.startSeconds, 0),
          fmt(r.countedRps, 0),
          '',
        ];
      }),
    ),
  );
  return writeResults(common.outDir, 'instructions', {
    requests,
    warmup,
    nodeFlags,
    fullEnv,
    results,
  });
}

export const instructionsSuite: Suite = {
  name: 'instructions',
  description: 'user-space instructions per proxied request under valgrind callgrind (noise-free, slow)',
  options: {
    predictable: { type: 'boolean' },
    'full-env': { type: 'string', multiple: true },
  },
  help: [
    '--predictable      V8 single-threaded with allocation-driven GC: repeatable to about 0.4%, for A/B of a change',
    '                   (its request-path figures include write barriers and GC bookkeeping; compare only within the mode)',
    '--full-env K=V     extra environment for spanscope-full (repeatable), e.g. --full-env ACCESS_LOG=false',
    '(--quick: 1,024 warm-up and 512 counted requests instead of 3,072 and 2,048)',
  ],
  contenders: [...CONTENDERS],
  run: runSuite,
};
