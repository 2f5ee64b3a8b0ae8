// `npm run validate --otlp-listen`: an OTLP/HTTP trace receiver inside the validator, for the
// embedded default where no collector or Tempo runs. The deployment's exporters already point at
// http://localhost:4318 by default, so listening there catches both processes' spans with no
// change to the deployment. Accepts `POST /v1/traces` as binary protobuf or JSON, optionally
// gzipped, and answers with an empty ExportTraceServiceResponse, as a collector does.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { ScriptError, errorMessage } from './errors.ts';
import { decodeOtlpJson, decodeOtlpProtobuf } from './otlp-spans.ts';
import type { Span } from './otlp-spans.ts';
import type { TraceSource } from './sources.ts';

export interface OtlpListener extends TraceSource {
  /** The port listened on (useful with port 0). */
  readonly port: number;
  /** Export requests received and decoded. */
  readonly exports: number;
}

// Bounds memory if the validator is left listening next to a busy deployment.
const MAX_SPANS = 500_000;
const MAX_BODY_BYTES = 64 * 1024 * 1024;

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  const body = Buffer.concat(chunks);
  const encoding = req.headers['content-encoding']?.trim().toLowerCase();
  return encoding === 'gzip' ? gunzipSync(body) : body;
}

/** An empty Export*ServiceResponse: zero bytes in protobuf, `{}` in JSON. */
function answerEmpty(res: ServerResponse, json: boolean): void {
  if (json) res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  else res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' }).end();
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/**
 * Listens on `host:port`; without a host, on 127.0.0.1 and ::1 both, since `localhost` (what the
 * exporters are configured with by default) may resolve to either.
 */
export async function startOtlpListener(port: number, host?: string): Promise<OtlpListener> {
  const traces = new Map<string, Span[]>();
  let spanCount = 0;
  let exports = 0;
  let lastError: string | undefined;

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '').split('?')[0];
    const json = (req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
    // The same endpoint gets the runtime metrics (and logs, where exported): taken and dropped,
    // as a collector without those pipelines would, so the deployment logs no export errors.
    if (req.method === 'POST' && (path === '/v1/metrics' || path === '/v1/logs')) {
      req.resume();
      await new Promise((resolve) => req.once('end', resolve));
      answerEmpty(res, json);
      return;
    }
    if (req.method !== 'POST' || path !== '/v1/traces') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only POST /v1/traces is served here');
      return;
    }
    let spans: Span[];
    try {
      const body = await readBody(req);
      spans = json ? decodeOtlpJson(JSON.parse(body.toString('utf8'))) : decodeOtlpProtobuf(body);
    } catch (error) {
      lastError = errorMessage(error);
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`cannot decode: ${lastError}`);
      return;
    }
    exports += 1;
    for (const span of spans) {
      if (spanCount >= MAX_SPANS) break;
      spanCount += 1;
      const list = traces.get(span.traceId);
      if (list === undefined) traces.set(span.traceId, [span]);
      else list.push(span);
    }
    answerEmpty(res, json);
  };

  const servers: Server[] = [];
  const newServer = (): Server =>
    createServer((req, res) => {
      handle(req, res).catch((error: unknown) => {
        lastError = errorMessage(error);
        if (!res.headersSent) res.writeHead(500).end();
        else res.destroy();
      });
    });

  const hosts = host === undefined ? ['127.0.0.1', '::1'] : [host];
  let boundPort = port;
  for (const [i, h] of hosts.entries()) {
    const server = newServer();
    try {
      await listen(server, h, boundPort);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // No IPv6 on this machine: 127.0.0.1 alone will do.
      if (i > 0 && (code === 'EADDRNOTAVAIL' || code === 'EAFNOSUPPORT')) continue;
      await Promise.all(servers.map(close));
      const hint =
        code === 'EADDRINUSE'
          ? ': something already listens there (a collector? then pass --tempo URL to read spans from Tempo)'
          : '';
      throw new ScriptError(
        'SPANSCOPE_SCRIPT_ERR_USAGE',
        `cannot receive spans on ${h}:${boundPort}: ${errorMessage(error)}${hint}`,
        { cause: error },
      );
    }
    boundPort = (server.address() as AddressInfo).port;
    servers.push(server);
  }

  const where = host === undefined ? `localhost:${boundPort}` : `${host}:${boundPort}`;
  return {
    description: `the OTLP receiver on ${where}`,
    traceBudget: Infinity,
    port: boundPort,
    get exports() {
      return exports;
    },
    trace(traceId) {
      return Promise.resolve([...(traces.get(traceId) ?? [])]);
    },
    noSpansHint() {
      if (lastError !== undefined) return `the last export could not be decoded: ${lastError}`;
      if (exports === 0) {
        return (
          `no export reached it: both processes need OTEL_EXPORTER_OTLP_ENDPOINT=http://<this host>:${boundPort} ` +
          'and OTEL_TRACES_EXPORTER=otlp; where a collector or Tempo takes them (the compose stack), ' +
          'pass --tempo URL instead'
        );
      }
      return `${exports} export(s) arrived with ${spanCount} span(s), none of this trace`;
    },
    async close() {
      await Promise.all(servers.map(close));
    },
  };
}
