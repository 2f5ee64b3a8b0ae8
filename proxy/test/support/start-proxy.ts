// Starts the real proxy app in-process on port 0, with spans captured in memory and log lines
// collected, for tests that talk to it over real sockets.
import { after, before } from 'node:test';
import { Writable } from 'node:stream';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace';
import { pino } from 'pino';
import { createProxyApp } from '../../src/app.ts';
import type { ProxyApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import type { TracingOptions } from '../../src/tracing.ts';
import { startEchoBackend } from './echo-backend.ts';
import type { EchoBackend } from './echo-backend.ts';

export interface ProxyUnderTest {
  readonly app: ProxyApp;
  readonly url: string;
  readonly port: number;
  readonly adminUrl: string;
  readonly exporter: InMemorySpanExporter;
  /** Parsed JSON log lines, access log included. */
  readonly logs: Record<string, unknown>[];
  close(): Promise<void>;
}

export interface StartProxyOptions {
  /** Tracing options; by default spans go to `exporter` synchronously. */
  readonly tracing?: TracingOptions;
}

export async function startProxy(
  env: Record<string, string>,
  options: StartProxyOptions = {},
): Promise<ProxyUnderTest> {
  const config = loadConfig({
    PROXY_HOST: '127.0.0.1',
    PROXY_PORT: '0',
    ADMIN_PORT: '0',
    OTEL_TRACES_EXPORTER: 'none',
    OTEL_METRICS_EXPORTER: 'none',
    // Profiling only where a test points it at a Pyroscope receiver or asks for it.
    ENABLE_PROFILING: env.PYROSCOPE_SERVER_ADDRESS === undefined ? 'false' : 'true',
    ...env,
  });
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (line.trim() !== '') logs.push(JSON.parse(line) as Record<string, unknown>);
      }
      callback();
    },
  });
  const exporter = new InMemorySpanExporter();
  const app = createProxyApp(config, {
    logger: pino({ level: 'info' }, sink),
    tracing: options.tracing ?? { exporter, synchronousExport: true },
  });
  const { port, adminPort } = await app.start();
  let closed = false;
  return {
    app,
    port,
    url: `http://127.0.0.1:${port}`,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    exporter,
    logs,
    async close() {
      if (closed) return;
      closed = true;
      await app.stop();
    },
  };
}

export interface EchoBackendBehindProxy {
  readonly backend: EchoBackend;
  readonly proxy: ProxyUnderTest;
}

/**
 * For a describe block: an echo backend and the proxy in front of it, started before the block's
 * tests and closed after them. Read both through the returned object once the tests run.
 */
export function echoBackendBehindProxy(env: Record<string, string> = {}): EchoBackendBehindProxy {
  let backend: EchoBackend | undefined;
  let proxy: ProxyUnderTest | undefined;
  before(async () => {
    backend = await startEchoBackend();
    proxy = await startProxy({ BACKEND_URL: backend.url, ...env });
  });
  after(async () => {
    await proxy?.close();
    await backend?.close();
  });
  const started = <T>(value: T | undefined): T => {
    if (value === undefined)
      throw new Error('echoBackendBehindProxy: read it inside a test, after before() ran');
    return value;
  };
  return {
    get backend() {
      return started(backend);
    },
    get proxy() {
      return started(proxy);
    },
  };
}
