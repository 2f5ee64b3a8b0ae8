// Each request continues the caller's trace and runs under its profile labels, from `onRequest`
// to the response:
// - a SERVER span, child of the incoming `traceparent` (the proxy's span), named `{METHOD} {route}`
//   with OpenTelemetry's stable HTTP attributes. It is this process's local root span for the
//   request, so when it is sampled and span labels are on it carries `pyroscope.profile.id` = its
//   span id, the `span_id` label of the request's samples (Grafana's span-profiles link);
// - the profile labels the proxy sent in `baggage` (`spanscope.handler`, `.route`, `.user_agent`),
//   each validated by the label scheme and replaced by this service's own name when absent or
//   refused; without the proxy, its own route names and user-agent category.
//
// The callback-style `onRequest` hook calls `done` inside the labelled context, so every later
// hook, the handler and its database awaits run in it. A body arriving later is read from socket
// events, outside that context, but Fastify (5.x) resumes its lifecycle after parsing in the
// context the parsing started in (an AsyncResource), so nothing is lost there (tested).
// Profiling and tracing trouble is logged once and never fails a request.
import { normalizeMethod } from '@spanscope/proxy/tracing';
import { SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import type { Attributes, Context, Span } from '@opentelemetry/api';
import { EMPTY_LABELS, PROFILE_ID_ATTRIBUTE, labelValue } from '@spanscope/proxy';
import type { ProfileLabels } from '@spanscope/proxy';
import { categorizeUserAgent } from '@spanscope/proxy/user-agent';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { runInTraceContext, runOutsideRequests } from '../telemetry/request-context.ts';
import { baggageLabels } from '../telemetry/baggage.ts';
import type { Telemetry } from '../telemetry/telemetry.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's handler name: span attribute `spanscope.handler` and profile label `handler`. */
    readonly handler?: string;
  }
}

/** Handler and route of requests no route matches: one name, whatever the path. */
export const UNMATCHED = 'unmatched';

export { normalizeMethod };

/** Fastify's `/product/:id` as the proxy's route template `/product/{id}`. */
export function routeTemplate(url: string): string {
  return url.replace(/:([A-Za-z_][A-Za-z0-9_]*)(\([^)]*\))?/g, '{$1}');
}

interface RequestState {
  readonly span: Span;
  /** Name of the error that made the answer a 5xx, for `error.type`. */
  errorType?: string;
}

/** The labels the proxy sent, each kept only if the scheme accepts it. */
function acceptedLabel(
  name: 'handler' | 'route' | 'user_agent',
  value: string | undefined,
  own: string,
): string {
  if (value === undefined) return own;
  try {
    return labelValue(name, value);
  } catch {
    // A refused value (empty, not a string the scheme allows): this service's own name instead.
    return own;
  }
}

export function registerRequestTelemetry(app: FastifyInstance, telemetry: Telemetry): void {
  const { tracing, profiler } = telemetry;
  const states = new WeakMap<FastifyRequest, RequestState>();
  let warned = false;
  const warnOnce = (error: unknown): void => {
    if (warned) return;
    warned = true;
    (telemetry.logger ?? app.log).warn(
      { err: error },
      'request tracing or profile labels failed; requests continue without them',
    );
  };

  app.addHook('onRequest', (request, reply, done) => {
    let state: RequestState;
    let context: Context;
    let labels: ProfileLabels;
    try {
      ({ state, context, labels } = startRequest(request));
    } catch (error) {
      warnOnce(error);
      done();
      return;
    }
    states.set(request, state);
    reply.raw.once('close', () => {
      // Ending a span can arm the export batch timer: never inside a request's context.
      runOutsideRequests(() => {
        endRequest(state, reply);
      });
    });
    const enter = (): void => {
      runInTraceContext(context, done);
    };
    profiler.runWithLabels(labels, enter);
  });

  app.addHook('onError', (request, _reply, error, done) => {
    const state = states.get(request);
    if (state !== undefined) state.errorType = error.name;
    done();
  });

  function startRequest(request: FastifyRequest): {
    state: RequestState;
    context: Context;
    labels: ProfileLabels;
  } {
    const method = normalizeMethod(request.method);
    const url = request.is404 ? undefined : request.routeOptions.url;
    const route = url === undefined ? UNMATCHED : routeTemplate(url);
    const ownHandler = url === undefined ? UNMATCHED : (request.routeOptions.config.handler ?? UNMATCHED);
    const userAgentHeader = request.headers['user-agent'];
    const ownUserAgent = categorizeUserAgent(userAgentHeader);

    const fromProxy = baggageLabels(request.headers.baggage);
    const handler = acceptedLabel('handler', fromProxy.handler, ownHandler);
    const labelRoute = acceptedLabel('route', fromProxy.route, route);
    const userAgent = acceptedLabel('user_agent', fromProxy.userAgent, ownUserAgent);

    const parent = tracing.extract(request.headers);
    const attributes: Attributes = {
      'http.request.method': method,
      'url.path': pathOf(request.url),
      'url.scheme': request.protocol,
      'server.address': request.hostname,
      'server.port': request.port ?? request.socket.localPort,
      'client.address': request.ip,
      'network.protocol.version': request.raw.httpVersion,
      'user_agent.original': userAgentHeader,
      'spanscope.handler': handler,
      'spanscope.user_agent.category': userAgent,
    };
    if (method === '_OTHER') attributes['http.request.method_original'] = request.method;
    if (url !== undefined) attributes['http.route'] = route;
    // Semantic conventions: `{method} {route}`, or the method alone when no route matched.
    const spanMethod = method === '_OTHER' ? 'HTTP' : method;
    const name = url === undefined ? spanMethod : `${spanMethod} ${route}`;
    const span = tracing.tracer.startSpan(name, { kind: SpanKind.SERVER, attributes }, parent);
    const context = trace.setSpan(parent, span);

    const spanContext = span.spanContext();
    const sampled = span.isRecording() && (spanContext.traceFlags & TraceFlags.SAMPLED) !== 0;
    let labels: ProfileLabels = EMPTY_LABELS;
    try {
      labels = profiler.requestLabels({
        handler,
        route: labelRoute,
        method,
        userAgent,
        span: sampled
          ? { spanId: spanContext.spanId, traceId: spanContext.traceId, name, sampled }
          : undefined,
      });
    } catch (error) {
      warnOnce(error);
    }
    // The link from this span to its samples, only when they carry its span_id.
    if (sampled && profiler.labelling && profiler.switches.dynamicTags) {
      span.setAttribute(PROFILE_ID_ATTRIBUTE, spanContext.spanId);
    }
    return { state: { span }, context, labels };
  }
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function endRequest(state: RequestState, reply: FastifyReply): void {
  const { span } = state;
  if (!reply.raw.writableFinished) {
    // The client went away before the answer was complete.
    span.setAttribute('error.type', 'client_abort');
  } else {
    const status = reply.statusCode;
    span.setAttribute('http.response.status_code', status);
    if (status >= 500) {
      span.setAttribute('error.type', state.errorType ?? String(status));
      span.setStatus({ code: SpanStatusCode.ERROR });
    }
  }
  span.end();
}
