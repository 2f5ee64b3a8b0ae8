// The request counter and histogram (request-metrics.ts) read on /metrics exactly as prom-client's
// own Counter and Histogram fed the same requests.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Counter, Histogram, Registry } from 'prom-client';
import { RequestMetrics, statusClass } from '../src/request-metrics.ts';

const BUCKETS = [0.001, 0.01, 0.1, 1];
const names = {
  countName: 'spanscope_requests_total',
  countHelp: 'Requests.',
  durationName: 'spanscope_request_duration_seconds',
  durationHelp: 'Durations.',
  buckets: BUCKETS,
};

const requests: [string, string, number, string, number][] = [
  ['get_product', 'GET', 200, 'curl', 0.0004],
  ['get_product', 'GET', 200, 'curl', 0.001], // on a bound: counted in it, as prom-client does
  ['get_product', 'GET', 200, 'browser', 0.05],
  ['get_product', 'GET', 503, 'curl', 2.5], // past the last bound: +Inf only
  ['unmatched', '_OTHER', 0, 'unknown', 0.02],
  ['create_product', 'POST', 201, 'postman', 0.3],
];

describe('request metrics', () => {
  it("reads as prom-client's Counter and Histogram given the same requests", async () => {
    const ours = new Registry();
    const metrics = new RequestMetrics(ours, names);
    const reference = new Registry();
    const labelNames = ['handler', 'method', 'status_class', 'user_agent'];
    const counter = new Counter({
      name: names.countName,
      help: names.countHelp,
      labelNames,
      registers: [reference],
    });
    const histogram = new Histogram({
      name: names.durationName,
      help: names.durationHelp,
      labelNames,
      buckets: BUCKETS,
      registers: [reference],
    });
    for (const [handler, method, status, userAgent, seconds] of requests) {
      metrics.record(handler, method, status, userAgent, seconds);
      const labels = { handler, method, status_class: statusClass(status), user_agent: userAgent };
      counter.inc(labels);
      histogram.observe(labels, seconds);
    }
    const text = await ours.metrics();
    assert.equal(text, await reference.metrics());
    assert.match(
      text,
      /^spanscope_request_duration_seconds_bucket\{le="0.001",handler="get_product",method="GET",status_class="2xx",user_agent="curl"\} 2$/m,
    );
    assert.match(
      text,
      /^spanscope_requests_total\{handler="unmatched",method="_OTHER",status_class="none",user_agent="unknown"\} 1$/m,
    );
  });

  it('is reset with the registry', async () => {
    const registry = new Registry();
    const metrics = new RequestMetrics(registry, names);
    metrics.record('health', 'GET', 200, 'kube-probe', 0.0001);
    registry.resetMetrics();
    const text = await registry.metrics();
    assert.match(
      text,
      /^spanscope_requests_total\{handler="health",method="GET",status_class="2xx",user_agent="kube-probe"\} 0$/m,
    );
  });

  it('names status classes from a closed set', () => {
    assert.deepEqual([99, 100, 204, 302, 404, 599, 600, 0].map(statusClass), [
      'none',
      '1xx',
      '2xx',
      '3xx',
      '4xx',
      '5xx',
      'none',
      'none',
    ]);
  });
});
