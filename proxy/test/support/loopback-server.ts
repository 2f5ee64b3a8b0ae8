// Listening on 127.0.0.1 at a free port and closing again, for the test servers (OTLP receivers,
// Pyroscope receiver, echo backend): each must close without waiting for a client that keeps its
// connection open, upgraded (WebSocket, raw tunnel) connections included.
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface LoopbackServer {
  readonly server: Server;
  readonly port: number;
  /** e.g. http://127.0.0.1:43123 */
  readonly url: string;
  /** Open TCP connections, upgraded ones included. */
  readonly openConnections: number;
  /** Stops listening and destroys every open connection (a keep-alive client would hold it open). */
  close(): Promise<void>;
}

/**
 * Makes `server` listen on 127.0.0.1 at a free port. Its sockets are tracked from here on because
 * `closeAllConnections()` does not reach connections that left HTTP through an upgrade.
 */
export async function listenOnLoopback(server: Server): Promise<LoopbackServer> {
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    get openConnections() {
      return sockets.size;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => {
          if (error) reject(error);
          else resolve();
        });
        server.closeAllConnections();
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/**
 * Serves `handle` on 127.0.0.1 at a free port. A `handle` that throws answers 500 with the
 * error's message, or drops the connection when the answer has already begun.
 */
export function serveOnLoopback(
  handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>,
): Promise<LoopbackServer> {
  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(500).end(error instanceof Error ? error.message : String(error));
      } else {
        res.destroy();
      }
    });
  });
  return listenOnLoopback(server);
}
