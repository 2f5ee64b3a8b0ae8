import { createIsbotFromList, isbotPatterns, list as isbotList } from 'isbot';

// A closed set keeps the `user_agent` label low-cardinality no matter what clients send.
export const USER_AGENT_CATEGORIES = [
  'curl',
  'wget',
  'httpie',
  'postman',
  'insomnia',
  'browser',
  'bot',
  'load-test',
  'python-client',
  'go-client',
  'node-client',
  'java-client',
  'kube-probe',
  'monitoring',
  'other',
  'unknown',
] as const;

export type UserAgentCategory = (typeof USER_AGENT_CATEGORIES)[number];

export const DEFAULT_USER_AGENT_CACHE_SIZE = 1_000;

// Real UAs are a few hundred characters at most; the cap bounds both regex work and the
// memory a cache key can pin, so a hostile client cannot make either grow with its input.
export const MAX_USER_AGENT_LENGTH = 1_024;

// isbot also flags any UA merely *shaped* like a non-browser (a lone `Name/1.0` token, a
// long single word, ...), which would swallow every custom SDK and leave `other` unreachable.
// Probing with made-up product tokens finds those shape heuristics without hard-coding
// isbot's pattern strings, which change between releases; named crawlers still match.
const SHAPE_PROBES = [
  'Acme',
  'Acme Widget',
  'Acme/1.0',
  'Acme/beta',
  'Acme-Widget/beta',
  'AcmeWidget/1.2.3',
  '12345 acme',
  'x'.repeat(64),
];
const shapeHeuristics = new Set(SHAPE_PROBES.flatMap((probe) => isbotPatterns(probe)));
const isNamedBot = createIsbotFromList(isbotList.filter((p) => !shapeHeuristics.has(p)));

interface Matcher {
  test(userAgent: string): boolean;
}

// First match wins, so order encodes precedence:
// - tools whose UA is built on another stack come before that stack (kube-probe is Go,
//   Postman/Insomnia are Electron/Node, UptimeRobot poses as Mozilla);
// - explicit tools and monitoring come before isbot, which counts curl, wget,
//   python-requests, Prometheus, etc. as bots too;
// - bots come before browsers because crawlers imitate browser UAs.
const RULES: readonly (readonly [UserAgentCategory, Matcher])[] = [
  ['kube-probe', /^kube-probe\//i],
  ['postman', /\bpostman(?:runtime)?\//i],
  ['insomnia', /\binsomnia\//i],
  ['httpie', /^httpie\//i],
  ['curl', /^curl\//i],
  ['wget', /^wget\//i],

  ['load-test', /^k6\//i],
  ['load-test', /^wrk\b/i],
  ['load-test', /^ApacheBench\//i],
  ['load-test', /^hey\//i],
  ['load-test', /\bvegeta\b/i],
  ['load-test', /\bjmeter\b/i],
  ['load-test', /\bgatling\b/i],
  ['load-test', /\blocust\b/i],
  ['load-test', /\bautocannon\b/i],

  ['monitoring', /^prometheus\//i],
  ['monitoring', /\bgrafana[- ]?agent\b/i],
  ['monitoring', /^alloy\//i],
  ['monitoring', /\bdatadog[- ]agent\b/i],
  ['monitoring', /\bzabbix\b/i],
  ['monitoring', /\bnagios\b|^check_http\//i],
  ['monitoring', /\buptimerobot\b/i],
  ['monitoring', /\bpingdom/i],
  ['monitoring', /\bblackbox[ _-]?exporter\b/i],

  ['python-client', /^python-requests\//i],
  ['python-client', /^python-urllib\//i],
  ['python-client', /\baiohttp\//i],
  ['python-client', /\b(?:python-)?httpx\//i],

  ['go-client', /^go-http-client\//i],

  ['java-client', /^okhttp\//i],
  ['java-client', /^java(?:-http-client)?\//i],
  ['java-client', /^apache-httpclient\//i],

  ['node-client', /^axios\//i],
  ['node-client', /^node-fetch\b/i],
  ['node-client', /^undici\b/i],
  // Node's built-in fetch sends exactly `node`.
  ['node-client', /^node(?:\/|$)/i],
  ['node-client', /^got\b/i],

  ['bot', { test: isNamedBot }],

  ['browser', /^Mozilla\/5\.0\b.*\b(?:Gecko|AppleWebKit|Chrome|Safari|Firefox|Edg)\b/i],
];

function classify(userAgent: string): UserAgentCategory {
  for (const [category, matcher] of RULES) {
    if (matcher.test(userAgent)) return category;
  }
  return 'other';
}

export interface UserAgentCategorizer {
  categorize(userAgent: string | undefined): UserAgentCategory;
  /** Number of entries currently cached. */
  readonly cacheSize: number;
}

export function createUserAgentCategorizer(options?: { cacheSize?: number }): UserAgentCategorizer {
  const maxEntries = options?.cacheSize ?? DEFAULT_USER_AGENT_CACHE_SIZE;
  if (!Number.isInteger(maxEntries) || maxEntries < 0) {
    throw new RangeError(`cacheSize must be a non-negative integer, got ${String(maxEntries)}`);
  }
  // Map iteration follows insertion order, so re-inserting on a hit makes the first key the
  // least recently used one.
  const cache = new Map<string, UserAgentCategory>();

  return {
    categorize(userAgent) {
      if (userAgent === undefined) return 'unknown';
      const key = userAgent.trimStart().slice(0, MAX_USER_AGENT_LENGTH).trimEnd();
      if (key === '') return 'unknown';

      const cached = cache.get(key);
      if (cached !== undefined) {
        cache.delete(key);
        cache.set(key, cached);
        return cached;
      }

      const category = classify(key);
      if (maxEntries > 0) {
        if (cache.size >= maxEntries) {
          const oldest = cache.keys().next();
          if (oldest.done !== true) cache.delete(oldest.value);
        }
        cache.set(key, category);
      }
      return category;
    },
    get cacheSize() {
      return cache.size;
    },
  };
}

const defaultCategorizer = createUserAgentCategorizer();

export function categorizeUserAgent(userAgent: string | undefined): UserAgentCategory {
  return defaultCategorizer.categorize(userAgent);
}
