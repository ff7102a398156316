// Summaries of benchmark samples. Percentiles use the nearest-rank rule (the smallest sample
// with at least p % of the samples at or below it): every figure in a report is then a value
// that was really observed, never an interpolation between two trials, which matters with the
// 20-odd trials a scenario can afford here.

export interface Summary {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p95: number;
  readonly max: number;
  readonly mean: number;
}

/** Nearest-rank percentile of `values` (any order); NaN for no values. */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be within 0..100, not ${p}`);
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? NaN;
}

export function summarise(values: readonly number[]): Summary {
  if (values.length === 0) return { n: 0, min: NaN, p50: NaN, p95: NaN, max: NaN, mean: NaN };
  return {
    n: values.length,
    min: Math.min(...values),
    p50: percentile(values, 50),
    p95: percentile(values, 95),
    max: Math.max(...values),
    mean: values.reduce((sum, v) => sum + v, 0) / values.length,
  };
}

/**
 * Paired ratios b[i] / a[i] and their geometric mean, the average that treats 0.9 and 1/0.9 as
 * equally far from 1. Pairs taken close together in time cancel the drift of a shared machine.
 */
export function pairedRatios(a: readonly number[], b: readonly number[]): { readonly ratios: number[]; readonly geometricMean: number } {
  if (a.length !== b.length) throw new Error(`paired samples differ in length: ${a.length} and ${b.length}`);
  if (a.length === 0) return { ratios: [], geometricMean: NaN };
  const ratios = a.map((value, i) => (b[i] ?? NaN) / value);
  const geometricMean = Math.exp(ratios.reduce((sum, r) => sum + Math.log(r), 0) / ratios.length);
  return { ratios, geometricMean };
}
