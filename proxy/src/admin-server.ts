// The admin port, apart from client traffic (like Envoy's :9901): liveness, readiness, metrics,
// the label scheme, the pod's tagging endpoint (POST /ingest) and the local profile store's export
// (GET /debug/pprof). It binds to ADMIN_HOST, pod-local by default.
import { createServer } from './node-http.ts';
import type { IncomingMessage, Server } from 'node:http';
import type { ProxyMetrics } from './metrics.ts';
import { IngestError, MAX_INGEST_BYTES } from './profiling/tagging.ts';
import { SpanscopeError } from './errors.ts';

/** An answer to a request: status, headers, body. */
export type AdminAnswer = readonly [number, Readonly<Record<string, string>>, string | Uint8Array];

export interface AdminOptions {
  readonly metrics: ProxyMetrics;
  /** False while starting and once shutdown begins. */
  readonly isReady: () => boolean;
  readonly backendReachable: () => Promise<boolean>;
  /** The profile label scheme as JSON, for services written in other languages. */
  readonly labels: () => unknown;
  /** Takes one profile (Pyroscope's ingest API); throws an IngestError for a bad one. */
  readonly ingest: (query: URLSearchParams, contentType: string | undefined, body: Buffer) => void;
  /** `GET /debug/pprof`: the local store's merged export, or a JSON error. */
  readonly debugPprof: (query: URLSearchParams) => Promise<AdminAnswer> | AdminAnswer;
}

export function jsonAnswer(status: number, body: unknown): AdminAnswer {
  const text = JSON.stringify(body);
  return [status, { 'content-type': 'application/json', 'cache-control': 'no-store' }, text];
}

function methodNotAllowed(allow: string): AdminAnswer {
  const [status, headers, body] = jsonAnswer(405, { error: 'method not allowed' });
  return [status, { ...headers, allow }, body];
}

/** The body, or an IngestError(413) as soon as it passes `limit` (nothing more is buffered). */
function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(tooLarge(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        req.removeAllListeners('data');
        req.pause();
        reject(tooLarge(limit));
        return;
      }
      chunks.push(chunk);
    });
    req.once('end', () => {
      resolve(Buffer.concat(chunks, size));
    });
    req.once('error', reject);
  });
}

function tooLarge(limit: number): IngestError {
  return new IngestError(413, `profile body over ${String(limit / (1024 * 1024))} MiB`);
}

export function createAdminServer(options: AdminOptions): Server {
  const route = async (req: IncomingMessage, path: string, query: URLSearchParams): Promise<AdminAnswer> => {
    if (path === '/ingest') {
      if (req.method !== 'POST') return methodNotAllowed('POST');
      const body = await readBody(req, MAX_INGEST_BYTES);
      options.ingest(query, req.headers['content-type'], body);
      return [200, { 'content-type': 'application/json' }, '{}'];
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed('GET, HEAD');
    switch (path) {
      case '/healthz':
        return jsonAnswer(200, { status: 'ok' });
      case '/readyz': {
        if (!options.isReady())
          return jsonAnswer(503, { status: 'not ready', reason: 'starting or shutting down' });
        if (!(await options.backendReachable())) {
          return jsonAnswer(503, { status: 'not ready', reason: 'backend unreachable' });
        }
        return jsonAnswer(200, { status: 'ready' });
      }
      case '/labels':
        return jsonAnswer(200, options.labels());
      case '/metrics':
        return [
          200,
          { 'content-type': options.metrics.registry.contentType },
          await options.metrics.registry.metrics(),
        ];
      case '/debug/pprof':
        return options.debugPprof(query);
      default:
        return jsonAnswer(404, { error: 'not found' });
    }
  };

  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://admin');
    route(req, url.pathname, url.searchParams)
      .catch((error: unknown): AdminAnswer => {
        if (error instanceof IngestError) {
          options.metrics.recordIngest(error.status === 413 ? 'too_large' : 'rejected');
          // A refused upload may still be arriving: close instead of reading the rest.
          if (error.status === 413) res.shouldKeepAlive = false;
          return jsonAnswer(error.status, error.answer());
        }
        if (error instanceof SpanscopeError) return jsonAnswer(400, error.answer());
        res.emit('admin-error', error);
        return jsonAnswer(500, { error: 'internal error' });
      })
      .then(
        ([status, headers, body]) => {
          res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        () => {
          res.destroy();
        },
      );
  });
}
