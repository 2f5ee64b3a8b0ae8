// Continue the caller's W3C trace or start a new one: one SERVER span per request, named and
// attributed by OpenTelemetry's stable HTTP semantic conventions.
import { SpanStatusCode } from '@opentelemetry/api';
import type { Attributes } from '@opentelemetry/api';
import type { Exchange } from './exchange.ts';
import { parseHost, queryOf } from './exchange.ts';
import type { Tracing } from './tracing.ts';

export interface TraceStepOptions {
  readonly tracing: Tracing;
  readonly captureQuery: boolean;
  readonly listenPort: () => number;
}

/** Names of the client's trace headers that the proxy replaces with its own. */
export const TRACE_HEADERS: ReadonlySet<string> = new Set(['traceparent', 'tracestate']);
const NO_HEADERS: ReadonlySet<string> = new Set();

export function traceHeadersToDrop(tracing: Tracing): ReadonlySet<string> {
  // With tracing off the proxy is transparent: the caller's headers travel on untouched.
  return tracing.enabled ? TRACE_HEADERS : NO_HEADERS;
}

type ParsedHost = ReturnType<typeof parseHost>;

// Clients send a handful of distinct Host headers; parsing each once spares a regex per request.
// Bounded, because the header is the client's to choose.
const parsedHosts = new Map<string, ParsedHost>();
const PARSED_HOSTS_LIMIT = 256;

function parsedHost(host: string | undefined): ParsedHost {
  if (host === undefined) return parseHost(host);
  let parsed = parsedHosts.get(host);
  if (parsed === undefined) {
    parsed = parseHost(host);
    if (parsedHosts.size >= PARSED_HOSTS_LIMIT) parsedHosts.clear();
    parsedHosts.set(host, parsed);
  }
  return parsed;
}

export function startRequestSpan(exchange: Exchange, options: TraceStepOptions): void {
  const { tracing } = options;
  if (!tracing.enabled) return;
  const { req, route } = exchange;
  const parent = tracing.extract(req.headers);
  const host = parsedHost(req.headers.host);
  // The span keeps this record as it is (server-span.ts): every value is a string or a number the
  // proxy has parsed itself, and an absent one is left out rather than set to undefined.
  const attributes: Attributes = {
    'http.request.method': exchange.method,
    'url.path': exchange.path,
    'url.scheme': 'http',
    'server.port': host.port ?? options.listenPort(),
    'network.protocol.version': req.httpVersion,
    'spanscope.user_agent.category': exchange.userAgent,
    'spanscope.handler': route.handler,
  };
  if (host.address !== undefined) attributes['server.address'] = host.address;
  const client = req.socket.remoteAddress;
  if (client !== undefined) attributes['client.address'] = client;
  const userAgent = req.headers['user-agent'];
  if (userAgent !== undefined) attributes['user_agent.original'] = userAgent;
  if (exchange.method === '_OTHER') attributes['http.request.method_original'] = req.method;
  if (route.matched) attributes['http.route'] = route.route;
  if (options.captureQuery) {
    const query = queryOf(req.url);
    if (query !== undefined) attributes['url.query'] = query;
  }
  // Semantic conventions: `{method} {route}`, or the method alone when no route template is known.
  const method = exchange.method === '_OTHER' ? 'HTTP' : exchange.method;
  const name = route.matched ? `${method} ${route.route}` : method;
  const span = tracing.startServerSpan(name, parent, attributes);
  exchange.span = span;
  const traceparent = tracing.inject(span.spanContext(), exchange.upstreamHeaders);
  // Trace Context Level 2: hand the trace id back so a person can copy it from `curl -i`. Its
  // version-00 form is the traceparent just written for the backend, character for character.
  exchange.responseHeaders.push('traceresponse', traceparent);
}

export function endRequestSpan(exchange: Exchange): void {
  const { span, outcome } = exchange;
  if (span === undefined || outcome === undefined) return;
  if (outcome.status > 0 && outcome.status !== 499)
    span.setAttribute('http.response.status_code', outcome.status);
  if (outcome.failure !== undefined) {
    span.setAttribute('error.type', outcome.failure);
    if (outcome.failure !== 'client_abort') {
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error?.message ?? outcome.failure });
    }
  } else if (outcome.status >= 500) {
    span.setAttribute('error.type', String(outcome.status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
  span.end();
}
