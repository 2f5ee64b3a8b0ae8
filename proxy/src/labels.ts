// The one profile label scheme of spanscope, shared by the proxy and every service behind it
// (exported as `@spanscope/proxy`, served as JSON at the admin port's `GET /labels`).
//
// - Series labels are low-cardinality strings: each distinct combination is a Pyroscope series.
// - Sample labels join a profile to a trace: Pyroscope stores `span_id` (16 hex) and `trace_id`
//   (32 hex) per sample, not as series (`trace_id` only since server 2.0.3).
// - Nothing unbounded is ever a label: product ids, user ids and raw paths stay span attributes.
// Names match `[A-Za-z_][A-Za-z0-9_]*`; values are strings, cleaned of control characters and cut
// to MAX_LABEL_VALUE_LENGTH. Anything else is rejected where it is built, with a LabelError.
import { LabelError } from './errors.ts';

/** Pyroscope's rule for label names (other characters make it reject the whole profile). */
export const LABEL_NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const MAX_LABEL_VALUE_LENGTH = 128;

export const SERIES_LABEL_NAMES = [
  'service_name',
  'handler',
  'method',
  'route',
  'user_agent',
  'db_operation',
  'component',
] as const;
export const SAMPLE_LABEL_NAMES = ['span_id', 'span_name', 'trace_id'] as const;
export const LABEL_NAMES = [...SERIES_LABEL_NAMES, ...SAMPLE_LABEL_NAMES] as const;

export type SeriesLabelName = (typeof SERIES_LABEL_NAMES)[number];
export type SampleLabelName = (typeof SAMPLE_LABEL_NAMES)[number];
export type LabelName = SeriesLabelName | SampleLabelName;

export const COMPONENTS = ['http', 'database'] as const;
export type Component = (typeof COMPONENTS)[number];

/** W3C baggage entries the proxy sets for the service behind it; clients' entries with this prefix are removed. */
export const BAGGAGE_PREFIX = 'spanscope.';
export const BAGGAGE_KEYS = Object.freeze({
  handler: 'spanscope.handler',
  route: 'spanscope.route',
  userAgent: 'spanscope.user_agent',
} as const);

/** Span attribute Grafana follows from a span to its profile (set on the local root span = `span_id`). */
export const PROFILE_ID_ATTRIBUTE = 'pyroscope.profile.id';

/** The switches (from `.env.profiling`) that turn groups of labels off. */
export interface LabelSwitches {
  /** ENABLE_ENDPOINT_PROFILING: handler, route, method, component=http. */
  readonly endpoint: boolean;
  /** ENABLE_DATABASE_PROFILING: db_operation, component=database. */
  readonly database: boolean;
  /** ENABLE_USER_AGENT_PROFILING: user_agent. */
  readonly userAgent: boolean;
  /** ENABLE_DYNAMIC_TAGS: span_id, span_name (and a precondition of trace_id). */
  readonly dynamicTags: boolean;
  /** ENABLE_TRACE_ID_LABEL: trace_id. */
  readonly traceId: boolean;
}

export const DEFAULT_LABEL_SWITCHES: LabelSwitches = Object.freeze({
  endpoint: true,
  database: true,
  userAgent: true,
  dynamicTags: true,
  traceId: false,
});

declare const validated: unique symbol;

/**
 * A label set that passed the scheme: only `profileLabels()` and the profiler build one, so a
 * function taking `ProfileLabels` cannot be handed unchecked names or values. Read it as a record
 * (`labels.handler`, `'span_id' in labels`, `for...in`, `labelRecord()`): a nested scope's set
 * inherits the outer labels through its prototype, so its own keys alone are not the whole set.
 */
export type ProfileLabels = { readonly [K in LabelName]?: string } & { readonly [validated]: true };

// Every label set's prototype chain ends in LABEL_ROOT (private, null prototype): that is the brand
// `isProfileLabels` checks, and it lets a request's span labels or a nested scope's labels be laid
// over the outer set with Object.create(outer) instead of copying it, once per request.
const LABEL_ROOT: object = Object.freeze(Object.create(null) as object);
const KNOWN_NAMES: ReadonlySet<string> = new Set(LABEL_NAMES);
const SPAN_ID = /^[0-9a-f]{16}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;
const ZERO_SPAN_ID = '0'.repeat(16);
const ZERO_TRACE_ID = '0'.repeat(32);
// C0 and C1 control characters, DEL, and the Unicode line/paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g;
const SERIES_NAME_DELIMITERS = /[{},=]/;

/** A span id as OpenTelemetry writes it and Pyroscope stores it: 16 lowercase hex digits, not all zero. */
export function isSpanId(value: string): boolean {
  return SPAN_ID.test(value) && value !== ZERO_SPAN_ID;
}

/** A trace id as OpenTelemetry writes it: 32 lowercase hex digits, not all zero. */
export function isTraceId(value: string): boolean {
  return TRACE_ID.test(value) && value !== ZERO_TRACE_ID;
}

/**
 * `values` laid over `parent`. For the profiler, which has validated `values` already; everyone
 * else goes through `profileLabels()` / `mergeProfileLabels()`.
 */
export function extendValidatedLabels(
  parent: ProfileLabels | undefined,
  values: Readonly<Record<string, string>>,
): ProfileLabels {
  const set = Object.create(parent ?? LABEL_ROOT) as Record<string, string>;
  for (const name in values) set[name] = values[name] ?? '';
  return set as unknown as ProfileLabels;
}

export const EMPTY_LABELS: ProfileLabels = extendValidatedLabels(undefined, {});

export function isLabelName(name: string): name is LabelName {
  return KNOWN_NAMES.has(name);
}

export function isProfileLabels(value: unknown): value is ProfileLabels {
  return (
    typeof value === 'object' && value !== null && Object.prototype.isPrototypeOf.call(LABEL_ROOT, value)
  );
}

/** The whole set as a plain record (nested scopes flattened, inner values winning). */
export function labelRecord(labels: ProfileLabels): Partial<Record<LabelName, string>> {
  const record: Partial<Record<LabelName, string>> = {};
  const values = labels as Readonly<Record<LabelName, string>>;
  for (const name in values) record[name as LabelName] = values[name as LabelName];
  return record;
}

/**
 * Control characters removed, surrounding whitespace trimmed, lone surrogates replaced, cut to
 * `maxLength` characters without splitting a surrogate pair.
 */
export function sanitizeLabelValue(value: string, maxLength = MAX_LABEL_VALUE_LENGTH): string {
  let clean = value.replace(CONTROL_CHARACTERS, ' ').trim().toWellFormed();
  if (clean.length > maxLength) {
    clean = clean.slice(0, maxLength);
    const last = clean.charCodeAt(clean.length - 1);
    if (last >= 0xd800 && last <= 0xdbff) clean = clean.slice(0, -1);
    clean = clean.trimEnd();
  }
  return clean;
}

/** Throws a LabelError unless `name` is a label of the scheme. */
export function assertLabelName(name: string): asserts name is LabelName {
  if (!LABEL_NAME_PATTERN.test(name)) {
    throw new LabelError(
      name,
      `profile label name ${JSON.stringify(name)} does not match [A-Za-z_][A-Za-z0-9_]*`,
    );
  }
  if (!KNOWN_NAMES.has(name)) {
    throw new LabelError(
      name,
      `profile label ${JSON.stringify(name)} is not in the label scheme (${LABEL_NAMES.join(', ')}); ` +
        'unbounded values such as ids belong in span attributes',
    );
  }
}

function hexId(name: string, value: string, valid: (id: string) => boolean, digits: number): string {
  const id = value.toLowerCase();
  if (!valid(id)) {
    throw new LabelError(
      name,
      `profile label ${name} must be ${digits} hex digits, not all zero; got ${JSON.stringify(value)}`,
    );
  }
  return id;
}

/** The value the scheme stores for `name`, or a LabelError saying why `value` is refused. */
export function labelValue(name: LabelName, value: unknown): string {
  if (typeof value !== 'string') {
    // Numbers would become pprof `num` labels, which Pyroscope ignores.
    throw new LabelError(
      name,
      `profile label ${name} must be a string, got ${value === null ? 'null' : typeof value}`,
    );
  }
  switch (name) {
    case 'span_id':
      return hexId(name, value, isSpanId, 16);
    case 'trace_id':
      return hexId(name, value, isTraceId, 32);
    case 'component':
      if ((COMPONENTS as readonly string[]).includes(value)) return value;
      throw new LabelError(
        name,
        `profile label component must be one of ${COMPONENTS.join(', ')}; got ${JSON.stringify(value)}`,
      );
    default: {
      const clean = sanitizeLabelValue(value);
      if (clean === '') throw new LabelError(name, `profile label ${name} must not be empty`);
      if (name === 'service_name' && SERIES_NAME_DELIMITERS.test(clean)) {
        // It is the application name in the ingest series name `app{k=v,...}`.
        throw new LabelError(
          name,
          `profile label service_name must not contain { } , or =; got ${JSON.stringify(value)}`,
        );
      }
      return clean;
    }
  }
}

/**
 * Validates a label set against the scheme and returns it branded. `undefined` values are left out,
 * so optional labels can be written inline. Throws a LabelError on the first bad name or value.
 */
export function profileLabels(labels: Readonly<Record<string, unknown>>): ProfileLabels {
  if (isProfileLabels(labels)) return labels;
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(labels)) {
    if (value === undefined) continue;
    assertLabelName(name);
    result[name] = labelValue(name, value);
  }
  return extendValidatedLabels(undefined, result);
}

/** `base` with `extra` on top (both already validated). */
export function mergeProfileLabels(base: ProfileLabels | undefined, extra: ProfileLabels): ProfileLabels {
  if (base === undefined || base === EMPTY_LABELS) return extra;
  if (extra === EMPTY_LABELS) return base;
  return extendValidatedLabels(base, labelRecord(extra));
}

/** Whether a switch setting lets `name`=`value` through. */
export function labelAllowed(switches: LabelSwitches, name: LabelName, value: string): boolean {
  switch (name) {
    case 'handler':
    case 'route':
    case 'method':
      return switches.endpoint;
    case 'component':
      return value === 'database' ? switches.database : switches.endpoint;
    case 'db_operation':
      return switches.database;
    case 'user_agent':
      return switches.userAgent;
    case 'span_id':
    case 'span_name':
      return switches.dynamicTags;
    case 'trace_id':
      return switches.dynamicTags && switches.traceId;
    case 'service_name':
      return true;
  }
}

/** The labels of `labels` the switches let through (the same object when all pass). */
export function filterProfileLabels(labels: ProfileLabels, switches: LabelSwitches): ProfileLabels {
  const values = labels as Readonly<Record<LabelName, string>>;
  for (const name in values) {
    const key = name as LabelName;
    if (!labelAllowed(switches, key, values[key])) {
      const kept: Record<string, string> = {};
      for (const other in values) {
        const otherKey = other as LabelName;
        if (labelAllowed(switches, otherKey, values[otherKey])) kept[otherKey] = values[otherKey];
      }
      return extendValidatedLabels(undefined, kept);
    }
  }
  return labels;
}

// ---------------------------------------------------------------------------------------------
// The scheme as JSON, for services written in other languages (admin `GET /labels`).

export interface LabelDescription {
  readonly name: LabelName;
  readonly kind: 'series' | 'sample';
  readonly description: string;
  /** Allowed values when the set is closed, or the format. */
  readonly values?: readonly string[];
  readonly format?: string;
  /** The variable that turns this label off (null: always on). */
  readonly switch: string | null;
  readonly default: boolean;
  /** Present when the description is made for a running process. */
  readonly enabled?: boolean;
}

export interface LabelSchemeDescription {
  readonly scheme: 'spanscope-profile-labels';
  readonly version: 1;
  readonly nameRule: string;
  readonly valueRule: string;
  readonly maxValueLength: number;
  readonly labels: readonly LabelDescription[];
  readonly baggage: {
    readonly prefix: string;
    readonly keys: Readonly<Record<string, string>>;
    readonly rule: string;
  };
  readonly spanAttributes: Readonly<Record<string, string>>;
  readonly neverLabels: string;
  readonly switches: Readonly<
    Record<string, { readonly default: boolean; readonly labels: readonly string[] }>
  >;
}

const SWITCH_VARIABLES = {
  endpoint: 'ENABLE_ENDPOINT_PROFILING',
  database: 'ENABLE_DATABASE_PROFILING',
  userAgent: 'ENABLE_USER_AGENT_PROFILING',
  dynamicTags: 'ENABLE_DYNAMIC_TAGS',
  traceId: 'ENABLE_TRACE_ID_LABEL',
} as const satisfies Record<keyof LabelSwitches, string>;

type LabelEntry = Omit<LabelDescription, 'switch' | 'default' | 'enabled'> & {
  readonly switchKey: keyof LabelSwitches | null;
};

const LABEL_ENTRIES: readonly LabelEntry[] = [
  {
    name: 'service_name',
    kind: 'series',
    description:
      "The application name profiles are pushed under: PYROSCOPE_APPLICATION_NAME, by default the process's OpenTelemetry service.name, so Grafana's service_name filter matches traces and profiles.",
    format: 'a string without { } , =',
    switchKey: null,
  },
  {
    name: 'handler',
    kind: 'series',
    description: "The request's handler name from the route table (unmatched requests: `unmatched`).",
    format: '[A-Za-z_][A-Za-z0-9_]*',
    switchKey: 'endpoint',
  },
  {
    name: 'method',
    kind: 'series',
    description: 'The HTTP method; unknown methods collapse to `_OTHER`.',
    switchKey: 'endpoint',
  },
  {
    name: 'route',
    kind: 'series',
    description: 'The route template (`/product/{id}`), never the raw path.',
    switchKey: 'endpoint',
  },
  {
    name: 'user_agent',
    kind: 'series',
    description:
      "The client's category from a closed set (curl, browser, bot, load-test, ...), never the raw User-Agent.",
    switchKey: 'userAgent',
  },
  {
    name: 'db_operation',
    kind: 'series',
    description:
      'The database operation in progress (get_products, create_product, ...), for the duration of the call including its awaits.',
    switchKey: 'database',
  },
  {
    name: 'component',
    kind: 'series',
    description: '`http` while a request is handled, `database` inside a database call.',
    values: COMPONENTS,
    switchKey: null,
  },
  {
    name: 'span_id',
    kind: 'sample',
    description:
      "The span id of the process's local root span for the request; the same span carries the attribute pyroscope.profile.id with this value. Only on sampled spans.",
    format: '16 lowercase hex digits',
    switchKey: 'dynamicTags',
  },
  {
    name: 'span_name',
    kind: 'sample',
    description: 'The name of that span. Only on sampled spans.',
    switchKey: 'dynamicTags',
  },
  {
    name: 'trace_id',
    kind: 'sample',
    description:
      'The trace id. Off by default: Pyroscope servers before 2.0.3 turn it into a series label, one series per trace, which exhausts the series limit (5,000 per tenant by default).',
    format: '32 lowercase hex digits',
    switchKey: 'traceId',
  },
];

function switchOf(entry: LabelEntry): string | null {
  if (entry.name === 'component')
    return `${SWITCH_VARIABLES.endpoint} (http), ${SWITCH_VARIABLES.database} (database)`;
  return entry.switchKey === null ? null : SWITCH_VARIABLES[entry.switchKey];
}

function switchDefault(entry: LabelEntry): boolean {
  return entry.switchKey === null ? true : DEFAULT_LABEL_SWITCHES[entry.switchKey];
}

function enabledIn(entry: LabelEntry, switches: LabelSwitches): boolean {
  if (entry.name === 'component') return switches.endpoint || switches.database;
  if (entry.name === 'trace_id') return switches.dynamicTags && switches.traceId;
  return entry.switchKey === null ? true : switches[entry.switchKey];
}

/**
 * The scheme as plain JSON. With `switches` (the running process's settings) each label also says
 * whether it is `enabled`.
 */
export function labelSchemeDescription(switches?: LabelSwitches): LabelSchemeDescription {
  const switchLabels: Record<string, { default: boolean; labels: string[] }> = {};
  for (const [key, variable] of Object.entries(SWITCH_VARIABLES) as [keyof LabelSwitches, string][]) {
    switchLabels[variable] = {
      default: DEFAULT_LABEL_SWITCHES[key],
      labels: LABEL_ENTRIES.filter((entry) => entry.switchKey === key).map((entry) => entry.name),
    };
  }
  switchLabels[SWITCH_VARIABLES.endpoint]?.labels.push('component=http');
  switchLabels[SWITCH_VARIABLES.database]?.labels.push('component=database');
  return {
    scheme: 'spanscope-profile-labels',
    version: 1,
    nameRule: LABEL_NAME_PATTERN.source,
    valueRule: `strings only; control characters removed, surrounding whitespace trimmed, cut to ${MAX_LABEL_VALUE_LENGTH} characters; empty values, unknown names and non-string values are rejected`,
    maxValueLength: MAX_LABEL_VALUE_LENGTH,
    labels: LABEL_ENTRIES.map((entry) => {
      const description: LabelDescription = {
        name: entry.name,
        kind: entry.kind,
        description: entry.description,
        ...(entry.values === undefined ? {} : { values: entry.values }),
        ...(entry.format === undefined ? {} : { format: entry.format }),
        switch: switchOf(entry),
        default: switchDefault(entry),
      };
      return switches === undefined ? description : { ...description, enabled: enabledIn(entry, switches) };
    }),
    baggage: {
      prefix: BAGGAGE_PREFIX,
      keys: { ...BAGGAGE_KEYS },
      rule: 'The proxy sends its handler, route and user_agent labels to the service behind it in W3C baggage under these keys, next to traceparent. Entries with the prefix sent by clients are removed at the proxy; all other baggage passes through.',
    },
    spanAttributes: {
      [PROFILE_ID_ATTRIBUTE]:
        "Set on each process's local root span to its own span id (the span_id label), so Grafana Tempo's 'Profiles for this span' finds the samples.",
    },
    neverLabels:
      'Unbounded values (product ids, user ids, raw paths, raw User-Agent strings) are never profile labels; they stay span attributes, e.g. app.product.id.',
    switches: switchLabels,
  };
}
