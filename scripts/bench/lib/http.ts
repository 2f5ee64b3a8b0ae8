// Hop-by-hop header handling shared by the hand-written contenders (RFC 9110 §7.6.1).
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Whether a header (any case) is hop-by-hop by name: the fixed list plus every `Proxy-*` header. */
export function isHopByHop(name: string): boolean {
  const lower = name.toLowerCase();
  return HOP_BY_HOP.has(lower) || lower.startsWith('proxy-');
}

/** A copy of `headers` without hop-by-hop headers, including any named by `Connection`. */
export function stripHopByHop(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = headers.connection
    ? headers.connection
        .toLowerCase()
        .split(',')
        .map((s) => s.trim())
    : [];
  const out: OutgoingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined || isHopByHop(k) || named.includes(k)) continue;
    out[k] = v;
  }
  return out;
}

/** Whether a request carries a body (and so must be streamed upstream). */
export function hasBody(headers: IncomingHttpHeaders): boolean {
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] ?? '0') !== '0';
}
