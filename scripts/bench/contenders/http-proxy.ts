// Contender: http-proxy 1.18 with a keep-alive agent (without one it closes every upstream connection).
// Usage: node scripts/bench/contenders/http-proxy.ts --port P --target http://127.0.0.1:B
import http from 'node:http';
import httpProxy from 'http-proxy';
import { exitWithParent, requireTarget, serverArgs } from '../lib/child.ts';

exitWithParent();
const { port, target } = serverArgs();
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({ target: requireTarget(target).origin, agent });
proxy.on('error', (_err, _req, res) => {
  if (res instanceof http.ServerResponse) {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' });
    res.end('{"error":"upstream unavailable"}');
  } else {
    res.destroy();
  }
});
http
  .createServer((req, res) => {
    proxy.web(req, res);
  })
  .listen(port, '127.0.0.1');
