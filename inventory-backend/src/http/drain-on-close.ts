// When the app closes, requests already in flight still complete, but their keep-alive connections
// must not hold the server open afterwards: answer them with `Connection: close` and reap any
// connection that turns idle, so close() resolves as soon as the last response is sent.
import type { FastifyInstance } from 'fastify';

export function drainConnectionsOnClose(app: FastifyInstance): void {
  let closing = false;

  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });

  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) void reply.header('connection', 'close');
    done(null, payload);
  });

  app.addHook('onResponse', (_request, _reply, done) => {
    if (closing) {
      setImmediate(() => {
        app.server.closeIdleConnections();
      });
    }
    done();
  });
}
