// CPU ratios paired slice by slice. On these shared machines a contender's CPU per request moves by
// a third or more within a minute (other tenants of the host, which steal does not show), more than
// the differences the targets are about. Short slices of each contender taken one after another, many
// times, put both sides of each ratio under the same conditions; the median of the per-slice ratios
// then settles where a few long rounds do not.

/** One pass over the contenders: each one's CPU µs per request in its slice. */
export interface Slice {
  readonly slice: number;
  readonly cpuUsPerReq: Readonly<Record<string, number>>;
}

export interface PairedRatio {
  /** Slices in which both contenders were measured. */
  readonly n: number;
  readonly median: number;
  /** Lower and upper quartiles of the per-slice ratios. */
  readonly q1: number;
  readonly q3: number;
}

/** Linear-interpolated quantile of sorted values (q in [0, 1]). */
function quantile(sorted: readonly number[], q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  const a = sorted[lo] as number;
  const b = sorted[hi] as number;
  return a + (b - a) * (at - lo);
}

/** `name`'s CPU per request over `ref`'s, slice by slice; undefined when no slice has both. */
export function pairedRatio(slices: readonly Slice[], name: string, ref: string): PairedRatio | undefined {
  const ratios: number[] = [];
  for (const { cpuUsPerReq } of slices) {
    const a = cpuUsPerReq[name];
    const b = cpuUsPerReq[ref];
    if (a !== undefined && b !== undefined && b > 0) ratios.push(a / b);
  }
  if (ratios.length === 0) return undefined;
  ratios.sort((x, y) => x - y);
  return {
    n: ratios.length,
    median: quantile(ratios, 0.5),
    q1: quantile(ratios, 0.25),
    q3: quantile(ratios, 0.75),
  };
}

/** The median of `name`'s own CPU per request over the slices. */
export function sliceMedian(slices: readonly Slice[], name: string): number | undefined {
  const values = slices.flatMap((s) => {
    const v = s.cpuUsPerReq[name];
    return v === undefined ? [] : [v];
  });
  if (values.length === 0) return undefined;
  values.sort((x, y) => x - y);
  return quantile(values, 0.5);
}
