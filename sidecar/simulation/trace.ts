// A traffic trace: the request rate offered each second. Recorded series (a CSV file, a range of
// Prometheus data) come at their own step and are resampled here to one value a second.

export interface Trace {
  readonly name: string;
  readonly description: string;
  /** Offered requests per second, one entry per simulated second. */
  readonly rates: readonly number[];
}

export interface RatePoint {
  /** Seconds (any origin). */
  readonly t: number;
  /** Requests per second. */
  readonly rate: number;
}

/**
 * One value a second from `points` (in any order, at least two), linearly interpolated between
 * them; second 0 is the first point's time.
 */
export function resample(points: readonly RatePoint[]): number[] {
  if (points.length < 2) throw new Error('resample: a trace needs at least two points');
  const sorted = [...points].sort((a, b) => a.t - b.t);
  const start = sorted[0]?.t ?? 0;
  const end = sorted[sorted.length - 1]?.t ?? 0;
  const rates: number[] = [];
  let segment = 0;
  for (let s = 0; s <= end - start; s++) {
    const t = start + s;
    while ((sorted[segment + 1]?.t ?? Infinity) < t) segment++;
    const a = sorted[segment];
    const b = sorted[segment + 1] ?? a;
    if (a === undefined || b === undefined) break;
    const share = b.t === a.t ? 0 : (t - a.t) / (b.t - a.t);
    rates.push(a.rate + (b.rate - a.rate) * share);
  }
  return rates;
}
