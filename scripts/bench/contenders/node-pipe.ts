// Contender: plain node:http on both sides, a keep-alive http.Agent, bodies piped in both directions.
// Usage: node scripts/bench/contenders/node-pipe.ts --port P --target http://127.0.0.1:B
import http from 'node:http';
import { exitWithParent, requireTarget, serverArgs } from '../lib/child.ts';
import { stripHopByHop } from '../lib/http.ts';

exitWithParent();
const { port, target } = serverArgs();
const upstream = requireTarget(target);
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });

http
  .createServer((req, res) => {
    const upReq = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: stripHopByHop(req.headers),
        agent,
      },
      (upRes) => {
        res.writeHead(upRes.statusCode ?? 502, stripHopByHop(upRes.headers));
        upRes.pipe(res);
        upRes.on('error', () => res.destroy());
      },
    );
    upReq.on('error', () => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      res.writeHead(502, { 'content-type': 'application/json' });
      res.end('{"error":"upstream unavailable"}');
    });
    res.on('close', () => {
      if (!res.writableFinished) upReq.destroy();
    });
    req.pipe(upReq);
  })
  .listen(port, '127.0.0.1');
