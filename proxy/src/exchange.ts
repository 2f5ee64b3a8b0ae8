// One proxied request as it moves through the steps in proxy-handler.ts.
import type { Span } from '@opentelemetry/api';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteMatch } from './routes.ts';
import type { UserAgentCategory } from './user-agent.ts';
import type { ForwardOutcome } from './upstream.ts';

export interface Exchange {
  readonly req: IncomingMessage;
  /** Absent for an Upgrade request, which owns a raw socket instead. */
  readonly res: ServerResponse | undefined;
  readonly startedAt: number;
  /** The method as a low-cardinality label: a known method, or `_OTHER`. */
  readonly method: string;
  readonly path: string;
  readonly route: RouteMatch;
  readonly userAgent: UserAgentCategory;
  span: Span | undefined;
  /** Headers the client receives on any answer (traceresponse). */
  responseHeaders: string[];
  /** Headers the tracing step adds to the upstream request (traceparent, tracestate). */
  upstreamHeaders: Record<string, string>;
  outcome: ForwardOutcome | undefined;
}

const KNOWN_METHODS = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'CONNECT',
  'OPTIONS',
  'TRACE',
  'PATCH',
]);

/** OpenTelemetry's rule for `http.request.method`: unknown methods collapse to `_OTHER`. */
export function normalizeMethod(method: string | undefined): string {
  return method !== undefined && KNOWN_METHODS.has(method) ? method : '_OTHER';
}

export function pathOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

export function queryOf(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const q = url.indexOf('?');
  return q === -1 ? undefined : url.slice(q + 1);
}

/** Splits a Host header into name and port, brackets removed from IPv6 literals. */
export function parseHost(host: string | undefined): {
  address: string | undefined;
  port: number | undefined;
} {
  if (host === undefined || host === '') return { address: undefined, port: undefined };
  const match = /^(\[[^\]]+\]|[^:]+)(?::(\d{1,5}))?$/.exec(host);
  if (!match) return { address: host, port: undefined };
  const address = (match[1] as string).replace(/^\[|\]$/g, '');
  return { address, port: match[2] === undefined ? undefined : Number(match[2]) };
}

export type { ServerResponse };
