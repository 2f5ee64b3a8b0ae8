// Traffic for the inventory API through the proxy: every endpoint, six kinds of client, each
// request's trace id read back from `traceresponse`. `npm run traffic` shows it; `npm run validate`
// uses it to give both processes something to profile.
//
// Requests follow a fixed cycle of 11 (list, create, read, health, list, update, read, a 404,
// list, read, delete) and client i is USER_AGENTS[i % 6]; 11 and 6 share no factor, so every 66
// requests cover every endpoint with every client. Each cycle creates its own product and deletes
// it at the end, so the run works on an empty table and leaves the data as it found it.
import { performance } from 'node:perf_hooks';
import { categorizeUserAgent } from '@spanscope/proxy/user-agent';
import type { UserAgentCategory } from '@spanscope/proxy/user-agent';
import { UnreachableError } from './errors.ts';
import { baseUrl, httpRequest } from './http.ts';

export interface UserAgent {
  readonly header: string;
  /** The category the proxy files this client under (its own categorizer). */
  readonly category: UserAgentCategory;
}

const USER_AGENT_HEADERS = [
  'curl/8.5.0',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
  'PostmanRuntime/7.39.0',
  'python-requests/2.32.3',
  'k6/0.52.0 (https://k6.io/)',
  'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
];

export const USER_AGENTS: readonly UserAgent[] = USER_AGENT_HEADERS.map((header) => ({
  header,
  category: categorizeUserAgent(header),
}));

type Target = 'list' | 'create' | 'item' | 'health' | 'missing';

interface Step {
  /** The proxy's name for the request (its default route table). */
  readonly handler: string;
  readonly method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  readonly target: Target;
  readonly expectedStatus: number;
}

const CYCLE: readonly Step[] = [
  { handler: 'get_products', method: 'GET', target: 'list', expectedStatus: 200 },
  { handler: 'create_product', method: 'POST', target: 'create', expectedStatus: 201 },
  { handler: 'get_product', method: 'GET', target: 'item', expectedStatus: 200 },
  { handler: 'health', method: 'GET', target: 'health', expectedStatus: 200 },
  { handler: 'get_products', method: 'GET', target: 'list', expectedStatus: 200 },
  { handler: 'update_product', method: 'PUT', target: 'item', expectedStatus: 200 },
  { handler: 'get_product', method: 'GET', target: 'item', expectedStatus: 200 },
  { handler: 'unmatched', method: 'GET', target: 'missing', expectedStatus: 404 },
  { handler: 'get_products', method: 'GET', target: 'list', expectedStatus: 200 },
  { handler: 'get_product', method: 'GET', target: 'item', expectedStatus: 200 },
  { handler: 'delete_product', method: 'DELETE', target: 'item', expectedStatus: 200 },
];

/** Every handler the cycle reaches, in the order of the proxy's route table, then `unmatched`. */
export const HANDLERS: readonly string[] = [
  'get_products',
  'create_product',
  'get_product',
  'update_product',
  'delete_product',
  'health',
  'unmatched',
];

export const CYCLE_LENGTH = CYCLE.length;

// Used when the create failed: a valid id that no product has, so the request still reaches its
// handler (and is answered 404) instead of being refused as a malformed id.
const ABSENT_ID = 2_147_483_647;

export interface TrafficRecord {
  /** Order in which the request was planned, from 0. */
  readonly index: number;
  readonly handler: string;
  readonly method: string;
  readonly path: string;
  readonly userAgent: string;
  readonly category: UserAgentCategory;
  readonly expectedStatus: number;
  readonly status: number;
  /** From `traceresponse`; undefined when the answer had none (tracing off) or a malformed one. */
  readonly traceId: string | undefined;
  /** The proxy's span id, from `traceresponse`. */
  readonly spanId: string | undefined;
  readonly durationMs: number;
}

export interface TrafficOptions {
  /** The proxy, e.g. http://localhost:8080 (no trailing slash needed). */
  readonly baseUrl: string;
  readonly concurrency: number;
  /** Stop planning after this many requests. */
  readonly requests?: number | undefined;
  /** Stop planning once this much time has passed. */
  readonly durationMs?: number | undefined;
  /** Per request; default 10 s. */
  readonly timeoutMs?: number | undefined;
  /** Aborting stops planning; requests in flight finish. */
  readonly signal?: AbortSignal | undefined;
  readonly onRecord?: ((record: TrafficRecord) => void) | undefined;
}

export interface TrafficResult {
  readonly records: readonly TrafficRecord[];
  readonly elapsedMs: number;
  /** The first request that got no HTTP answer; the run stopped planning there. */
  readonly failure: UnreachableError | undefined;
  /** True when `signal` stopped the run. */
  readonly interrupted: boolean;
}

const TRACE_RESPONSE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** `00-<trace id>-<span id>-<flags>` (Trace Context Level 2); undefined if absent or malformed. */
export function parseTraceResponse(
  value: string | null | undefined,
): { traceId: string; spanId: string } | undefined {
  const match = TRACE_RESPONSE.exec(value?.trim() ?? '');
  if (match === null) return undefined;
  const [, traceId = '', spanId = ''] = match;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId };
}

/** One cycle's product: created by its POST, used by the reads and the update, deleted last. */
interface Cycle {
  readonly number: number;
  created: PromiseWithResolvers<number | undefined> | undefined;
  /** Requests that use the product; the DELETE waits for all of them. */
  readonly uses: Promise<unknown>[];
  deleted: boolean;
}

interface Planned {
  readonly index: number;
  readonly step: Step;
  readonly userAgent: UserAgent;
  run(): Promise<TrafficRecord>;
}

function productBody(cycle: number, updated: boolean): string {
  return JSON.stringify(
    updated
      ? { name: `spanscope traffic ${cycle} (updated)`, price: 12.5, quantity: 4 }
      : { name: `spanscope traffic ${cycle}`, price: 9.99, quantity: 3 },
  );
}

function createdId(body: string): number | undefined {
  try {
    const { id } = JSON.parse(body) as { id?: unknown };
    return typeof id === 'number' && Number.isInteger(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

export async function driveTraffic(options: TrafficOptions): Promise<TrafficResult> {
  const base = baseUrl(options.baseUrl);
  const timeoutMs = options.timeoutMs ?? 10_000;
  const started = performance.now();
  const deadline = options.durationMs === undefined ? Infinity : started + options.durationMs;
  const records: TrafficRecord[] = [];
  const cycles = new Map<number, Cycle>();
  let planned = 0;
  let failure: UnreachableError | undefined;

  const send = async (
    index: number,
    step: Step,
    userAgent: UserAgent,
    path: string,
    body: string | undefined,
  ): Promise<{ record: TrafficRecord; text: string }> => {
    const headers: Record<string, string> = { 'user-agent': userAgent.header };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const t0 = performance.now();
    const response = await httpRequest(`${base}${path}`, { method: step.method, headers, body, timeoutMs });
    const text = await response.text();
    const trace = parseTraceResponse(response.headers.get('traceresponse'));
    const record: TrafficRecord = {
      index,
      handler: step.handler,
      method: step.method,
      path,
      userAgent: userAgent.header,
      category: userAgent.category,
      expectedStatus: step.expectedStatus,
      status: response.status,
      traceId: trace?.traceId,
      spanId: trace?.spanId,
      durationMs: performance.now() - t0,
    };
    records.push(record);
    options.onRecord?.(record);
    return { record, text };
  };

  const cycleOf = (number: number): Cycle => {
    let cycle = cycles.get(number);
    if (cycle === undefined) {
      cycle = { number, created: undefined, uses: [], deleted: false };
      cycles.set(number, cycle);
    }
    return cycle;
  };

  // Planning is synchronous and in index order, so a request that uses a cycle's product is
  // registered before that cycle's DELETE is planned, whatever order the requests finish in.
  const plan = (index: number, step: Step, cycle = cycleOf(Math.floor(index / CYCLE.length))): Planned => {
    const userAgent = USER_AGENTS[index % USER_AGENTS.length] as UserAgent;
    const simple = (path: string): Planned => ({
      index,
      step,
      userAgent,
      run: async () => (await send(index, step, userAgent, path, undefined)).record,
    });
    switch (step.target) {
      case 'list':
        return simple('/products');
      case 'health':
        return simple('/health');
      case 'missing':
        return simple('/no-such-page');
      case 'create': {
        const created = Promise.withResolvers<number | undefined>();
        cycle.created = created;
        return {
          index,
          step,
          userAgent,
          run: async () => {
            let id: number | undefined;
            try {
              const { record, text } = await send(
                index,
                step,
                userAgent,
                '/product',
                productBody(cycle.number, false),
              );
              if (record.status === 201) id = createdId(text);
              return record;
            } finally {
              created.resolve(id);
            }
          },
        };
      }
      case 'item': {
        const isDelete = step.method === 'DELETE';
        const done = Promise.withResolvers<undefined>();
        if (isDelete) cycle.deleted = true;
        else cycle.uses.push(done.promise);
        const uses = isDelete ? [...cycle.uses] : [];
        const created = cycle.created;
        return {
          index,
          step,
          userAgent,
          run: async () => {
            try {
              const id = (await created?.promise) ?? ABSENT_ID;
              await Promise.all(uses);
              const body = step.method === 'PUT' ? productBody(cycle.number, true) : undefined;
              return (await send(index, step, userAgent, `/product/${id}`, body)).record;
            } finally {
              done.resolve(undefined);
            }
          },
        };
      }
    }
  };

  const stopped = (): boolean =>
    failure !== undefined ||
    options.signal?.aborted === true ||
    (options.requests !== undefined && planned >= options.requests) ||
    performance.now() >= deadline;

  const next = (): Planned | undefined => {
    if (stopped()) return undefined;
    const index = planned++;
    return plan(index, CYCLE[index % CYCLE.length] as Step);
  };

  const runOne = async (request: Planned): Promise<void> => {
    try {
      await request.run();
    } catch (error) {
      if (!(error instanceof UnreachableError)) throw error;
      failure ??= error;
    }
  };

  const worker = async (): Promise<void> => {
    for (let request = next(); request !== undefined; request = next()) await runOne(request);
  };

  // The first request alone: if the proxy is down, that is one clear failure, not `concurrency` of them.
  const first = next();
  if (first !== undefined) await runOne(first);
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));

  // A run that stopped mid-cycle deletes the products it created and did not delete yet.
  if (failure === undefined) {
    for (const cycle of cycles.values()) {
      if (cycle.created === undefined || cycle.deleted) continue;
      const step = CYCLE.find((s) => s.method === 'DELETE') as Step;
      await runOne(plan(planned++, step, cycle));
    }
  }

  return {
    records,
    elapsedMs: performance.now() - started,
    failure,
    interrupted: options.signal?.aborted === true,
  };
}
