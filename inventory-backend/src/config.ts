// The service's configuration: one zod schema over the environment, validated once, deep-frozen.
import path from 'node:path';
import * as z from 'zod';
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
}

const EXPECTED = {
  BACKEND_PORT: 'expected an integer port 0-65535',
  BACKEND_HOST: 'expected a host name or IP address without spaces',
  DATABASE_URL:
    'expected postgres://…, postgresql://…, sqlite::memory: or sqlite:<file path> (unset: ./data/inventory.db)',
  SEED_SAMPLE_DATA: 'expected true or false',
  SHUTDOWN_TIMEOUT_MS: 'expected an integer number of milliseconds 1-2147483647',
  LOG_LEVEL: `expected one of ${LOG_LEVELS.join(', ')}`,
} as const;

/** Empty or blank values count as unset, as in most .env and compose files. */
const unsetIfBlank = (value: unknown): unknown =>
  typeof value === 'string' && value.trim() === '' ? undefined : value;

function integerVar(min: number, max: number, expected: string) {
  return z
    .string()
    .trim()
    .regex(/^\d{1,10}$/, expected)
    .transform(Number)
    .refine((n) => n >= min && n <= max, expected);
}

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
    const shown = variable === 'DATABASE_URL' ? redactUrl(raw) : raw;
    throw new ConfigError(
      variable,
      `${variable}=${JSON.stringify(shown)} is invalid: ${issue?.message ?? 'unexpected value'}`,
    );
  }
  const values = result.data;
  return deepFreeze({
    port: values.BACKEND_PORT,
    host: values.BACKEND_HOST,
    database: values.DATABASE_URL,
    seedSampleData: values.SEED_SAMPLE_DATA,
    shutdownTimeoutMs: values.SHUTDOWN_TIMEOUT_MS,
    logLevel: values.LOG_LEVEL,
  });
}
