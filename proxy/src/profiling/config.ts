// The profiling settings both processes read from `.env.profiling`: a zod shape that the proxy's
// and the backend's config schemas spread into their own `z.object`, and the step from the parsed
// values to the profiler's options. Blank values count as unset, as everywhere else.
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { LabelError } from '../errors.ts';
import { labelValue, sanitizeLabelValue } from '../labels.ts';
import type { LabelSwitches } from '../labels.ts';

const unsetIfBlank = (value: unknown): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

const BOOL_MESSAGE = 'expected true or false';
const switchVar = (fallback: boolean) =>
  z.preprocess(
    unsetIfBlank,
    z
      .string()
      .trim()
      .toLowerCase()
      .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: BOOL_MESSAGE }))
      .optional()
      .default(fallback ? 'true' : 'false')
      .transform((value) => value === 'true' || value === '1' || value === 'yes'),
  );

const optionalString = z.preprocess(unsetIfBlank, z.string().optional());

const PERCENT_MESSAGE = 'expected a percentage greater than 0 and at most 100';
const percentVar = (fallback: number) =>
  z.preprocess(
    unsetIfBlank,
    z
      .string()
      .trim()
      .regex(/^\d{1,3}(\.\d+)?$/, PERCENT_MESSAGE)
      .transform(Number)
      .refine((n) => n > 0 && n <= 100, PERCENT_MESSAGE)
      .optional()
      .default(fallback),
  );
const UPLOAD_RATE_MESSAGE = 'expected a whole number of seconds >= 1';
const MAX_UPLOAD_RATE_SECONDS = 3600;

/** Spread into a `z.object({...})`; every key is a variable of `.env.profiling`. */
export const profilingConfigShape = {
  /** Off: no profiler at all in this process (no sampling cost, no uploads). */
  ENABLE_PROFILING: switchVar(true),
  /** Where profiles are pushed (`/ingest` is appended). Unset: profiling off. */
  PYROSCOPE_SERVER_ADDRESS: z.preprocess(
    unsetIfBlank,
    z
      .url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' })
      .refine((value) => {
        const url = new URL(value);
        return url.username === '' && url.password === '';
      }, 'expected a URL without user:password (use PYROSCOPE_BASIC_AUTH_USER/_PASSWORD)')
      .transform((value) => value.replace(/\/+$/, ''))
      .optional(),
  ),
  /** Default: the process's OpenTelemetry service name. */
  PYROSCOPE_APPLICATION_NAME: z.preprocess(
    unsetIfBlank,
    z
      .string()
      .trim()
      .max(128, 'expected at most 128 characters')
      .regex(/^[^{},=\s]+$/, 'expected a name without spaces or { } , =')
      .optional(),
  ),
  PYROSCOPE_BASIC_AUTH_USER: optionalString,
  PYROSCOPE_BASIC_AUTH_PASSWORD: optionalString,
  PYROSCOPE_AUTH_TOKEN: optionalString,
  /** Sent as `X-Scope-OrgID` (multi-tenant Pyroscope / Grafana Cloud). */
  PYROSCOPE_TENANT_ID: optionalString,
  /** Seconds between uploads. */
  PYROSCOPE_UPLOAD_RATE: z.preprocess(
    unsetIfBlank,
    z
      .string()
      .trim()
      .regex(/^\d{1,5}$/, UPLOAD_RATE_MESSAGE)
      .transform(Number)
      .refine(
        (n) => n >= 1 && n <= MAX_UPLOAD_RATE_SECONDS,
        `${UPLOAD_RATE_MESSAGE}, at most ${MAX_UPLOAD_RATE_SECONDS}`,
      )
      .optional()
      .default(10),
  ),
  ENABLE_ENDPOINT_PROFILING: switchVar(true),
  ENABLE_DATABASE_PROFILING: switchVar(true),
  ENABLE_USER_AGENT_PROFILING: switchVar(true),
  ENABLE_DYNAMIC_TAGS: switchVar(true),
  ENABLE_TRACE_ID_LABEL: switchVar(false),
  /** Upload only while CPU or memory use is above its threshold (percent of the cgroup limit, else the host). */
  ENABLE_CONDITIONAL_PROFILING: switchVar(false),
  CPU_THRESHOLD_FOR_PROFILING: percentVar(20),
  MEMORY_THRESHOLD_FOR_PROFILING: percentVar(50),
  /** Full file paths and line numbers in frame names (true) or bare function names (false). */
  ENABLE_DETAILED_STACK_TRACES: switchVar(true),
  /** Event-loop delay and utilization, heap and GC as OTel metrics (and on the proxy's /metrics). */
  INCLUDE_RUNTIME_INFO: switchVar(true),
  /** Node has no goroutines: the nearest thing, and what this turns on, is the heap (allocation) profile. */
  ENABLE_GOROUTINE_PROFILING: switchVar(false),
};

export const profilingConfigSchema = z.object(profilingConfigShape);

/** The parsed variables; any config object that contains these keys will do. */
export type ProfilingConfig = Readonly<z.output<typeof profilingConfigSchema>>;

/** What `startProfiler` needs besides a logger. */
export interface ProfilerSettings {
  /** Unset: profiling off. */
  readonly serverAddress: string | undefined;
  readonly applicationName: string;
  readonly authToken?: string | undefined;
  readonly basicAuth?: { readonly user: string; readonly password: string } | undefined;
  readonly tenantId?: string | undefined;
  readonly uploadRateSeconds: number;
  readonly switches: LabelSwitches;
  /** ENABLE_PROFILING: false means no profiler at all. */
  readonly enabled?: boolean;
  /** ENABLE_DETAILED_STACK_TRACES: `/full/path.ts:function:line` frames, else bare function names. */
  readonly detailedStackTraces?: boolean;
  /** ENABLE_GOROUTINE_PROFILING: a heap profile beside the wall/CPU one. */
  readonly heapProfile?: boolean;
  /** ENABLE_CONDITIONAL_PROFILING and its thresholds (percent). */
  readonly conditional?: {
    readonly enabled: boolean;
    readonly cpuThresholdPercent: number;
    readonly memoryThresholdPercent: number;
  };
  /** Sampling period in µs (default 10,000 = 100 Hz). */
  readonly samplingIntervalMicros?: number;
}

export function labelSwitches(config: ProfilingConfig): LabelSwitches {
  return Object.freeze({
    endpoint: config.ENABLE_ENDPOINT_PROFILING,
    database: config.ENABLE_DATABASE_PROFILING,
    userAgent: config.ENABLE_USER_AGENT_PROFILING,
    dynamicTags: config.ENABLE_DYNAMIC_TAGS,
    traceId: config.ENABLE_TRACE_ID_LABEL,
  });
}

/**
 * Resolves the parsed variables into profiler settings: the application name defaults to the
 * OpenTelemetry service name (so Grafana's `service_name` filter matches traces and profiles).
 * Throws a ConfigError for combinations no single variable can check.
 */
export function profilerSettingsFromConfig(
  config: ProfilingConfig,
  defaults: { readonly serviceName: string },
): ProfilerSettings {
  const user = config.PYROSCOPE_BASIC_AUTH_USER;
  const password = config.PYROSCOPE_BASIC_AUTH_PASSWORD;
  if ((user === undefined) !== (password === undefined)) {
    const missing = user === undefined ? 'PYROSCOPE_BASIC_AUTH_USER' : 'PYROSCOPE_BASIC_AUTH_PASSWORD';
    throw new ConfigError(
      missing,
      `${missing} is unset: basic auth needs both PYROSCOPE_BASIC_AUTH_USER and PYROSCOPE_BASIC_AUTH_PASSWORD`,
    );
  }
  if (user !== undefined && config.PYROSCOPE_AUTH_TOKEN !== undefined) {
    throw new ConfigError(
      'PYROSCOPE_AUTH_TOKEN',
      'PYROSCOPE_AUTH_TOKEN and PYROSCOPE_BASIC_AUTH_USER are both set: use a bearer token or basic auth, not both',
    );
  }
  return {
    serverAddress: config.PYROSCOPE_SERVER_ADDRESS,
    applicationName: config.PYROSCOPE_APPLICATION_NAME ?? applicationNameFrom(defaults.serviceName),
    authToken: config.PYROSCOPE_AUTH_TOKEN,
    basicAuth: user !== undefined && password !== undefined ? { user, password } : undefined,
    tenantId: config.PYROSCOPE_TENANT_ID,
    uploadRateSeconds: config.PYROSCOPE_UPLOAD_RATE,
    switches: labelSwitches(config),
    enabled: config.ENABLE_PROFILING,
    detailedStackTraces: config.ENABLE_DETAILED_STACK_TRACES,
    heapProfile: config.ENABLE_GOROUTINE_PROFILING,
    conditional: {
      enabled: config.ENABLE_CONDITIONAL_PROFILING,
      cpuThresholdPercent: config.CPU_THRESHOLD_FOR_PROFILING,
      memoryThresholdPercent: config.MEMORY_THRESHOLD_FOR_PROFILING,
    },
  };
}

/** An OpenTelemetry service name made fit for Pyroscope's series name (`app{k=v,...}`). */
function applicationNameFrom(serviceName: string): string {
  const cleaned = sanitizeLabelValue(serviceName).replace(/[{},=\s]/g, '_');
  try {
    return labelValue('service_name', cleaned);
  } catch (error) {
    if (error instanceof LabelError) {
      throw new ConfigError(
        'PYROSCOPE_APPLICATION_NAME',
        `PYROSCOPE_APPLICATION_NAME is unset and the service name cannot stand in: ${error.message}`,
      );
    }
    throw error;
  }
}
