// Every proxy setting in one zod schema, read from the environment once at start and frozen.
import { z } from 'zod';
import { ConfigError } from './errors.ts';
import { profilingConfigShape } from './profiling/config.ts';

const port = (fallback: number) =>
  z.coerce
    .number({ error: 'expected an integer port 0-65535' })
    .int('expected an integer port 0-65535')
    .min(0, 'expected an integer port 0-65535')
    .max(65535, 'expected an integer port 0-65535')
    .default(fallback);

const positiveMs = (fallback: number) =>
  z.coerce
    .number({ error: 'expected a whole number of milliseconds >= 1' })
    .int('expected a whole number of milliseconds >= 1')
    .min(1, 'expected a whole number of milliseconds >= 1')
    .default(fallback);

const bool = (fallback: boolean) =>
  z
    .string()
    .trim()
    .toLowerCase()
    .pipe(z.enum(['true', 'false', '1', '0', 'yes', 'no'], { error: 'expected true or false' }))
    .default(fallback ? 'true' : 'false')
    .transform((value) => value === 'true' || value === '1' || value === 'yes');

const httpUrl = (fallback: string) =>
  z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).default(fallback);

const nonEmpty = z.string().trim().min(1, 'expected a non-empty string');

const wholeNumber = (min: number, max: number, fallback: number, unit: string) => {
  const message = `expected a whole number of ${unit} from ${String(min)} to ${String(max)}`;
  return z.coerce
    .number({ error: message })
    .int(message)
    .min(min, message)
    .max(max, message)
    .default(fallback);
};

const samplers = [
  'always_on',
  'always_off',
  'traceidratio',
  'parentbased_always_on',
  'parentbased_always_off',
  'parentbased_traceidratio',
] as const;

/** A blank value means the default, also where the environment is parsed without the proxy's loader. */
function blankAsUnset<T extends z.ZodType>(schema: T) {
  return z.preprocess(
    (value) => (typeof value === 'string' && value.trim() === '' ? undefined : value),
    schema,
  );
}

/**
 * The standard OpenTelemetry variables, shared with the backend, which spreads them into its own
 * schema with its own default service name.
 */
export function otelConfigShape(defaultServiceName: string) {
  return {
    OTEL_SDK_DISABLED: blankAsUnset(bool(false)),
    OTEL_SERVICE_NAME: blankAsUnset(nonEmpty.default(defaultServiceName)),
    OTEL_RESOURCE_ATTRIBUTES: blankAsUnset(
      z
        .string()
        .default('')
        .refine(
          (value) => parseResourceAttributes(value) !== undefined,
          'expected comma-separated key=value pairs',
        )
        .transform((value) => parseResourceAttributes(value) ?? {}),
    ),
    OTEL_TRACES_EXPORTER: blankAsUnset(
      z.enum(['otlp', 'console', 'none'], { error: 'expected one of otlp, console, none' }).default('otlp'),
    ),
    OTEL_EXPORTER_OTLP_ENDPOINT: blankAsUnset(httpUrl('http://localhost:4318')),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: blankAsUnset(
      z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
    ),
    OTEL_EXPORTER_OTLP_PROTOCOL: blankAsUnset(
      z
        .enum(['http/protobuf', 'http/json'], { error: 'expected http/protobuf or http/json' })
        .default('http/protobuf'),
    ),
    OTEL_TRACES_SAMPLER: blankAsUnset(
      z.enum(samplers, { error: `expected one of ${samplers.join(', ')}` }).default('parentbased_always_on'),
    ),
    OTEL_TRACES_SAMPLER_ARG: blankAsUnset(
      z.coerce
        .number({ error: 'expected a sampling ratio from 0 to 1' })
        .min(0, 'expected a sampling ratio from 0 to 1')
        .max(1, 'expected a sampling ratio from 0 to 1')
        .optional(),
    ),
    OTEL_METRICS_EXPORTER: blankAsUnset(
      z.enum(['otlp', 'console', 'none'], { error: 'expected one of otlp, console, none' }).default('otlp'),
    ),
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: blankAsUnset(
      z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
    ),
    OTEL_METRIC_EXPORT_INTERVAL: blankAsUnset(positiveMs(60000)),
    OTEL_BSP_MAX_QUEUE_SIZE: blankAsUnset(
      z.coerce
        .number({ error: 'expected a whole number >= 1' })
        .int('expected a whole number >= 1')
        .min(1, 'expected a whole number >= 1')
        .default(2048),
    ),
    OTEL_BSP_SCHEDULE_DELAY: blankAsUnset(positiveMs(5000)),
    OTEL_EXPORTER_OTLP_TIMEOUT: blankAsUnset(positiveMs(10000)),
  };
}

export const configSchema = z.object({
  PROXY_HOST: nonEmpty.default('0.0.0.0'),
  PROXY_PORT: port(8080),
  // Only the origin is used: the proxy forwards each path unchanged, as a sidecar must.
  BACKEND_URL: httpUrl('http://127.0.0.1:10000')
    .refine(
      (value) => ['', '/'].includes(new URL(value).pathname),
      'expected an origin (no path), e.g. http://127.0.0.1:10000',
    )
    .transform((value) => new URL(value).origin),
  ADMIN_HOST: nonEmpty.default('127.0.0.1'),
  ADMIN_PORT: port(9901),
  UPSTREAM_TIMEOUT_MS: positiveMs(30000),
  UPSTREAM_CONNECTIONS: z.coerce
    .number({ error: 'expected a whole number from 1 to 4096' })
    .int('expected a whole number from 1 to 4096')
    .min(1, 'expected a whole number from 1 to 4096')
    .max(4096, 'expected a whole number from 1 to 4096')
    .default(128),
  PRESERVE_HOST: bool(true),
  CAPTURE_QUERY: bool(false),
  ROUTES_FILE: nonEmpty.optional(),
  SHUTDOWN_TIMEOUT_MS: positiveMs(10000),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      error: 'expected one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
  ACCESS_LOG: bool(true),
  // The tagging endpoint (POST /ingest) and, with no PYROSCOPE_SERVER_ADDRESS, the local store.
  LOCAL_PROFILE_RETENTION_MINUTES: wholeNumber(1, 1440, 15, 'minutes'),
  LOCAL_PROFILE_MAX_MB: wholeNumber(1, 4096, 64, 'MiB'),
  PYROSCOPE_QUEUE_MAX_MB: wholeNumber(1, 1024, 32, 'MiB'),
  // The Downward API's pod, namespace and node names: series tags of every profile of the pod.
  POD_NAME: nonEmpty.optional(),
  POD_NAMESPACE: nonEmpty.optional(),
  NODE_NAME: nonEmpty.optional(),
  ...otelConfigShape('spanscope-proxy'),
  // Pyroscope and the label switches, shared with the backend.
  ...profilingConfigShape,
});

export type ProxyConfig = Readonly<z.output<typeof configSchema>>;

/** `a=b,c=d` with percent-encoded values, as the OpenTelemetry specification defines it. */
export function parseResourceAttributes(raw: string): Record<string, string> | undefined {
  const attributes: Record<string, string> = {};
  for (const pair of raw.split(',')) {
    if (pair.trim() === '') continue;
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const key = pair.slice(0, eq).trim();
    if (key === '') return undefined;
    try {
      attributes[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return attributes;
}

/**
 * Reads the proxy's settings. An empty variable counts as unset, as in the OpenTelemetry SDKs, so a
 * blank line in the env file means "use the default".
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): ProxyConfig {
  const input: Record<string, string> = {};
  for (const key of Object.keys(configSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value;
  }
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    const value = redactPassword(input[variable] ?? '');
    throw new ConfigError(
      variable,
      `${variable}=${JSON.stringify(value)} is invalid: ${issue?.message ?? 'unknown problem'}`,
    );
  }
  return deepFreeze(parsed.data);
}

/** A URL's password is never echoed in an error line. */
function redactPassword(value: string): string {
  return value.replace(/(\/\/[^:@/\s]*):[^@/\s]*@/, '$1:***@');
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
