// Closed-loop saturation generator, the fallback when wrk is not installed: N connections over an undici
// Pool, each sending its next GET as soon as the previous response has been read, for a fixed duration.
//
// Usage: node scripts/bench/closed-loop.ts --url http://127.0.0.1:P/ --connections 32 --duration 5
// Prints JSON lines on stdout: {"event":"start"} then {"event":"done",...}.
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { exitWithParent } from './lib/child.ts';
import { Samples, summarize } from './lib/stats.ts';

exitWithParent();
const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '32' },
  },
  strict: true,
});
const url = new URL(values.url ?? '');
if (url.hostname !== '127.0.0.1' && url.hostname !== 'localhost') throw new Error('loopback targets only');
const durationMs = Number(values.duration) * 1000;
const connections = Number(values.connections);
if (!(durationMs > 0 && connections > 0)) throw new Error('duration and connections must be > 0');

const pool = new Pool(url.origin, {
  connections,
  pipelining: 1,
  headersTimeout: 10_000,
  bodyTimeout: 10_000,
});
const path = url.pathname + url.search;
const latencies = new Samples();
let completed = 0;
let errors = 0;
let non2xx = 0;

function emit(obj: Record<string, unknown>): void {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

async function worker(deadline: number): Promise<void> {
  while (performance.now() < deadline) {
    const start = performance.now();
    try {
      const { statusCode, body } = await pool.request({ method: 'GET', path });
      await body.dump();
      latencies.push(performance.now() - start);
      completed++;
      if (statusCode < 200 || statusCode >= 300) non2xx++;
    } catch {
      errors++;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

await Promise.all(
  Array.from({ length: connections }, () =>
    pool.request({ method: 'GET', path }).then(({ body }) => body.dump()),
  ),
);
emit({ event: 'start' });
const t0 = performance.now();
await Promise.all(Array.from({ length: connections }, () => worker(t0 + durationMs)));
const seconds = (performance.now() - t0) / 1000;
emit({
  event: 'done',
  requests: completed,
  seconds,
  rps: completed / seconds,
  errors: errors + non2xx,
  non2xx,
  ...summarize(latencies),
});
await pool.destroy();
process.exit(0);
