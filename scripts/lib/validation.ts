// The seed's "how to validate" as checks against a running deployment, in the order a person
// would do them: the proxy answers, the answer carries a trace id, that trace crosses both
// processes, both processes' profiles carry the request's labels, and a span's
// `pyroscope.profile.id` opens a non-empty profile. Spans and profiles arrive in batches (spans
// every ≈5 s, profiles every PYROSCOPE_UPLOAD_RATE s), so those checks poll until a deadline.
import { setTimeout as sleep } from 'node:timers/promises';
import { PROFILE_ID_ATTRIBUTE } from '@spanscope/proxy';
import { errorMessage } from './errors.ts';
import { baseUrl, httpRequest } from './http.ts';
import { CYCLE_LENGTH, driveTraffic } from './inventory-traffic.ts';
import type { TrafficRecord } from './inventory-traffic.ts';
import type { Span } from './otlp-spans.ts';
import type { ProfileSource, TimeWindow, TraceSource } from './sources.ts';
import { describeUnexpected } from './traffic-report.ts';

export interface CheckResult {
  readonly name: string;
  readonly ok: boolean;
  readonly reason: string;
}

const CHECK = {
  proxy: 'proxy answers',
  traceId: 'trace id returned',
  parent: 'backend span child of proxy span',
  labels: (service: string) => `profile labels of ${service}`,
  spanProfile: (service: string) => `span profile of ${service}`,
} as const;

export interface ValidationOptions {
  readonly proxyUrl: string;
  /** Where spans are read, or why they cannot be (the receiver could not listen). */
  readonly traces: TraceSource | Error;
  readonly profiles: ProfileSource;
  readonly proxyService: string;
  readonly backendService: string;
  /** How long to drive traffic so both processes have samples. */
  readonly loadMs: number;
  readonly concurrency: number;
  /** How long, after the traffic, to wait for spans and profiles to arrive. */
  readonly timeoutMs: number;
  readonly pollMs?: number;
  readonly onResult?: (result: CheckResult) => void;
  readonly log?: (line: string) => void;
}

export function formatResult(result: CheckResult): string {
  return `${result.ok ? 'PASS' : 'FAIL'} ${result.name}: ${result.reason}`;
}

type Attempt = { readonly ok: boolean; readonly reason: string };

/** Retries `attempt` until it passes or the deadline passes; an error ends it at once. */
async function poll(deadline: number, pollMs: number, attempt: () => Promise<Attempt>): Promise<Attempt> {
  const started = Date.now();
  for (;;) {
    let result: Attempt;
    try {
      result = await attempt();
    } catch (error) {
      return { ok: false, reason: errorMessage(error) };
    }
    const now = Date.now();
    if (result.ok) return result;
    if (now >= deadline) {
      return { ok: false, reason: `${result.reason} (waited ${Math.round((now - started) / 1000)} s)` };
    }
    await sleep(Math.min(pollMs, deadline - now));
  }
}

function describeSpans(spans: readonly Span[]): string {
  const shown = spans.slice(0, 6).map((s) => `${s.service} ${s.kind} "${s.name}"`);
  return shown.join(', ') + (spans.length > shown.length ? `, … (${spans.length} in all)` : '');
}

function listValues(values: readonly string[] | undefined): string {
  const all = values ?? [];
  if (all.length === 0) return '(none)';
  const shown = all.slice(0, 8).join(',');
  return all.length > 8 ? `${shown},…(${all.length} in all)` : shown;
}

function formatTotal(total: number, unit: string): string {
  if (unit === 'nanoseconds') return `${(total / 1e6).toFixed(1)} ms`;
  return `${total} ${unit}`;
}

function profileId(span: Span): string | undefined {
  const value = span.attributes[PROFILE_ID_ATTRIBUTE];
  return typeof value === 'string' && value !== '' ? value : undefined;
}

/** `count` items spread evenly over `items` (all of them when there are fewer). */
function spread<T>(items: readonly T[], count: number): T[] {
  if (items.length <= count) return [...items];
  return Array.from({ length: count }, (_, i) => items[Math.floor((i * items.length) / count)] as T);
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

async function probeProxy(proxyUrl: string): Promise<Attempt> {
  const target = `${baseUrl(proxyUrl)}/health`;
  const t0 = Date.now();
  try {
    const response = await httpRequest(target, { headers: { 'user-agent': 'spanscope-validate' } });
    const body = (await response.text()).trim().slice(0, 120);
    const ms = Date.now() - t0;
    if (response.status === 200) return { ok: true, reason: `GET /health → 200 in ${ms} ms` };
    const behind =
      response.status === 502 || response.status === 504
        ? ': the proxy answers but the backend behind it does not (BACKEND_URL?)'
        : '';
    return { ok: false, reason: `GET ${target} → ${response.status} ${body}${behind}` };
  } catch (error) {
    return { ok: false, reason: `${errorMessage(error)}. Is the proxy running, and is the URL right?` };
  }
}

export async function validate(options: ValidationOptions): Promise<CheckResult[]> {
  const pollMs = options.pollMs ?? 1000;
  const log = options.log ?? (() => undefined);
  const services = [options.proxyService, options.backendService];
  const requiredLabels = new Map([
    [options.proxyService, ['handler', 'user_agent']],
    [options.backendService, ['handler', 'user_agent', 'db_operation']],
  ]);
  const allChecks = [
    CHECK.proxy,
    CHECK.traceId,
    CHECK.parent,
    ...services.map(CHECK.labels),
    ...services.map(CHECK.spanProfile),
  ];
  const results: CheckResult[] = [];
  const emit = (name: string, attempt: Attempt): void => {
    const result = { name, ok: attempt.ok, reason: attempt.reason };
    results.push(result);
    options.onResult?.(result);
  };
  const skipRest = (why: string): CheckResult[] => {
    for (const name of allChecks) {
      if (!results.some((r) => r.name === name)) emit(name, { ok: false, reason: `not checked: ${why}` });
    }
    return results;
  };

  // Profiles are stamped with their upload window, which may start before this run.
  const runStart = Date.now();
  const window = (): TimeWindow => ({ from: runStart - 60_000, until: Date.now() + 60_000 });

  // 1. The proxy answers, and every endpoint behind it answers as the inventory API should.
  const probe = await probeProxy(options.proxyUrl);
  if (!probe.ok) {
    emit(CHECK.proxy, probe);
    return skipRest(`"${CHECK.proxy}" failed`);
  }
  const seed = await driveTraffic({ baseUrl: options.proxyUrl, concurrency: 1, requests: CYCLE_LENGTH });
  const unexpected = seed.failure?.message ?? describeUnexpected(seed.records);
  if (unexpected !== undefined) {
    emit(CHECK.proxy, { ok: false, reason: unexpected });
    return skipRest(`"${CHECK.proxy}" failed`);
  }
  emit(CHECK.proxy, {
    ok: true,
    reason: `${probe.reason}; all ${seed.records.length} requests of one cycle over every endpoint answered as expected`,
  });

  // 2. The answers carry the trace id.
  const untraced = seed.records.filter((r) => r.traceId === undefined);
  const target = seed.records.find((r) => r.handler === 'get_product' && r.traceId !== undefined);
  if (untraced.length > 0 || target === undefined) {
    const first = untraced[0];
    emit(CHECK.traceId, {
      ok: false,
      reason:
        `${untraced.length} of ${seed.records.length} responses had no valid traceresponse header` +
        (first === undefined ? '' : ` (first: ${first.method} ${first.path})`) +
        ': is tracing off (OTEL_SDK_DISABLED=true)?',
    });
    if (target === undefined) return skipRest('no trace id came back');
  } else {
    emit(CHECK.traceId, {
      ok: true,
      reason:
        `traceresponse on all ${seed.records.length} responses; e.g. trace ${target.traceId} ` +
        `(${target.method} ${target.path}, proxy span ${target.spanId})`,
    });
  }

  // Both processes need to be busy inside requests for the profiler (100 Hz) to catch labelled samples.
  log(`driving ${options.loadMs / 1000} s of traffic, ${options.concurrency} at a time…`);
  const load = await driveTraffic({
    baseUrl: options.proxyUrl,
    concurrency: options.concurrency,
    durationMs: options.loadMs,
  });
  if (load.failure !== undefined) log(`the traffic stopped early: ${load.failure.message}`);
  const records: TrafficRecord[] = [...seed.records, ...load.records];
  log(`${records.length} requests sent; waiting up to ${options.timeoutMs / 1000} s for spans and profiles…`);
  const deadline = Date.now() + options.timeoutMs;
  const traces = options.traces;

  // 3. One trace across both processes: the backend's SERVER span continues the proxy's span.
  if (traces instanceof Error) {
    emit(CHECK.parent, { ok: false, reason: `cannot read spans: ${traces.message}` });
  } else {
    const traceId = target.traceId ?? '';
    const spanId = target.spanId ?? '';
    emit(
      CHECK.parent,
      await poll(deadline, pollMs, async () => {
        const spans = await traces.trace(traceId);
        const proxySpan = spans.find((s) => s.spanId === spanId);
        const child = spans.find((s) => s.parentSpanId === spanId && s.kind === 'SERVER');
        if (proxySpan !== undefined && child !== undefined) {
          return {
            ok: true,
            reason:
              `trace ${traceId}: ${child.service} SERVER span "${child.name}" (${child.spanId}) ` +
              `is a child of ${proxySpan.service} span "${proxySpan.name}" (${proxySpan.spanId})`,
          };
        }
        if (spans.length === 0) {
          const hint = traces.noSpansHint();
          return {
            ok: false,
            reason: `no span of trace ${traceId} reached ${traces.description}${hint === undefined ? '' : `: ${hint}`}`,
          };
        }
        if (proxySpan === undefined) {
          return {
            ok: false,
            reason: `trace ${traceId} has ${describeSpans(spans)} but not the proxy's span ${spanId}`,
          };
        }
        return {
          ok: false,
          reason:
            `trace ${traceId} has ${describeSpans(spans)} but no SERVER span below the proxy's: does the ` +
            'backend continue the traceparent the proxy sends, and export its spans to the same place?',
        };
      }),
    );
  }

  // 4. Both processes' profiles carry the request's labels.
  for (const service of services) {
    const required = requiredLabels.get(service) ?? [];
    emit(
      CHECK.labels(service),
      await poll(deadline, pollMs, async () => {
        const values = await options.profiles.labelValues(service, required, window());
        const seen = required.map((l) => `${l}=${listValues(values.get(l))}`).join('; ');
        const missing = required.filter((l) => (values.get(l) ?? []).length === 0);
        if (missing.length === 0) return { ok: true, reason: seen };
        if (missing.length === required.length) {
          return {
            ok: false,
            reason: `no profile of service_name="${service}" with ${required.join(', ')} labels in ${options.profiles.description}`,
          };
        }
        return {
          ok: false,
          reason: `no ${missing.join(', ')} label in ${options.profiles.description} (seen: ${seen})`,
        };
      }),
    );
  }

  // 5. A span's pyroscope.profile.id opens a non-empty profile, for each process.
  if (traces instanceof Error) {
    for (const service of services) {
      emit(CHECK.spanProfile(service), { ok: false, reason: `cannot read spans: ${traces.message}` });
    }
    return results;
  }
  // Traces that already hold both processes' spans are not read again.
  const traceIds = spread([...new Set(records.flatMap((r) => r.traceId ?? []))], traces.traceBudget);
  const complete = new Map<string, Span[]>();
  const runSpans = async (): Promise<Span[]> => {
    const pending = traceIds.filter((id) => !complete.has(id));
    const fetched = await mapLimit(pending, 8, async (id) => [id, await traces.trace(id)] as const);
    const partial: Span[] = [];
    for (const [id, spans] of fetched) {
      const services = new Set(spans.map((s) => s.service));
      if (services.has(options.proxyService) && services.has(options.backendService)) complete.set(id, spans);
      else partial.push(...spans);
    }
    return [...[...complete.values()].flat(), ...partial];
  };
  for (const service of services) {
    let round = 0;
    emit(
      CHECK.spanProfile(service),
      await poll(deadline, pollMs, async () => {
        const spans = (await runSpans()).filter((s) => s.service === service && s.kind === 'SERVER');
        if (spans.length === 0) {
          const hint = traces.noSpansHint();
          return {
            ok: false,
            reason: `no ${service} SERVER span of this run reached ${traces.description}${hint === undefined ? '' : `: ${hint}`}`,
          };
        }
        const withId = spans.filter((s) => profileId(s) !== undefined);
        if (withId.length === 0) {
          return {
            ok: false,
            reason: `none of the ${spans.length} ${service} spans of this run has ${PROFILE_ID_ATTRIBUTE}: is ENABLE_DYNAMIC_TAGS off?`,
          };
        }
        const window_ = window();
        const known = await options.profiles.spanIdsWithSamples(service, window_);
        let candidates = withId;
        if (known !== undefined) {
          candidates = withId.filter((s) => known.has(profileId(s) ?? ''));
          if (candidates.length === 0) {
            return {
              ok: false,
              reason:
                `none of the ${withId.length} ${service} spans' ${PROFILE_ID_ATTRIBUTE} has samples in ` +
                `${options.profiles.description} (it has samples of ${known.size} span ids)`,
            };
          }
        }
        // Pyroscope cannot list span ids: a few spans per round, different ones each round.
        const batch = 5;
        const start = (round++ * batch) % candidates.length;
        const tried = [...candidates, ...candidates].slice(start, start + Math.min(batch, candidates.length));
        for (const span of tried) {
          const id = profileId(span) ?? '';
          const profile = await options.profiles.spanProfile(service, id, window_);
          if (profile.total > 0) {
            const samples =
              profile.samples === undefined
                ? ''
                : `${profile.samples} sample${profile.samples === 1 ? '' : 's'}, `;
            return {
              ok: true,
              reason:
                `span "${span.name}" ${PROFILE_ID_ATTRIBUTE}=${id} (trace ${span.traceId}) → ` +
                `${samples}${formatTotal(profile.total, profile.unit)} in ${options.profiles.description}`,
            };
          }
        }
        return {
          ok: false,
          reason: `the profiles of ${tried.length} of ${withId.length} ${service} spans' ${PROFILE_ID_ATTRIBUTE} are empty in ${options.profiles.description}`,
        };
      }),
    );
  }
  return results;
}
