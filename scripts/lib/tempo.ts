// Spans from Tempo's HTTP API: `GET /api/traces/<trace id>` answers the whole trace as OTLP JSON
// (404 until the trace has been ingested), with `X-Scope-OrgID` on multi-tenant setups.
import { HttpStatusError } from './errors.ts';
import { baseUrl, httpRequest, splitCredentials } from './http.ts';
import { decodeOtlpJson } from './otlp-spans.ts';
import type { TraceSource } from './sources.ts';

// Traces fetched per round by the checks that read many: each is one HTTP request.
const TEMPO_TRACE_BUDGET = 40;

export function createTempoSource(rawUrl: string, tenant?: string): TraceSource {
  const { url, headers } = splitCredentials(rawUrl);
  const base = baseUrl(url);
  const requestHeaders: Record<string, string> = { accept: 'application/json', ...headers };
  if (tenant !== undefined) requestHeaders['x-scope-orgid'] = tenant;
  let fetched = 0;
  let found = 0;
  return {
    description: `Tempo at ${base}`,
    traceBudget: TEMPO_TRACE_BUDGET,
    async trace(traceId) {
      const target = `${base}/api/traces/${traceId}`;
      const response = await httpRequest(target, { headers: requestHeaders });
      const text = await response.text();
      fetched += 1;
      if (response.status === 404) return [];
      if (!response.ok) {
        throw new HttpStatusError(
          response.status,
          `Tempo answered ${response.status} to GET ${target}: ${text.trim().slice(0, 200)}`,
        );
      }
      found += 1;
      return decodeOtlpJson(JSON.parse(text));
    },
    noSpansHint() {
      if (found === 0 && fetched > 0) {
        return 'Tempo found none of the traces asked for: do both processes export to the collector in front of it?';
      }
      return undefined;
    },
    close() {
      return Promise.resolve();
    },
  };
}
