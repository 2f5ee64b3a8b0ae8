// `npm run validate -- [PROXY_URL] [options]`: the seed's "how to validate" as one command against
// a running deployment. Prints one `PASS|FAIL <check>: <reason>` line per check on stdout
// (progress notes go to stderr) and exits 1 if any check failed, 2 on bad usage.
import { httpUrl, parseFlags, positiveFlag, runCommand } from './lib/cli.ts';
import { ScriptError, UsageError, errorMessage } from './lib/errors.ts';
import { startOtlpListener } from './lib/otlp-listener.ts';
import { createProfileStoreSource } from './lib/profile-store.ts';
import { DEFAULT_PROFILE_TYPE, createPyroscopeSource, isProfileTypeId } from './lib/pyroscope.ts';
import type { ProfileSource, TraceSource } from './lib/sources.ts';
import { createTempoSource } from './lib/tempo.ts';
import { formatResult, validate } from './lib/validation.ts';

const DEFAULTS = {
  proxy: 'http://localhost:8080',
  admin: 'http://localhost:9901',
  otlpListen: '4318',
  proxyService: 'spanscope-proxy',
  backendService: 'inventory-backend',
  loadSeconds: 5,
  concurrency: 8,
  timeoutSeconds: 60,
};

export const USAGE = `usage: npm run validate -- [PROXY_URL] [options]

Checks a running deployment end to end: the proxy answers, the answer carries a trace id, the
backend's span is a child of the proxy's, both services' profiles carry handler, user_agent
(and, for the backend, db_operation) labels, and a span's pyroscope.profile.id opens a
non-empty profile. It drives a few seconds of traffic itself so both processes have samples.
Prints one "PASS|FAIL <check>: <reason>" line per check; exit status 1 if any check failed.

  PROXY_URL                  the proxy (default ${DEFAULTS.proxy})

Profiles (one of):
  --admin URL                the proxy's admin port, whose local profile store is read when no
                             Pyroscope is configured (default ${DEFAULTS.admin})
  --pyroscope URL            read profiles from this Pyroscope's query API instead
                             (basic auth as http://user:password@host)
  --profile-type ID          Pyroscope profile type of span profiles
                             (default ${DEFAULT_PROFILE_TYPE})

Spans (one of):
  --tempo URL                read traces from this Tempo's HTTP API (e.g. http://localhost:3200)
  --otlp-listen [HOST:]PORT  without --tempo: receive the spans here as an OTLP/HTTP collector
                             would (default ${DEFAULTS.otlpListen}, where OTEL_EXPORTER_OTLP_ENDPOINT points by
                             default); both processes must export there

  --tenant ID                X-Scope-OrgID sent to Pyroscope and Tempo
  --proxy-service NAME       the proxy's service_name (default ${DEFAULTS.proxyService})
  --backend-service NAME     the backend's service_name (default ${DEFAULTS.backendService})
  --load SECONDS             traffic to drive before checking profiles (default ${DEFAULTS.loadSeconds})
  --concurrency N            requests in flight during it (default ${DEFAULTS.concurrency})
  --timeout SECONDS          how long to wait for spans and profiles to arrive (default ${DEFAULTS.timeoutSeconds});
                             they come in batches: spans every ~5 s, profiles every
                             PYROSCOPE_UPLOAD_RATE s
  -h, --help                 this text

Examples:
  npm start & npm run validate                         # the embedded default
  npm run validate -- --tempo http://localhost:3200 --pyroscope http://localhost:4040
                                                       # the compose stack`;

export interface ValidateArgs {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly pyroscopeUrl: string | undefined;
  readonly profileType: string | undefined;
  readonly tempoUrl: string | undefined;
  readonly listen: { readonly host: string | undefined; readonly port: number };
  readonly tenant: string | undefined;
  readonly proxyService: string;
  readonly backendService: string;
  readonly loadMs: number;
  readonly concurrency: number;
  readonly timeoutMs: number;
}

/** `4318`, `0.0.0.0:4318`, `[::]:4318`. */
export function parseListen(raw: string): { host: string | undefined; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:]+):)?(\d{1,5})$/.exec(raw);
  const port = Number(match?.[2]);
  if (match === null || port > 65535) {
    throw new UsageError(`--otlp-listen must be PORT or HOST:PORT, got "${raw}"`);
  }
  const host = match[1]?.replace(/^\[(.*)\]$/, '$1');
  return { host, port };
}

export function parseValidateArgs(argv: readonly string[]): ValidateArgs | 'help' {
  const { values, positionals } = parseFlags(argv, {
    admin: { type: 'string' },
    pyroscope: { type: 'string' },
    'profile-type': { type: 'string' },
    tempo: { type: 'string' },
    'otlp-listen': { type: 'string' },
    tenant: { type: 'string' },
    'proxy-service': { type: 'string' },
    'backend-service': { type: 'string' },
    load: { type: 'string' },
    concurrency: { type: 'string' },
    timeout: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (values.help === true) return 'help';
  if (positionals.length > 1) throw new UsageError(`one proxy URL at most, got: ${positionals.join(' ')}`);
  if (values.tempo !== undefined && values['otlp-listen'] !== undefined) {
    throw new UsageError('--tempo and --otlp-listen exclude each other: spans come from one place');
  }
  const profileType = values['profile-type'];
  if (profileType !== undefined && !isProfileTypeId(profileType)) {
    throw new UsageError(`--profile-type must look like ${DEFAULT_PROFILE_TYPE}, got "${profileType}"`);
  }
  return {
    proxyUrl: httpUrl('PROXY_URL', positionals[0] ?? DEFAULTS.proxy),
    adminUrl: httpUrl('--admin', values.admin ?? DEFAULTS.admin),
    pyroscopeUrl: values.pyroscope === undefined ? undefined : httpUrl('--pyroscope', values.pyroscope),
    profileType,
    tempoUrl: values.tempo === undefined ? undefined : httpUrl('--tempo', values.tempo),
    listen: parseListen(values['otlp-listen'] ?? DEFAULTS.otlpListen),
    tenant: values.tenant,
    proxyService: values['proxy-service'] ?? DEFAULTS.proxyService,
    backendService: values['backend-service'] ?? DEFAULTS.backendService,
    loadMs: (positiveFlag('load', values.load, false) ?? DEFAULTS.loadSeconds) * 1000,
    concurrency: positiveFlag('concurrency', values.concurrency, true) ?? DEFAULTS.concurrency,
    timeoutMs: (positiveFlag('timeout', values.timeout, false) ?? DEFAULTS.timeoutSeconds) * 1000,
  };
}

async function runValidation(args: ValidateArgs): Promise<number> {
  const log = (line: string): void => void process.stderr.write(`validate: ${line}\n`);

  let traces: TraceSource | Error;
  if (args.tempoUrl !== undefined) {
    traces = createTempoSource(args.tempoUrl, args.tenant);
  } else {
    try {
      traces = await startOtlpListener(args.listen.port, args.listen.host);
    } catch (error) {
      // The checks that need spans say why they could not run; the others still do.
      traces = error instanceof ScriptError ? error : new Error(errorMessage(error));
    }
  }
  const profiles: ProfileSource =
    args.pyroscopeUrl === undefined
      ? createProfileStoreSource(args.adminUrl)
      : createPyroscopeSource(args.pyroscopeUrl, { profileType: args.profileType, tenant: args.tenant });
  log(
    `spans from ${traces instanceof Error ? '(none)' : traces.description}; profiles from ${profiles.description}`,
  );

  try {
    const results = await validate({
      proxyUrl: args.proxyUrl,
      traces,
      profiles,
      proxyService: args.proxyService,
      backendService: args.backendService,
      loadMs: args.loadMs,
      concurrency: args.concurrency,
      timeoutMs: args.timeoutMs,
      onResult: (result) => void process.stdout.write(`${formatResult(result)}\n`),
      log,
    });
    const failed = results.filter((r) => !r.ok).length;
    log(failed === 0 ? `all ${results.length} checks pass` : `${failed} of ${results.length} checks failed`);
    return failed === 0 ? 0 : 1;
  } finally {
    if (!(traces instanceof Error)) await traces.close();
  }
}

if (import.meta.main)
  process.exitCode = await runCommand('validate', USAGE, parseValidateArgs, runValidation);
