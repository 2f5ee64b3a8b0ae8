// Loopback-only networking helpers: free ports, one-shot GETs, waiting for readiness.
import http from 'node:http';
import net from 'node:net';
import { sleep } from './proc.ts';

export const LOOPBACK = '127.0.0.1';

/** A currently free TCP port on the loopback interface (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => {
        resolve(port);
      });
    });
  });
}

export function assertLoopback(url: string): URL {
  const u = new URL(url);
  if (u.hostname !== LOOPBACK && u.hostname !== 'localhost' && u.hostname !== '[::1]') {
    throw new Error(`refusing to target a non-loopback address: ${url}`);
  }
  return u;
}

export interface GetResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A single GET with a fresh connection (no agent), bounded by `timeoutMs`. */
export function httpGet(url: string, timeoutMs = 2000): Promise<GetResult> {
  const u = assertLoopback(url);
  return new Promise((resolve, reject) => {
    const req = http.get(u, { agent: false, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

export interface WaitOptions {
  timeoutMs: number;
  /** Abort early (e.g. the process exited); return a reason string to stop waiting. */
  abort?: () => string | undefined;
  expectStatus?: number;
}

/** Polls `url` until it answers `expectStatus` (default 200). Resolves with undefined or a failure reason. */
export async function waitHttp(url: string, opts: WaitOptions): Promise<string | undefined> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const reason = opts.abort?.();
    if (reason !== undefined) return reason;
    try {
      const r = await httpGet(url, 1000);
      if (r.status === (opts.expectStatus ?? 200)) return undefined;
      last = `HTTP ${r.status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  return `not ready within ${opts.timeoutMs} ms (${last})`;
}
