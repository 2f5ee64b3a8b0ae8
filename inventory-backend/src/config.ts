// The service's configuration: one zod schema over the environment, validated once, deep-frozen.
// Besides its own variables it reads the standard OTEL_* variables (same meaning as the proxy's)
// and the profiling variables of `.env.profiling`, whose schema the proxy package defines once.
import { otelConfigShape } from '@spanscope/proxy/tracing';
import path from 'node:path';
import * as z from 'zod';
import {
  ConfigError as ProfilingConfigError,
  profilerSettingsFromConfig,
  profilingConfigShape,
} from '@spanscope/proxy';
import type { ProfilerSettings } from '@spanscope/proxy';
import type { TracingConfig } from '@spanscope/proxy/tracing';
import { RUNTIME_TELEMETRY_KEYS } from '@spanscope/proxy/runtime-telemetry';
import type { RuntimeTelemetryConfig } from '@spanscope/proxy/runtime-telemetry';
import { ConfigError } from './errors.ts';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export const DEFAULT_SQLITE_FILE = './data/inventory.db';
export const SQLITE_MEMORY = ':memory:';

export type DatabaseConfig =
  | { readonly kind: 'sqlite'; /** Absolute file path, or ':memory:'. */ readonly path: string }
  | { readonly kind: 'postgres'; readonly url: string };

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly database: DatabaseConfig;
  readonly seedSampleData: boolean;
  readonly shutdownTimeoutMs: number;
  readonly logLevel: LogLevel;
  /** The OTEL_* variables, in the form `createTracing` of `@spanscope/proxy/tracing` takes. */
  readonly tracing: TracingConfig;
  /** The profiler's settings from the ENABLE_* variables, uploading to TAGGING_ENDPOINT. */
  readonly profiling: ProfilerSettings;
  /** INCLUDE_RUNTIME_INFO, the conditional-profiling gate and the OTEL_* metric variables. */
  readonly runtime: RuntimeTelemetryConfig;
}

export const DEFAULT_SERVICE_NAME = 'inventory-backend';

/** Variables whose values are never echoed in an error line. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set([
  'PYROSCOPE_AUTH_TOKEN',
  'PYROSCOPE_BASIC_AUTH_PASSWORD',
]);
/** Variables holding URLs, echoed with their password replaced. */
const URL_VARIABLES: ReadonlySet<string> = new Set([
  'DATABASE_URL',
  'PYROSCOPE_SERVER_ADDRESS',
  'TAGGING_ENDPOINT',
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
]);

const EXPECTED = {
  BACKEND_PORT: 'expected an integer port 0-65535',
  BACKEND_HOST: 'expected a host name or IP address without spaces',
  DATABASE_URL:
    'expected postgres://…, postgresql://…, sqlite::memory: or sqlite:<file path> (unset: ./data/inventory.db)',
  SEED_SAMPLE_DATA: 'expected true or false',
  SHUTDOWN_TIMEOUT_MS: 'expected an integer number of milliseconds 1-2147483647',
  LOG_LEVEL: `expected one of ${LOG_LEVELS.join(', ')}`,
  BOOLEAN: 'expected true or false',
  URL: 'expected an http:// or https:// URL',
  NON_EMPTY: 'expected a non-empty string',
  MILLISECONDS: 'expected a whole number of milliseconds >= 1',
} as const;

/** Empty or blank values count as unset, as in most .env and compose files. */
const unsetIfBlank = (value: unknown): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

function integerVar(min: number, max: number, expected: string) {
  return z
    .string()
    .trim()
    .regex(/^\d{1,15}$/, expected)
    .transform(Number)
    .refine((n) => n >= min && n <= max, expected);
}

/** The standard OTEL_* variables: the proxy's, with the backend's own service name. */
const otelShape = otelConfigShape(DEFAULT_SERVICE_NAME);

function parseDatabaseUrl(raw: string, cwd: string): DatabaseConfig | undefined {
  if (/^postgres(ql)?:\/\//i.test(raw)) {
    return URL.canParse(raw) ? { kind: 'postgres', url: raw } : undefined;
  }
  if (raw.toLowerCase().startsWith('sqlite:')) {
    let location = raw.slice('sqlite:'.length);
    if (location === SQLITE_MEMORY) return { kind: 'sqlite', path: SQLITE_MEMORY };
    if (location.startsWith('//')) location = location.slice(2); // sqlite:///abs/path, sqlite://rel/path
    return location === '' ? undefined : { kind: 'sqlite', path: path.resolve(cwd, location) };
  }
  return undefined;
}

function buildEnvSchema(cwd: string) {
  return z.object({
    BACKEND_PORT: z.preprocess(
      unsetIfBlank,
      integerVar(0, 65535, EXPECTED.BACKEND_PORT).optional().default(10000),
    ),
    BACKEND_HOST: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .trim()
        .regex(/^[^\s/]+$/, EXPECTED.BACKEND_HOST)
        .optional()
        .default('127.0.0.1'),
    ),
    DATABASE_URL: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .trim()
        .optional()
        .transform((raw, ctx): DatabaseConfig => {
          if (raw === undefined) return { kind: 'sqlite', path: path.resolve(cwd, DEFAULT_SQLITE_FILE) };
          const parsed = parseDatabaseUrl(raw, cwd);
          if (parsed === undefined) {
            ctx.addIssue({ code: 'custom', message: EXPECTED.DATABASE_URL });
            return z.NEVER;
          }
          return parsed;
        }),
    ),
    SEED_SAMPLE_DATA: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .trim()
        .toLowerCase()
        .refine((v) => ['true', 'false', '1', '0'].includes(v), EXPECTED.SEED_SAMPLE_DATA)
        .transform((v) => v === 'true' || v === '1')
        .optional()
        .default(false),
    ),
    SHUTDOWN_TIMEOUT_MS: z.preprocess(
      unsetIfBlank,
      integerVar(1, 2_147_483_647, EXPECTED.SHUTDOWN_TIMEOUT_MS).optional().default(10_000),
    ),
    LOG_LEVEL: z.preprocess(
      unsetIfBlank,
      z
        .string()
        .trim()
        .toLowerCase()
        .pipe(z.enum(LOG_LEVELS, { error: EXPECTED.LOG_LEVEL }))
        .optional()
        .default('info'),
    ),
    // Where this process's profiler pushes: the sidecar's tagging endpoint, which adds the pod's
    // tags and the Pyroscope credentials (PYROSCOPE_SERVER_ADDRESS is the sidecar's upstream).
    TAGGING_ENDPOINT: z.preprocess(
      unsetIfBlank,
      z
        .url({ protocol: /^https?$/, error: EXPECTED.URL })
        .transform((value) => value.replace(/\/+$/, ''))
        .optional()
        .default('http://127.0.0.1:9901'),
    ),
    ...otelShape,
    ...profilingConfigShape,
  });
}

/** A connection string with its password replaced, safe for logs and error lines. */
export function redactUrl(raw: string): string {
  if (!URL.canParse(raw)) return raw.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@');
  const url = new URL(raw);
  if (url.password !== '') url.password = '***';
  return url.toString();
}

export function describeDatabase(database: DatabaseConfig): string {
  return database.kind === 'sqlite' ? `sqlite:${database.path}` : redactUrl(database.url);
}

function pick<T extends object, K extends keyof T>(source: T, keys: readonly K[]): Pick<T, K> {
  const picked = {} as Pick<T, K>;
  for (const key of keys) picked[key] = source[key];
  return picked;
}

function deepFreeze<T extends object>(value: T): T {
  for (const child of Object.values(value)) {
    if (typeof child === 'object' && child !== null) deepFreeze(child as object);
  }
  return Object.freeze(value);
}

/**
 * Reads the configuration from `env` (default `process.env`). Relative SQLite paths resolve
 * against `cwd`. Throws a ConfigError whose message is one line naming the first bad variable,
 * its value and what is allowed.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): Config {
  const result = buildEnvSchema(cwd).safeParse(env);
  if (!result.success) {
    const issue = result.error.issues[0];
    const variable = String(issue?.path[0] ?? 'environment');
    const raw = env[variable] ?? '';
    const shown = SECRET_VARIABLES.has(variable) ? '***' : URL_VARIABLES.has(variable) ? redactUrl(raw) : raw;
    throw new ConfigError(
      variable,
      `${variable}=${JSON.stringify(shown)} is invalid: ${issue?.message ?? 'unexpected value'}`,
    );
  }
  const values = result.data;
  const tracing: TracingConfig = pick(values, Object.keys(otelShape) as (keyof typeof otelShape)[]);
  let profiling: ProfilerSettings;
  try {
    const settings = profilerSettingsFromConfig(values, { serviceName: values.OTEL_SERVICE_NAME });
    // The credentials are validated here too (one env file), but only the sidecar sends them.
    profiling = {
      ...settings,
      serverAddress: values.TAGGING_ENDPOINT,
      authToken: undefined,
      basicAuth: undefined,
      tenantId: undefined,
    };
  } catch (error) {
    // Combinations no single variable can check (basic auth half set, token and basic auth both).
    if (error instanceof ProfilingConfigError) throw new ConfigError(error.variable, error.message);
    throw error;
  }
  return deepFreeze({
    port: values.BACKEND_PORT,
    host: values.BACKEND_HOST,
    database: values.DATABASE_URL,
    seedSampleData: values.SEED_SAMPLE_DATA,
    shutdownTimeoutMs: values.SHUTDOWN_TIMEOUT_MS,
    logLevel: values.LOG_LEVEL,
    tracing,
    profiling,
    runtime: pick(values, RUNTIME_TELEMETRY_KEYS),
  });
}
