// Configuration from the environment: defaults, accepted forms, one-line errors, immutability.
import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadConfig, redactUrl } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

const CWD = '/srv/inventory';

const DEFAULT_TRACING = {
  OTEL_SDK_DISABLED: false,
  OTEL_SERVICE_NAME: 'inventory-backend',
  OTEL_RESOURCE_ATTRIBUTES: {},
  OTEL_TRACES_EXPORTER: 'otlp',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318',
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  OTEL_EXPORTER_OTLP_TIMEOUT: 10000,
  OTEL_TRACES_SAMPLER: 'parentbased_always_on',
  OTEL_TRACES_SAMPLER_ARG: undefined,
  OTEL_BSP_MAX_QUEUE_SIZE: 2048,
  OTEL_BSP_SCHEDULE_DELAY: 5000,
  OTEL_METRICS_EXPORTER: 'otlp',
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: undefined,
  OTEL_METRIC_EXPORT_INTERVAL: 60000,
};

const DEFAULT_PROFILING = {
  serverAddress: 'http://127.0.0.1:9901',
  applicationName: 'inventory-backend',
  authToken: undefined,
  basicAuth: undefined,
  tenantId: undefined,
  uploadRateSeconds: 10,
  switches: { endpoint: true, database: true, userAgent: true, dynamicTags: true, traceId: false },
  enabled: true,
  detailedStackTraces: true,
  heapProfile: false,
  conditional: { enabled: false, cpuThresholdPercent: 20, memoryThresholdPercent: 50 },
};

const DEFAULT_RUNTIME = {
  OTEL_SDK_DISABLED: false,
  OTEL_SERVICE_NAME: 'inventory-backend',
  OTEL_RESOURCE_ATTRIBUTES: {},
  OTEL_METRICS_EXPORTER: 'otlp',
  OTEL_EXPORTER_OTLP_ENDPOINT: 'http://localhost:4318',
  OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: undefined,
  OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
  OTEL_METRIC_EXPORT_INTERVAL: 60000,
  INCLUDE_RUNTIME_INFO: true,
  ENABLE_CONDITIONAL_PROFILING: false,
  CPU_THRESHOLD_FOR_PROFILING: 20,
  MEMORY_THRESHOLD_FOR_PROFILING: 50,
};

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env, CWD);
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error;
  }
  assert.fail(`expected a ConfigError for ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    assert.deepEqual(loadConfig({}, CWD), {
      port: 10000,
      host: '127.0.0.1',
      database: { kind: 'sqlite', path: path.join(CWD, 'data/inventory.db') },
      seedSampleData: false,
      shutdownTimeoutMs: 10000,
      logLevel: 'info',
      tracing: DEFAULT_TRACING,
      profiling: DEFAULT_PROFILING,
      runtime: DEFAULT_RUNTIME,
    });
  });

  it('resolves the default SQLite file against the process cwd', () => {
    const config = loadConfig({});
    assert.deepEqual(config.database, { kind: 'sqlite', path: path.resolve('data/inventory.db') });
  });

  it('treats blank values as unset and ignores unrelated variables', () => {
    const config = loadConfig({ BACKEND_PORT: '', DATABASE_URL: '  ', LOG_LEVEL: '', HOME: '/root' }, CWD);
    assert.equal(config.port, 10000);
    assert.equal(config.database.kind, 'sqlite');
    assert.equal(config.logLevel, 'info');
  });

  it('reads every variable', () => {
    const config = loadConfig(
      {
        BACKEND_PORT: '8080',
        BACKEND_HOST: '0.0.0.0',
        DATABASE_URL: 'postgres://app:pw@db:5432/inventory',
        SEED_SAMPLE_DATA: 'true',
        SHUTDOWN_TIMEOUT_MS: '2500',
        LOG_LEVEL: 'DEBUG',
      },
      CWD,
    );
    assert.deepEqual(config, {
      port: 8080,
      host: '0.0.0.0',
      database: { kind: 'postgres', url: 'postgres://app:pw@db:5432/inventory' },
      seedSampleData: true,
      shutdownTimeoutMs: 2500,
      logLevel: 'debug',
      tracing: DEFAULT_TRACING,
      profiling: DEFAULT_PROFILING,
      runtime: DEFAULT_RUNTIME,
    });
  });

  it("reads the OTEL_* variables with the proxy's meaning and the backend's service name", () => {
    const config = loadConfig(
      {
        OTEL_SDK_DISABLED: 'TRUE',
        OTEL_SERVICE_NAME: 'inventory-eu',
        OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=shop%20floor',
        OTEL_TRACES_EXPORTER: 'console',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
        OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/v1/traces',
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_EXPORTER_OTLP_TIMEOUT: '2000',
        OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
        OTEL_TRACES_SAMPLER_ARG: '0.25',
        OTEL_BSP_MAX_QUEUE_SIZE: '100',
        OTEL_BSP_SCHEDULE_DELAY: '250',
      },
      CWD,
    );
    assert.deepEqual(config.tracing, {
      OTEL_SDK_DISABLED: true,
      OTEL_SERVICE_NAME: 'inventory-eu',
      OTEL_RESOURCE_ATTRIBUTES: { 'deployment.environment.name': 'prod', team: 'shop floor' },
      OTEL_TRACES_EXPORTER: 'console',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://traces.example/v1/traces',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_EXPORTER_OTLP_TIMEOUT: 2000,
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: 0.25,
      OTEL_BSP_MAX_QUEUE_SIZE: 100,
      OTEL_BSP_SCHEDULE_DELAY: 250,
      OTEL_METRICS_EXPORTER: 'otlp',
      OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: undefined,
      OTEL_METRIC_EXPORT_INTERVAL: 60000,
    });
    // The profiles' application name follows the service name, so Grafana's service_name matches.
    assert.equal(config.profiling.applicationName, 'inventory-eu');
  });

  it('reads the profiling variables of .env.profiling, uploading to the sidecar without credentials', () => {
    const config = loadConfig(
      {
        PYROSCOPE_SERVER_ADDRESS: 'http://pyroscope:4040/',
        TAGGING_ENDPOINT: 'http://127.0.0.1:19901/',
        PYROSCOPE_APPLICATION_NAME: 'inventory',
        PYROSCOPE_BASIC_AUTH_USER: 'user',
        PYROSCOPE_BASIC_AUTH_PASSWORD: 'pw',
        PYROSCOPE_TENANT_ID: 'tenant-1',
        PYROSCOPE_UPLOAD_RATE: '15',
        ENABLE_ENDPOINT_PROFILING: 'false',
        ENABLE_DATABASE_PROFILING: '0',
        ENABLE_USER_AGENT_PROFILING: 'no',
        ENABLE_DYNAMIC_TAGS: 'false',
        ENABLE_TRACE_ID_LABEL: 'true',
        ENABLE_PROFILING: 'yes',
        ENABLE_CONDITIONAL_PROFILING: 'true',
        CPU_THRESHOLD_FOR_PROFILING: '35',
        MEMORY_THRESHOLD_FOR_PROFILING: '70.5',
        ENABLE_DETAILED_STACK_TRACES: 'false',
        ENABLE_GOROUTINE_PROFILING: 'true',
      },
      CWD,
    );
    // PYROSCOPE_SERVER_ADDRESS and the credentials are the sidecar's: the backend pushes to it.
    assert.deepEqual(config.profiling, {
      serverAddress: 'http://127.0.0.1:19901',
      applicationName: 'inventory',
      authToken: undefined,
      basicAuth: undefined,
      tenantId: undefined,
      uploadRateSeconds: 15,
      switches: { endpoint: false, database: false, userAgent: false, dynamicTags: false, traceId: true },
      enabled: true,
      detailedStackTraces: false,
      heapProfile: true,
      conditional: { enabled: true, cpuThresholdPercent: 35, memoryThresholdPercent: 70.5 },
    });
    assert.equal(loadConfig({}, CWD).profiling.serverAddress, 'http://127.0.0.1:9901');
  });

  it('rejects bad OTEL_* and profiling values with one line, never echoing a secret', () => {
    const cases: [Record<string, string>, string][] = [
      [{ OTEL_SDK_DISABLED: 'maybe' }, 'OTEL_SDK_DISABLED="maybe" is invalid: expected true or false'],
      [
        { OTEL_TRACES_EXPORTER: 'zipkin' },
        'OTEL_TRACES_EXPORTER="zipkin" is invalid: expected one of otlp, console, none',
      ],
      [
        { OTEL_EXPORTER_OTLP_ENDPOINT: 'ftp://user:pw@collector' },
        'OTEL_EXPORTER_OTLP_ENDPOINT="ftp://user:***@collector/" is invalid: expected an http:// or https:// URL',
      ],
      [
        { OTEL_TRACES_SAMPLER_ARG: '1.5' },
        'OTEL_TRACES_SAMPLER_ARG="1.5" is invalid: expected a sampling ratio from 0 to 1',
      ],
      [
        { OTEL_RESOURCE_ATTRIBUTES: 'novalue' },
        'OTEL_RESOURCE_ATTRIBUTES="novalue" is invalid: expected comma-separated key=value pairs',
      ],
      [
        { OTEL_BSP_SCHEDULE_DELAY: '0' },
        'OTEL_BSP_SCHEDULE_DELAY="0" is invalid: expected a whole number of milliseconds >= 1',
      ],
      [
        { PYROSCOPE_UPLOAD_RATE: '0' },
        'PYROSCOPE_UPLOAD_RATE="0" is invalid: expected a whole number of seconds >= 1, at most 3600',
      ],
      [{ ENABLE_DYNAMIC_TAGS: 'on' }, 'ENABLE_DYNAMIC_TAGS="on" is invalid: expected true or false'],
      [
        { PYROSCOPE_BASIC_AUTH_USER: 'user' },
        'PYROSCOPE_BASIC_AUTH_PASSWORD is unset: basic auth needs both PYROSCOPE_BASIC_AUTH_USER and PYROSCOPE_BASIC_AUTH_PASSWORD',
      ],
    ];
    for (const [env, message] of cases) {
      const error = configError(env);
      assert.equal(error.message, message);
      assert.equal(error.code, 'INV_ERR_CONFIG');
    }
    const url = configError({ PYROSCOPE_SERVER_ADDRESS: 'pyroscope:4040' });
    assert.equal(url.variable, 'PYROSCOPE_SERVER_ADDRESS');
  });

  it('accepts port 0 and 65535', () => {
    assert.equal(loadConfig({ BACKEND_PORT: '0' }, CWD).port, 0);
    assert.equal(loadConfig({ BACKEND_PORT: '65535' }, CWD).port, 65535);
  });

  it('accepts the database URL forms', () => {
    const cases: [string, unknown][] = [
      ['sqlite::memory:', { kind: 'sqlite', path: ':memory:' }],
      ['sqlite:./other.db', { kind: 'sqlite', path: path.join(CWD, 'other.db') }],
      ['sqlite:/var/lib/inv.db', { kind: 'sqlite', path: '/var/lib/inv.db' }],
      ['sqlite:///var/lib/inv.db', { kind: 'sqlite', path: '/var/lib/inv.db' }],
      ['postgres://u@h/db', { kind: 'postgres', url: 'postgres://u@h/db' }],
      [
        'postgresql://u@h:5433/db?sslmode=disable',
        { kind: 'postgres', url: 'postgresql://u@h:5433/db?sslmode=disable' },
      ],
    ];
    for (const [url, expected] of cases)
      assert.deepEqual(loadConfig({ DATABASE_URL: url }, CWD).database, expected);
  });

  it('accepts true/false/1/0 for SEED_SAMPLE_DATA', () => {
    for (const [value, expected] of [
      ['true', true],
      ['TRUE', true],
      ['1', true],
      ['false', false],
      ['0', false],
    ] as const) {
      assert.equal(loadConfig({ SEED_SAMPLE_DATA: value }, CWD).seedSampleData, expected);
    }
  });

  it('is deep-frozen', () => {
    const config = loadConfig({}, CWD);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.database));
    assert.throws(() => {
      (config as { port: number }).port = 1;
    }, TypeError);
  });

  it('rejects each bad value with one line naming the variable, the value and what is allowed', () => {
    const cases: [Record<string, string>, string][] = [
      [{ BACKEND_PORT: 'abc' }, 'BACKEND_PORT="abc" is invalid: expected an integer port 0-65535'],
      [{ BACKEND_PORT: '65536' }, 'BACKEND_PORT="65536" is invalid: expected an integer port 0-65535'],
      [{ BACKEND_PORT: '-1' }, 'BACKEND_PORT="-1" is invalid: expected an integer port 0-65535'],
      [{ BACKEND_PORT: '80.5' }, 'BACKEND_PORT="80.5" is invalid: expected an integer port 0-65535'],
      [
        { BACKEND_HOST: 'my host' },
        'BACKEND_HOST="my host" is invalid: expected a host name or IP address without spaces',
      ],
      [
        { SEED_SAMPLE_DATA: 'yes please' },
        'SEED_SAMPLE_DATA="yes please" is invalid: expected true or false',
      ],
      [
        { SHUTDOWN_TIMEOUT_MS: '0' },
        'SHUTDOWN_TIMEOUT_MS="0" is invalid: expected an integer number of milliseconds 1-2147483647',
      ],
      [
        { SHUTDOWN_TIMEOUT_MS: '5s' },
        'SHUTDOWN_TIMEOUT_MS="5s" is invalid: expected an integer number of milliseconds 1-2147483647',
      ],
      [
        { LOG_LEVEL: 'verbose' },
        'LOG_LEVEL="verbose" is invalid: expected one of fatal, error, warn, info, debug, trace, silent',
      ],
    ];
    for (const [env, message] of cases) {
      const error = configError(env);
      assert.equal(error.message, message);
      assert.equal(error.code, 'INV_ERR_CONFIG');
      assert.equal(error.variable, Object.keys(env)[0]);
    }
  });

  it('rejects an unsupported DATABASE_URL without revealing its password', () => {
    for (const url of ['mysql://root:hunter2@db/inv', 'sqlite:', 'inventory.db', 'http://db.example/inv']) {
      const error = configError({ DATABASE_URL: url });
      assert.match(
        error.message,
        /^DATABASE_URL=".*" is invalid: expected postgres:\/\/…, postgresql:\/\/…, sqlite::memory:/,
      );
      assert.doesNotMatch(error.message, /hunter2/);
      assert.doesNotMatch(error.message, /\n/);
    }
  });

  it('keeps a value with a newline on one line', () => {
    const error = configError({ BACKEND_PORT: '1\n2' });
    assert.equal(error.message, 'BACKEND_PORT="1\\n2" is invalid: expected an integer port 0-65535');
  });
});

describe('redactUrl', () => {
  it('hides the password of a connection string', () => {
    assert.equal(redactUrl('postgres://app:s3cret@db:5432/inv'), 'postgres://app:***@db:5432/inv');
    assert.equal(redactUrl('postgres://app@db/inv'), 'postgres://app@db/inv');
  });
});
