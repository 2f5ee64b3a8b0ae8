// Contender: node:http server + an undici Pool (keep-alive), forwarding with pool.stream() so the
// response body is written straight into the client response.
// Usage: node scripts/bench/contenders/undici-stream.ts --port P --target http://127.0.0.1:B
import http from 'node:http';
import { Pool } from 'undici';
import { exitWithParent, requireTarget, serverArgs } from '../lib/child.ts';
import { hasBody, stripHopByHop } from '../lib/http.ts';

exitWithParent();
const { port, target } = serverArgs();
const pool = new Pool(requireTarget(target).origin, {
  connections: 128,
  pipelining: 1,
  keepAliveTimeout: 60_000,
});

http
  .createServer((req, res) => {
    const headers = stripHopByHop(req.headers) as Record<string, string | string[]>;
    // undici refuses `Expect` (NotSupportedError); node:http has already answered 100-continue itself.
    delete headers.expect;
    pool.stream(
      {
        method: req.method ?? 'GET',
        path: req.url ?? '/',
        headers,
        body: hasBody(req.headers) ? req : null,
        opaque: res,
      },
      ({ statusCode, headers: upHeaders, opaque }) => {
        opaque.writeHead(statusCode, stripHopByHop(upHeaders));
        return opaque;
      },
      (err) => {
        if (!err) return;
        if (res.headersSent) {
          res.destroy();
          return;
        }
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end('{"error":"upstream unavailable"}');
      },
    );
  })
  .listen(port, '127.0.0.1');
