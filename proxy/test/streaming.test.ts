// Bodies stream through the proxy in both directions without being buffered whole: a 100 MiB
// upload and a 100 MiB download pass intact while the proxy's peak RSS grows by less than 32 MiB.
// The proxy runs as a child process so its memory can be read from /proc.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { request } from 'node:http';
import { deterministicBytes, startEchoBackend } from './support/echo-backend.ts';
import type { EchoBackend, EchoReport } from './support/echo-backend.ts';
import { rawRequest } from './support/http-client.ts';
import type { HeaderPair } from './support/http-client.ts';
import { MiB, peakMemoryGrowth, startProxyProcess } from './support/proxy-process.ts';
import type { ProxyProcess } from './support/proxy-process.ts';

const SIZE = 100 * MiB;
const MAX_GROWTH = 32 * MiB;

/** Random 64 KiB chunks, made only when the sender asks for them, hashed as they are made. */
async function* randomBody(total: number, hash: Hash): AsyncGenerator<Buffer> {
  const chunkSize = 64 * 1024;
  for (let sent = 0; sent < total; sent += chunkSize) {
    const chunk = randomBytes(Math.min(chunkSize, total - sent));
    hash.update(chunk);
    yield chunk;
    await Promise.resolve();
  }
}

/** SHA-256 of what `/__echo/download?bytes=n` sends, i.e. `deterministicBytes(0, n)`. */
function downloadSha256(total: number): string {
  // The pattern repeats every 251 bytes, so a block of a multiple of 251 bytes repeats too.
  const block = deterministicBytes(0, 251 * 4096);
  const hash = createHash('sha256');
  let left = total;
  while (left >= block.length) {
    hash.update(block);
    left -= block.length;
  }
  hash.update(block.subarray(0, left));
  return hash.digest('hex');
}

function headerValues(report: EchoReport, name: string): string[] {
  return report.headers.filter(([n]) => n.toLowerCase() === name).map(([, v]) => v);
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(1)} MiB`;
}

interface Download {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: number;
  sha256: string;
}

/**
 * GETs `path`, hashing the body as it streams and never holding more than one chunk. The reader is
 * deliberately slower than the backend (about `bytesPerSecond`), so the proxy must apply backpressure
 * rather than buffer the difference.
 */
function slowDownload(port: number, path: string, bytesPerSecond: number): Promise<Download> {
  return new Promise<Download>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false });
    req.setTimeout(30_000, () => req.destroy(new Error(`download of ${path} timed out`)));
    req.on('error', reject);
    req.on('response', (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      const started = performance.now();
      res.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        bytes += chunk.length;
        const aheadMs = (bytes / bytesPerSecond) * 1000 - (performance.now() - started);
        if (aheadMs > 5) {
          res.pause();
          setTimeout(() => res.resume(), aheadMs);
        }
      });
      res.on('error', reject);
      res.on('close', () => {
        if (!res.complete) reject(new Error(`download of ${path} cut off after ${bytes} bytes`));
      });
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: hash.digest('hex') });
      });
    });
    req.end();
  });
}

describe('streaming through the proxy with bounded memory (child process)', () => {
  let backend: EchoBackend;
  let proxy: ProxyProcess | undefined;
  before(async () => {
    backend = await startEchoBackend();
    proxy = await startProxyProcess(backend.url);
    // Warm up: the first request opens the upstream connection and loads lazily-compiled code.
    const warm = await rawRequest({ port: proxy.port, path: '/products', body: Buffer.alloc(64 * 1024) });
    assert.equal(warm.status, 200);
  });
  beforeEach(() => {
    proxy!.assertRunning();
  });
  /** Runs `work`; if it fails because the proxy died, says so (exit and stderr) instead. */
  const watching = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (error) {
      await Promise.race([proxy!.exited, new Promise((resolve) => setTimeout(resolve, 200))]);
      proxy!.assertRunning();
      throw error;
    }
  };
  after(async () => {
    await proxy?.kill();
    await backend.close();
  });

  const uploads: [string, (total: number) => HeaderPair[]][] = [
    ['chunked (no length)', () => []],
    ['with content-length', (total) => [['Content-Length', String(total)]]],
  ];
  for (const [framing, headersFor] of uploads) {
    it(`passes a 100 MiB upload ${framing} through intact, with the framing the client chose`, async (t) => {
      const { pid, port } = proxy!;
      const hash = createHash('sha256');
      let res: Awaited<ReturnType<typeof rawRequest>> | undefined;
      const growth = await watching(() =>
        peakMemoryGrowth(pid, async () => {
          res = await rawRequest({
            port,
            method: 'POST',
            path: '/upload',
            headers: headersFor(SIZE),
            body: randomBody(SIZE, hash),
            timeoutMs: 30_000,
          });
        }),
      );
      assert.equal(res?.status, 200);
      const report = JSON.parse(res.body.toString('utf8')) as EchoReport;
      assert.equal(report.method, 'POST');
      assert.equal(report.url, '/upload');
      assert.equal(report.bodyBytes, SIZE);
      assert.equal(report.bodySha256, hash.digest('hex'));
      const sentLength = headersFor(SIZE).length > 0;
      assert.deepEqual(headerValues(report, 'content-length'), sentLength ? [String(SIZE)] : []);
      assert.deepEqual(headerValues(report, 'transfer-encoding'), sentLength ? [] : ['chunked']);
      t.diagnostic(`proxy peak RSS growth: ${mib(growth)}`);
      assert.ok(growth < MAX_GROWTH, `proxy peak RSS grew by ${mib(growth)} (limit ${mib(MAX_GROWTH)})`);
    });
  }

  const expectedSha = downloadSha256(SIZE);
  const downloads: [string, string][] = [
    ['chunked', `/__echo/download?bytes=${SIZE}`],
    ['with content-length', `/__echo/download?bytes=${SIZE}&length=1`],
  ];
  for (const [framing, path] of downloads) {
    it(`passes a 100 MiB download ${framing} to a slow reader intact`, async (t) => {
      const { pid, port } = proxy!;
      let download: Download | undefined;
      const growth = await watching(() =>
        peakMemoryGrowth(pid, async () => {
          download = await slowDownload(port, path, 30 * MiB);
        }),
      );
      assert.equal(download?.status, 200);
      assert.equal(download.bytes, SIZE);
      assert.equal(download.sha256, expectedSha);
      if (path.endsWith('&length=1')) {
        assert.equal(download.headers['content-length'], String(SIZE));
        assert.equal(download.headers['transfer-encoding'], undefined);
      } else {
        assert.equal(download.headers['content-length'], undefined);
        assert.equal(download.headers['transfer-encoding'], 'chunked');
      }
      t.diagnostic(`proxy peak RSS growth: ${mib(growth)}`);
      assert.ok(growth < MAX_GROWTH, `proxy peak RSS grew by ${mib(growth)} (limit ${mib(MAX_GROWTH)})`);
    });
  }

  it('forwards small chunked and content-length bodies with their framing', async () => {
    const { port } = proxy!;
    const body = Buffer.from('{"name":"Test","price":10,"quantity":5}');
    const sha = createHash('sha256').update(body).digest('hex');

    const withLength = await rawRequest({ port, method: 'POST', path: '/product', body });
    const lengthReport = JSON.parse(withLength.body.toString('utf8')) as EchoReport;
    assert.equal(lengthReport.bodyBytes, body.length);
    assert.equal(lengthReport.bodySha256, sha);
    assert.deepEqual(headerValues(lengthReport, 'content-length'), [String(body.length)]);
    assert.deepEqual(headerValues(lengthReport, 'transfer-encoding'), []);

    async function* twoChunks(): AsyncGenerator<Buffer> {
      yield body.subarray(0, 10);
      await new Promise((resolve) => setTimeout(resolve, 20));
      yield body.subarray(10);
    }
    const chunked = await rawRequest({ port, method: 'POST', path: '/product', body: twoChunks() });
    const chunkedReport = JSON.parse(chunked.body.toString('utf8')) as EchoReport;
    assert.equal(chunkedReport.bodyBytes, body.length);
    assert.equal(chunkedReport.bodySha256, sha);
    assert.deepEqual(headerValues(chunkedReport, 'content-length'), []);
    assert.deepEqual(headerValues(chunkedReport, 'transfer-encoding'), ['chunked']);
  });
});
