// Forwarding to the one backend over a keep-alive undici Pool. undici's dispatch API is the
// cheapest correct path measured (see README, "Choosing the forwarding library"): it streams both
// bodies with backpressure and hands over raw response headers, so nothing is re-parsed or buffered.
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Dispatcher, Pool as UndiciPool, buildConnector as UndiciBuildConnector } from 'undici';
import { SpanscopeError } from './errors.ts';
import type { UpstreamFailureKind } from './errors.ts';
import { downstreamResponseHeaders } from './headers.ts';
import { countStreamedBytes } from './stream-memory.ts';

// The two undici modules the proxy uses, not undici's index, which loads all of undici (fetch,
// WebSocket, the mocks, the caches with node:sqlite); what that saves, and the command that
// measures it: README.md, "Memory under load". undici declares no `exports`, so these paths are
// reachable; the lock file pins the version, and proxy/test/undici-modules.test.ts fails if
// either path stops being the index's Pool or buildConnector.
const requireUndici = createRequire(import.meta.url);
const Pool = requireUndici('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
const buildConnector = requireUndici('undici/lib/core/connect.js') as typeof UndiciBuildConnector;

export interface UpstreamOptions {
  readonly origin: string;
  readonly connections: number;
  readonly headersTimeoutMs: number;
}

/** Runs the upstream's callbacks for one request inside that request's profile labels. */
export type RunInRequest = <T>(fn: () => T) => T;
const direct: RunInRequest = (fn) => fn();

export interface ForwardOutcome {
  /** The status the client received (499 when it left first, as nginx logs it). */
  readonly status: number;
  readonly failure: UpstreamFailureKind | undefined;
  readonly error: Error | undefined;
}

export interface Upstream {
  /**
   * Forwards one request and streams the response back. `responseHeaders` are added to whatever
   * the client receives, the backend's answer or the proxy's own error. `done` runs exactly once.
   */
  forward(
    req: IncomingMessage,
    res: ServerResponse,
    headers: string[],
    responseHeaders: readonly string[],
    done: (outcome: ForwardOutcome) => void,
    runInRequest?: RunInRequest,
  ): void;
  /** Tunnels an `Upgrade` request (WebSocket) once the backend answers 101. */
  upgrade(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    headers: string[],
    done: (outcome: ForwardOutcome) => void,
  ): void;
  /** Whether a TCP connection to the backend can be opened now (readiness). */
  reachable(timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

const ERROR_BODIES: Record<
  Exclude<UpstreamFailureKind, 'client_abort' | 'upstream_reset'>,
  [number, string]
> = {
  upstream_unavailable: [502, '{"error":"upstream unavailable"}'],
  upstream_timeout: [504, '{"error":"upstream timeout"}'],
};

export function classifyUpstreamError(error: Error): Exclude<UpstreamFailureKind, 'upstream_reset'> {
  if (error instanceof SpanscopeError && error.code === 'SPANSCOPE_ERR_CLIENT_ABORT') return 'client_abort';
  const code = (error as { code?: string }).code;
  if (code === 'UND_ERR_HEADERS_TIMEOUT') return 'upstream_timeout';
  return 'upstream_unavailable';
}

function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

export function createUpstream(options: UpstreamOptions): Upstream {
  // A socket's callbacks run in the async context it was opened in. Pooled connections are opened
  // in the context captured here, at start-up, so a keep-alive connection never carries the labels
  // of the request that happened to open it into every later request's profile samples.
  const atStartup = AsyncLocalStorage.snapshot();
  const connector = buildConnector({});
  const pool = new Pool(options.origin, {
    connect: (connectOptions, callback) => atStartup(() => connector(connectOptions, callback)),
    connections: options.connections,
    pipelining: 1,
    headersTimeout: options.headersTimeoutMs,
    // A download may legitimately pause; only the wait for response headers is bounded.
    bodyTimeout: 0,
  });
  const { hostname, port } = new URL(options.origin);
  const portNumber = Number(port || (options.origin.startsWith('https:') ? 443 : 80));

  return {
    forward(req, res, headers, responseHeaders, done, runInRequest = direct) {
      let finished = false;
      const finish = (outcome: ForwardOutcome) => {
        if (finished) return;
        finished = true;
        done(outcome);
      };
      let controller: Dispatcher.DispatchController | undefined;
      let status = 0;

      // The client leaving aborts the upstream request, so the backend stops working for nobody.
      const onClientClose = () => {
        if (res.writableFinished) return;
        const abort = new SpanscopeError('SPANSCOPE_ERR_CLIENT_ABORT', 'client closed the connection');
        controller?.abort(abort);
        finish({ status: 499, failure: 'client_abort', error: abort });
      };
      res.once('close', onClientClose);

      const fail = (error: Error) => {
        const kind = classifyUpstreamError(error);
        if (kind === 'client_abort') return finish({ status: 499, failure: kind, error });
        if (res.headersSent) {
          // Never pass a truncated body off as complete: the client sees the connection break.
          res.destroy(error);
          return finish({ status, failure: 'upstream_reset', error });
        }
        const [code, body] = ERROR_BODIES[kind];
        res.writeHead(code, [
          'content-type',
          'application/json',
          'content-length',
          String(Buffer.byteLength(body)),
          ...responseHeaders,
        ]);
        res.end(body);
        finish({ status: code, failure: kind, error });
      };

      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          controller = c;
        },
        onResponseStart(c, statusCode, _parsed, statusMessage) {
          status = statusCode;
          runInRequest(() => {
            const raw = downstreamResponseHeaders(c.rawHeaders as (Buffer | string)[]);
            for (const value of responseHeaders) raw.push(value);
            res.writeHead(statusCode, statusMessage ?? '', raw);
          });
        },
        onBodySent(chunk) {
          countStreamedBytes(chunk.length);
        },
        onResponseData(c, chunk) {
          countStreamedBytes(chunk.length);
          if (!runInRequest(() => res.write(chunk))) {
            c.pause();
            res.once('drain', () => {
              c.resume();
            });
          }
        },
        onResponseEnd() {
          runInRequest(() => res.end());
          res.removeListener('close', onClientClose);
          finish({ status, failure: undefined, error: undefined });
        },
        onResponseError(_c, error) {
          runInRequest(() => {
            fail(error);
          });
        },
      };

      try {
        pool.dispatch(
          {
            origin: options.origin,
            method: req.method ?? 'GET',
            path: req.url ?? '/',
            headers,
            body: hasBody(req) ? req : null,
          },
          handler,
        );
      } catch (error) {
        fail(error as Error);
      }
    },

    upgrade(req, socket, head, headers, done) {
      let finished = false;
      const finish = (outcome: ForwardOutcome) => {
        if (finished) return;
        finished = true;
        done(outcome);
      };
      socket.on('error', () => socket.destroy());
      const upgradeHeader = req.headers.upgrade ?? 'websocket';
      let status = 0;
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart(c) {
          // A client that leaves before the backend agrees to the upgrade aborts it.
          socket.once('close', () => {
            if (status === 0)
              c.abort(new SpanscopeError('SPANSCOPE_ERR_CLIENT_ABORT', 'client closed the connection'));
          });
        },
        onRequestUpgrade(c, statusCode, _parsed, upstream) {
          status = statusCode;
          // A 101's Connection/Upgrade headers are the handshake itself: they pass unchanged.
          const raw = (c.rawHeaders as (Buffer | string)[]).map((p) => p.toString());
          let head101 = `HTTP/1.1 ${statusCode} Switching Protocols\r\n`;
          for (let i = 0; i < raw.length; i += 2) head101 += `${raw[i] ?? ''}: ${raw[i + 1] ?? ''}\r\n`;
          socket.write(`${head101}\r\n`);
          if (head.length > 0) upstream.write(head);
          upstream.on('error', () => socket.destroy());
          socket.on('error', () => upstream.destroy());
          upstream.pipe(socket);
          socket.pipe(upstream);
          finish({ status, failure: undefined, error: undefined });
        },
        onResponseStart(c, statusCode, _parsed, statusMessage) {
          // The backend refused the upgrade: relay its plain answer and close the tunnel.
          status = statusCode;
          const raw = downstreamResponseHeaders(c.rawHeaders as (Buffer | string)[]);
          let text = `HTTP/1.1 ${statusCode} ${statusMessage ?? ''}\r\n`;
          for (let i = 0; i < raw.length; i += 2) text += `${raw[i] ?? ''}: ${raw[i + 1] ?? ''}\r\n`;
          socket.write(`${text}connection: close\r\n\r\n`);
        },
        onResponseData(_c, chunk) {
          socket.write(chunk);
        },
        onResponseEnd() {
          socket.end();
          finish({ status, failure: undefined, error: undefined });
        },
        onResponseError(_c, error) {
          const kind = classifyUpstreamError(error);
          if (status === 0 && kind !== 'client_abort') {
            const [code, body] = ERROR_BODIES[kind];
            socket.end(
              `HTTP/1.1 ${code} ${code === 504 ? 'Gateway Timeout' : 'Bad Gateway'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
            );
            finish({ status: code, failure: kind, error });
            return;
          }
          socket.destroy();
          finish({ status, failure: status === 0 ? kind : 'upstream_reset', error });
        },
      };
      try {
        pool.dispatch(
          {
            origin: options.origin,
            method: req.method ?? 'GET',
            path: req.url ?? '/',
            headers,
            upgrade: upgradeHeader,
          },
          handler,
        );
      } catch (error) {
        handler.onResponseError?.(undefined as never, error as Error);
      }
    },

    reachable(timeoutMs = 1000) {
      return new Promise((resolve) => {
        const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: portNumber });
        const settle = (ok: boolean) => {
          socket.destroy();
          resolve(ok);
        };
        socket.setTimeout(timeoutMs, () => {
          settle(false);
        });
        socket.once('connect', () => {
          settle(true);
        });
        socket.once('error', () => {
          settle(false);
        });
      });
    },

    close() {
      return pool.close();
    },
  };
}
