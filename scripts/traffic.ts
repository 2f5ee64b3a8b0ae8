// `npm run traffic -- [URL] [options]`: drives the running proxy through every endpoint of the
// inventory API with six kinds of client, then prints requests per handler and client category
// and a few trace ids to paste into Grafana. Exit 1 when the proxy cannot be reached or an answer
// has an unexpected status, 2 on a bad flag, 130 when interrupted.
import { httpUrl, parseFlags, positiveFlag, runCommand } from './lib/cli.ts';
import { UsageError } from './lib/errors.ts';
import { driveTraffic } from './lib/inventory-traffic.ts';
import { createProgress } from './lib/progress.ts';
import { describeUnexpected, renderTraces, renderTrafficTable } from './lib/traffic-report.ts';

const DEFAULT_URL = 'http://localhost:8080';
const DEFAULT_REQUESTS = 660;
const DEFAULT_CONCURRENCY = 8;

export const USAGE = `usage: npm run traffic -- [URL] [options]

Drives the spanscope proxy in front of the inventory API: every endpoint (GET /products,
POST /product, GET/PUT/DELETE /product/{id}, GET /health, a 404) from six kinds of client
(curl, browser, postman, python, k6, bot). Each cycle of 11 requests creates its own product
and deletes it, so the data is left as it was.

  URL                    the proxy (default ${DEFAULT_URL})
  -n, --requests N       stop after N requests (default ${DEFAULT_REQUESTS} when --duration is not given)
  -d, --duration SECONDS stop after this long (with --requests too: whichever comes first)
  -c, --concurrency N    requests in flight at once (default ${DEFAULT_CONCURRENCY})
  -h, --help             this text

Prints requests per handler and client category (the proxy's names, as in its metrics and
profile labels) and the trace id of the slowest request of each handler.
Exit status: 0 done, 1 proxy unreachable or an unexpected status, 2 bad usage, 130 interrupted.`;

interface TrafficArgs {
  readonly url: string;
  readonly requests: number | undefined;
  readonly durationMs: number | undefined;
  readonly concurrency: number;
}

export function parseTrafficArgs(argv: readonly string[]): TrafficArgs | 'help' {
  const { values, positionals } = parseFlags(argv, {
    requests: { type: 'string', short: 'n' },
    duration: { type: 'string', short: 'd' },
    concurrency: { type: 'string', short: 'c' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return 'help';
  if (positionals.length > 1) throw new UsageError(`one URL at most, got: ${positionals.join(' ')}`);
  const url = httpUrl('URL', positionals[0] ?? DEFAULT_URL);
  const duration = positiveFlag('duration', values.duration, false);
  const requests = positiveFlag('requests', values.requests, true);
  return {
    url,
    requests: requests ?? (duration === undefined ? DEFAULT_REQUESTS : undefined),
    durationMs: duration === undefined ? undefined : duration * 1000,
    concurrency: positiveFlag('concurrency', values.concurrency, true) ?? DEFAULT_CONCURRENCY,
  };
}

async function traffic({ url, requests, durationMs, concurrency }: TrafficArgs): Promise<number> {
  // Ctrl-C stops sending; what was sent is still reported. A second Ctrl-C exits at once.
  const stop = new AbortController();
  const onSigint = (): void => {
    if (stop.signal.aborted) process.exit(130);
    stop.abort();
  };
  process.on('SIGINT', onSigint);

  const progress = createProgress(process.stderr, 'traffic');
  const started = Date.now();
  let done = 0;
  const result = await driveTraffic({
    baseUrl: url,
    concurrency,
    requests,
    durationMs,
    signal: stop.signal,
    onRecord: () => {
      done += 1;
      const elapsed = Date.now() - started;
      const fraction = Math.max(
        requests === undefined ? 0 : done / requests,
        durationMs === undefined ? 0 : elapsed / durationMs,
      );
      const rate = elapsed > 0 ? (done * 1000) / elapsed : 0;
      progress.update(fraction, `${done} requests  ${rate.toFixed(0)}/s`);
    },
  });
  progress.finish();
  process.off('SIGINT', onSigint);

  if (result.failure !== undefined) {
    const after = result.records.length === 0 ? '' : ` after ${result.records.length} requests`;
    process.stderr.write(`traffic: ${result.failure.message}${after}. Is the proxy running (npm start)?\n`);
    return 1;
  }

  const seconds = result.elapsedMs / 1000;
  const rate = seconds > 0 ? result.records.length / seconds : 0;
  process.stdout.write(
    `${result.records.length} requests to ${url} in ${seconds.toFixed(1)} s ` +
      `(${rate.toFixed(0)} req/s, ${concurrency} at a time)${result.interrupted ? ', interrupted' : ''}\n\n` +
      `${renderTrafficTable(result.records)}\n\n${renderTraces(result.records)}\n`,
  );
  const unexpected = describeUnexpected(result.records);
  if (unexpected !== undefined) {
    process.stderr.write(`traffic: ${unexpected}\n`);
    return 1;
  }
  return result.interrupted ? 130 : 0;
}

if (import.meta.main) process.exitCode = await runCommand('traffic', USAGE, parseTrafficArgs, traffic);
