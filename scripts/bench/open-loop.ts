// Open-loop load generator: sends GETs at a fixed rate, each at its intended time t0 + i/rate, over an
// undici Pool, and measures every latency from the INTENDED send time (no coordinated omission: a stall
// in the server delays nothing but shows up in the latencies of every request that should have gone out).
// Bounded: rate × (warmup + duration) requests, then at most --drain-ms for the stragglers.
//
// Usage: node scripts/bench/open-loop.ts --url http://127.0.0.1:P/ --rate 2000 --duration 5
// Prints JSON lines on stdout: {"event":"start"} when the first request is due, then {"event":"done",...}.
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { exitWithParent } from './lib/child.ts';
import { Samples, summarize } from './lib/stats.ts';

exitWithParent();
const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    rate: { type: 'string', default: '2000' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    'drain-ms': { type: 'string', default: '10000' },
    warmup: { type: 'string', default: '1' },
  },
  strict: true,
});
const url = new URL(values.url ?? '');
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') throw new Error('loopback targets only');
const rate = Number(values.rate);
const durationS = Number(values.duration);
const connections = Number(values.connections);
const drainMs = Number(values['drain-ms']);
if (!(rate > 0 && durationS > 0 && connections > 0))
  throw new Error('rate, duration, connections must be > 0');

const total = Math.round(rate * durationS);
// Warm-up: the same schedule, not recorded, so that JIT compilation and the first GCs of this generator
// (and of the server) do not show up as latency.
const warmupN = Math.round(rate * Math.max(0, Number(values.warmup)));
const intervalMs = 1000 / rate;
const pool = new Pool(url.origin, {
  connections,
  pipelining: 1,
  headersTimeout: drainMs,
  bodyTimeout: drainMs,
});
const path = url.pathname + url.search;
const latencies = new Samples(total);
/** How late each request left relative to its intended time: the generator's own stalls. */
const lags = new Samples(total);
let sent = 0;
let completed = 0;
let errors = 0;
let non2xx = 0;
let maxLagMs = 0;
let t0 = 0;

function fireWarmup(): void {
  pool.request({ method: 'GET', path }).then(
    ({ body }) => body.dump(),
    () => undefined,
  );
}

function fire(intended: number): void {
  sent++;
  pool.request({ method: 'GET', path }).then(
    async ({ statusCode, body }) => {
      await body.dump();
      latencies.push(performance.now() - intended);
      completed++;
      if (statusCode < 200 || statusCode >= 300) non2xx++;
    },
    () => {
      errors++;
    },
  );
}

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function run(): Promise<void> {
  // Open the connections before the clock starts, so the first requests do not pay for the handshakes.
  await Promise.all(
    Array.from({ length: Math.min(connections, 8) }, () =>
      pool.request({ method: 'GET', path }).then(({ body }) => body.dump()),
    ),
  );
  t0 = performance.now() + warmupN * intervalMs;
  let next = -warmupN;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = performance.now();
      while (next < total) {
        const intended = t0 + next * intervalMs;
        if (intended > now) break;
        if (next < 0) {
          fireWarmup();
        } else {
          if (next === 0) emit({ event: 'start' });
          maxLagMs = Math.max(maxLagMs, now - intended);
          lags.push(now - intended);
          fire(intended);
        }
        next++;
      }
      if (next < total) setImmediate(tick);
      else resolve();
    };
    tick();
  });
  const sendEnd = performance.now();
  const drainDeadline = sendEnd + drainMs;
  while (completed + errors < sent && performance.now() < drainDeadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const elapsedS = (performance.now() - t0) / 1000;
  const unanswered = sent - completed - errors;
  emit({
    event: 'done',
    targetRps: rate,
    sent,
    completed,
    errors: errors + unanswered + non2xx,
    non2xx,
    unanswered,
    sendSeconds: (sendEnd - t0) / 1000,
    elapsedSeconds: elapsedS,
    achievedRps: completed / ((sendEnd - t0) / 1000),
    maxSendLagMs: maxLagMs,
    sendLagP99Ms: summarize(lags).p99Ms,
    ...summarize(latencies),
  });
  await pool.destroy();
  process.exit(0);
}

await run();
