// One JSON line per request, in exactly the shape pino writes (`level`, `time`, the logger's
// bindings, the fields, `msg`) and into the logger's own destination, so it interleaves with the
// other log lines and reads like them. The line is built directly instead of through
// `logger.info(object)`: every field's type is known here, and pino's generic serialization was
// the larger part of the access log's cost per request. In isolation that saves only about 1 µs a
// line, but in the running proxy it saves about 19,000 instructions per request: `npm run bench --
// --suite instructions --predictable --only spanscope-full`, request path, 2026-11-29: 319,308 and
// 319,640 with this module, 337,668 and 340,017 with the line sent through `logger.info` instead
// (a worktree, everything else the same). `pino.symbols` is pino's exported way in; the test holds
// the line to pino's own, field for field and in order.
import { pino } from 'pino';
import type { Logger } from 'pino';

export interface AccessLogEntry {
  readonly traceId: string | undefined;
  readonly spanId: string | undefined;
  readonly method: string;
  readonly path: string;
  readonly handler: string;
  readonly route: string;
  readonly userAgent: string;
  readonly status: number;
  readonly durationMs: number;
  readonly upstreamError: string | undefined;
}

export type AccessLog = (entry: AccessLogEntry) => void;

/** pino's `level` for info and its `time` key, as its default formatters write them. */
const LINE_START = '{"level":30,"time":';

// Method, handler, route and user-agent category come from closed sets (known methods, the route
// table, the categories), so each is escaped once; bounded all the same, as a route file may be long.
const escaped = new Map<string, string>();
const ESCAPED_LIMIT = 1024;

function closedSetJson(value: string): string {
  let json = escaped.get(value);
  if (json === undefined) {
    json = JSON.stringify(value);
    if (escaped.size >= ESCAPED_LIMIT) escaped.clear();
    escaped.set(value, json);
  }
  return json;
}

/** `"name":value` pairs of an entry; strings from the client or the route file are JSON-escaped. */
function fields(entry: AccessLogEntry): string {
  let out = '';
  if (entry.traceId !== undefined)
    out += `,"trace_id":"${entry.traceId}","span_id":"${String(entry.spanId)}"`;
  out +=
    `,"method":${closedSetJson(entry.method)},"path":${JSON.stringify(entry.path)}` +
    `,"handler":${closedSetJson(entry.handler)},"route":${closedSetJson(entry.route)}` +
    `,"user_agent":${closedSetJson(entry.userAgent)},"status":${String(entry.status)}` +
    `,"duration_ms":${String(entry.durationMs)}`;
  if (entry.upstreamError !== undefined) out += `,"upstream_error":${closedSetJson(entry.upstreamError)}`;
  return out;
}

export function createAccessLog(logger: Logger): AccessLog {
  const internals = logger as unknown as Record<symbol, unknown>;
  const stream = internals[pino.symbols.streamSym] as { write?: (line: string) => unknown } | undefined;
  const bindings = internals[pino.symbols.chindingsSym];
  // Every logger here is pino's; a pino that moved these would be caught by the access-log test.
  if (typeof stream?.write !== 'function' || typeof bindings !== 'string') {
    throw new TypeError('createAccessLog: the logger has no pino stream or bindings (pino.symbols)');
  }
  const write = stream.write.bind(stream);
  return (entry) => {
    if (!logger.isLevelEnabled('info')) return;
    write(`${LINE_START}${String(Date.now())}${bindings}${fields(entry)},"msg":"request"}\n`);
  };
}
