// The backend every contender proxies to: a minimal node:http server answering every request with the
// same 212-byte JSON body over keep-alive. Usage: node scripts/bench/backend.ts --port P
import http from 'node:http';
import { BODY_BYTES, fixedBody } from './lib/body.ts';
import { exitWithParent, serverArgs } from './lib/child.ts';

exitWithParent();
const { port } = serverArgs();
const body = fixedBody();
const headers = { 'content-type': 'application/json', 'content-length': String(BODY_BYTES) };
const server = http.createServer((req, res) => {
  req.resume(); // discard any request body
  res.writeHead(200, headers);
  res.end(body);
});
// Longer than any pause in the run, so proxies' pooled connections are never closed under them.
server.keepAliveTimeout = 120_000;
server.headersTimeout = 125_000;
server.listen(port, '127.0.0.1');
