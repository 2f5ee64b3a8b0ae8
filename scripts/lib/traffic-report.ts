// What `npm run traffic` prints at the end: requests per handler and client category (the names
// the proxy's metrics and profile labels use), and trace ids worth opening in Grafana.
import { renderTable } from '../bench/lib/table.ts';
import { HANDLERS, USER_AGENTS } from './inventory-traffic.ts';
import type { TrafficRecord } from './inventory-traffic.ts';

/** The client categories in the order the traffic uses them. */
const CATEGORIES: readonly string[] = [...new Set(USER_AGENTS.map((u) => u.category))];

const TOTAL = 'total';
const UNEXPECTED = 'unexpected status';

/** Request counts keyed `handler` → `category` → count, every handler and category present. */
function countByHandlerAndCategory(records: readonly TrafficRecord[]): Map<string, Map<string, number>> {
  const handlers = [...HANDLERS, ...records.map((r) => r.handler)];
  const counts = new Map<string, Map<string, number>>();
  for (const handler of handlers) {
    if (!counts.has(handler)) counts.set(handler, new Map(CATEGORIES.map((c) => [c, 0])));
  }
  for (const record of records) {
    const row = counts.get(record.handler);
    row?.set(record.category, (row.get(record.category) ?? 0) + 1);
  }
  return counts;
}

export function renderTrafficTable(records: readonly TrafficRecord[]): string {
  const counts = countByHandlerAndCategory(records);
  const unexpected = (handler?: string): number =>
    records.filter((r) => (handler === undefined || r.handler === handler) && r.status !== r.expectedStatus)
      .length;
  const rows = [...counts].map(([handler, row]) => [
    handler,
    ...CATEGORIES.map((c) => row.get(c) ?? 0),
    [...row.values()].reduce((a, b) => a + b, 0),
    unexpected(handler),
  ]);
  const totals = [
    TOTAL,
    ...CATEGORIES.map((c) => records.filter((r) => r.category === c).length),
    records.length,
    unexpected(),
  ];
  return renderTable(['handler', ...CATEGORIES, TOTAL, UNEXPECTED], [...rows, totals]);
}

/** The slowest traced request of each handler: the ones worth a look in Grafana. */
function tracesToShow(records: readonly TrafficRecord[]): TrafficRecord[] {
  const slowest = new Map<string, TrafficRecord>();
  for (const record of records) {
    if (record.traceId === undefined) continue;
    const current = slowest.get(record.handler);
    if (current === undefined || record.durationMs > current.durationMs) slowest.set(record.handler, record);
  }
  return HANDLERS.flatMap((h) => slowest.get(h) ?? []);
}

export function renderTraces(records: readonly TrafficRecord[]): string {
  const shown = tracesToShow(records);
  if (shown.length === 0) {
    return 'No response carried a traceresponse header: is tracing off (OTEL_SDK_DISABLED=true)?';
  }
  const width = Math.max(...shown.map((r) => r.handler.length));
  return [
    'Trace ids to paste into Grafana (Explore → Tempo → TraceQL), the slowest request of each handler:',
    ...shown.map(
      (r) =>
        `  ${r.handler.padEnd(width)}  ${r.traceId ?? ''}  ${r.durationMs.toFixed(1).padStart(7)} ms  ` +
        `${r.method} ${r.path} → ${r.status} (${r.category})`,
    ),
  ].join('\n');
}

/** One line on what went wrong, or undefined when every answer had the expected status. */
export function describeUnexpected(records: readonly TrafficRecord[]): string | undefined {
  const bad = records.filter((r) => r.status !== r.expectedStatus);
  if (bad.length === 0) return undefined;
  const byStatus = new Map<number, number>();
  for (const r of bad) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  const first = bad[0] as TrafficRecord;
  const statuses = [...byStatus].map(([status, n]) => `${n} × ${status}`).join(', ');
  return (
    `${bad.length} of ${records.length} responses had an unexpected status (${statuses}); ` +
    `first: ${first.method} ${first.path} → ${first.status}, expected ${first.expectedStatus}`
  );
}
