// Contender: http-proxy-3 (the maintained TypeScript rewrite of http-proxy) with a keep-alive agent.
// Usage: node scripts/bench/contenders/http-proxy-3.ts --port P --target http://127.0.0.1:B
import http from 'node:http';
import { createProxyServer } from 'http-proxy-3';
import { exitWithParent, requireTarget, serverArgs } from '../lib/child.ts';

exitWithParent();
const { port, target } = serverArgs();
const agent = new http.Agent({ keepAlive: true, maxSockets: 128 });
const proxy = createProxyServer({ target: requireTarget(target).origin, agent });
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
