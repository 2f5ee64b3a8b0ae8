// Test clients for what fetch hides: exact request headers (duplicates, hop-by-hop, Host),
// 1xx informational responses, `Expect: 100-continue`, trailers, raw response header pairs,
// and a fresh TCP connection per request. Plus a one-message WebSocket round trip.
import { request } from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

export type HeaderPair = readonly [name: string, value: string];

export interface RawRequestOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default GET. */
  method?: string;
  /** Request target, sent as is. Default '/'. */
  path?: string;
  /**
   * Sent verbatim and in order when given as pairs (duplicates allowed). Unless present, a
   * `Host` (see `omitHost`), a framing header for `body` (Content-Length for a Buffer/string,
   * Transfer-Encoding: chunked for a stream) and, with `expectContinue`, `Expect: 100-continue`
   * are added. Node adds `Connection: close` unless a Connection header is given.
   */
  headers?: readonly HeaderPair[] | OutgoingHttpHeaders;
  body?: Buffer | string | AsyncIterable<Buffer>;
  /** Send `Expect: 100-continue` and hold the body back until `100 Continue` arrives. */
  expectContinue?: boolean;
  /** Don't add a Host header when `headers` has none. */
  omitHost?: boolean;
  /** Rejects (and destroys the connection) after this long. Default 10000. */
  timeoutMs?: number;
  /** Aborts the request (rejecting with an AbortError). */
  signal?: AbortSignal;
}

export interface RawResponse {
  status: number;
  statusMessage: string;
  httpVersion: string;
  headers: IncomingHttpHeaders;
  /** Response header fields as received: original casing, order and duplicates. */
  rawHeaders: [string, string][];
  body: Buffer;
  /** Status codes of the 1xx informational responses seen before the final one (101 excluded). */
  informational: number[];
  trailers: NodeJS.Dict<string>;
  rawTrailers: [string, string][];
}

/** The response started but the connection ended before it was complete. */
export class IncompleteResponseError extends Error {
  readonly status: number;
  readonly rawHeaders: [string, string][];
  /** The part of the body that did arrive. */
  readonly partialBody: Buffer;

  constructor(status: number, rawHeaders: [string, string][], partialBody: Buffer, cause?: unknown) {
    super(
      `response ${status} ended before it was complete after ${partialBody.length} body byte(s)`,
      cause === undefined ? undefined : { cause },
    );
    this.name = 'IncompleteResponseError';
    this.status = status;
    this.rawHeaders = rawHeaders;
    this.partialBody = partialBody;
  }
}

function toPairs(raw: string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) result.push([raw[i]!, raw[i + 1]!]);
  return result;
}

function headerPairs(headers: RawRequestOptions['headers']): [string, string][] {
  if (headers === undefined) return [];
  if (Array.isArray(headers)) return (headers as readonly HeaderPair[]).map(([name, value]) => [name, value]);
  const result: [string, string][] = [];
  for (const [name, value] of Object.entries(headers as OutgoingHttpHeaders)) {
    if (value === undefined) continue;
    if (Array.isArray(value)) for (const item of value) result.push([name, item]);
    else result.push([name, String(value)]);
  }
  return result;
}

/**
 * One request on a fresh connection (`agent: false`); resolves with the complete response,
 * rejects with `IncompleteResponseError` if the response is cut off.
 */
export function rawRequest(options: RawRequestOptions): Promise<RawResponse> {
  const host = options.host ?? '127.0.0.1';
  const { port, body } = options;
  const pairs = headerPairs(options.headers);
  const has = (name: string): boolean => pairs.some(([candidate]) => candidate.toLowerCase() === name);
  if (!has('host') && options.omitHost !== true) pairs.unshift(['Host', `${host}:${port}`]);
  if (body !== undefined && !has('content-length') && !has('transfer-encoding')) {
    if (typeof body === 'string' || Buffer.isBuffer(body)) {
      pairs.push(['Content-Length', String(Buffer.byteLength(body))]);
    } else {
      pairs.push(['Transfer-Encoding', 'chunked']);
    }
  }
  if (options.expectContinue === true && !has('expect')) pairs.push(['Expect', '100-continue']);

  return new Promise<RawResponse>((resolve, reject) => {
    const informational: number[] = [];
    let settled = false;
    const fail = (error: unknown): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(error instanceof Error ? error : new Error(String(error)));
    };

    const req = request({
      host,
      port,
      method: options.method ?? 'GET',
      path: options.path ?? '/',
      headers: pairs.flat(),
      agent: false,
      signal: options.signal,
    });
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => {
      req.destroy(new Error(`rawRequest timed out after ${timeoutMs} ms`));
    }, timeoutMs);

    req.on('error', fail);
    req.on('information', (info) => informational.push(info.statusCode));

    let bodySent = false;
    const sendBody = async (): Promise<void> => {
      if (bodySent) return;
      bodySent = true;
      if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
        req.end(body);
        return;
      }
      for await (const chunk of body) {
        if (req.destroyed) return;
        if (!req.write(chunk)) {
          await new Promise<void>((resolveDrain) => {
            const done = (): void => {
              req.off('drain', done);
              req.off('close', done);
              resolveDrain();
            };
            req.on('drain', done);
            req.on('close', done);
          });
        }
      }
      req.end();
    };
    const startBody = (): void => {
      sendBody().catch((error: unknown) =>
        req.destroy(error instanceof Error ? error : new Error(String(error))),
      );
    };

    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', () => {
        // Reported through 'close' below as an incomplete response.
      });
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({
          status: res.statusCode ?? 0,
          statusMessage: res.statusMessage ?? '',
          httpVersion: res.httpVersion,
          headers: res.headers,
          rawHeaders: toPairs(res.rawHeaders),
          body: Buffer.concat(chunks),
          informational,
          trailers: res.trailers,
          rawTrailers: toPairs(res.rawTrailers),
        });
        // The body may have been held back (final status before 100 Continue): drop the connection.
        if (!bodySent) req.destroy();
      });
      res.on('close', () => {
        if (!res.complete) {
          fail(
            new IncompleteResponseError(res.statusCode ?? 0, toPairs(res.rawHeaders), Buffer.concat(chunks)),
          );
        }
      });
    });

    if (options.expectContinue === true) {
      req.on('continue', startBody);
      req.flushHeaders();
    } else {
      startBody();
    }
  });
}

/**
 * Opens a WebSocket (Node's global client) to `url` (ws:, wss:, http: or https:), sends `message`
 * as one text frame, and resolves with the first text message received once the connection has
 * closed cleanly.
 */
export function websocketEcho(url: string, message: string, timeoutMs = 5000): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const socket = new WebSocket(url);
    let reply: string | undefined;
    let settled = false;
    const settle = (error: Error | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error === undefined && reply !== undefined) resolve(reply);
      else reject(error ?? new Error('WebSocket closed without a reply'));
    };
    const timer = setTimeout(() => {
      settle(new Error(`websocketEcho timed out after ${timeoutMs} ms (reply: ${String(reply)})`));
      socket.close();
    }, timeoutMs);

    socket.addEventListener('open', () => {
      socket.send(message);
    });
    socket.addEventListener('message', (event) => {
      const data: unknown = event.data;
      if (typeof data !== 'string') {
        settle(new Error('expected a text message'));
        socket.close();
        return;
      }
      reply ??= data;
      socket.close(1000);
    });
    socket.addEventListener('error', () => {
      settle(new Error(`WebSocket error (url ${url})`));
    });
    socket.addEventListener('close', (event) => {
      settle(
        reply === undefined
          ? new Error(`WebSocket closed (${event.code} ${event.reason}) before a reply`)
          : undefined,
      );
    });
  });
}
