// INCLUDE_RUNTIME_INFO and ENABLE_CONDITIONAL_PROFILING as the running proxy applies them: the
// admin port's /metrics with and without the runtime series, and the runtime metrics exported over
// real OTLP on the proxy's own resource.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startProxy } from './support/start-proxy.ts';
import type { ProxyUnderTest } from './support/start-proxy.ts';
import { startOtlpMetricsReceiver } from './support/otlp-metrics-receiver.ts';
import type { OtlpMetricsReceiver } from './support/otlp-metrics-receiver.ts';

async function seriesNames(adminUrl: string): Promise<Set<string>> {
  const text = await (await fetch(`${adminUrl}/metrics`)).text();
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
    if (match?.[1] !== undefined) names.add(match[1]);
  }
  return names;
}

describe('INCLUDE_RUNTIME_INFO=true (default) with conditional profiling on', () => {
  let receiver: OtlpMetricsReceiver;
  let proxy: ProxyUnderTest;
  before(async () => {
    receiver = await startOtlpMetricsReceiver();
    proxy = await startProxy({
      ENABLE_CONDITIONAL_PROFILING: 'true',
      OTEL_SERVICE_NAME: 'sidecar-under-test',
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: receiver.metricsUrl,
      OTEL_METRIC_EXPORT_INTERVAL: '200',
    });
  });
  after(async () => {
    await proxy.close();
    await receiver.close();
  });

  it('serves event-loop and heap series and the profiling gate on /metrics', async () => {
    const names = await seriesNames(proxy.adminUrl);
    for (const name of [
      'nodejs_eventloop_utilization_ratio',
      'nodejs_eventloop_lag_p99_seconds',
      'nodejs_heap_size_used_bytes',
      'nodejs_heap_space_size_used_bytes',
      'process_cpu_user_seconds_total',
      'spanscope_profiling_active',
      'spanscope_profiling_switches_total',
    ]) {
      assert.ok(names.has(name), `${name} on /metrics`);
    }
  });

  it('exports the runtime metrics over OTLP on the resource the spans carry', async () => {
    const [utilization] = await receiver.waitForMetric('nodejs.eventloop.utilization', 10_000);
    assert.ok(utilization);
    assert.equal(utilization.resource['service.name'], 'sidecar-under-test');
    const [heap] = await receiver.waitForMetric('v8js.memory.heap.used', 10_000);
    assert.ok(heap && heap.dataPoints.length > 0);
    const [active] = await receiver.waitForMetric('spanscope.profiling.active', 10_000);
    assert.ok(active);
    assert.equal(active.scope.name, 'spanscope-proxy');
  });
});

describe('INCLUDE_RUNTIME_INFO=false', () => {
  let proxy: ProxyUnderTest;
  before(async () => {
    proxy = await startProxy({ INCLUDE_RUNTIME_INFO: 'false' });
  });
  after(async () => {
    await proxy.close();
  });

  it('keeps the process series and drops every nodejs_* one', async () => {
    const names = await seriesNames(proxy.adminUrl);
    assert.ok(names.has('process_cpu_user_seconds_total'));
    assert.ok(names.has('spanscope_requests_in_flight'));
    assert.deepEqual(
      [...names].filter((name) => name.startsWith('nodejs_')),
      [],
    );
  });
});
