// The admin port, apart from client traffic (like Envoy's :9901): liveness, readiness, metrics.
import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { ProxyMetrics } from './metrics.ts';

export interface AdminOptions {
  readonly metrics: ProxyMetrics;
  /** False while starting and once shutdown begins. */
  readonly isReady: () => boolean;
  readonly backendReachable: () => Promise<boolean>;
  /** The profile label scheme as JSON, for services written in other languages. */
  readonly labels: () => unknown;
}

function json(status: number, body: unknown): [number, Record<string, string>, string] {
  const text = JSON.stringify(body);
  return [status, { 'content-type': 'application/json', 'cache-control': 'no-store' }, text];
}

export function createAdminServer(options: AdminOptions): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const answer = async (): Promise<[number, Record<string, string>, string]> => {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        const [status, headers, body] = json(405, { error: 'method not allowed' });
        return [status, { ...headers, allow: 'GET, HEAD' }, body];
      }
      switch (path) {
        case '/healthz':
          return json(200, { status: 'ok' });
        case '/readyz': {
          if (!options.isReady())
            return json(503, { status: 'not ready', reason: 'starting or shutting down' });
          if (!(await options.backendReachable())) {
            return json(503, { status: 'not ready', reason: 'backend unreachable' });
          }
          return json(200, { status: 'ready' });
        }
        case '/labels':
          return json(200, options.labels());
        case '/metrics':
          return [
            200,
            { 'content-type': options.metrics.registry.contentType },
            await options.metrics.registry.metrics(),
          ];
        default:
          return json(404, { error: 'not found' });
      }
    };
    answer().then(
      ([status, headers, body]) => {
        res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      (error: unknown) => {
        const text = JSON.stringify({ error: 'internal error' });
        res.writeHead(500, { 'content-type': 'application/json' }).end(text);
        res.emit('admin-error', error);
      },
    );
  });
}
