// The labels the spanscope proxy hands to this service in W3C `baggage` (BAGGAGE_KEYS of the
// label scheme). Only those reserved entries are read; every other member is left alone.
//
// The proxy removes client-sent `spanscope.*` entries, but this service can also be called
// directly, so whatever is read here is untrusted: the caller validates each value with the label
// scheme (a refused value falls back to this service's own name). Values are sanitized and
// length-capped there, but not restricted to a closed set, so a direct caller can choose label
// values: put the backend behind the proxy (or a network policy) where that matters.
import { BAGGAGE_KEYS } from '@spanscope/proxy';

/** The proxy's labels, as sent (not yet validated). */
export interface BaggageLabels {
  readonly handler?: string;
  readonly route?: string;
  readonly userAgent?: string;
}

export const NO_BAGGAGE_LABELS: BaggageLabels = Object.freeze({});

/** W3C Baggage limits: at most 64 list-members and 8192 bytes in all. */
export const MAX_BAGGAGE_MEMBERS = 64;
export const MAX_BAGGAGE_LENGTH = 8192;

const FIELDS: ReadonlyMap<string, keyof BaggageLabels> = new Map([
  [BAGGAGE_KEYS.handler, 'handler'],
  [BAGGAGE_KEYS.route, 'route'],
  [BAGGAGE_KEYS.userAgent, 'userAgent'],
]);

/**
 * Reads the reserved entries from the `baggage` header(s): comma-separated `key=value;properties`
 * members, optional whitespace around each part, values percent-decoded, properties ignored. A
 * member that is malformed or does not decode is skipped; the first occurrence of a key wins.
 * Parsing stops after the W3C limits, so a huge header costs no more than a valid one.
 */
export function baggageLabels(header: string | string[] | undefined): BaggageLabels {
  if (header === undefined) return NO_BAGGAGE_LABELS;
  const raw = Array.isArray(header) ? header.join(',') : header;
  if (!raw.includes('spanscope.')) return NO_BAGGAGE_LABELS;
  const found: { -readonly [K in keyof BaggageLabels]: string } = {};
  let members = 0;
  for (const member of raw.slice(0, MAX_BAGGAGE_LENGTH).split(',')) {
    if (++members > MAX_BAGGAGE_MEMBERS) break;
    const semicolon = member.indexOf(';');
    const pair = semicolon === -1 ? member : member.slice(0, semicolon);
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    const field = FIELDS.get(pair.slice(0, eq).trim());
    if (field === undefined || found[field] !== undefined) continue;
    try {
      found[field] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      // Not valid percent-encoding: as if the member were absent.
    }
  }
  return found;
}
