import { describe, expect, it } from 'vitest';
import { seededRandom } from '../../../sidecar/simulation/random.js';
import { DEFAULT_FORECAST_SETTINGS, findPeriod, forecast, forecastParts, observe, type ForecastState } from '../../../sidecar/autoscale/forecast.js';

const T0 = Date.UTC(2026, 0, 1);

/** Observes `values` every `stepMs` from T0. */
function fed(values: readonly number[], stepMs: number, settings = DEFAULT_FORECAST_SETTINGS): ForecastState {
  let state: ForecastState | undefined;
  values.forEach((v, i) => {
    state = observe(state, v, T0 + i * stepMs, settings);
  });
  if (state === undefined) throw new Error('nothing observed');
  return state;
}

/** Seeded noise of about ±`share` around 1, the same on every run. */
const random = seededRandom(24);
const noise = Array.from({ length: 200 }, () => random.normal());
const wobble = (i: number, share: number): number => 1 + share * (noise[i % noise.length] ?? 0);

describe('findPeriod', () => {
  const square = (period: number, n: number): number[] => Array.from({ length: n }, (_, i) => (i % period < period / 2 ? 400 : 100));
  const sine = (period: number, n: number): number[] => Array.from({ length: n }, (_, i) => 250 + 150 * Math.sin((2 * Math.PI * i) / period));
  it.each([
    { name: 'a square wave of 20 buckets, seen 5 times', series: square(20, 100), period: 20 },
    { name: 'a sine of 7 buckets', series: sine(7, 60), period: 7 },
    { name: 'a sawtooth of 12 buckets (a ramp and a drop)', series: Array.from({ length: 60 }, (_, i) => 100 + 50 * (i % 12)), period: 12 },
    { name: 'noisy, still found', series: square(10, 60).map((v, i) => v * wobble(i, 0.15)), period: 10 },
    { name: 'a ramp repeats nothing', series: Array.from({ length: 90 }, (_, i) => 100 + 5 * i), period: undefined },
    { name: 'a flat, noisy load repeats nothing', series: Array.from({ length: 90 }, (_, i) => 300 * wobble(i, 0.2)), period: undefined },
    { name: 'two bursts are not a period (three repetitions are needed)', series: [...new Array<number>(10).fill(100), ...new Array<number>(5).fill(600), ...new Array<number>(20).fill(100), ...new Array<number>(5).fill(600), ...new Array<number>(10).fill(100)], period: undefined },
    { name: 'too short to tell', series: [1, 2, 1, 2, 1], period: undefined },
  ])('$name', ({ series, period }) => {
    expect(findPeriod(series, 2, 0.6)?.buckets).toBe(period);
  });

  it('finds the fundamental, not one of its multiples', () => {
    const found = findPeriod(square(8, 120), 2, 0.6);
    expect(found).toMatchObject({ buckets: 8 });
    expect(found?.correlation).toBeGreaterThan(0.9);
  });
});

describe('observe and forecast', () => {
  it('follows a ramp and looks ahead of it', () => {
    // 100 req/s rising by 0.5 req/s each second, observed every 30 s for 30 min.
    const state = fed(Array.from({ length: 60 }, (_, i) => 100 + 15 * i), 30_000);
    const now = 100 + 15 * 59;
    expect(forecast(state, 60_000)).toBeGreaterThan(now + 25);
    expect(forecast(state, 60_000)).toBeLessThan(now + 35);
  });

  it('a steady noisy load is forecast at its level: the trend of its noise is not extrapolated', () => {
    const state = fed(Array.from({ length: 60 }, (_, i) => 176 * wobble(i, 0.08)), 5_000);
    expect(forecast(state, 25_000)).toBeGreaterThan(176 * 0.92);
    expect(forecast(state, 25_000)).toBeLessThan(176 * 1.08);
  });

  it('an observation seconds after the last moves the level a little, one a whole interval later a lot', () => {
    const base = fed([100, 100, 100], 30_000);
    const soon = observe(base, 400, base.lastAt + 2_000);
    const later = observe(base, 400, base.lastAt + 30_000);
    expect(soon.level).toBeLessThan(120);
    expect(later.level).toBeGreaterThan(200);
  });

  it('a load that has gone is not held: the level follows a fall within seconds, not minutes', () => {
    // The demo's pool: 110 req/s read every 3 s, then 8 req/s. 20 s later the forecast is near 8,
    // so it asks for no more than the minimum (before, it said 51 req/s and held a third replica).
    const state = fed([...new Array<number>(20).fill(110), ...new Array<number>(7).fill(8)], 3_000);
    expect(forecast(state, 6_000)).toBeLessThan(25);
  });

  it('a step is not a trend: after it the forecast is about the new level, not far above', () => {
    const state = fed([...new Array<number>(20).fill(100), ...new Array<number>(4).fill(500)], 30_000);
    expect(forecast(state, 50_000)).toBeLessThan(650);
  });

  it('keeps the arrivals in buckets: several observations in one are averaged, a gap is filled with the last value', () => {
    let state = observe(undefined, 100, T0);
    state = observe(state, 200, T0 + 10_000);
    expect(state.series).toEqual([150]);
    state = observe(state, 300, T0 + 95_000);
    expect(state.series).toEqual([150, 150, 150, 300]);
  });

  it('a load that repeats every 10 min: the next burst is forecast before it comes', () => {
    // Observed every 30 s for 45 min: 4 min at 600 req/s, 6 min at 100, repeated.
    const burst = (s: number): number => (s % 600 < 240 ? 600 : 100);
    const values = Array.from({ length: 90 }, (_, i) => burst(i * 30 + 300));
    const state = fed(values, 30_000);
    // The last observation is 30 s before the next burst.
    expect(burst(89 * 30 + 300 + 30)).toBe(600);
    const parts = forecastParts(state, 50_000);
    expect(parts.period?.buckets).toBe(20);
    expect(parts.periodic).toBe(600);
    expect(parts.trend).toBeLessThan(150);
    expect(forecast(state, 50_000)).toBe(600);
  });
});
