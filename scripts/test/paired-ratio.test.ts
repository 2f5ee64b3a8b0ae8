// CPU ratios paired slice by slice (scripts/bench/lib/paired.ts): each slice's ratio is taken
// between measurements made side by side, and a slow patch of the machine moves both of them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { pairedRatio, sliceMedian } from '../bench/lib/paired.ts';
import type { Slice } from '../bench/lib/paired.ts';

const slice = (n: number, cpuUsPerReq: Record<string, number>): Slice => ({ slice: n, cpuUsPerReq });

function assertRatio(slices: Slice[], expected: { n: number; median: number; q1: number; q3: number }): void {
  const r = pairedRatio(slices, 'full', 'bare');
  assert.ok(r !== undefined);
  assert.equal(r.n, expected.n);
  for (const key of ['median', 'q1', 'q3'] as const) {
    assert.ok(
      Math.abs(r[key] - expected[key]) < 1e-12,
      `${key}: ${String(r[key])}, expected ${String(expected[key])}`,
    );
  }
}

describe('pairedRatio', () => {
  it('takes the median of the per-slice ratios, not the ratio of the medians', () => {
    // Per slice 1.1, 1.2, 1.3, 1.4 and 1.3: median 1.3. The medians of the columns (100 and 120)
    // would say 1.2, pairing figures taken minutes apart on a machine whose speed moves.
    const slices = [
      slice(1, { bare: 100, full: 110 }),
      slice(2, { bare: 100, full: 120 }),
      slice(3, { bare: 150, full: 195 }),
      slice(4, { bare: 60, full: 84 }),
      slice(5, { bare: 200, full: 260 }),
    ];
    assertRatio(slices, { n: 5, median: 1.3, q1: 1.2, q3: 1.3 });
  });

  it('interpolates the quartiles and leaves out slices that lack either side', () => {
    const slices = [
      slice(1, { bare: 100, full: 110 }),
      slice(2, { bare: 100, full: 120 }),
      slice(3, { bare: 100 }),
      slice(4, { bare: 100, full: 130 }),
      slice(5, { full: 500 }),
      slice(6, { bare: 100, full: 140 }),
      slice(7, { bare: 0, full: 140 }),
    ];
    assertRatio(slices, { n: 4, median: 1.25, q1: 1.175, q3: 1.325 });
  });

  it('is undefined when no slice measured both', () => {
    assert.equal(pairedRatio([slice(1, { bare: 100 }), slice(2, { full: 120 })], 'full', 'bare'), undefined);
  });
});

describe('sliceMedian', () => {
  it("is the median of one contender's own figures, undefined without any", () => {
    const slices = [
      slice(1, { bare: 90 }),
      slice(2, { bare: 70, full: 1 }),
      slice(3, { bare: 100 }),
      slice(4, {}),
    ];
    assert.equal(sliceMedian(slices, 'bare'), 90);
    assert.equal(sliceMedian(slices, 'nginx'), undefined);
  });
});
