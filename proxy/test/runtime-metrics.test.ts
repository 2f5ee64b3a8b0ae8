import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver } from 'node:perf_hooks';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import * as semconv from '@opentelemetry/semantic-conventions/incubating';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { createProfilingGate } from '../src/profiling/conditional.ts';
import type { ProfilingGate } from '../src/profiling/conditional.ts';
import { createResourceUsageReader } from '../src/profiling/resource-usage.ts';
import {
  GC_DURATION_BUCKETS_SECONDS,
  PROFILING_METRIC_NAMES,
  RUNTIME_ATTRIBUTE_NAMES,
  RUNTIME_METRIC_NAMES,
  otlpMetricsUrl,
  registerRuntimePrometheusMetrics,
  startRuntimeMetrics,
} from '../src/runtime-metrics.ts';
import { startOtlpMetricsReceiver } from './support/otlp-metrics-receiver.ts';
import type { DecodedMetric, OtlpMetricsReceiver } from './support/otlp-metrics-receiver.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function block(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Holding the event loop is the point.
  }
}

/** Allocates short-lived garbage until V8 has collected at least once (seen by a GC observer). */
async function causeGc(): Promise<void> {
  const gc = { seen: false };
  const observer = new PerformanceObserver(() => {
    gc.seen = true;
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    for (let round = 0; !gc.seen && round < 500; round++) {
      let keep: unknown[] = [];
      for (let i = 0; i < 100_000; i++) keep.push({ i, s: `x${i}` });
      keep = [];
      await new Promise((resolve) => setImmediate(resolve));
      if (keep.length > 0) throw new Error('unreachable');
    }
    assert.ok(gc.seen, 'V8 collected garbage');
    // The runtime metrics' own observer is told in the same turn as ours, or the next.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    observer.disconnect();
  }
}

let fixtureDir = '';
let gate: ProfilingGate;
let receiver: OtlpMetricsReceiver;

/** A gate opened by memory use of 60% of a fixture cgroup's limit. */
before(async () => {
  fixtureDir = await mkdtemp(join(tmpdir(), 'spanscope-runtime-'));
  const cgroupRoot = join(fixtureDir, 'cgroup');
  await mkdir(cgroupRoot);
  await writeFile(join(cgroupRoot, 'cgroup.controllers'), 'cpu memory\n');
  await writeFile(join(cgroupRoot, 'memory.max'), '1000000\n');
  await writeFile(join(cgroupRoot, 'memory.current'), '600000\n');
  const procSelfCgroup = join(fixtureDir, 'proc-self-cgroup');
  await writeFile(procSelfCgroup, '0::/\n');
  gate = createProfilingGate({
    enabled: true,
    cpuThresholdPercent: 100,
    memoryThresholdPercent: 50,
    intervalMs: 3_600_000,
    reader: createResourceUsageReader({ cgroupRoot, procSelfCgroup }),
  });
  await gate.evaluate();
  assert.equal(gate.isOpen(), true);
  receiver = await startOtlpMetricsReceiver();
});

after(async () => {
  gate.close();
  await receiver.close();
  await rm(fixtureDir, { recursive: true, force: true });
});

const RESOURCE = defaultResource().merge(
  resourceFromAttributes({
    'service.name': 'runtime-metrics-test',
    'deployment.environment.name': 'ci',
    'k8s.pod.name': 'pod-1',
  }),
);

function only(metrics: DecodedMetric[], name: string): DecodedMetric {
  const found = metrics.filter((metric) => metric.name === name);
  assert.equal(found.length, 1, `exactly one export of ${name}; got ${found.length}`);
  return found[0]!;
}

function pointValue(metric: DecodedMetric, attributes: Record<string, unknown> = {}): number | undefined {
  const point = metric.dataPoints.find((p) =>
    Object.entries(attributes).every(([key, value]) => p.attributes[key] === value),
  );
  return point?.value;
}

describe('runtime metrics over OTLP', () => {
  it('uses the semantic-convention names of the installed @opentelemetry/semantic-conventions', () => {
    const n = RUNTIME_METRIC_NAMES;
    assert.deepEqual(
      [
        n.eventLoopDelayMin,
        n.eventLoopDelayMax,
        n.eventLoopDelayMean,
        n.eventLoopDelayStddev,
        n.eventLoopDelayP50,
        n.eventLoopDelayP90,
        n.eventLoopDelayP99,
        n.eventLoopUtilization,
        n.eventLoopTime,
        n.heapUsed,
        n.heapSpaceSize,
        n.heapSpaceAvailableSize,
        n.heapSpacePhysicalSize,
        n.gcDuration,
        RUNTIME_ATTRIBUTE_NAMES.eventLoopState,
        RUNTIME_ATTRIBUTE_NAMES.heapSpaceName,
        RUNTIME_ATTRIBUTE_NAMES.gcType,
      ],
      [
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_MIN,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_MAX,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_MEAN,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_STDDEV,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_P50,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_P90,
        semconv.METRIC_NODEJS_EVENTLOOP_DELAY_P99,
        semconv.METRIC_NODEJS_EVENTLOOP_UTILIZATION,
        semconv.METRIC_NODEJS_EVENTLOOP_TIME,
        semconv.METRIC_V8JS_MEMORY_HEAP_USED,
        semconv.METRIC_V8JS_MEMORY_HEAP_SPACE_SIZE,
        semconv.METRIC_V8JS_MEMORY_HEAP_SPACE_AVAILABLE_SIZE,
        semconv.METRIC_V8JS_MEMORY_HEAP_SPACE_PHYSICAL_SIZE,
        semconv.METRIC_V8JS_GC_DURATION,
        semconv.ATTR_NODEJS_EVENTLOOP_STATE,
        semconv.ATTR_V8JS_HEAP_SPACE_NAME,
        semconv.ATTR_V8JS_GC_TYPE,
      ],
    );
    for (const bound of [0.01, 0.1, 1, 10]) {
      assert.ok(GC_DURATION_BUCKETS_SECONDS.includes(bound), `the advised boundary ${bound} is kept`);
    }
  });

  it('builds the metrics URL like the trace one', () => {
    assert.equal(otlpMetricsUrl('http://collector:4318/'), 'http://collector:4318/v1/metrics');
    assert.equal(otlpMetricsUrl('http://collector:4318', 'http://other:4318/m'), 'http://other:4318/m');
  });

  for (const protocol of ['http/protobuf', 'http/json'] as const) {
    it(`exports event loop, heap, GC and the gate over ${protocol}, on the spans' resource`, async () => {
      receiver.clear();
      const metrics = startRuntimeMetrics({
        resource: RESOURCE,
        exporter: 'otlp',
        endpoint: receiver.metricsUrl,
        protocol,
        exportIntervalMs: 3_600_000,
        profiling: gate,
      });
      try {
        // Something to measure: a blocked loop, some idle turns for the delay sampler, a GC.
        await sleep(50);
        block(200);
        await sleep(50);
        await causeGc();
        await metrics.forceFlush();
      } finally {
        await metrics.shutdown();
      }

      const encoding = protocol === 'http/json' ? 'json' : 'protobuf';
      assert.ok(receiver.requests.length >= 1);
      for (const request of receiver.requests) {
        assert.equal(request.encoding, encoding);
        assert.equal(request.responseStatus, 200, request.decodeError);
      }
      // The first export (forceFlush) is the one checked; shutdown sends a second.
      const firstCount = receiver.requests[0]!.metricCount;
      const exported = receiver.metrics.slice(0, firstCount);

      for (const metric of exported) {
        assert.equal(metric.resource['service.name'], 'runtime-metrics-test');
        assert.equal(metric.resource['deployment.environment.name'], 'ci');
        assert.equal(metric.resource['k8s.pod.name'], 'pod-1');
        assert.equal(metric.resource['telemetry.sdk.language'], 'nodejs');
        assert.equal(metric.scope.name, 'spanscope-proxy');
      }

      const n = RUNTIME_METRIC_NAMES;
      const delay = (name: string) => {
        const metric = only(exported, name);
        assert.equal(metric.kind, 'gauge');
        assert.equal(metric.unit, 's');
        const value = pointValue(metric);
        assert.ok(value !== undefined && Number.isFinite(value), `${name} = ${value}`);
        return value;
      };
      const min = delay(n.eventLoopDelayMin);
      const p50 = delay(n.eventLoopDelayP50);
      const p90 = delay(n.eventLoopDelayP90);
      const p99 = delay(n.eventLoopDelayP99);
      const max = delay(n.eventLoopDelayMax);
      delay(n.eventLoopDelayMean);
      delay(n.eventLoopDelayStddev);
      assert.ok(min <= p50 && p50 <= p90 && p90 <= p99 && p99 <= max, `${min} ${p50} ${p90} ${p99} ${max}`);
      // The 200 ms block delayed the sampler's timer by about that much: seconds, not ms or ns.
      assert.ok(max >= 0.1 && max < 10, `max delay ${max} s after a 200 ms block`);

      const utilization = only(exported, n.eventLoopUtilization);
      assert.equal(utilization.unit, '1');
      const elu = pointValue(utilization);
      assert.ok(elu !== undefined && elu > 0 && elu <= 1, `utilization ${elu}`);

      const loopTime = only(exported, n.eventLoopTime);
      assert.equal(loopTime.kind, 'sum');
      assert.equal(loopTime.isMonotonic, true);
      assert.equal(loopTime.temporality, 'cumulative');
      const active = pointValue(loopTime, { 'nodejs.eventloop.state': 'active' });
      const idle = pointValue(loopTime, { 'nodejs.eventloop.state': 'idle' });
      assert.ok(active !== undefined && active >= 0.2, `active ${active} s includes the 200 ms block`);
      assert.ok(idle !== undefined && idle > 0);

      const heapUsed = only(exported, n.heapUsed);
      assert.equal(heapUsed.kind, 'sum');
      assert.equal(heapUsed.isMonotonic, false);
      assert.equal(heapUsed.unit, 'By');
      const oldSpace = pointValue(heapUsed, { 'v8js.heap.space.name': 'old_space' });
      assert.ok(oldSpace !== undefined && oldSpace > 0);
      for (const name of [n.heapSpaceSize, n.heapSpaceAvailableSize, n.heapSpacePhysicalSize]) {
        const metric = only(exported, name);
        assert.ok(metric.dataPoints.length > 1, `${name} per heap space`);
        assert.ok(metric.dataPoints.every((p) => typeof p.attributes['v8js.heap.space.name'] === 'string'));
      }

      const gc = only(exported, n.gcDuration);
      assert.equal(gc.kind, 'histogram');
      assert.equal(gc.unit, 's');
      const gcCount = gc.dataPoints.reduce((sum, p) => sum + (p.count ?? 0), 0);
      assert.ok(gcCount >= 1, 'at least the collection the test caused');
      for (const point of gc.dataPoints) {
        assert.ok(
          ['major', 'minor', 'incremental', 'weakcb'].includes(point.attributes['v8js.gc.type'] as string),
        );
        assert.deepEqual(point.explicitBounds, [...GC_DURATION_BUCKETS_SECONDS]);
      }

      const activeGauge = only(exported, PROFILING_METRIC_NAMES.active);
      assert.equal(pointValue(activeGauge), 1);
      const switches = only(exported, PROFILING_METRIC_NAMES.switches);
      assert.equal(switches.isMonotonic, true);
      assert.equal(pointValue(switches, { 'spanscope.profiling.state': 'open' }), 1);
      assert.equal(pointValue(switches, { 'spanscope.profiling.state': 'closed' }), 0);
      const usage = only(exported, PROFILING_METRIC_NAMES.usage);
      assert.equal(pointValue(usage, { 'spanscope.resource': 'memory' }), 60);
    });
  }

  it('INCLUDE_RUNTIME_INFO=false: only the gate is exported', async () => {
    receiver.clear();
    const metrics = startRuntimeMetrics({
      resource: RESOURCE,
      exporter: 'otlp',
      endpoint: receiver.metricsUrl,
      exportIntervalMs: 3_600_000,
      includeRuntimeInfo: false,
      profiling: gate,
    });
    await causeGc();
    await metrics.forceFlush();
    await metrics.shutdown();
    const names = new Set(receiver.metrics.map((metric) => metric.name));
    assert.deepEqual([...names].sort(), [
      PROFILING_METRIC_NAMES.active,
      PROFILING_METRIC_NAMES.switches,
      PROFILING_METRIC_NAMES.usage,
    ]);
  });

  it("exporter 'none' sends nothing", async () => {
    receiver.clear();
    const metrics = startRuntimeMetrics({
      resource: RESOURCE,
      exporter: 'none',
      endpoint: receiver.metricsUrl,
      exportIntervalMs: 10,
      profiling: gate,
    });
    await sleep(50);
    await metrics.forceFlush();
    await metrics.shutdown();
    assert.equal(receiver.requests.length, 0);
  });

  it('the periodic reader exports on its own, and shutdown is idempotent', async () => {
    receiver.clear();
    const metrics = startRuntimeMetrics({
      resource: RESOURCE,
      exporter: 'otlp',
      endpoint: receiver.metricsUrl,
      exportIntervalMs: 20,
      profiling: gate,
    });
    try {
      await receiver.waitForMetric(PROFILING_METRIC_NAMES.active);
    } finally {
      await Promise.all([metrics.shutdown(), metrics.shutdown()]);
    }
  });
});

/** `name{labels} value` lines of the Prometheus text format, by series. */
function samples(text: string): Map<string, number> {
  const result = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const space = line.lastIndexOf(' ');
    result.set(line.slice(0, space), Number(line.slice(space + 1)));
  }
  return result;
}

function families(text: string): string[] {
  return [...text.matchAll(/^# TYPE (\S+) /gm)].map((match) => match[1]!);
}

describe('runtime metrics on the Prometheus /metrics', () => {
  it('INCLUDE_RUNTIME_INFO=true: event-loop utilization next to the default nodejs_* series, and the gate', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    registerRuntimePrometheusMetrics(registry, { includeRuntimeInfo: true, profiling: gate });
    block(50);
    const text = await registry.metrics();
    const values = samples(text);
    const names = families(text);

    const elu = values.get('nodejs_eventloop_utilization_ratio');
    assert.ok(elu !== undefined && elu > 0 && elu <= 1, `utilization ${elu}`);
    assert.ok((values.get('nodejs_eventloop_time_seconds_total{state="active"}') ?? 0) > 0);
    assert.ok((values.get('nodejs_eventloop_time_seconds_total{state="idle"}') ?? 0) > 0);
    for (const name of [
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_gc_duration_seconds',
    ]) {
      assert.ok(names.includes(name), `${name} from collectDefaultMetrics`);
    }
    assert.match(text, /^# TYPE nodejs_eventloop_time_seconds_total counter$/m);

    assert.equal(values.get('spanscope_profiling_active'), 1);
    assert.equal(values.get('spanscope_profiling_switches_total{to="open"}'), 1);
    assert.equal(values.get('spanscope_profiling_switches_total{to="closed"}'), 0);
    assert.equal(values.get('spanscope_profiling_usage_percent{resource="memory"}'), 60);
    assert.match(text, /^# TYPE spanscope_profiling_switches_total counter$/m);
    assert.match(text, /^# TYPE spanscope_profiling_active gauge$/m);
  });

  it('INCLUDE_RUNTIME_INFO=false: no nodejs_* series, the process_* ones and the gate stay', async () => {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    assert.ok(families(await registry.metrics()).some((name) => name.startsWith('nodejs_')));
    registerRuntimePrometheusMetrics(registry, { includeRuntimeInfo: false, profiling: gate });
    const text = await registry.metrics();
    const names = families(text);
    assert.deepEqual(
      names.filter((name) => name.startsWith('nodejs_')),
      [],
    );
    for (const name of [
      'process_cpu_user_seconds_total',
      'process_start_time_seconds',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(names.includes(name), name);
    }
    assert.equal(samples(text).get('spanscope_profiling_active'), 1);
  });

  it('follows the gate as it switches', async () => {
    const registry = new Registry();
    let open = false;
    registerRuntimePrometheusMetrics(registry, {
      includeRuntimeInfo: false,
      profiling: { state: () => ({ open, opened: open ? 3 : 2, closed: 2, lastUsage: undefined }) },
    });
    assert.equal(samples(await registry.metrics()).get('spanscope_profiling_active'), 0);
    open = true;
    const values = samples(await registry.metrics());
    assert.equal(values.get('spanscope_profiling_active'), 1);
    assert.equal(values.get('spanscope_profiling_switches_total{to="open"}'), 3);
    assert.equal(
      [...values.keys()].some((key) => key.startsWith('spanscope_profiling_usage_percent{')),
      false,
    );
  });
});
