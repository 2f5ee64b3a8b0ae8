// The data path, top to bottom. Every request takes the same short list of steps:
//   1. name it      – handler and route template from the route table, client category from the UA
//   2. trace it     – continue the caller's W3C trace or start one; the SERVER span
//   3. label it     – the profile labels for this request, in the async context (so they follow
//                     every await) and in baggage for the service behind
//   4. forward it   – stream it to the backend and the answer back, inside those labels
//   5. record it    – end the span, count it, write one access-log line
// Observability steps never fail a request: their errors are caught and logged.
import type { Span } from '@opentelemetry/api';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { Exchange } from './exchange.ts';
import { normalizeMethod, pathOf } from './exchange.ts';
import { upstreamRequestHeaders } from './headers.ts';
import type { ProxyMetrics } from './metrics.ts';
import { endRequestSpan, startRequestSpan, traceHeadersToDrop } from './request-trace.ts';
import type { RouteTable } from './routes.ts';
import type { Tracing } from './tracing.ts';
import type { ForwardOutcome, RunInRequest, Upstream } from './upstream.ts';
import { AsyncLocalStorage } from 'node:async_hooks';
import { upstreamBaggage } from './baggage.ts';
import { EMPTY_LABELS, PROFILE_ID_ATTRIBUTE } from './labels.ts';
import type { ProfileLabels } from './labels.ts';
import type { Profiler } from './profiling/index.ts';
import { categorizeUserAgent } from './user-agent.ts';
import { createAccessLog } from './access-log.ts';

export interface ProxyHandlerOptions {
  readonly routes: RouteTable;
  readonly tracing: Tracing;
  readonly upstream: Upstream;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  readonly accessLog: boolean;
  readonly captureQuery: boolean;
  /** Host header sent upstream instead of the client's (PRESERVE_HOST=false). */
  readonly hostOverride: string | undefined;
  readonly listenPort: () => number;
  /** The running profiler (replaced once it has started). */
  readonly profiler: () => Profiler;
}

export interface ProxyHandler {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Requests between step 1 and step 4. */
  inFlight(): number;
  /** Resolves once no request is in flight. */
  drained(): Promise<void>;
}

export function createProxyHandler(options: ProxyHandlerOptions): ProxyHandler {
  const { routes, tracing, upstream, metrics, logger } = options;
  const accessLog = createAccessLog(logger);
  // The client's baggage is rebuilt (reserved spanscope.* members removed, the proxy's added).
  const dropHeaders = new Set([...traceHeadersToDrop(tracing), 'baggage']);
  const traceOptions = { tracing, captureQuery: options.captureQuery, listenPort: options.listenPort };
  // Recording (span end, export timers, log buffers) runs outside any request's labels, so the
  // batch export it may trigger is never profiled as some request's work.
  const outsideRequests = AsyncLocalStorage.snapshot();
  let inFlight = 0;
  let waiters: (() => void)[] = [];

  // 1. name it
  function nameRequest(req: IncomingMessage, res: ServerResponse | undefined): Exchange {
    const path = pathOf(req.url);
    return {
      req,
      res,
      startedAt: performance.now(),
      method: normalizeMethod(req.method),
      path,
      route: routes.match(req.method ?? '', path),
      userAgent: categorizeUserAgent(req.headers['user-agent']),
      span: undefined,
      responseHeaders: [],
      upstreamHeaders: {},
      outcome: undefined,
    };
  }

  // 2. trace it
  function traceRequest(exchange: Exchange): void {
    try {
      startRequestSpan(exchange, traceOptions);
    } catch (error) {
      logger.warn({ err: error }, 'tracing failed to start a span; request forwarded untraced');
    }
  }

  // 3. label it
  function labelRequest(exchange: Exchange): ProfileLabels {
    const { req, route, span } = exchange;
    const baggage: string[] = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      if ((req.rawHeaders[i] as string).toLowerCase() === 'baggage')
        baggage.push(req.rawHeaders[i + 1] as string);
    }
    exchange.upstreamHeaders.baggage = upstreamBaggage(baggage, {
      handler: route.handler,
      route: route.route,
      userAgent: exchange.userAgent,
    });
    const profiler = options.profiler();
    if (!profiler.labelling) return EMPTY_LABELS;
    try {
      const spanContext = span?.spanContext();
      const sampled = spanContext !== undefined && (spanContext.traceFlags & 1) === 1;
      const labels = profiler.requestLabels({
        handler: route.handler,
        route: route.route,
        method: exchange.method,
        userAgent: exchange.userAgent,
        span:
          spanContext === undefined || span === undefined
            ? undefined
            : { spanId: spanContext.spanId, traceId: spanContext.traceId, name: spanName(span), sampled },
      });
      // Grafana's span-profiles link: the local root span names the profile by its own span id.
      if (sampled && labels.span_id !== undefined) span?.setAttribute(PROFILE_ID_ATTRIBUTE, labels.span_id);
      return labels;
    } catch (error) {
      logger.warn({ err: error }, 'profile labels refused; request profiled unlabelled');
      return EMPTY_LABELS;
    }
  }

  function headersFor(exchange: Exchange): string[] {
    const { req } = exchange;
    return upstreamRequestHeaders(req.rawHeaders, {
      clientAddress: req.socket.remoteAddress,
      protocol: 'http',
      hostOverride: options.hostOverride,
      drop: dropHeaders,
      extra: exchange.upstreamHeaders,
    });
  }

  // 5. record it
  function record(exchange: Exchange, outcome: ForwardOutcome): void {
    exchange.outcome = outcome;
    try {
      endRequestSpan(exchange);
      const durationSeconds = (performance.now() - exchange.startedAt) / 1000;
      metrics.recordRequest({
        handler: exchange.route.handler,
        method: exchange.method,
        status: outcome.status,
        userAgent: exchange.userAgent,
        durationSeconds,
      });
      if (outcome.failure !== undefined) metrics.recordUpstreamError(outcome.failure);
      if (options.accessLog) writeAccessLog(exchange, outcome, durationSeconds);
    } catch (error) {
      logger.warn({ err: error }, 'recording a finished request failed');
    }
    inFlight--;
    if (inFlight === 0 && waiters.length > 0) {
      const resolve = waiters;
      waiters = [];
      for (const waiter of resolve) waiter();
    }
  }

  function writeAccessLog(exchange: Exchange, outcome: ForwardOutcome, durationSeconds: number): void {
    const spanContext = exchange.span?.spanContext();
    accessLog({
      traceId: spanContext?.traceId,
      spanId: spanContext?.spanId,
      method: exchange.method,
      path: exchange.path,
      handler: exchange.route.handler,
      route: exchange.route.route,
      userAgent: exchange.userAgent,
      status: outcome.status,
      durationMs: Math.round(durationSeconds * 1e6) / 1e3,
      upstreamError: outcome.failure,
    });
  }

  return {
    onRequest(req, res) {
      inFlight++;
      const exchange = nameRequest(req, res);
      traceRequest(exchange);
      const labels = labelRequest(exchange);
      // 4. forward it
      const profiler = options.profiler();
      const runInRequest: RunInRequest = (fn) => profiler.runWithLabels(labels, fn);
      runInRequest(() => {
        upstream.forward(
          req,
          res,
          headersFor(exchange),
          exchange.responseHeaders,
          (outcome) => {
            outsideRequests(() => {
              record(exchange, outcome);
            });
          },
          runInRequest,
        );
      });
    },
    onUpgrade(req, socket, head) {
      inFlight++;
      const exchange = nameRequest(req, undefined);
      traceRequest(exchange);
      const labels = labelRequest(exchange);
      options.profiler().runWithLabels(labels, () => {
        upstream.upgrade(req, socket, head, headersFor(exchange), (outcome) => {
          outsideRequests(() => {
            record(exchange, outcome);
          });
        });
      });
    },
    inFlight: () => inFlight,
    drained() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

function spanName(span: Span): string {
  // The SDK's spans expose their name; the API's Span type does not.
  return (span as Span & { name?: string }).name ?? 'unknown';
}
