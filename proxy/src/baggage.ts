// The proxy hands its request labels to the service in W3C baggage under a reserved prefix.
// Clients must not forge those labels or inflate the service's label cardinality, so their
// entries with the prefix are removed; every other baggage member passes byte for byte.
import { BAGGAGE_KEYS, BAGGAGE_PREFIX } from './labels.ts';

export interface BaggageLabels {
  readonly handler: string;
  readonly route: string;
  readonly userAgent: string;
}

/** The client's baggage members (comma-separated, possibly over several headers) minus reserved ones. */
export function withoutReservedMembers(headerValues: readonly string[]): string[] {
  const kept: string[] = [];
  for (const value of headerValues) {
    for (const member of value.split(',')) {
      const trimmed = member.trim();
      if (trimmed === '') continue;
      const eq = trimmed.indexOf('=');
      const key = (eq === -1 ? trimmed : trimmed.slice(0, eq)).trim();
      if (key.toLowerCase().startsWith(BAGGAGE_PREFIX)) continue;
      kept.push(trimmed);
    }
  }
  return kept;
}

// Handler, route and category come from closed sets (route table, categories), so the encoded
// members are built once per combination rather than on every request.
const encodedMembers = new Map<string, string>();

/** The proxy's own members, encoded, as one comma-separated string. */
export function reservedMembers(labels: BaggageLabels): string {
  const key = `${labels.handler}\u0000${labels.route}\u0000${labels.userAgent}`;
  let members = encodedMembers.get(key);
  if (members === undefined) {
    members = [
      `${BAGGAGE_KEYS.handler}=${encodeURIComponent(labels.handler)}`,
      `${BAGGAGE_KEYS.route}=${encodeURIComponent(labels.route)}`,
      `${BAGGAGE_KEYS.userAgent}=${encodeURIComponent(labels.userAgent)}`,
    ].join(',');
    encodedMembers.set(key, members);
  }
  return members;
}

/** The single `baggage` header value for the upstream request. */
export function upstreamBaggage(clientValues: readonly string[], labels: BaggageLabels): string {
  if (clientValues.length === 0) return reservedMembers(labels);
  return [...withoutReservedMembers(clientValues), reservedMembers(labels)].join(',');
}
