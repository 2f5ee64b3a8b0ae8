// The per-request counter and latency histogram, kept in plain numbers and handed to prom-client's
// registry at scrape time, so /metrics reads exactly as prom-client's own Counter and Histogram.
//
// Why not prom-client's Counter and Histogram on the request path: each call rebuilds a label
// string and looks it up in an object keyed by it, over 1 µs per request for the pair, some 25
// times this (`npm run bench -- --suite hot-path`, request-metrics). Here a request is four Map
// lookups on label values from closed sets, and a bucket increment.
import type { Registry } from 'prom-client';

type RequestLabels = Readonly<Record<'handler' | 'method' | 'status_class' | 'user_agent', string>>;

interface Series {
  readonly labels: RequestLabels;
  count: number;
  sum: number;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly buckets: Float64Array;
}

/** prom-client's view of a metric: what Registry#metrics() asks each registered metric for. */
interface MetricValue {
  readonly labels: Readonly<Partial<Record<string, string | number>>>;
  readonly value: number;
  readonly metricName?: string;
}

interface RegistryMetric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'histogram';
  readonly aggregator: 'sum';
  get(): Promise<{ name: string; help: string; type: string; aggregator: 'sum'; values: MetricValue[] }>;
  reset(): void;
}

const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];

export function statusClass(status: number): string {
  return status >= 100 && status < 600 ? (STATUS_CLASSES[Math.floor(status / 100)] as string) : 'none';
}

type Level<T> = Map<string, T>;

export class RequestMetrics {
  readonly #bounds: readonly number[];
  readonly #series: Series[] = [];
  readonly #index: Level<Level<Level<Level<Series>>>> = new Map();

  constructor(
    registry: Registry,
    options: {
      countName: string;
      countHelp: string;
      durationName: string;
      durationHelp: string;
      buckets: readonly number[];
    },
  ) {
    this.#bounds = options.buckets;
    const series = this.#series;
    const bounds = this.#bounds;
    const reset = () => {
      for (const s of series) {
        s.count = 0;
        s.sum = 0;
        s.buckets.fill(0);
      }
    };
    const counter: RegistryMetric = {
      name: options.countName,
      help: options.countHelp,
      type: 'counter',
      aggregator: 'sum',
      get: () =>
        Promise.resolve({
          name: options.countName,
          help: options.countHelp,
          type: 'counter',
          aggregator: 'sum',
          values: series.map((s) => ({ labels: s.labels, value: s.count })),
        }),
      reset,
    };
    const histogram: RegistryMetric = {
      name: options.durationName,
      help: options.durationHelp,
      type: 'histogram',
      aggregator: 'sum',
      get: () => {
        const values: MetricValue[] = [];
        for (const s of series) {
          let cumulative = 0;
          for (let i = 0; i <= bounds.length; i++) {
            cumulative += s.buckets[i] as number;
            values.push({
              labels: { le: bounds[i] ?? '+Inf', ...s.labels },
              value: cumulative,
              metricName: `${options.durationName}_bucket`,
            });
          }
          values.push({ labels: s.labels, value: s.sum, metricName: `${options.durationName}_sum` });
          values.push({ labels: s.labels, value: s.count, metricName: `${options.durationName}_count` });
        }
        return Promise.resolve({
          name: options.durationName,
          help: options.durationHelp,
          type: 'histogram',
          aggregator: 'sum',
          values,
        });
      },
      reset,
    };
    // The registry takes any object with prom-client's metric shape (its typings list only its own classes).
    registry.registerMetric(counter as unknown as Parameters<Registry['registerMetric']>[0]);
    registry.registerMetric(histogram as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  record(handler: string, method: string, status: number, userAgent: string, durationSeconds: number): void {
    const series = this.#seriesFor(handler, method, statusClass(status), userAgent);
    series.count++;
    series.sum += durationSeconds;
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && durationSeconds > (bounds[i] as number)) i++;
    series.buckets[i] = (series.buckets[i] as number) + 1;
  }

  #seriesFor(handler: string, method: string, klass: string, userAgent: string): Series {
    const found = this.#index.get(handler)?.get(method)?.get(klass)?.get(userAgent);
    if (found !== undefined) return found;
    const created: Series = {
      labels: { handler, method, status_class: klass, user_agent: userAgent },
      count: 0,
      sum: 0,
      buckets: new Float64Array(this.#bounds.length + 1),
    };
    this.#series.push(created);
    level(level(level(this.#index, handler), method), klass).set(userAgent, created);
    return created;
  }
}

function level<T>(map: Map<string, Map<string, T>>, key: string): Map<string, T> {
  let next = map.get(key);
  if (next === undefined) {
    next = new Map();
    map.set(key, next);
  }
  return next;
}
