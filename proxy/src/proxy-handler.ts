// The data path, top to bottom. Every request takes the same short list of steps:
//   1. name it      – handler and route template from the route table, client category from the UA
//   2. trace it     – continue the caller's W3C trace or start one; the SERVER span
//   3. forward it   – stream it to the backend and the answer back
//   4. record it    – end the span, count it, write one access-log line
// Observability steps never fail a request: their errors are caught and logged.
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
import type { ForwardOutcome, Upstream } from './upstream.ts';
import { categorizeUserAgent } from './user-agent.ts';

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
  const dropTraceHeaders = traceHeadersToDrop(tracing);
  const traceOptions = { tracing, captureQuery: options.captureQuery, listenPort: options.listenPort };
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
      context: undefined,
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

  function headersFor(exchange: Exchange): string[] {
    const { req } = exchange;
    return upstreamRequestHeaders(req.rawHeaders, {
      clientAddress: req.socket.remoteAddress,
      protocol: 'http',
      hostOverride: options.hostOverride,
      drop: dropTraceHeaders,
      extra: exchange.upstreamHeaders,
    });
  }

  // 4. record it
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
    logger.info(
      {
        trace_id: spanContext?.traceId,
        span_id: spanContext?.spanId,
        method: exchange.method,
        path: exchange.path,
        handler: exchange.route.handler,
        route: exchange.route.route,
        user_agent: exchange.userAgent,
        status: outcome.status,
        duration_ms: Math.round(durationSeconds * 1e6) / 1e3,
        upstream_error: outcome.failure,
      },
      'request',
    );
  }

  return {
    onRequest(req, res) {
      inFlight++;
      const exchange = nameRequest(req, res);
      traceRequest(exchange);
      // 3. forward it
      upstream.forward(req, res, headersFor(exchange), exchange.responseHeaders, (outcome) => {
        record(exchange, outcome);
      });
    },
    onUpgrade(req, socket, head) {
      inFlight++;
      const exchange = nameRequest(req, undefined);
      traceRequest(exchange);
      upstream.upgrade(req, socket, head, headersFor(exchange), (outcome) => {
        record(exchange, outcome);
      });
    },
    inFlight: () => inFlight,
    drained() {
      if (inFlight === 0) return Promise.resolve();
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}
