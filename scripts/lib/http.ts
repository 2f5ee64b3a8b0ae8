// fetch with one-line failures: a refused connection or a timeout becomes an UnreachableError
// that names the URL and the reason, which is what an operator needs to read.
import { UnreachableError } from './errors.ts';

export interface HttpOptions {
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Default 10 s. */
  readonly timeoutMs?: number;
}

const CODES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
};

function causeCode(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, errors, cause } = error as { code?: unknown; errors?: unknown; cause?: unknown };
  if (typeof code === 'string') return code;
  // Happy eyeballs (IPv4 and IPv6 both tried) fails with an AggregateError of both attempts.
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const found = causeCode(inner);
      if (found !== undefined) return found;
    }
  }
  return cause === undefined ? undefined : causeCode(cause);
}

/** Why a request got no HTTP answer, in a few words: `connection refused (ECONNREFUSED)`. */
export function networkReason(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) {
    return `no answer within ${timeoutMs / 1000} s`;
  }
  const code = causeCode(error);
  if (code !== undefined) return `${CODES[code] ?? 'request failed'} (${code})`;
  // fetch's own message is always "fetch failed"; the innermost cause says why (e.g. "bad port").
  let inner: unknown = error;
  while (inner instanceof Error && inner.cause instanceof Error) inner = inner.cause;
  return inner instanceof Error ? inner.message : String(inner);
}

/**
 * fetch cannot take credentials in a URL (`http://user:pass@host`), which is how a Grafana Cloud
 * or basic-auth Pyroscope is often written: they move to an Authorization header.
 */
export function splitCredentials(raw: string): { url: string; headers: Record<string, string> } {
  const url = new URL(raw);
  if (url.username === '' && url.password === '') return { url: raw, headers: {} };
  const user = decodeURIComponent(url.username);
  const password = decodeURIComponent(url.password);
  url.username = '';
  url.password = '';
  const token = Buffer.from(`${user}:${password}`).toString('base64');
  return { url: url.toString(), headers: { authorization: `Basic ${token}` } };
}

/** The URL without trailing slashes, so `${base}/path` never doubles one. */
export function baseUrl(raw: string): string {
  return raw.replace(/\/+$/, '');
}

export async function httpRequest(url: string, options: HttpOptions = {}): Promise<Response> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  try {
    return await fetch(url, {
      method: options.method ?? 'GET',
      headers: options.headers,
      body: options.body,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    throw new UnreachableError(url, `cannot reach ${url}: ${networkReason(error, timeoutMs)}`, {
      cause: error,
    });
  }
}
