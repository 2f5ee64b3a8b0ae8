import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  MAX_USER_AGENT_LENGTH,
  USER_AGENT_CATEGORIES,
  categorizeUserAgent,
  createUserAgentCategorizer,
} from '../src/user-agent.ts';
import type { UserAgentCategory } from '../src/user-agent.ts';

const CHROME_WINDOWS =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36';

const CASES: readonly (readonly [string, string | undefined, UserAgentCategory])[] = [
  ['Chrome on Windows', CHROME_WINDOWS, 'browser'],
  [
    'Chrome on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36',
    'browser',
  ],
  [
    'Chrome on Android',
    'Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.122 Mobile Safari/537.36',
    'browser',
  ],
  [
    'Firefox on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0',
    'browser',
  ],
  ['Firefox on Linux', 'Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0', 'browser'],
  [
    'Safari on macOS',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    'browser',
  ],
  [
    'Safari on iPhone',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    'browser',
  ],
  [
    'Edge on Windows',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87',
    'browser',
  ],

  ['curl', 'curl/8.5.0', 'curl'],
  ['Wget', 'Wget/1.21.4', 'wget'],
  ['HTTPie', 'HTTPie/3.2.2', 'httpie'],
  ['Postman', 'PostmanRuntime/7.39.0', 'postman'],
  ['Insomnia (lowercase)', 'insomnia/2023.5.8', 'insomnia'],
  ['Insomnia (capitalised)', 'Insomnia/2024.1.0', 'insomnia'],

  ['python-requests', 'python-requests/2.32.3', 'python-client'],
  ['Python urllib', 'Python-urllib/3.12', 'python-client'],
  ['aiohttp', 'Python/3.12 aiohttp/3.9.5', 'python-client'],
  ['httpx', 'python-httpx/0.27.0', 'python-client'],

  ['Go-http-client HTTP/1.1', 'Go-http-client/1.1', 'go-client'],
  ['Go-http-client HTTP/2', 'Go-http-client/2.0', 'go-client'],

  ['okhttp', 'okhttp/4.12.0', 'java-client'],
  ['Java HttpURLConnection', 'Java/17.0.11', 'java-client'],
  ['Java HttpClient', 'Java-http-client/21.0.3', 'java-client'],
  ['Apache HttpClient', 'Apache-HttpClient/4.5.14 (Java/17.0.11)', 'java-client'],

  ['axios', 'axios/1.7.2', 'node-client'],
  ['node-fetch', 'node-fetch/1.0 (+https://github.com/bitinn/node-fetch)', 'node-client'],
  ['undici', 'undici', 'node-client'],
  ['Node built-in fetch', 'node', 'node-client'],
  ['got', 'got (https://github.com/sindresorhus/got)', 'node-client'],

  ['k6', 'k6/0.52.0 (https://k6.io/)', 'load-test'],
  ['wrk', 'wrk/4.2.0', 'load-test'],
  ['ApacheBench', 'ApacheBench/2.3', 'load-test'],
  ['hey', 'hey/0.0.1', 'load-test'],
  ['vegeta', 'vegeta/12.11.1', 'load-test'],
  ['JMeter', 'Apache-JMeter/5.6.3', 'load-test'],
  ['Gatling', 'Gatling/3.11.5', 'load-test'],
  ['Locust', 'locust/2.29.1', 'load-test'],
  ['autocannon', 'autocannon/7.15.0', 'load-test'],

  ['kube-probe', 'kube-probe/1.30', 'kube-probe'],

  ['Prometheus', 'Prometheus/2.53.0', 'monitoring'],
  ['Blackbox exporter', 'Blackbox Exporter/0.25.0', 'monitoring'],
  ['Grafana Agent', 'GrafanaAgent/v0.40.2', 'monitoring'],
  ['Grafana Alloy', 'Alloy/v1.2.0 (linux; binary)', 'monitoring'],
  ['Datadog Agent', 'Datadog Agent/7.54.0', 'monitoring'],
  ['Zabbix', 'Zabbix 7.0', 'monitoring'],
  ['Nagios check_http', 'check_http/v2.3.3 (nagios-plugins 2.3.3)', 'monitoring'],
  ['UptimeRobot', 'Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)', 'monitoring'],
  ['Pingdom', 'Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)', 'monitoring'],

  [
    'Googlebot desktop',
    'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/126.0.6478.126 Safari/537.36',
    'bot',
  ],
  ['Googlebot classic', 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'bot'],
  [
    'Googlebot smartphone',
    'Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.126 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)',
    'bot',
  ],
  ['bingbot', 'Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)', 'bot'],
  [
    'bingbot (Chromium-based)',
    'Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36',
    'bot',
  ],
  ['facebookexternalhit', 'facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)', 'bot'],

  ['empty string', '', 'unknown'],
  ['whitespace only', '  \t ', 'unknown'],
  ['undefined', undefined, 'unknown'],

  ['random words', 'foo bar', 'other'],
  ['custom service client', 'my-internal-service/3.4.1', 'other'],
  ['Mozilla without a browser engine', 'Mozilla/5.0 (X11; Linux x86_64)', 'other'],
];

describe('categorizeUserAgent', () => {
  for (const [name, userAgent, expected] of CASES) {
    it(`${name} -> ${expected}`, () => {
      assert.equal(categorizeUserAgent(userAgent), expected);
    });
  }

  it('matches case-insensitively', () => {
    assert.equal(categorizeUserAgent('CURL/8.5.0'), 'curl');
    assert.equal(categorizeUserAgent('go-HTTP-client/1.1'), 'go-client');
    assert.equal(categorizeUserAgent('KUBE-PROBE/1.30'), 'kube-probe');
    assert.equal(categorizeUserAgent('postmanruntime/7.39.0'), 'postman');
    assert.equal(categorizeUserAgent(CHROME_WINDOWS.toLowerCase()), 'browser');
    assert.equal(categorizeUserAgent(CHROME_WINDOWS.toUpperCase()), 'browser');
  });

  it('ignores surrounding whitespace', () => {
    assert.equal(categorizeUserAgent('  curl/8.5.0  '), 'curl');
  });

  it('only ever returns declared categories', () => {
    const inputs = [...CASES.map(([, userAgent]) => userAgent), '\u0000\u0001', '🤖', 'x'.repeat(5_000)];
    for (const userAgent of inputs) {
      assert.ok(USER_AGENT_CATEGORIES.includes(categorizeUserAgent(userAgent)));
    }
  });

  it('exposes every category exactly once', () => {
    assert.equal(new Set(USER_AGENT_CATEGORIES).size, USER_AGENT_CATEGORIES.length);
    assert.equal(USER_AGENT_CATEGORIES.length, 16);
  });
});

describe('createUserAgentCategorizer', () => {
  it('keeps the cache bounded under a stream of distinct user agents', () => {
    const categorizer = createUserAgentCategorizer({ cacheSize: 100 });
    for (let i = 0; i < 5_000; i++) {
      assert.equal(categorizer.categorize(`curl/8.${String(i)}.0`), 'curl');
      assert.equal(categorizer.categorize(`random-client-${String(i)} x`), 'other');
      assert.ok(categorizer.cacheSize <= 100);
    }
    assert.equal(categorizer.cacheSize, 100);
  });

  it('returns the same answer from the cache', () => {
    const categorizer = createUserAgentCategorizer({ cacheSize: 10 });
    assert.equal(categorizer.categorize(CHROME_WINDOWS), 'browser');
    assert.equal(categorizer.cacheSize, 1);
    assert.equal(categorizer.categorize(CHROME_WINDOWS), 'browser');
    assert.equal(categorizer.cacheSize, 1);
  });

  it('does not cache unknown inputs', () => {
    const categorizer = createUserAgentCategorizer({ cacheSize: 10 });
    assert.equal(categorizer.categorize(undefined), 'unknown');
    assert.equal(categorizer.categorize(''), 'unknown');
    assert.equal(categorizer.cacheSize, 0);
  });

  it('can run without a cache', () => {
    const categorizer = createUserAgentCategorizer({ cacheSize: 0 });
    assert.equal(categorizer.categorize('curl/8.5.0'), 'curl');
    assert.equal(categorizer.cacheSize, 0);
  });

  it('rejects an invalid cache size', () => {
    assert.throws(() => createUserAgentCategorizer({ cacheSize: -1 }), RangeError);
    assert.throws(() => createUserAgentCategorizer({ cacheSize: 1.5 }), RangeError);
  });

  it('handles a 100 KB user agent by its truncated prefix', () => {
    const categorizer = createUserAgentCategorizer({ cacheSize: 10 });
    const padding = 'a'.repeat(100 * 1024);
    assert.equal(categorizer.categorize(`${CHROME_WINDOWS} ${padding}`), 'browser');
    assert.equal(categorizer.categorize(`${CHROME_WINDOWS} ${padding}b`), 'browser');
    assert.equal(categorizer.categorize(padding), 'other');
    // Both long browser UAs share their first MAX_USER_AGENT_LENGTH chars, so one entry.
    assert.equal(categorizer.cacheSize, 2);
  });

  it('ignores tokens beyond the length cap', () => {
    const categorizer = createUserAgentCategorizer();
    const filler = 'x'.repeat(MAX_USER_AGENT_LENGTH);
    assert.equal(categorizer.categorize(`${filler} curl/8.5.0 Googlebot/2.1`), 'other');
  });
});
