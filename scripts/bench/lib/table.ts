// Plain-text tables for the terminal.

export type Cell = string | number | undefined;

/** Formats a number with `digits` decimals, or '-' when missing/not finite. */
export function fmt(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

export function fmtSigned(v: number | undefined, digits = 2): string {
  return v === undefined || !Number.isFinite(v) ? '-' : (v >= 0 ? '+' : '') + v.toFixed(digits);
}

/** Renders rows under headers; the first column is left-aligned, the others right-aligned. */
export function renderTable(headers: readonly string[], rows: readonly (readonly Cell[])[]): string {
  const text = [headers, ...rows].map((r) => r.map((c) => (c === undefined ? '-' : String(c))));
  const widths = headers.map((_, i) => Math.max(...text.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string =>
    r
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const [head, ...body] = text;
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  return [line(head ?? []), rule, ...body.map(line)].join('\n');
}
