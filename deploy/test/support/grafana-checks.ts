// Rules for the Grafana provisioning of the compose stack: data sources (trace -> profile ->
// metric links), the "spanscope" dashboard and the alert rules. Grafana expands $VAR and ${VAR}
// from its environment in provisioning files (not in dashboard JSON), so a `$` meant for Grafana
// itself must be written `$$` there; several rules below check exactly that.
import { readFileSync } from 'node:fs';
import Ajv2019Module from 'ajv/dist/2019.js';
import type { Check } from './checks.ts';
import { REPO_ROOT, filesBelow } from './paths.ts';
import { isRecord, numberOf, pick, recordOf, recordsOf, stringOf, stringsIn } from './values.ts';

export interface GrafanaProvisioning {
  readonly datasources: unknown;
  readonly dashboard: unknown;
  readonly alerts: unknown;
  /** The Grafana container's environment in compose.yaml, interpolated. */
  readonly grafanaEnv: ReadonlyMap<string, string>;
  /** deploy/tempo/tempo.yaml as parsed. */
  readonly tempo: unknown;
  /** Metric names the proxy registers (read from its sources). */
  readonly metricNames: ReadonlySet<string>;
  /** Pyroscope series label names of the label scheme. */
  readonly seriesLabels: readonly string[];
}

export const WALL_PROFILE = 'wall:wall:nanoseconds:wall:nanoseconds';
export const PYROSCOPE_TYPE = 'grafana-pyroscope-datasource';

/** Metric names registered in the proxy's sources (`name: 'spanscope_…'`). */
export function proxyMetricNames(): Set<string> {
  const names = new Set<string>();
  for (const file of filesBelow(`${REPO_ROOT}/proxy/src`, (name) => name.endsWith('.ts'))) {
    for (const match of readFileSync(file, 'utf8').matchAll(
      /\b(?:name|countName|durationName):\s*'([a-z_:][a-z0-9_:]*)'/g,
    )) {
      names.add(match[1] ?? '');
    }
  }
  return names;
}

// `$$`, `${VAR}` or `$VAR` in a provisioning value.
const GRAFANA_VARIABLE = /\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

/** Grafana's expansion of provisioning values: `$$` is a literal `$`, else $VAR/${VAR} from env. */
export function expandGrafanaEnv(text: string, env: ReadonlyMap<string, string>): string {
  return text.replace(GRAFANA_VARIABLE, (match, braced?: string, bare?: string) =>
    match === '$$' ? '$' : (env.get(braced ?? bare ?? '') ?? ''),
  );
}

/** `$` uses Grafana would expand to an empty string (an unset environment variable). */
function unescapedDollars(document: unknown, env: ReadonlyMap<string, string>, file: string): string[] {
  const problems: string[] = [];
  for (const { pointer, value } of stringsIn(document)) {
    for (const match of value.matchAll(GRAFANA_VARIABLE)) {
      const name = match[1] ?? match[2];
      if (match[0] === '$$' || name === undefined || env.has(name)) continue;
      problems.push(
        `${file}${pointer}: Grafana replaces ${match[0]} with the environment variable ${name}, which is not set (write $${match[0]} for a literal $)`,
      );
    }
  }
  return problems;
}

function datasourcesOf(input: GrafanaProvisioning): Record<string, unknown>[] {
  return recordsOf(pick(input.datasources, 'datasources'));
}

function uidsOfType(input: GrafanaProvisioning, type: string): string[] {
  return datasourcesOf(input)
    .filter((source) => source.type === type)
    .map((source) => String(source.uid));
}

// --- data sources ---------------------------------------------------------------------------

const link = { type: 'object', required: ['datasourceUid'] } as const;
const tags = {
  type: 'array',
  items: {
    type: 'object',
    required: ['key'],
    properties: { key: { type: 'string' }, value: { type: 'string' } },
    additionalProperties: false,
  },
} as const;

// The provisioning keys these files use, from Grafana's docs ("Provision the Tempo data source"
// and the Prometheus and Pyroscope data source pages). A key outside them is a typo Grafana
// would silently ignore, such as traceToProfiles for tracesToProfiles.
const DATASOURCES_SCHEMA = {
  type: 'object',
  required: ['apiVersion', 'datasources'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 1 },
    deleteDatasources: { type: 'array' },
    datasources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type', 'uid', 'url', 'access'],
        additionalProperties: false,
        properties: {
          name: { type: 'string' },
          type: { enum: ['prometheus', 'tempo', PYROSCOPE_TYPE, 'loki'] },
          uid: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,40}$' },
          url: { type: 'string' },
          access: { const: 'proxy' },
          orgId: { type: 'integer' },
          isDefault: { type: 'boolean' },
          editable: { type: 'boolean' },
          version: { type: 'integer' },
          basicAuth: { type: 'boolean' },
          basicAuthUser: { type: 'string' },
          withCredentials: { type: 'boolean' },
          secureJsonData: { type: 'object' },
          jsonData: {
            type: 'object',
            additionalProperties: false,
            properties: {
              httpMethod: { enum: ['GET', 'POST'] },
              timeInterval: { type: 'string' },
              minStep: { type: 'string' },
              exemplarTraceIdDestinations: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['name'],
                  additionalProperties: false,
                  properties: {
                    name: { type: 'string' },
                    datasourceUid: { type: 'string' },
                    url: { type: 'string' },
                  },
                },
              },
              tracesToProfiles: {
                ...link,
                additionalProperties: false,
                properties: {
                  datasourceUid: { type: 'string' },
                  tags,
                  profileTypeId: { type: 'string' },
                  customQuery: { type: 'boolean' },
                  query: { type: 'string' },
                },
              },
              tracesToLogsV2: { ...link, properties: { datasourceUid: { type: 'string' } } },
              tracesToMetrics: {
                ...link,
                additionalProperties: false,
                properties: {
                  datasourceUid: { type: 'string' },
                  spanStartTimeShift: { type: 'string' },
                  spanEndTimeShift: { type: 'string' },
                  tags,
                  queries: {
                    type: 'array',
                    items: {
                      type: 'object',
                      required: ['name', 'query'],
                      additionalProperties: false,
                      properties: { name: { type: 'string' }, query: { type: 'string' } },
                    },
                  },
                },
              },
              serviceMap: {
                ...link,
                additionalProperties: false,
                properties: { datasourceUid: { type: 'string' } },
              },
              nodeGraph: {
                type: 'object',
                additionalProperties: false,
                properties: { enabled: { type: 'boolean' } },
              },
              search: {
                type: 'object',
                additionalProperties: false,
                properties: { hide: { type: 'boolean' } },
              },
              traceQuery: {
                type: 'object',
                additionalProperties: false,
                properties: {
                  timeShiftEnabled: { type: 'boolean' },
                  spanStartTimeShift: { type: 'string' },
                  spanEndTimeShift: { type: 'string' },
                },
              },
              streamingEnabled: {
                type: 'object',
                additionalProperties: false,
                properties: { search: { type: 'boolean' }, metrics: { type: 'boolean' } },
              },
            },
          },
        },
      },
    },
  },
} as const;

const validateDatasources = new Ajv2019Module.default({ allErrors: true, strict: true }).compile(
  DATASOURCES_SCHEMA,
);

export const DATASOURCE_CHECKS: readonly Check<GrafanaProvisioning>[] = [
  {
    id: 'structure',
    rule: 'the data sources use known provisioning keys only, with unique uids and one default',
    run: (input) => {
      const problems = validateDatasources(input.datasources)
        ? []
        : (validateDatasources.errors ?? []).map(
            (error) =>
              `datasources.yaml${error.instancePath}: ${error.message ?? error.keyword}${
                error.keyword === 'additionalProperties'
                  ? ` "${String((error.params as { additionalProperty?: unknown }).additionalProperty)}"`
                  : ''
              }`,
          );
      const uids = datasourcesOf(input).map((source) => String(source.uid));
      for (const uid of new Set(uids)) {
        if (uids.filter((other) => other === uid).length > 1)
          problems.push(`datasources.yaml: uid ${uid} is used twice`);
      }
      const defaults = datasourcesOf(input).filter((source) => source.isDefault === true).length;
      if (defaults !== 1) problems.push(`datasources.yaml: ${defaults} default data sources, expected 1`);
      return problems;
    },
  },
  {
    id: 'traces-to-profiles',
    rule: "Tempo's tracesToProfiles points at the Pyroscope uid with the Node wall profile and service.name -> service_name",
    run: (input) => {
      const problems: string[] = [];
      const pyroscope = uidsOfType(input, PYROSCOPE_TYPE);
      const tempo = datasourcesOf(input).filter((source) => source.type === 'tempo');
      if (tempo.length === 0) problems.push('no Tempo data source');
      for (const source of datasourcesOf(input)) {
        if (source.type !== 'tempo' && pick(source, 'jsonData.tracesToProfiles') !== undefined) {
          problems.push(
            `${String(source.name)}: tracesToProfiles on a ${String(source.type)} data source is never read; it belongs on Tempo's`,
          );
        }
      }
      for (const source of tempo) {
        const config = pick(source, 'jsonData.tracesToProfiles');
        if (!isRecord(config)) {
          problems.push(
            `${String(source.name)}: no jsonData.tracesToProfiles, so spans get no "Profiles for this span"`,
          );
          continue;
        }
        if (!pyroscope.includes(String(config.datasourceUid))) {
          problems.push(
            `${String(source.name)}: tracesToProfiles.datasourceUid ${String(config.datasourceUid)} is not a Pyroscope data source`,
          );
        }
        if (config.profileTypeId !== WALL_PROFILE) {
          problems.push(
            `${String(source.name)}: tracesToProfiles.profileTypeId must be ${WALL_PROFILE} (Node's wall profile)`,
          );
        }
        const mapped = recordsOf(config.tags).some(
          (tag) => tag.key === 'service.name' && tag.value === 'service_name',
        );
        if (!mapped) {
          problems.push(
            `${String(source.name)}: tracesToProfiles.tags must map service.name to service_name (Pyroscope's label)`,
          );
        }
        if (config.customQuery === true && (stringOf(config.query) ?? '') === '') {
          problems.push(`${String(source.name)}: customQuery without a query`);
        }
      }
      return problems;
    },
  },
  {
    id: 'links',
    rule: 'every datasourceUid names a data source of the right type (exemplars -> Tempo, metrics and service map -> Prometheus)',
    run: (input) => {
      const problems: string[] = [];
      const typeOf = new Map(datasourcesOf(input).map((source) => [String(source.uid), String(source.type)]));
      const expect = (owner: string, where: string, uid: unknown, type: string) => {
        if (typeOf.get(String(uid)) !== type)
          problems.push(`${owner}: ${where} ${String(uid)} is not a ${type} data source`);
      };
      for (const source of datasourcesOf(input)) {
        const name = String(source.name);
        for (const destination of recordsOf(pick(source, 'jsonData.exemplarTraceIdDestinations'))) {
          expect(name, 'exemplarTraceIdDestinations', destination.datasourceUid, 'tempo');
        }
        for (const block of ['tracesToMetrics', 'serviceMap'] as const) {
          const config = pick(source, `jsonData.${block}`);
          if (config !== undefined)
            expect(name, `${block}.datasourceUid`, pick(config, 'datasourceUid'), 'prometheus');
        }
        const logs = pick(source, 'jsonData.tracesToLogsV2');
        if (logs !== undefined)
          expect(name, 'tracesToLogsV2.datasourceUid', pick(logs, 'datasourceUid'), 'loki');
      }
      if (uidsOfType(input, 'prometheus').length === 0) problems.push('no Prometheus data source');
      return problems;
    },
  },
  {
    id: 'urls',
    rule: 'each data source URL is its compose service and port',
    run: (input) => {
      const tempoPort = numberOf(pick(input.tempo, 'server.http_listen_port')) ?? 3200;
      const expected: Record<string, string> = {
        prometheus: 'http://prometheus:9090',
        tempo: `http://tempo:${tempoPort}`,
        [PYROSCOPE_TYPE]: 'http://pyroscope:4040',
      };
      return datasourcesOf(input).flatMap((source) => {
        const want = expected[String(source.type)];
        return want === undefined || source.url === want
          ? []
          : [`${String(source.name)}: url ${String(source.url)}, expected ${want}`];
      });
    },
  },
  {
    id: 'dollar-escape',
    rule: 'every $ meant for Grafana is written $$ (Grafana expands environment variables in this file)',
    run: (input) => unescapedDollars(input.datasources, input.grafanaEnv, 'datasources.yaml'),
  },
];

// --- dashboard ------------------------------------------------------------------------------

function panelsOf(input: GrafanaProvisioning): Record<string, unknown>[] {
  const top = recordsOf(pick(input.dashboard, 'panels'));
  return top.flatMap((panel) => [panel, ...recordsOf(panel.panels)]);
}

function targetsOf(panel: Record<string, unknown>): Record<string, unknown>[] {
  return recordsOf(panel.targets);
}

function variablesOf(input: GrafanaProvisioning): Record<string, unknown>[] {
  return recordsOf(pick(input.dashboard, 'templating.list'));
}

/** The spanscope_* metric names a PromQL expression uses, histogram suffixes removed. */
function metricsIn(expr: string): string[] {
  return [...expr.matchAll(/\b(spanscope_[a-z0-9_]+)/g)].map((match) =>
    (match[1] ?? '').replace(/_(bucket|sum|count)$/, ''),
  );
}

/** The spanscope_* metrics a PromQL `expr` of `where` queries that the proxy does not register. */
function unknownMetrics(where: string, expr: unknown, input: GrafanaProvisioning): string[] {
  return metricsIn(stringOf(expr) ?? '')
    .filter((name) => !input.metricNames.has(name))
    .map((name) => `${where}: ${name} is not a metric of the proxy`);
}

/** Titles (as patterns) of the panels issue 6 asks for. */
export const REQUIRED_PANELS: readonly RegExp[] = [
  /request rate by handler/i,
  /request rate by user-agent/i,
  /error.*by handler/i,
  /error.*by user-agent/i,
  /latency.*by handler/i,
  /latency.*by user-agent/i,
  /upstream errors/i,
  /dropped spans/i,
  /profiles.*dropped/i,
  /profiling on\/off/i,
  /flame graph: proxy/i,
  /flame graph: backend/i,
];

const GRAFANA_BUILTINS = new Set([
  '__rate_interval',
  '__interval',
  '__interval_ms',
  '__range',
  '__range_s',
  '__all',
  '__name',
]);

export const DASHBOARD_CHECKS: readonly Check<GrafanaProvisioning>[] = [
  {
    id: 'structure',
    rule: 'the dashboard has uid and title spanscope, unique panel ids and a grid position for every panel',
    run: (input) => {
      const problems: string[] = [];
      const dashboard = recordOf(input.dashboard);
      if (dashboard.uid !== 'spanscope') problems.push(`uid ${String(dashboard.uid)}, expected spanscope`);
      if (dashboard.title !== 'spanscope')
        problems.push(`title ${String(dashboard.title)}, expected spanscope`);
      if (numberOf(dashboard.schemaVersion) === undefined) problems.push('no schemaVersion');
      const ids = panelsOf(input).map((panel) => panel.id);
      for (const id of new Set(ids))
        if (ids.filter((other) => other === id).length > 1)
          problems.push(`panel id ${String(id)} is used twice`);
      for (const panel of panelsOf(input)) {
        if (typeof panel.title !== 'string' || typeof panel.type !== 'string')
          problems.push(`panel ${String(panel.id)} has no title or type`);
        if (!isRecord(panel.gridPos)) problems.push(`panel ${String(panel.title)} has no gridPos`);
      }
      return problems;
    },
  },
  {
    id: 'panels',
    rule: 'rate, errors and latency by handler and by user-agent, upstream errors, dropped spans and profiles, profiling on/off, two flame graphs',
    run: (input) => {
      const titles = panelsOf(input).map((panel) => String(panel.title));
      return REQUIRED_PANELS.filter((pattern) => !titles.some((title) => pattern.test(title))).map(
        (pattern) => `no panel titled like ${String(pattern)}`,
      );
    },
  },
  {
    id: 'datasources',
    rule: 'every panel, query and variable uses a provisioned data source uid of the matching type',
    run: (input) => {
      const typeOf = new Map(datasourcesOf(input).map((source) => [String(source.uid), String(source.type)]));
      const problems: string[] = [];
      const checkRef = (where: string, ref: unknown) => {
        if (!isRecord(ref)) return;
        const uid = String(ref.uid);
        if (uid.startsWith('-- ') || uid.startsWith('$')) return;
        if (!typeOf.has(uid)) problems.push(`${where}: data source uid ${uid} is not provisioned`);
        else if (typeof ref.type === 'string' && typeOf.get(uid) !== ref.type) {
          problems.push(`${where}: data source ${uid} is a ${String(typeOf.get(uid))}, not a ${ref.type}`);
        }
      };
      for (const panel of panelsOf(input)) {
        if (panel.type === 'row') continue;
        const title = String(panel.title);
        if (!isRecord(panel.datasource)) problems.push(`${title}: no data source`);
        checkRef(title, panel.datasource);
        for (const target of targetsOf(panel))
          checkRef(`${title} ${String(target.refId)}`, target.datasource ?? panel.datasource);
      }
      for (const variable of variablesOf(input))
        checkRef(`variable ${String(variable.name)}`, variable.datasource);
      return problems;
    },
  },
  {
    id: 'metrics',
    rule: 'every spanscope_* metric a panel queries is one the proxy registers',
    run: (input) =>
      panelsOf(input).flatMap((panel) =>
        targetsOf(panel).flatMap((target) => unknownMetrics(String(panel.title), target.expr, input)),
      ),
  },
  {
    id: 'variables',
    rule: 'every $variable a query uses is defined; traffic panels filter by $handler and $user_agent',
    run: (input) => {
      const defined = new Set(variablesOf(input).map((variable) => String(variable.name)));
      const problems: string[] = [];
      for (const panel of panelsOf(input)) {
        for (const target of targetsOf(panel)) {
          const text = [target.expr, target.labelSelector, target.profileTypeId, target.legendFormat]
            .map((v) => stringOf(v) ?? '')
            .join(' ');
          for (const match of text.matchAll(/\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)/g)) {
            const name = match[1] ?? match[2] ?? '';
            if (!defined.has(name) && !GRAFANA_BUILTINS.has(name))
              problems.push(`${String(panel.title)}: $${name} is not a dashboard variable`);
          }
          const expr = stringOf(target.expr) ?? '';
          if (
            /spanscope_request(s_total|_duration_seconds)/.test(expr) &&
            !(expr.includes('$handler') && expr.includes('$user_agent'))
          ) {
            problems.push(
              `${String(panel.title)}: traffic query does not filter by $handler and $user_agent`,
            );
          }
        }
      }
      return problems;
    },
  },
  {
    id: 'flame-graphs',
    rule: 'the flame graphs query Pyroscope for the wall profile, per service, filtered by handler and user_agent series labels',
    run: (input) => {
      const problems: string[] = [];
      const pyroscope = new Set(uidsOfType(input, PYROSCOPE_TYPE));
      const profileTypes = new Map(
        variablesOf(input).map((variable) => [
          String(variable.name),
          recordsOf(variable.options).map((option) => String(option.value)),
        ]),
      );
      const flames = panelsOf(input).filter((panel) => panel.type === 'flamegraph');
      if (flames.length < 2)
        problems.push(`${flames.length} flame graph panels, expected the proxy's and the backend's`);
      for (const panel of flames) {
        const title = String(panel.title);
        for (const target of targetsOf(panel)) {
          if (!pyroscope.has(String(pick(target.datasource ?? panel.datasource, 'uid'))))
            problems.push(`${title}: not a Pyroscope query`);
          if (target.queryType !== 'profile') problems.push(`${title}: queryType must be profile`);
          const type = String(target.profileTypeId);
          const variable = /^\$\{?([A-Za-z0-9_]+)\}?$/.exec(type)?.[1];
          const choices = variable === undefined ? [type] : (profileTypes.get(variable) ?? []);
          if (!choices.includes(WALL_PROFILE))
            problems.push(`${title}: profileTypeId ${type} offers no ${WALL_PROFILE}`);
          const selector = stringOf(target.labelSelector) ?? '';
          for (const label of ['service_name', 'handler', 'user_agent']) {
            if (!new RegExp(`\\b${label}\\s*=`).test(selector))
              problems.push(`${title}: labelSelector does not filter by ${label}`);
          }
          for (const match of selector.matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)/g)) {
            if (!input.seriesLabels.includes(match[1] ?? '')) {
              problems.push(`${title}: ${String(match[1])} is not a series label of the label scheme`);
            }
          }
        }
      }
      return problems;
    },
  },
];

// --- alert rules ----------------------------------------------------------------------------

function rulesOf(input: GrafanaProvisioning): Record<string, unknown>[] {
  return recordsOf(pick(input.alerts, 'groups')).flatMap((group) => recordsOf(group.rules));
}

function queriesOf(rule: Record<string, unknown>): Record<string, unknown>[] {
  return recordsOf(rule.data);
}

const RULE_KEYS = new Set([
  'uid',
  'title',
  'condition',
  'data',
  'noDataState',
  'execErrState',
  'for',
  'annotations',
  'labels',
  'isPaused',
  'dashboardUid',
  'panelId',
  'notification_settings',
]);

export const ALERT_CHECKS: readonly Check<GrafanaProvisioning>[] = [
  {
    id: 'structure',
    rule: 'rule groups and rules carry the fields file provisioning requires, the condition names one of the queries',
    run: (input) => {
      const problems: string[] = [];
      if (pick(input.alerts, 'apiVersion') !== 1) problems.push('apiVersion must be 1');
      const groups = recordsOf(pick(input.alerts, 'groups'));
      if (groups.length === 0) problems.push('no rule groups');
      for (const group of groups) {
        for (const key of ['name', 'folder', 'interval'] as const) {
          if (typeof group[key] !== 'string') problems.push(`group ${String(group.name)}: no ${key}`);
        }
      }
      const uids = rulesOf(input).map((rule) => rule.uid);
      for (const uid of new Set(uids))
        if (uids.filter((other) => other === uid).length > 1)
          problems.push(`rule uid ${String(uid)} is used twice`);
      for (const rule of rulesOf(input)) {
        const name = String(rule.title);
        for (const key of Object.keys(rule))
          if (!RULE_KEYS.has(key)) problems.push(`${name}: unknown rule field ${key}`);
        for (const key of ['uid', 'title', 'condition', 'for'] as const) {
          if (typeof rule[key] !== 'string') problems.push(`${name}: no ${key}`);
        }
        if (!['OK', 'NoData', 'Alerting', 'KeepLast'].includes(String(rule.noDataState)))
          problems.push(`${name}: noDataState ${String(rule.noDataState)}`);
        if (!['OK', 'Error', 'Alerting', 'KeepLast'].includes(String(rule.execErrState)))
          problems.push(`${name}: execErrState ${String(rule.execErrState)}`);
        const refIds = queriesOf(rule).map((query) => query.refId);
        if (!refIds.includes(rule.condition))
          problems.push(`${name}: condition ${String(rule.condition)} is not one of ${refIds.join(', ')}`);
        for (const query of queriesOf(rule)) {
          if (pick(query, 'model.refId') !== query.refId)
            problems.push(
              `${name}: query ${String(query.refId)} has model.refId ${String(pick(query, 'model.refId'))}`,
            );
        }
      }
      return problems;
    },
  },
  {
    id: 'rules',
    rule: 'one rule on p99 latency per handler and one on the upstream error rate',
    run: (input) => {
      const exprs = rulesOf(input).flatMap((rule) =>
        queriesOf(rule).map((query) => stringOf(pick(query, 'model.expr')) ?? ''),
      );
      const problems: string[] = [];
      const p99 = exprs.some(
        (expr) =>
          /histogram_quantile\(\s*0\.99/.test(expr) &&
          /by \(\s*handler\s*,\s*le\s*\)|by \(\s*le\s*,\s*handler\s*\)/.test(expr) &&
          expr.includes('spanscope_request_duration_seconds_bucket'),
      );
      if (!p99)
        problems.push(
          'no rule on histogram_quantile(0.99, … by (handler, le)) of spanscope_request_duration_seconds_bucket',
        );
      const errors = exprs.some(
        (expr) =>
          expr.includes('spanscope_upstream_errors_total') && expr.includes('spanscope_requests_total'),
      );
      if (!errors)
        problems.push(
          'no rule on the upstream error rate (spanscope_upstream_errors_total / spanscope_requests_total)',
        );
      return problems;
    },
  },
  {
    id: 'thresholds',
    rule: 'each condition compares a query with ${VARIABLE} set, with a numeric default, on the Grafana container',
    run: (input) => {
      const problems: string[] = [];
      for (const rule of rulesOf(input)) {
        const name = String(rule.title);
        const condition = queriesOf(rule).find((query) => query.refId === rule.condition);
        const expression = stringOf(pick(condition, 'model.expression'));
        if (pick(condition, 'model.type') !== 'math' || expression === undefined) {
          problems.push(
            `${name}: the condition must be a math expression comparing a query with a threshold variable`,
          );
          continue;
        }
        const variable = /^\$\$[A-Z]\s*(>|<|>=|<=)\s*\$\{([A-Z][A-Z0-9_]*)\}$/.exec(expression.trim())?.[2];
        if (variable === undefined) {
          problems.push(
            `${name}: condition "${expression}" must read $$<query> > \${VARIABLE}: the threshold comes from the environment`,
          );
          continue;
        }
        const value = input.grafanaEnv.get(variable);
        if (value === undefined || !(Number(value) > 0)) {
          problems.push(
            `${name}: ${variable} is not set to a positive number in compose.yaml's grafana environment (is ${String(value)})`,
          );
        }
        const expanded = expandGrafanaEnv(expression, input.grafanaEnv);
        if (!/^\$[A-Z] (>|<|>=|<=) \d+(\.\d+)?$/.test(expanded))
          problems.push(`${name}: Grafana would read "${expanded}"`);
      }
      return problems;
    },
  },
  {
    id: 'datasources',
    rule: 'every query names a provisioned Prometheus uid or the expression engine',
    run: (input) => {
      const prometheus = new Set(uidsOfType(input, 'prometheus'));
      return rulesOf(input).flatMap((rule) =>
        queriesOf(rule).flatMap((query) => {
          const uid = String(query.datasourceUid);
          const ok =
            uid === '__expr__'
              ? pick(query, 'model.type') !== undefined
              : prometheus.has(uid) && typeof pick(query, 'model.expr') === 'string';
          return ok
            ? []
            : [
                `${String(rule.title)} ${String(query.refId)}: data source ${uid} is not a provisioned Prometheus (or a query without expr)`,
              ];
        }),
      );
    },
  },
  {
    id: 'metrics',
    rule: 'every spanscope_* metric a rule queries is one the proxy registers',
    run: (input) =>
      rulesOf(input).flatMap((rule) =>
        queriesOf(rule).flatMap((query) =>
          unknownMetrics(String(rule.title), pick(query, 'model.expr'), input),
        ),
      ),
  },
  {
    id: 'dollar-escape',
    rule: 'every $ meant for Grafana ($A, $labels) is written $$ (Grafana expands environment variables in this file)',
    run: (input) => unescapedDollars(input.alerts, input.grafanaEnv, 'alerting/spanscope.yaml'),
  },
];
