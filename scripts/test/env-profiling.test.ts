// `.env.profiling`, the one file that configures both processes: every variable in it is read by
// a schema, documented in the README's table, accepted as the file sets it, and a bad value stops
// start-up of each process that reads it with one line naming the variable, the value and what is
// allowed.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configSchema, loadConfig as loadProxyConfig } from '../../proxy/src/config.ts';
import { ConfigError as ProxyConfigError } from '../../proxy/src/errors.ts';
import { loadConfig as loadBackendConfig } from '../../inventory-backend/src/config.ts';
import { ConfigError as BackendConfigError } from '../../inventory-backend/src/errors.ts';
import { REPO_ROOT } from '../../proxy/test/support/proxy-process.ts';

type Reader = 'proxy' | 'backend' | 'both';

/** Who reads each variable, and a value it must refuse (null: any non-empty text is valid). */
const VARIABLES: Readonly<Record<string, { readonly readBy: Reader; readonly bad: string | null }>> = {
  PROXY_HOST: { readBy: 'proxy', bad: null },
  PROXY_PORT: { readBy: 'proxy', bad: '80a' },
  BACKEND_URL: { readBy: 'proxy', bad: 'http://127.0.0.1:10000/api' },
  UPSTREAM_TIMEOUT_MS: { readBy: 'proxy', bad: '0' },
  UPSTREAM_CONNECTIONS: { readBy: 'proxy', bad: '5000' },
  PRESERVE_HOST: { readBy: 'proxy', bad: 'maybe' },
  CAPTURE_QUERY: { readBy: 'proxy', bad: 'sometimes' },
  ROUTES_FILE: { readBy: 'proxy', bad: null },
  ADMIN_HOST: { readBy: 'proxy', bad: null },
  ADMIN_PORT: { readBy: 'proxy', bad: '-1' },
  ACCESS_LOG: { readBy: 'proxy', bad: 'loud' },
  LOCAL_PROFILE_RETENTION_MINUTES: { readBy: 'proxy', bad: '0' },
  LOCAL_PROFILE_MAX_MB: { readBy: 'proxy', bad: '1.5' },
  PYROSCOPE_QUEUE_MAX_MB: { readBy: 'proxy', bad: '2048' },
  POD_NAME: { readBy: 'proxy', bad: null },
  POD_NAMESPACE: { readBy: 'proxy', bad: null },
  NODE_NAME: { readBy: 'proxy', bad: null },
  LOG_LEVEL: { readBy: 'both', bad: 'verbose' },
  SHUTDOWN_TIMEOUT_MS: { readBy: 'both', bad: 'soon' },
  OTEL_SERVICE_NAME: { readBy: 'both', bad: null },
  OTEL_RESOURCE_ATTRIBUTES: { readBy: 'both', bad: 'no-equals-sign' },
  OTEL_TRACES_EXPORTER: { readBy: 'both', bad: 'zipkin' },
  OTEL_EXPORTER_OTLP_ENDPOINT: { readBy: 'both', bad: 'localhost:4318' },
  OTEL_EXPORTER_OTLP_PROTOCOL: { readBy: 'both', bad: 'grpc' },
  OTEL_TRACES_SAMPLER: { readBy: 'both', bad: 'sometimes' },
  OTEL_TRACES_SAMPLER_ARG: { readBy: 'both', bad: '2' },
  OTEL_METRICS_EXPORTER: { readBy: 'both', bad: 'prometheus' },
  OTEL_METRIC_EXPORT_INTERVAL: { readBy: 'both', bad: '-5' },
  BACKEND_HOST: { readBy: 'backend', bad: 'two words' },
  BACKEND_PORT: { readBy: 'backend', bad: '70000' },
  DATABASE_URL: { readBy: 'backend', bad: 'mysql://db/inventory' },
  SEED_SAMPLE_DATA: { readBy: 'backend', bad: 'lots' },
  TAGGING_ENDPOINT: { readBy: 'backend', bad: '127.0.0.1:9901' },
  ENABLE_PROFILING: { readBy: 'both', bad: 'on' },
  PYROSCOPE_SERVER_ADDRESS: { readBy: 'both', bad: 'pyroscope:4040' },
  PYROSCOPE_APPLICATION_NAME: { readBy: 'both', bad: 'my app{x}' },
  PYROSCOPE_BASIC_AUTH_USER: { readBy: 'both', bad: null },
  PYROSCOPE_BASIC_AUTH_PASSWORD: { readBy: 'both', bad: null },
  PYROSCOPE_AUTH_TOKEN: { readBy: 'both', bad: null },
  PYROSCOPE_TENANT_ID: { readBy: 'both', bad: null },
  PYROSCOPE_UPLOAD_RATE: { readBy: 'both', bad: '0.5' },
  ENABLE_ENDPOINT_PROFILING: { readBy: 'both', bad: 'enabled' },
  ENABLE_DATABASE_PROFILING: { readBy: 'both', bad: 'enabled' },
  ENABLE_USER_AGENT_PROFILING: { readBy: 'both', bad: 'enabled' },
  ENABLE_DYNAMIC_TAGS: { readBy: 'both', bad: 'enabled' },
  ENABLE_TRACE_ID_LABEL: { readBy: 'both', bad: 'enabled' },
  ENABLE_CONDITIONAL_PROFILING: { readBy: 'both', bad: 'enabled' },
  CPU_THRESHOLD_FOR_PROFILING: { readBy: 'both', bad: '150' },
  MEMORY_THRESHOLD_FOR_PROFILING: { readBy: 'both', bad: '0' },
  ENABLE_DETAILED_STACK_TRACES: { readBy: 'both', bad: 'enabled' },
  INCLUDE_RUNTIME_INFO: { readBy: 'both', bad: 'enabled' },
  ENABLE_GOROUTINE_PROFILING: { readBy: 'both', bad: 'enabled' },
};

const envFile = readFileSync(join(REPO_ROOT, '.env.profiling'), 'utf8');
const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');

/** `NAME=value` lines, and `# NAME=value` ones (documented, left at the default). */
function fileVariables(): Map<string, string> {
  const found = new Map<string, string>();
  for (const line of envFile.split('\n')) {
    const match = /^#?\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (match?.[1] !== undefined) found.set(match[1], match[2] ?? '');
  }
  return found;
}

function errorOf(load: () => unknown): Error | undefined {
  try {
    load();
  } catch (error) {
    return error as Error;
  }
  return undefined;
}

const proxyReads = (name: string): boolean => name in configSchema.shape;

describe('.env.profiling', () => {
  it('sets every variable this table knows, and only those', () => {
    assert.deepEqual([...fileVariables().keys()].sort(), Object.keys(VARIABLES).sort());
  });

  it('has each variable in the README configuration table', () => {
    const rows = readme.split('\n').filter((line) => line.startsWith('| `'));
    for (const name of Object.keys(VARIABLES)) {
      assert.ok(
        rows.some((row) => row.includes(`\`${name}\``)),
        `${name} has a row in the table`,
      );
    }
  });

  // The backend exports no schema to ask; its reading of each constrained variable is checked by the
  // bad-value tests below, which need the backend to refuse the value.
  it("is in the proxy's schema wherever the table says the proxy reads it", () => {
    for (const [name, { readBy }] of Object.entries(VARIABLES)) {
      if (readBy !== 'backend') assert.ok(proxyReads(name), `the proxy reads ${name}`);
    }
  });

  it('as shipped, starts both processes', () => {
    const env = Object.fromEntries(fileVariables());
    assert.doesNotThrow(() => loadProxyConfig(env));
    assert.doesNotThrow(() => loadBackendConfig(env, REPO_ROOT));
  });

  for (const [name, { readBy, bad }] of Object.entries(VARIABLES)) {
    if (bad === null) continue;
    it(`${name}=${JSON.stringify(bad)} stops ${readBy === 'both' ? 'both processes' : `the ${readBy}`} with one line`, () => {
      const checks: [string, () => unknown, new (...args: never[]) => Error][] = [];
      if (readBy !== 'backend')
        checks.push(['proxy', () => loadProxyConfig({ [name]: bad }), ProxyConfigError]);
      if (readBy !== 'proxy') {
        checks.push(['backend', () => loadBackendConfig({ [name]: bad }, REPO_ROOT), BackendConfigError]);
      }
      for (const [process, load, errorClass] of checks) {
        const error = errorOf(load);
        assert.ok(error instanceof errorClass, `${process}: ${String(error)}`);
        assert.ok(!error.message.includes('\n'), 'one line');
        assert.ok(error.message.startsWith(`${name}=`), `${process} names it: ${error.message}`);
        assert.ok(
          error.message.includes(JSON.stringify(bad)),
          `${process} shows the value: ${error.message}`,
        );
        assert.match(error.message, /is invalid: expected /, `${process} says what is allowed`);
      }
    });
  }

  it('never echoes a password in that line', () => {
    const error = errorOf(() =>
      loadProxyConfig({ PYROSCOPE_SERVER_ADDRESS: 'https://user:hunter2@pyroscope' }),
    );
    assert.ok(error instanceof ProxyConfigError);
    assert.ok(!error.message.includes('hunter2'), error.message);
    assert.match(error.message, /without user:password/);
  });
});
