// Starts the real app on 127.0.0.1:0 over an isolated database, and runs a suite once per engine.
import { after, before, describe } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.ts';
import { openRepository } from '../../src/db/open-repository.ts';
import type { ProductRepository } from '../../src/db/repository.ts';
import type { Telemetry } from '../../src/telemetry/telemetry.ts';
import { DATABASE_KINDS, createTestDatabase } from './databases.ts';
import type { DatabaseKind, TestDatabase } from './databases.ts';

export interface JsonResponse {
  status: number;
  headers: Headers;
  /** Parsed JSON body (undefined when the body is empty). */
  body: unknown;
  text: string;
}

export interface TestServer {
  readonly baseUrl: string;
  readonly app: FastifyInstance;
  readonly repository: ProductRepository;
  readonly database: TestDatabase;
  /** Sends a request; a non-string `body` is sent as JSON. */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<JsonResponse>;
  close(): Promise<void>;
}

export interface StartOptions {
  readonly seedSampleData?: boolean;
  /** Decorates the real repository (e.g. to hold a request in flight). */
  readonly wrapRepository?: (repository: ProductRepository) => ProductRepository;
  /** Tracing and profiler of the app (default: both off); a function is called at start. */
  readonly telemetry?: Telemetry | (() => Telemetry);
  /** Adds test-only hooks or routes to the app before it listens. */
  readonly configure?: (app: FastifyInstance) => void;
}

export async function startTestServer(
  database: TestDatabase,
  options: StartOptions = {},
): Promise<TestServer> {
  const opened = await openRepository(database.config, { seedSampleData: options.seedSampleData ?? false });
  const repository = options.wrapRepository?.(opened) ?? opened;
  const telemetry = typeof options.telemetry === 'function' ? options.telemetry() : options.telemetry;
  const app = buildApp({ repository, ...(telemetry === undefined ? {} : { telemetry }) });
  options.configure?.(app);
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  let closed = false;
  return {
    baseUrl: address,
    app,
    repository,
    database,
    async request(method, path, body, headers = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      if (body !== undefined) {
        init.body = typeof body === 'string' ? body : JSON.stringify(body);
        init.headers = { 'content-type': 'application/json', ...headers };
      }
      const response = await fetch(`${address}${path}`, init);
      const text = await response.text();
      return {
        status: response.status,
        headers: response.headers,
        text,
        body: text === '' ? undefined : (JSON.parse(text) as unknown),
      };
    },
    async close() {
      if (closed) return;
      closed = true;
      await app.close();
      await opened.close();
    },
  };
}

export interface SuiteContext {
  readonly kind: DatabaseKind;
  /** Available inside tests (set up in `before`). */
  readonly server: TestServer;
}

/**
 * Declares `describe(title [engine])` once per database engine, each on its own fresh database
 * with a server started before its tests and stopped (database dropped) after them.
 */
export function describeEachDatabase(
  title: string,
  suite: (context: SuiteContext) => void,
  options: StartOptions = {},
): void {
  for (const kind of DATABASE_KINDS) {
    describe(`${title} [${kind}]`, () => {
      let server: TestServer | undefined;
      let database: TestDatabase | undefined;
      before(async () => {
        database = await createTestDatabase(kind, title);
        server = await startTestServer(database, options);
      });
      after(async () => {
        await server?.close();
        await database?.drop();
      });
      suite({
        kind,
        get server() {
          if (server === undefined) throw new Error('test server not started');
          return server;
        },
      });
    });
  }
}
