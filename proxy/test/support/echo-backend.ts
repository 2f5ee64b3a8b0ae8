// A real HTTP/1.1 upstream for reverse-proxy tests: a node:http server on 127.0.0.1 that reports
// exactly what reached it (raw URL, raw header pairs, body size and SHA-256 hashed while
// streaming) and offers `/__echo/...` routes for status codes, large or broken downloads, slow
// responses, custom (hop-by-hop) response headers, `Expect: 100-continue`, and upgrades
// (a real RFC 6455 handshake with a frame echo for WebSocket, a raw byte echo otherwise).
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { listenOnLoopback } from './loopback-server.ts';

/** The JSON body of the default route (and of `/__echo/continue` and `/__echo/delay`). */
export interface EchoReport {
  method: string;
  /** The request target exactly as received (not normalised or decoded). */
  url: string;
  httpVersion: string;
  /** `rawHeaders` as [name, value] pairs: original casing, order and duplicates. */
  headers: [string, string][];
  bodyBytes: number;
  /** Hex SHA-256 of the request body (of the empty string when there is none). */
  bodySha256: string;
  /** Trailer fields of a chunked request body, as [name, value] pairs. */
  trailers: [string, string][];
  /** Whether this server answered `100 Continue` before reading the body. */
  sentContinue: boolean;
}

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  rawHeaders: [string, string][];
  /** True when the request arrived through the `upgrade` event. */
  upgrade: boolean;
  /** Set once the client went away before the response was completely sent. */
  aborted: boolean;
}

export interface EchoBackend {
  /** e.g. http://127.0.0.1:43123 */
  readonly url: string;
  readonly port: number;
  /** Every request (including upgrades) in arrival order. */
  readonly received: ReceivedRequest[];
  /** Requests whose client went away before the response was completely sent. */
  readonly aborted: number;
  /** Open TCP connections (including upgraded ones). */
  readonly activeConnections: number;
  /** Resolves once `aborted >= count`; rejects after `timeoutMs`. */
  waitForAborted(count: number, timeoutMs?: number): Promise<void>;
  /** Forgets `received` and resets `aborted`. */
  clear(): void;
  /** Destroys every socket (including upgraded ones) and stops listening. */
  close(): Promise<void>;
}

const WEBSOCKET_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const DOWNLOAD_CHUNK = 16 * 1024;

/** Byte `i` of every `/__echo/download` and `/__echo/reset-mid-body` body is `i % 251`. */
export function deterministicBytes(offset: number, length: number): Buffer {
  const bytes = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) bytes[i] = (offset + i) % 251;
  return bytes;
}

/** The complete body `/__echo/download?bytes=n` sends. */
export function downloadBody(bytes: number): Buffer {
  return deterministicBytes(0, bytes);
}

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 §4.2.2). */
export function websocketAccept(key: string): string {
  return createHash('sha1')
    .update(key + WEBSOCKET_GUID)
    .digest('base64');
}

function pairs(raw: string[]): [string, string][] {
  const result: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) result.push([raw[i]!, raw[i + 1]!]);
  return result;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function intParam(params: URLSearchParams, name: string, fallback: number): number {
  const raw = params.get(name);
  if (raw === null) return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`bad ${name}=${raw}`);
  return value;
}

async function* generateBytes(total: number): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < total; offset += DOWNLOAD_CHUNK) {
    yield deterministicBytes(offset, Math.min(DOWNLOAD_CHUNK, total - offset));
    // Let each chunk leave as its own write so the body really is streamed.
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** One WebSocket frame as a server sends it: unmasked. */
function encodeFrame(firstByte: number, payload: Buffer): Buffer {
  let header: Buffer;
  if (payload.length < 126) {
    header = Buffer.from([firstByte, payload.length]);
  } else if (payload.length < 0x10000) {
    header = Buffer.alloc(4);
    header[0] = firstByte;
    header[1] = 126;
    header.writeUInt16BE(payload.length, 2);
  } else {
    header = Buffer.alloc(10);
    header[0] = firstByte;
    header[1] = 127;
    header.writeBigUInt64BE(BigInt(payload.length), 2);
  }
  return Buffer.concat([header, payload]);
}

/** Parses (masked) client frames and echoes each data frame back unmasked; answers ping and close. */
function echoWebSocketFrames(socket: Duplex, head: Buffer): void {
  let buffered = Buffer.from(head);
  let closed = false;
  const drain = (): void => {
    while (!closed && buffered.length >= 2) {
      const first = buffered[0]!;
      const second = buffered[1]!;
      const opcode = first & 0x0f;
      const masked = (second & 0x80) !== 0;
      let length = second & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (buffered.length < 4) return;
        length = buffered.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (buffered.length < 10) return;
        const big = buffered.readBigUInt64BE(2);
        if (big > BigInt(64 * 1024 * 1024)) {
          socket.destroy();
          return;
        }
        length = Number(big);
        offset = 10;
      }
      const maskLength = masked ? 4 : 0;
      if (buffered.length < offset + maskLength + length) return;
      const mask = buffered.subarray(offset, offset + maskLength);
      const payload = Buffer.from(buffered.subarray(offset + maskLength, offset + maskLength + length));
      if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!;
      buffered = buffered.subarray(offset + maskLength + length);

      if (opcode === 0x8) {
        closed = true;
        socket.end(encodeFrame(0x88, payload));
      } else if (opcode === 0x9) {
        socket.write(encodeFrame(0x8a, payload));
      } else if (opcode !== 0xa) {
        // Text, binary or continuation: same FIN bit and opcode, unmasked.
        socket.write(encodeFrame(first & 0x8f, payload));
      }
    }
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk]);
    drain();
  });
  drain();
}

export async function startEchoBackend(): Promise<EchoBackend> {
  const received: ReceivedRequest[] = [];
  let aborted = 0;
  const abortWaiters = new Set<() => void>();

  const record = (req: IncomingMessage, upgrade: boolean): ReceivedRequest => {
    const entry: ReceivedRequest = {
      method: req.method ?? '',
      url: req.url ?? '',
      headers: req.headers,
      rawHeaders: pairs(req.rawHeaders),
      upgrade,
      aborted: false,
    };
    received.push(entry);
    return entry;
  };

  /** Counts the request as aborted if its response closes before it has been fully sent. */
  const trackAbort = (res: ServerResponse, entry: ReceivedRequest, deliberate: () => boolean): void => {
    res.on('close', () => {
      if (res.writableFinished || deliberate()) return;
      entry.aborted = true;
      aborted++;
      for (const waiter of abortWaiters) waiter();
    });
  };

  /** Consumes the body, hashing as it streams; resolves undefined if the client went away. */
  const report = async (req: IncomingMessage, sentContinue: boolean): Promise<EchoReport | undefined> => {
    const hash = createHash('sha256');
    let bodyBytes = 0;
    try {
      for await (const chunk of req) {
        const buffer = chunk as Buffer;
        hash.update(buffer);
        bodyBytes += buffer.length;
      }
    } catch {
      return undefined;
    }
    return {
      method: req.method ?? '',
      url: req.url ?? '',
      httpVersion: req.httpVersion,
      headers: pairs(req.rawHeaders),
      bodyBytes,
      bodySha256: hash.digest('hex'),
      trailers: pairs(req.rawTrailers),
      sentContinue,
    };
  };

  const sendReport = async (
    req: IncomingMessage,
    res: ServerResponse,
    sentContinue: boolean,
  ): Promise<void> => {
    const body = await report(req, sentContinue);
    if (body !== undefined && !res.destroyed) sendJson(res, 200, body);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, sentContinue: boolean): Promise<void> => {
    const entry = record(req, false);
    let deliberateClose = false;
    trackAbort(res, entry, () => deliberateClose);

    const target = new URL(req.url ?? '/', 'http://echo.invalid');
    const path = target.pathname;
    const params = target.searchParams;
    if (!path.startsWith('/__echo/') || path === '/__echo/continue') {
      await sendReport(req, res, sentContinue);
      return;
    }

    if (path.startsWith('/__echo/status/')) {
      req.resume();
      const code = Number(path.slice('/__echo/status/'.length));
      if (!Number.isInteger(code) || code < 200 || code > 599) {
        sendJson(res, 400, { error: `bad status ${path}` });
      } else if (code === 204 || code === 205 || code === 304) {
        res.writeHead(code).end();
      } else {
        sendJson(res, code, { status: code });
      }
      return;
    }

    if (path === '/__echo/download') {
      req.resume();
      const bytes = intParam(params, 'bytes', 0);
      const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream' };
      if (params.get('length') === '1') headers['content-length'] = bytes;
      res.writeHead(200, headers);
      try {
        await pipeline(Readable.from(generateBytes(bytes)), res);
      } catch {
        // The client went away mid-download; trackAbort has counted it.
      }
      return;
    }

    if (path === '/__echo/delay') {
      const ms = intParam(params, 'ms', 0);
      const body = await report(req, sentContinue);
      if (body === undefined || res.destroyed) return;
      const elapsed = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => {
          resolve(true);
        }, ms);
        res.once('close', () => {
          clearTimeout(timer);
          resolve(false);
        });
      });
      if (elapsed) sendJson(res, 200, body);
      return;
    }

    if (path === '/__echo/reset-mid-body') {
      req.resume();
      const bytes = Math.max(intParam(params, 'bytes', 1024), 2);
      const rst = params.get('rst') === '1';
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes });
      res.write(deterministicBytes(0, Math.floor(bytes / 2)), () => {
        deliberateClose = true;
        const socket = res.socket;
        if (socket === null) return;
        if (rst) socket.resetAndDestroy();
        else socket.destroy();
      });
      return;
    }

    if (path === '/__echo/headers') {
      req.resume();
      const set: [string, string][] = [];
      for (const spec of params.getAll('set')) {
        const colon = spec.indexOf(':');
        if (colon <= 0) {
          sendJson(res, 400, { error: `bad set=${spec}, expected name:value` });
          return;
        }
        set.push([spec.slice(0, colon).trim(), spec.slice(colon + 1).trim()]);
      }
      const body = JSON.stringify({ set });
      const chunked = set.some(
        ([name, value]) => name.toLowerCase() === 'transfer-encoding' && /chunked/i.test(value),
      );
      const hasLength = set.some(([name]) => name.toLowerCase() === 'content-length');
      const flat = set.flat();
      flat.push('content-type', 'application/json');
      if (!chunked && !hasLength) flat.push('content-length', String(Buffer.byteLength(body)));
      try {
        res.writeHead(200, flat);
      } catch (error) {
        sendJson(res, 400, { error: error instanceof Error ? error.message : String(error) });
        return;
      }
      res.end(body);
      return;
    }

    req.resume();
    sendJson(res, 404, { error: `unknown echo route ${path}` });
  };

  const onRequest = (sentContinue: boolean) => (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, sentContinue).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
      } else {
        sendJson(res, error instanceof RangeError ? 400 : 500, {
          error: error instanceof Error ? error.message : String(error),
        });
      }
    });
  };

  const server: Server = createServer({ requireHostHeader: false }, onRequest(false));

  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const target = new URL(req.url ?? '/', 'http://echo.invalid');
    const reject = target.pathname === '/__echo/continue' ? target.searchParams.get('reject') : null;
    if (reject !== null) {
      // Refuse without reading the body (e.g. ?reject=417); the connection is closed after.
      record(req, false);
      res.setHeader('connection', 'close');
      sendJson(res, Number(reject) || 417, { rejected: true });
      return;
    }
    res.writeContinue();
    onRequest(true)(req, res);
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    record(req, true);
    socket.on('error', () => {
      // The peer went away; nothing to report.
    });
    const target = new URL(req.url ?? '/', 'http://echo.invalid');
    if (target.pathname.startsWith('/__echo/status/')) {
      const code = Number(target.pathname.slice('/__echo/status/'.length)) || 400;
      socket.end(`HTTP/1.1 ${code} Refused\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const protocol = req.headers.upgrade ?? '';
    if (protocol.toLowerCase() === 'websocket') {
      const key = req.headers['sec-websocket-key'];
      if (key === undefined || req.headers['sec-websocket-version'] !== '13') {
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      const subprotocol = req.headers['sec-websocket-protocol']?.split(',')[0]?.trim();
      socket.write(
        'HTTP/1.1 101 Switching Protocols\r\n' +
          'Upgrade: websocket\r\n' +
          'Connection: Upgrade\r\n' +
          `Sec-WebSocket-Accept: ${websocketAccept(key)}\r\n` +
          (subprotocol ? `Sec-WebSocket-Protocol: ${subprotocol}\r\n` : '') +
          '\r\n',
      );
      echoWebSocketFrames(socket, head);
      return;
    }
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: ${protocol}\r\nConnection: Upgrade\r\n\r\n`);
    if (head.length > 0) socket.write(head);
    socket.pipe(socket);
  });

  const listening = await listenOnLoopback(server);

  return {
    url: listening.url,
    port: listening.port,
    received,
    get aborted() {
      return aborted;
    },
    get activeConnections() {
      return listening.openConnections;
    },
    waitForAborted(count, timeoutMs = 5000) {
      return new Promise<void>((resolve, reject) => {
        const check = (): void => {
          if (aborted < count) return;
          clearTimeout(timer);
          abortWaiters.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          abortWaiters.delete(check);
          reject(
            new Error(
              `Timed out after ${timeoutMs} ms waiting for ${count} aborted request(s); saw ${aborted}`,
            ),
          );
        }, timeoutMs);
        abortWaiters.add(check);
        check();
      });
    },
    clear() {
      received.length = 0;
      aborted = 0;
    },
    close() {
      return listening.close();
    },
  };
}
