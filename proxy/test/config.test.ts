import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../src/config.ts';
import { ConfigError } from '../src/errors.ts';

describe('config', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({});
    assert.equal(config.PROXY_HOST, '0.0.0.0');
    assert.equal(config.PROXY_PORT, 8080);
    assert.equal(config.BACKEND_URL, 'http://127.0.0.1:10000');
    assert.equal(config.ADMIN_HOST, '127.0.0.1');
    assert.equal(config.ADMIN_PORT, 9901);
    assert.equal(config.UPSTREAM_TIMEOUT_MS, 30000);
    assert.equal(config.PRESERVE_HOST, true);
    assert.equal(config.CAPTURE_QUERY, false);
    assert.equal(config.SHUTDOWN_TIMEOUT_MS, 10000);
    assert.equal(config.OTEL_SERVICE_NAME, 'spanscope-proxy');
    assert.equal(config.OTEL_TRACES_EXPORTER, 'otlp');
    assert.equal(config.OTEL_EXPORTER_OTLP_PROTOCOL, 'http/protobuf');
    assert.equal(config.OTEL_TRACES_SAMPLER, 'parentbased_always_on');
    assert.deepEqual(config.OTEL_RESOURCE_ATTRIBUTES, {});
  });

  it('reads values, treats empty ones as unset, and freezes the result', () => {
    const config = loadConfig({
      PROXY_PORT: '18080',
      BACKEND_URL: 'http://backend.internal:9000/',
      PRESERVE_HOST: ' FALSE ',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=prod,team=a%2Cb',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0.25',
      ADMIN_PORT: '   ',
    });
    assert.equal(config.PROXY_PORT, 18080);
    assert.equal(config.BACKEND_URL, 'http://backend.internal:9000');
    assert.equal(config.PRESERVE_HOST, false);
    assert.deepEqual(config.OTEL_RESOURCE_ATTRIBUTES, { 'deployment.environment.name': 'prod', team: 'a,b' });
    assert.equal(config.OTEL_TRACES_SAMPLER_ARG, 0.25);
    assert.equal(config.ADMIN_PORT, 9901);
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.OTEL_RESOURCE_ATTRIBUTES));
    assert.throws(() => {
      (config as { PROXY_PORT: number }).PROXY_PORT = 1;
    }, TypeError);
  });

  const bad: [string, string, string][] = [
    ['PROXY_PORT', 'abc', 'expected an integer port 0-65535'],
    ['PROXY_PORT', '70000', 'expected an integer port 0-65535'],
    ['ADMIN_PORT', '1.5', 'expected an integer port 0-65535'],
    ['BACKEND_URL', 'ftp://x', 'expected an http:// or https:// URL'],
    ['BACKEND_URL', 'http://x/api', 'expected an origin (no path)'],
    ['UPSTREAM_TIMEOUT_MS', '-5', 'expected a whole number of milliseconds >= 1'],
    ['UPSTREAM_CONNECTIONS', '0', 'expected a whole number from 1 to 4096'],
    ['PRESERVE_HOST', 'maybe', 'expected true or false'],
    ['LOG_LEVEL', 'loud', 'expected one of fatal, error, warn, info, debug, trace, silent'],
    ['OTEL_TRACES_EXPORTER', 'zipkin', 'expected one of otlp, console, none'],
    ['OTEL_EXPORTER_OTLP_PROTOCOL', 'grpc', 'expected http/protobuf or http/json'],
    ['OTEL_TRACES_SAMPLER', 'sometimes', 'expected one of always_on'],
    ['OTEL_TRACES_SAMPLER_ARG', '2', 'expected a sampling ratio from 0 to 1'],
    ['OTEL_RESOURCE_ATTRIBUTES', 'novalue', 'expected comma-separated key=value pairs'],
  ];
  for (const [variable, value, allowed] of bad) {
    it(`rejects ${variable}=${value} with one line naming the variable, the value and what is allowed`, () => {
      assert.throws(
        () => loadConfig({ [variable]: value }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.equal(error.code, 'SPANSCOPE_ERR_CONFIG');
          assert.equal(error.variable, variable);
          assert.ok(
            error.message.startsWith(`${variable}=${JSON.stringify(value)} is invalid: `),
            error.message,
          );
          assert.ok(error.message.includes(allowed), error.message);
          assert.ok(!error.message.includes('\n'));
          return true;
        },
      );
    });
  }
});
