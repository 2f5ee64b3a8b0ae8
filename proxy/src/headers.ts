// Header rules of a forwarding proxy (RFC 9110 §7.6): hop-by-hop headers stop here, the
// X-Forwarded-* trail grows by one hop, and trace headers are rewritten by the tracing step.

const ALWAYS_HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

/** Lower-cased names the `Connection` header lists, which are hop-by-hop for this message too. */
function connectionListed(raw: readonly string[]): Set<string> | undefined {
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== 'connection') continue;
    for (const token of (raw[i + 1] as string).split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') (listed ??= new Set()).add(name);
    }
  }
  return listed;
}

export function isHopByHop(lowerName: string): boolean {
  return ALWAYS_HOP_BY_HOP.has(lowerName) || lowerName.startsWith('proxy-');
}

export interface UpstreamHeaderOptions {
  /** The client's address, appended to X-Forwarded-For. */
  readonly clientAddress: string | undefined;
  readonly protocol: 'http' | 'https';
  /** Replaces Host when set (PRESERVE_HOST=false). */
  readonly hostOverride: string | undefined;
  /** Lower-cased names dropped on the way (trace headers the tracing step re-injects). */
  readonly drop: ReadonlySet<string>;
  /** Written last, after every client header, so a client cannot override them. */
  readonly extra: Readonly<Record<string, string>>;
}

/**
 * Builds the upstream request's headers as a flat `[name, value, ...]` list, keeping the client's
 * order, spelling and repeated headers; only the proxy's own additions are normalised.
 */
export function upstreamRequestHeaders(raw: readonly string[], options: UpstreamHeaderOptions): string[] {
  const listed = connectionListed(raw);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || listed?.has(lower) || options.drop.has(lower)) continue;
    switch (lower) {
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
        forwardedProto = forwardedProto === undefined ? value : `${forwardedProto}, ${value}`;
        continue;
      case 'x-forwarded-host':
        forwardedHost = forwardedHost === undefined ? value : `${forwardedHost}, ${value}`;
        continue;
      case 'host':
        host = value;
        if (options.hostOverride !== undefined) continue;
        break;
      // The proxy answers `Expect: 100-continue` itself (as Envoy does by default) and streams the body.
      case 'expect':
        continue;
    }
    out.push(name, value);
  }
  if (options.hostOverride !== undefined) out.push('host', options.hostOverride);
  const client = options.clientAddress ?? 'unknown';
  out.push('x-forwarded-for', forwardedFor === undefined ? client : `${forwardedFor}, ${client}`);
  out.push(
    'x-forwarded-proto',
    forwardedProto === undefined ? options.protocol : `${forwardedProto}, ${options.protocol}`,
  );
  if (host !== undefined) {
    out.push('x-forwarded-host', forwardedHost === undefined ? host : `${forwardedHost}, ${host}`);
  } else if (forwardedHost !== undefined) {
    out.push('x-forwarded-host', forwardedHost);
  }
  for (const [name, value] of Object.entries(options.extra)) out.push(name, value);
  return out;
}

/** The upstream response's headers minus hop-by-hop ones, as a flat list `writeHead` accepts. */
export function downstreamResponseHeaders(raw: readonly (Buffer | string)[]): string[] {
  const strings = raw.map((part) => (typeof part === 'string' ? part : part.toString('latin1')));
  const listed = connectionListed(strings);
  const out: string[] = [];
  for (let i = 0; i < strings.length; i += 2) {
    const name = strings[i] as string;
    const lower = name.toLowerCase();
    if (isHopByHop(lower) || listed?.has(lower)) continue;
    out.push(name, strings[i + 1] as string);
  }
  return out;
}
