// Contender: node:http server + the least an HTTP/1.1 client can be in Node: keep-alive sockets and
// the llhttp parser node:http itself uses, reached through the internal `_http_common` module.
//
// Not a proxy anyone should run: it forwards requests without a body only, has no timeouts, keeps
// the headers `Connection` names (the load sends none) and relies on an undocumented module. It is
// here to measure the floor under the undici-based forwarder: what writing our own HTTP/1.1
// client could save per request, next to the libraries the issue asked us to choose from.
// Usage: node scripts/bench/contenders/native-parser.ts --port P --target http://127.0.0.1:B
import http from 'node:http';
import type { ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import net from 'node:net';
import type { Socket } from 'node:net';
import { exitWithParent, requireTarget, serverArgs } from '../lib/child.ts';
import { hasBody, isHopByHop } from '../lib/http.ts';

type OnHeadersComplete = (
  versionMajor: number,
  versionMinor: number,
  headers: string[],
  method: number | undefined,
  url: string | undefined,
  statusCode: number,
  statusMessage: string,
) => void;

interface NativeParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenientFlags: number): void;
  execute(data: Buffer): number | Error;
  [key: number]: unknown;
}

interface NativeParserClass {
  new (): NativeParser;
  readonly RESPONSE: number;
  readonly kOnHeadersComplete: number;
  readonly kOnBody: number;
  readonly kOnMessageComplete: number;
}

const { HTTPParser } = createRequire(import.meta.url)('_http_common') as { HTTPParser: NativeParserClass };

interface Connection {
  readonly socket: Socket;
  res: ServerResponse | undefined;
}

exitWithParent();
const { port, target } = serverArgs();
const origin = requireTarget(target);
const idle: Connection[] = [];

function badGateway(res: ServerResponse): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(502, { 'content-type': 'application/json' });
  res.end('{"error":"upstream unavailable"}');
}

function connect(): Connection {
  const socket = net.connect(Number(origin.port), origin.hostname);
  socket.setNoDelay(true);
  const conn: Connection = { socket, res: undefined };
  const parser = new HTTPParser();
  parser.initialize(HTTPParser.RESPONSE, {}, 0, 0);
  const onHeaders: OnHeadersComplete = (
    _major,
    _minor,
    headers,
    _method,
    _url,
    statusCode,
    statusMessage,
  ) => {
    const out: string[] = [];
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      if (!isHopByHop(name)) out.push(name, headers[i + 1] as string);
    }
    conn.res?.writeHead(statusCode, statusMessage, out);
  };
  parser[HTTPParser.kOnHeadersComplete] = onHeaders;
  parser[HTTPParser.kOnBody] = (chunk: Buffer) => conn.res?.write(chunk);
  parser[HTTPParser.kOnMessageComplete] = () => {
    const res = conn.res;
    conn.res = undefined;
    idle.push(conn);
    res?.end();
  };
  socket.on('data', (data: Buffer) => {
    if (parser.execute(data) instanceof Error) socket.destroy();
  });
  socket.on('error', () => undefined);
  socket.on('close', () => {
    const at = idle.indexOf(conn);
    if (at !== -1) idle.splice(at, 1);
    if (conn.res !== undefined) badGateway(conn.res);
  });
  return conn;
}

http
  .createServer((req, res) => {
    if (hasBody(req.headers)) {
      res.writeHead(501, { 'content-type': 'application/json' });
      res.end('{"error":"request bodies are not forwarded by this contender"}');
      return;
    }
    const conn = idle.pop() ?? connect();
    conn.res = res;
    let head = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1\r\n`;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i] as string;
      if (!isHopByHop(name)) head += `${name}: ${raw[i + 1] as string}\r\n`;
    }
    conn.socket.write(`${head}connection: keep-alive\r\n\r\n`);
  })
  .listen(port, '127.0.0.1');
