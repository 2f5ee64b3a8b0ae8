// What the service traces and profiles with: the tracing of `@spanscope/proxy/tracing` (an
// OpenTelemetry TracerProvider of its own, from the OTEL_* variables) and the shared profiler.
import { DEFAULT_LABEL_SWITCHES, disabledProfiler } from '@spanscope/proxy';
import type { Profiler, ProfilerLogger } from '@spanscope/proxy';
import { createTracing } from '@spanscope/proxy/tracing';
import type { Tracing, TracingConfig } from '@spanscope/proxy/tracing';
import { DEFAULT_SERVICE_NAME } from '../config.ts';

export interface Telemetry {
  readonly tracing: Tracing;
  readonly profiler: Profiler;
  /** Told once about a failure that is not the request's (labels that could not be applied). */
  readonly logger?: ProfilerLogger;
}

/** Tracing off, as with OTEL_SDK_DISABLED=true (the other fields are then never read). */
export const TRACING_OFF: TracingConfig = Object.freeze({
  OTEL_SDK_DISABLED: true,
  OTEL_SERVICE_NAME: DEFAULT_SERVICE_NAME,
  OTEL_RESOURCE_ATTRIBUTES: {},
  OTEL_TRACES_EXPORTER: 'none',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  OTEL_EXPORTER_OTLP_TIMEOUT: 10_000,
  OTEL_TRACES_SAMPLER: 'parentbased_always_on',
  OTEL_TRACES_SAMPLER_ARG: undefined,
  OTEL_BSP_MAX_QUEUE_SIZE: 2048,
  OTEL_BSP_SCHEDULE_DELAY: 5000,
});

const SILENT: ProfilerLogger = { info: () => undefined, warn: () => undefined };

/** No spans, no profiles: the default of `buildApp` (labels are still validated). */
export function telemetryOff(): Telemetry {
  return {
    tracing: createTracing(TRACING_OFF),
    profiler: disabledProfiler(
      { applicationName: DEFAULT_SERVICE_NAME, switches: DEFAULT_LABEL_SWITCHES },
      SILENT,
    ),
  };
}
