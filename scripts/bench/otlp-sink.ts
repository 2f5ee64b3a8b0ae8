// A stand-in OTLP/HTTP collector: reads and discards every POST body, answers 200 with an empty
// protobuf ExportTraceServiceResponse. GET /stats reports what it received.
// Usage: node scripts/bench/otlp-sink.ts --port P
import http from 'node:http';
import { exitWithParent, serverArgs } from './lib/child.ts';

function main(): void {
  exitWithParent();
  const { port } = serverArgs();
  let requests = 0;
  let bytes = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ requests, bytes }));
      return;
    }
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      requests += 1;
      res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '0' });
      res.end();
    });
  });
  server.keepAliveTimeout = 120_000;
  server.headersTimeout = 125_000;
  server.listen(port, '127.0.0.1');
}

main();
