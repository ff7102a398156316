import { describe, expect, it } from 'vitest';
import { pairedRatios, percentile, summarise } from '../../../bench/lib/stats.js';

describe('benchmark statistics', () => {
  const twenty = Array.from({ length: 20 }, (_, i) => (i + 1) * 10); // 10, 20, ..., 200

  it.each([
    [0, 10],
    [5, 10],
    [50, 100],
    [51, 110],
    [95, 190],
    [99, 200],
    [100, 200],
  ])('nearest-rank percentile p%d of 20 samples is an observed sample (%d)', (p, expected) => {
    expect(percentile([...twenty].reverse(), p)).toBe(expected);
  });

  it('gives NaN without samples and refuses a percentile outside 0..100', () => {
    expect(percentile([], 50)).toBeNaN();
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(summarise([]).n).toBe(0);
  });

  it('summarises n, min, p50, p95, max and mean', () => {
    expect(summarise([3, 1, 2, 10])).toEqual({ n: 4, min: 1, p50: 2, p95: 10, max: 10, mean: 4 });
    expect(summarise([7])).toEqual({ n: 1, min: 7, p50: 7, p95: 7, max: 7, mean: 7 });
  });

  it('averages paired ratios geometrically, so a gain and the same loss cancel', () => {
    const { ratios, geometricMean } = pairedRatios([100, 100], [90, 100 / 0.9]);
    expect(ratios[0]).toBeCloseTo(0.9, 12);
    expect(geometricMean).toBeCloseTo(1, 12);
    expect(pairedRatios([2, 4, 8], [2, 4, 8]).geometricMean).toBeCloseTo(1, 12);
    expect(pairedRatios([], []).geometricMean).toBeNaN();
    expect(() => pairedRatios([1], [1, 2])).toThrow(/differ in length/);
  });
});
