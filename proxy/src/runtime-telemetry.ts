// What both processes run beside their spans and profiles: the conditional-profiling gate
// (ENABLE_CONDITIONAL_PROFILING and its thresholds) and the runtime metrics (INCLUDE_RUNTIME_INFO)
// over OTLP on the same resource as the spans, plus, for the proxy, the same figures on /metrics.
import type { Registry } from 'prom-client';
import type { ProxyConfig } from './config.ts';
import { createProfilingGate } from './profiling/conditional.ts';
import type { ProfilingGate } from './profiling/conditional.ts';
import { otlpMetricsUrl, registerRuntimePrometheusMetrics, startRuntimeMetrics } from './runtime-metrics.ts';
import type { RuntimeMetrics } from './runtime-metrics.ts';
import { otelResource } from './tracing.ts';

/** The settings runtime telemetry reads; the backend picks them from its own config by this list. */
export const RUNTIME_TELEMETRY_KEYS = [
  'OTEL_SDK_DISABLED',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_METRICS_EXPORTER',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_METRIC_EXPORT_INTERVAL',
  'INCLUDE_RUNTIME_INFO',
  'ENABLE_CONDITIONAL_PROFILING',
  'CPU_THRESHOLD_FOR_PROFILING',
  'MEMORY_THRESHOLD_FOR_PROFILING',
] as const satisfies readonly (keyof ProxyConfig)[];

export type RuntimeTelemetryConfig = Pick<ProxyConfig, (typeof RUNTIME_TELEMETRY_KEYS)[number]>;

/** How long the last runtime-metrics export may hold up a shutdown. */
const SHUTDOWN_FLUSH_MS = 1_000;

export interface RuntimeTelemetryLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface RuntimeTelemetry {
  /** Asked by the profiler before each upload. */
  readonly gate: ProfilingGate;
  shutdown(): Promise<void>;
}

export function startRuntimeTelemetry(
  config: RuntimeTelemetryConfig,
  options: {
    readonly logger: RuntimeTelemetryLogger;
    readonly meterName: string;
    readonly registry?: Registry;
  },
): RuntimeTelemetry {
  const { logger } = options;
  let readFailureLogged = false;
  const gate = createProfilingGate({
    enabled: config.ENABLE_CONDITIONAL_PROFILING,
    cpuThresholdPercent: config.CPU_THRESHOLD_FOR_PROFILING,
    memoryThresholdPercent: config.MEMORY_THRESHOLD_FOR_PROFILING,
    onChange(state, reason, usage) {
      readFailureLogged = false;
      logger.info(
        {
          profiling_uploads: state,
          reason,
          cpu_percent: Math.round(usage.cpuPercent * 10) / 10,
          memory_percent: Math.round(usage.memoryPercent * 10) / 10,
          cpu_cores: usage.limits.cpuCores,
          memory_limit_bytes: usage.limits.memoryBytes,
          limit_source: { cpu: usage.limits.cpuSource, memory: usage.limits.memorySource },
        },
        state === 'open'
          ? 'conditional profiling: uploads on (usage above threshold)'
          : 'conditional profiling: uploads off (usage below threshold)',
      );
    },
    onError(error) {
      if (readFailureLogged) return;
      readFailureLogged = true;
      logger.warn(
        { err: error },
        'conditional profiling: reading CPU/memory usage failed; the gate stays as it is',
      );
    },
  });

  if (options.registry !== undefined) {
    registerRuntimePrometheusMetrics(options.registry, {
      includeRuntimeInfo: config.INCLUDE_RUNTIME_INFO,
      profiling: gate,
    });
  }

  let metrics: RuntimeMetrics | undefined;
  if (!config.OTEL_SDK_DISABLED && config.OTEL_METRICS_EXPORTER !== 'none') {
    metrics = startRuntimeMetrics({
      resource: otelResource(config),
      exporter: config.OTEL_METRICS_EXPORTER,
      endpoint: otlpMetricsUrl(
        config.OTEL_EXPORTER_OTLP_ENDPOINT,
        config.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
      ),
      protocol: config.OTEL_EXPORTER_OTLP_PROTOCOL,
      exportIntervalMs: config.OTEL_METRIC_EXPORT_INTERVAL,
      includeRuntimeInfo: config.INCLUDE_RUNTIME_INFO,
      profiling: gate,
      meterName: options.meterName,
    });
  }

  return {
    gate,
    async shutdown() {
      gate.close();
      if (metrics === undefined) return;
      // The exporter retries a collector that is down for much longer than a pod's grace period:
      // the last runtime figures are worth a moment, not a slow exit.
      let timer: NodeJS.Timeout | undefined;
      const flushed = await Promise.race([
        metrics.shutdown().then(
          () => true,
          (error: unknown) => {
            logger.warn({ err: error }, 'flushing runtime metrics at shutdown failed');
            return true;
          },
        ),
        new Promise<false>((resolve) => {
          timer = setTimeout(() => resolve(false), SHUTDOWN_FLUSH_MS);
          timer.unref();
        }),
      ]);
      clearTimeout(timer);
      if (!flushed)
        logger.warn({ waited_ms: SHUTDOWN_FLUSH_MS }, 'runtime metrics not flushed: collector slow or down');
    },
  };
}
