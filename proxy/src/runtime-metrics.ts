// Runtime metrics (INCLUDE_RUNTIME_INFO): event-loop delay and utilization, V8 heap and GC, as
// OpenTelemetry metrics on the same resource as the spans, and the conditional-profiling gate's
// position. The same figures reach the admin port's Prometheus /metrics through
// `registerRuntimePrometheusMetrics`.
//
// Instrument names, units and attributes follow the OpenTelemetry semantic conventions for Node.js
// and V8 runtime metrics (semconv 1.45, "development" status). The names are copied here rather
// than imported from `@opentelemetry/semantic-conventions/incubating`, as that package advises for
// unstable names; a test compares them with the package so a rename is noticed.
import { ValueType } from '@opentelemetry/api';
import type { Attributes, BatchObservableResult, Meter, ObservableResult } from '@opentelemetry/api';
import { OTLPMetricExporter as OTLPProtoMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPMetricExporter as OTLPJsonMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import type { Resource } from '@opentelemetry/resources';
import {
  ConsoleMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import {
  constants as perfConstants,
  monitorEventLoopDelay,
  performance,
  PerformanceObserver,
} from 'node:perf_hooks';
import type { ELDHistogram, EventLoopUtilization, Histogram, NodeGCPerformanceDetail } from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { ProfilingGateState } from './profiling/conditional.ts';

/** The semantic-convention names used here. */
export const RUNTIME_METRIC_NAMES = Object.freeze({
  eventLoopDelayMin: 'nodejs.eventloop.delay.min',
  eventLoopDelayMax: 'nodejs.eventloop.delay.max',
  eventLoopDelayMean: 'nodejs.eventloop.delay.mean',
  eventLoopDelayStddev: 'nodejs.eventloop.delay.stddev',
  eventLoopDelayP50: 'nodejs.eventloop.delay.p50',
  eventLoopDelayP90: 'nodejs.eventloop.delay.p90',
  eventLoopDelayP99: 'nodejs.eventloop.delay.p99',
  eventLoopUtilization: 'nodejs.eventloop.utilization',
  eventLoopTime: 'nodejs.eventloop.time',
  heapUsed: 'v8js.memory.heap.used',
  heapSpaceSize: 'v8js.memory.heap.space.size',
  heapSpaceAvailableSize: 'v8js.memory.heap.space.available_size',
  heapSpacePhysicalSize: 'v8js.memory.heap.space.physical_size',
  gcDuration: 'v8js.gc.duration',
});

export const RUNTIME_ATTRIBUTE_NAMES = Object.freeze({
  eventLoopState: 'nodejs.eventloop.state',
  heapSpaceName: 'v8js.heap.space.name',
  gcType: 'v8js.gc.type',
});

/** spanscope's own instruments. */
export const PROFILING_METRIC_NAMES = Object.freeze({
  /** 1 while profiles are uploaded (gate open), else 0. */
  active: 'spanscope.profiling.active',
  /** Switches of the gate, by `spanscope.profiling.state` (`open`, `closed`). */
  switches: 'spanscope.profiling.switches',
  /** The usage the gate last saw, by `spanscope.resource` (`cpu`, `memory`), in percent of the limit. */
  usage: 'spanscope.profiling.usage',
});

/**
 * The semantic conventions advise [0.01, 0.1, 1, 10] s, which puts every minor and incremental
 * collection (well under 10 ms) into the first bucket. These boundaries contain those four, so
 * the advised histogram can still be rebuilt from them.
 */
export const GC_DURATION_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 10,
]);

/** Anything that can say where the gate stands: the gate itself, or a wrapper. */
export interface ProfilingGateView {
  state(): Pick<ProfilingGateState, 'open' | 'opened' | 'closed' | 'lastUsage'>;
}

export type RuntimeMetricsExporter = 'otlp' | 'console' | 'none';

export interface RuntimeMetricsOptions {
  /** The resource the spans carry, so metrics and traces join on `service.name` and the rest. */
  readonly resource: Resource;
  readonly exporter: RuntimeMetricsExporter;
  /** The full OTLP metrics URL (default `http://localhost:4318/v1/metrics`). */
  readonly endpoint?: string;
  readonly protocol?: 'http/protobuf' | 'http/json';
  /** OTEL_METRIC_EXPORT_INTERVAL (default 60 000 ms). */
  readonly exportIntervalMs?: number;
  /** INCLUDE_RUNTIME_INFO (default true). False: only the profiling gate. */
  readonly includeRuntimeInfo?: boolean;
  /** Exports `spanscope.profiling.*` from the gate's state. */
  readonly profiling?: ProfilingGateView;
  /** The instrumentation scope (default `spanscope-proxy`). */
  readonly meterName?: string;
  /** Replaces the exporter built from `exporter`/`endpoint`/`protocol` (tests). */
  readonly metricExporter?: PushMetricExporter;
}

export interface RuntimeMetrics {
  forceFlush(): Promise<void>;
  /** Exports what is left, stops the monitors. */
  shutdown(): Promise<void>;
}

const DEFAULT_ENDPOINT = 'http://localhost:4318/v1/metrics';
const DEFAULT_EXPORT_INTERVAL_MS = 60_000;
const DEFAULT_EXPORT_TIMEOUT_MS = 30_000;
// monitorEventLoopDelay's sampling timer; Node's default, and what prom-client uses.
const EVENT_LOOP_RESOLUTION_MS = 10;
const NS_PER_S = 1e9;

/** OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + `/v1/metrics`. */
export function otlpMetricsUrl(endpoint: string, metricsEndpoint?: string): string {
  return metricsEndpoint ?? `${endpoint.replace(/\/+$/, '')}/v1/metrics`;
}

function createExporter(options: RuntimeMetricsOptions): PushMetricExporter | undefined {
  if (options.metricExporter !== undefined) return options.metricExporter;
  if (options.exporter === 'none') return undefined;
  if (options.exporter === 'console') return new ConsoleMetricExporter();
  const config = { url: options.endpoint ?? DEFAULT_ENDPOINT };
  return options.protocol === 'http/json'
    ? new OTLPJsonMetricExporter(config)
    : new OTLPProtoMetricExporter(config);
}

function gcType(kind: number | undefined): string {
  switch (kind) {
    case perfConstants.NODE_PERFORMANCE_GC_MAJOR:
      return 'major';
    case perfConstants.NODE_PERFORMANCE_GC_MINOR:
    case perfConstants.NODE_PERFORMANCE_GC_MINOR_MARK_SWEEP:
      return 'minor';
    case perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL:
      return 'incremental';
    case perfConstants.NODE_PERFORMANCE_GC_WEAKCB:
      return 'weakcb';
    default:
      return 'unknown';
  }
}

/** Event-loop utilization over the time since the previous call. */
function utilizationTracker(): () => number {
  let previous: EventLoopUtilization = performance.eventLoopUtilization();
  return () => {
    const current = performance.eventLoopUtilization();
    const delta = performance.eventLoopUtilization(current, previous);
    previous = current;
    return delta.utilization;
  };
}

/** Instruments the event loop, heap and GC on `meter`; returns what stops them. */
function instrumentRuntime(meter: Meter): () => void {
  const names = RUNTIME_METRIC_NAMES;
  const attrs = RUNTIME_ATTRIBUTE_NAMES;

  const delay: ELDHistogram = monitorEventLoopDelay({ resolution: EVENT_LOOP_RESOLUTION_MS });
  delay.enable();
  const delayGauges = [
    [names.eventLoopDelayMin, 'Event loop minimum delay.', (h: Histogram) => h.min],
    [names.eventLoopDelayMax, 'Event loop maximum delay.', (h: Histogram) => h.max],
    [names.eventLoopDelayMean, 'Event loop mean delay.', (h: Histogram) => h.mean],
    [names.eventLoopDelayStddev, 'Event loop standard deviation delay.', (h: Histogram) => h.stddev],
    [names.eventLoopDelayP50, 'Event loop 50 percentile delay.', (h: Histogram) => h.percentile(50)],
    [names.eventLoopDelayP90, 'Event loop 90 percentile delay.', (h: Histogram) => h.percentile(90)],
    [names.eventLoopDelayP99, 'Event loop 99 percentile delay.', (h: Histogram) => h.percentile(99)],
  ] as const;
  const delayInstruments = delayGauges.map(([name, description, pick]) => ({
    gauge: meter.createObservableGauge(name, { description, unit: 's' }),
    pick,
  }));
  // Read all seven from one window, then start the next: each export covers its own interval.
  const observeDelay = (result: BatchObservableResult): void => {
    if (delay.count > 0) {
      for (const { gauge, pick } of delayInstruments) result.observe(gauge, pick(delay) / NS_PER_S);
    }
    delay.reset();
  };
  meter.addBatchObservableCallback(
    observeDelay,
    delayInstruments.map(({ gauge }) => gauge),
  );

  const utilization = utilizationTracker();
  meter
    .createObservableGauge(names.eventLoopUtilization, { description: 'Event loop utilization.', unit: '1' })
    .addCallback((result) => {
      result.observe(utilization());
    });
  meter
    .createObservableCounter(names.eventLoopTime, {
      description: 'Cumulative duration of time the event loop has been in each state.',
      unit: 's',
    })
    .addCallback((result) => {
      const { active, idle } = performance.eventLoopUtilization();
      result.observe(active / 1000, { [attrs.eventLoopState]: 'active' });
      result.observe(idle / 1000, { [attrs.eventLoopState]: 'idle' });
    });

  const heapUsed = meter.createObservableUpDownCounter(names.heapUsed, {
    description: 'Heap Memory size allocated.',
    unit: 'By',
    valueType: ValueType.INT,
  });
  const heapSize = meter.createObservableUpDownCounter(names.heapSpaceSize, {
    description: 'Total heap memory size pre-allocated for a heap space.',
    unit: 'By',
    valueType: ValueType.INT,
  });
  const heapAvailable = meter.createObservableUpDownCounter(names.heapSpaceAvailableSize, {
    description: 'Heap space available size.',
    unit: 'By',
    valueType: ValueType.INT,
  });
  const heapPhysical = meter.createObservableUpDownCounter(names.heapSpacePhysicalSize, {
    description: 'Committed size of a heap space.',
    unit: 'By',
    valueType: ValueType.INT,
  });
  meter.addBatchObservableCallback(
    (result) => {
      for (const space of getHeapSpaceStatistics()) {
        const attributes: Attributes = { [attrs.heapSpaceName]: space.space_name };
        result.observe(heapUsed, space.space_used_size, attributes);
        result.observe(heapSize, space.space_size, attributes);
        result.observe(heapAvailable, space.space_available_size, attributes);
        result.observe(heapPhysical, space.physical_space_size, attributes);
      }
    },
    [heapUsed, heapSize, heapAvailable, heapPhysical],
  );

  const gcDuration = meter.createHistogram(names.gcDuration, {
    description: 'Garbage collection duration.',
    unit: 's',
    advice: { explicitBucketBoundaries: [...GC_DURATION_BUCKETS_SECONDS] },
  });
  const gcObserver = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // Node's own detail type for 'gc' entries; the generic PerformanceEntry type does not carry it.
      const detail = (entry as { detail?: NodeGCPerformanceDetail }).detail;
      gcDuration.record(entry.duration / 1000, { [attrs.gcType]: gcType(detail?.kind) });
    }
  });
  gcObserver.observe({ entryTypes: ['gc'] });

  return () => {
    gcObserver.disconnect();
    delay.disable();
  };
}

function instrumentProfiling(meter: Meter, profiling: ProfilingGateView): void {
  meter
    .createObservableGauge(PROFILING_METRIC_NAMES.active, {
      description:
        'Whether profiles are being uploaded now (1) or held back by the conditional-profiling gate (0).',
      unit: '1',
      valueType: ValueType.INT,
    })
    .addCallback((result: ObservableResult) => {
      result.observe(profiling.state().open ? 1 : 0);
    });
  meter
    .createObservableCounter(PROFILING_METRIC_NAMES.switches, {
      description: 'Switches of the conditional-profiling gate, by the position switched to.',
      unit: '{switch}',
      valueType: ValueType.INT,
    })
    .addCallback((result) => {
      const state = profiling.state();
      result.observe(state.opened, { 'spanscope.profiling.state': 'open' });
      result.observe(state.closed, { 'spanscope.profiling.state': 'closed' });
    });
  meter
    .createObservableGauge(PROFILING_METRIC_NAMES.usage, {
      description: 'CPU and memory use the conditional-profiling gate last saw, in percent of the limit.',
      unit: '%',
    })
    .addCallback((result) => {
      const usage = profiling.state().lastUsage;
      if (usage === undefined) return;
      result.observe(usage.cpuPercent, { 'spanscope.resource': 'cpu' });
      result.observe(usage.memoryPercent, { 'spanscope.resource': 'memory' });
    });
}

/**
 * Starts exporting. With exporter `none` (and no `metricExporter`) nothing is measured and both
 * methods resolve at once.
 */
export function startRuntimeMetrics(options: RuntimeMetricsOptions): RuntimeMetrics {
  const exporter = createExporter(options);
  if (exporter === undefined) {
    return { forceFlush: () => Promise.resolve(), shutdown: () => Promise.resolve() };
  }
  const exportIntervalMillis = options.exportIntervalMs ?? DEFAULT_EXPORT_INTERVAL_MS;
  const provider = new MeterProvider({
    resource: options.resource,
    readers: [
      new PeriodicExportingMetricReader({
        exporter,
        exportIntervalMillis,
        exportTimeoutMillis: Math.min(DEFAULT_EXPORT_TIMEOUT_MS, exportIntervalMillis),
      }),
    ],
  });
  const meter = provider.getMeter(options.meterName ?? 'spanscope-proxy');
  const stopRuntime = options.includeRuntimeInfo === false ? () => undefined : instrumentRuntime(meter);
  if (options.profiling !== undefined) instrumentProfiling(meter, options.profiling);

  let shutdown: Promise<void> | undefined;
  return {
    forceFlush: () => provider.forceFlush(),
    shutdown() {
      shutdown ??= provider.shutdown().finally(stopRuntime);
      return shutdown;
    },
  };
}

export interface RuntimePrometheusOptions {
  /**
   * INCLUDE_RUNTIME_INFO. True: adds event-loop utilization next to prom-client's default
   * `nodejs_*` series (event-loop lag, heap, GC). False: removes every `nodejs_*` series from the
   * registry, keeping the `process_*` ones (CPU, memory, file descriptors, start time).
   */
  readonly includeRuntimeInfo: boolean;
  /** Adds `spanscope_profiling_active`, `spanscope_profiling_switches_total{to}` and `spanscope_profiling_usage_percent{resource}`. */
  readonly profiling?: ProfilingGateView;
}

/**
 * Runtime and profiling-gate series for the admin port's /metrics. Call it after
 * `collectDefaultMetrics({ register: registry })`, which is what it trims when
 * `includeRuntimeInfo` is false.
 */
export function registerRuntimePrometheusMetrics(
  registry: Registry,
  options: RuntimePrometheusOptions,
): void {
  if (options.includeRuntimeInfo) {
    const utilization = utilizationTracker();
    new Gauge({
      name: 'nodejs_eventloop_utilization_ratio',
      help: 'Event loop utilization since the previous scrape (0-1); for several scrapers, use rate() of nodejs_eventloop_time_seconds_total.',
      registers: [registry],
      collect() {
        this.set(utilization());
      },
    });
    new Counter({
      name: 'nodejs_eventloop_time_seconds_total',
      help: 'Cumulative time the event loop has been active or idle.',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const { active, idle } = performance.eventLoopUtilization();
        // A counter cannot be set; reset and add the cumulative figure instead.
        this.reset();
        this.inc({ state: 'active' }, active / 1000);
        this.inc({ state: 'idle' }, idle / 1000);
      },
    });
  } else {
    for (const metric of registry.getMetricsAsArray()) {
      if (metric.name.startsWith('nodejs_')) registry.removeSingleMetric(metric.name);
    }
  }

  const profiling = options.profiling;
  if (profiling === undefined) return;
  new Gauge({
    name: 'spanscope_profiling_active',
    help: 'Whether profiles are being uploaded now (1) or held back by the conditional-profiling gate (0).',
    registers: [registry],
    collect() {
      this.set(profiling.state().open ? 1 : 0);
    },
  });
  new Counter({
    name: 'spanscope_profiling_switches_total',
    help: 'Switches of the conditional-profiling gate, by the position switched to.',
    labelNames: ['to'] as const,
    registers: [registry],
    collect() {
      const state = profiling.state();
      this.reset();
      this.inc({ to: 'open' }, state.opened);
      this.inc({ to: 'closed' }, state.closed);
    },
  });
  new Gauge({
    name: 'spanscope_profiling_usage_percent',
    help: 'CPU and memory use the conditional-profiling gate last saw, in percent of the cgroup or host limit.',
    labelNames: ['resource'] as const,
    registers: [registry],
    collect() {
      const usage = profiling.state().lastUsage;
      if (usage === undefined) return;
      this.set({ resource: 'cpu' }, usage.cpuPercent);
      this.set({ resource: 'memory' }, usage.memoryPercent);
    },
  });
}
