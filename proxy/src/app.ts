// Puts the proxy together from its config: tracing, metrics, route table, upstream pool, the
// client-facing server and the admin server, with an orderly start and stop.
import { createServer } from './node-http.ts';
import type { AddressInfo } from 'node:net';
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { createAdminServer } from './admin-server.ts';
import type { ProxyConfig } from './config.ts';
import { createMetrics } from './metrics.ts';
import type { ProxyMetrics } from './metrics.ts';
import { createProxyHandler } from './proxy-handler.ts';
import type { ProxyHandler } from './proxy-handler.ts';
import { loadRouteTable } from './routes.ts';
import type { RouteTable } from './routes.ts';
import { createTracing } from './tracing.ts';
import type { Tracing, TracingOptions } from './tracing.ts';
import { createUpstream } from './upstream.ts';
import { labelSchemeDescription } from './labels.ts';
import { disabledProfiler, profilerSettingsFromConfig, startProfiler } from './profiling/index.ts';
import type { Profiler } from './profiling/index.ts';
import { createProfileRelay } from './profile-relay.ts';
import { startRuntimeTelemetry } from './runtime-telemetry.ts';
import type { ProfileRelay } from './profile-relay.ts';

export interface ProxyApp {
  readonly config: ProxyConfig;
  readonly metrics: ProxyMetrics;
  readonly tracing: Tracing;
  /** Off until start(); then running, or off when no Pyroscope server is configured. */
  readonly profiler: Profiler;
  /** The pod's tagging endpoint: to Pyroscope, or the local store. */
  readonly relay: ProfileRelay;
  readonly handler: ProxyHandler;
  readonly server: Server;
  readonly admin: Server;
  /** Ports actually bound (useful with port 0 in tests). */
  start(): Promise<{ port: number; adminPort: number }>;
  /** Readiness off, stop accepting, finish in-flight requests up to SHUTDOWN_TIMEOUT_MS, flush spans. */
  stop(): Promise<{ drained: boolean }>;
}

export interface ProxyAppOptions {
  readonly logger: Logger;
  readonly routes?: RouteTable;
  readonly tracing?: TracingOptions;
}

const DROP_LOG_INTERVAL_MS = 60_000;
/** At shutdown, queued profiles get this long to reach Pyroscope. */
const RELAY_CLOSE_MS = 3_000;

export function createProxyApp(config: ProxyConfig, options: ProxyAppOptions): ProxyApp {
  const { logger } = options;
  const metrics = createMetrics();
  const routes = options.routes ?? loadRouteTable(config.ROUTES_FILE);

  // A slow collector must not flood the log either: drops are summed and logged once a minute.
  let unloggedDrops = 0;
  let lastDropLog = 0;
  const tracing = createTracing(config, {
    ...options.tracing,
    onDrop(kind, count) {
      metrics.recordDroppedSpans(kind, count);
      options.tracing?.onDrop?.(kind, count);
      unloggedDrops += count;
      const now = Date.now();
      if (now - lastDropLog >= DROP_LOG_INTERVAL_MS) {
        logger.warn(
          { dropped_spans: unloggedDrops, reason: kind },
          'spans dropped: trace collector slow or down',
        );
        unloggedDrops = 0;
        lastDropLog = now;
      }
    },
  });

  const profilerSettings = profilerSettingsFromConfig(config, { serviceName: config.OTEL_SERVICE_NAME });
  const relay = createProfileRelay(config, metrics, logger);
  const runtime = startRuntimeTelemetry(config, {
    logger,
    meterName: 'spanscope-proxy',
    registry: metrics.registry,
  });
  // Replaced by the running profiler in start(); until then requests are simply unlabelled.
  let profiler: Profiler = disabledProfiler(profilerSettings, logger);

  const upstream = createUpstream({
    origin: config.BACKEND_URL,
    connections: config.UPSTREAM_CONNECTIONS,
    headersTimeoutMs: config.UPSTREAM_TIMEOUT_MS,
  });
  let port = config.PROXY_PORT;
  const handler = createProxyHandler({
    routes,
    tracing,
    upstream,
    metrics,
    logger,
    accessLog: config.ACCESS_LOG,
    captureQuery: config.CAPTURE_QUERY,
    hostOverride: config.PRESERVE_HOST ? undefined : new URL(config.BACKEND_URL).host,
    listenPort: () => port,
    profiler: () => profiler,
  });
  metrics.readInFlightFrom(() => handler.inFlight());

  const server = createServer((req, res) => {
    handler.onRequest(req, res);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handler.onUpgrade(req, socket, head);
  });
  server.on('clientError', (error, socket) => {
    // Node's own 400/431 for malformed or oversized requests; the proxy stays up.
    if (socket.writable && !(error as { code?: string }).code?.startsWith('ECONNRESET')) {
      const tooLarge = (error as { code?: string }).code === 'HPE_HEADER_OVERFLOW';
      socket.end(
        tooLarge
          ? 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n'
          : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
      );
    } else {
      socket.destroy();
    }
  });

  let ready = false;
  const admin = createAdminServer({
    metrics,
    isReady: () => ready,
    backendReachable: () => upstream.reachable(),
    labels: () => labelSchemeDescription(profiler.switches),
    ingest: (query, contentType, body) => {
      relay.ingest(query, contentType, body);
    },
    debugPprof: (query) => relay.debugPprof(query),
  });

  const listen = (target: Server, host: string, wanted: number) =>
    new Promise<number>((resolve, reject) => {
      target.once('error', reject);
      target.listen(wanted, host, () => {
        target.removeListener('error', reject);
        resolve((target.address() as AddressInfo).port);
      });
    });

  let stopping: Promise<{ drained: boolean }> | undefined;
  async function shutdown(): Promise<{ drained: boolean }> {
    ready = false;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      handler.drained().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), config.SHUTDOWN_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    server.closeAllConnections();
    await closed;
    // Label propagation stops before the profiler; its last profile is pushed.
    await profiler.stop().catch((error: unknown) => {
      logger.warn({ err: error }, 'stopping the profiler failed');
    });
    await relay.close(RELAY_CLOSE_MS);
    await tracing.shutdown().catch((error: unknown) => {
      logger.warn({ err: error }, 'flushing spans at shutdown failed');
    });
    await runtime.shutdown();
    await upstream.close();
    const adminClosed = new Promise<void>((resolve) => admin.close(() => resolve()));
    admin.closeAllConnections();
    await adminClosed;
    return { drained };
  }

  return {
    config,
    metrics,
    tracing,
    get profiler() {
      return profiler;
    },
    relay,
    handler,
    server,
    admin,
    async start() {
      // The proxy's own profiles take the tagging endpoint's path in-process.
      profiler = await startProfiler({
        ...profilerSettings,
        logger,
        sink: (upload) => relay.take(upload),
        shouldUpload: () => runtime.gate.isOpen(),
      });
      const adminPort = await listen(admin, config.ADMIN_HOST, config.ADMIN_PORT);
      port = await listen(server, config.PROXY_HOST, config.PROXY_PORT);
      ready = true;
      return { port, adminPort };
    },
    stop() {
      stopping ??= shutdown();
      return stopping;
    },
  };
}
