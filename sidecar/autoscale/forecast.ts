// Request-rate forecasting, pure: the state is a value the caller keeps (in the autoscaler's
// history) and passes back in. Three parts, and the forecast is the largest of what they expect:
//
//   trend    Holt's level and trend, in continuous time: a new observation moves them by
//            1 − e^(−Δt/τ), so a breach check 2 s after an evaluation moves them a little and an
//            evaluation 30 s later a lot, instead of the same fixed weight for both (which read a
//            step, or two readings of a noisy steady load seconds apart, as a steep trend). The
//            level follows a fall faster than a rise (a forecast must not hold a pool for a load
//            that has gone). The trend is used only where it stands out of the load's own noise
//            (the recent one-step surprises), so a steady load is forecast at its level and a ramp
//            ahead of itself.
//   period   the arrivals of the last hours in fixed buckets; where they repeat with a period
//            (the autocorrelation of the series has a clear peak at a lag of minutes to an hour
//            and a half: a cron job, a batch, a periodic burst), the load seen one period ago over
//            the coming horizon is what is expected again, so the pool is back in time for the
//            next tooth instead of meeting it late.
//   daily    a profile per time of day once a whole day has been seen: its change from the bucket
//            now to the bucket ahead is added to the trend's forecast, so a ramp that comes every
//            day at 12:00 is anticipated before it starts.

export interface ForecastSettings {
  /** Time constant of the level, in seconds: how fast it follows arrivals that rise. */
  readonly levelSeconds: number;
  /**
   * …and arrivals that fall: faster, since a forecast is there to scale up ahead of a rise and
   * must not hold a pool for a load that has gone while its level catches up.
   */
  readonly levelFallSeconds: number;
  /** Time constant of the trend (and of the surprise it is judged against), in seconds. */
  readonly trendSeconds: number;
  /** The trend counts only when it moves the forecast by more than this many standard deviations of the surprise. */
  readonly trendSignificance: number;
  /** Weight of a new observation in its time-of-day bucket of the daily profile, 0..1. */
  readonly gamma: number;
  /** Time-of-day buckets in the daily profile (48 = half hours). */
  readonly seasonalBuckets: number;
  /** Width of a bucket of the recent series the period is looked for in, in ms. */
  readonly periodBucketMs: number;
  /** Buckets kept: a period is looked for up to a third of them (three periods must have been seen). */
  readonly periodHistory: number;
  /** The shortest period looked for, in buckets. */
  readonly minPeriodBuckets: number;
  /** Autocorrelation a period needs at its lag (0..1). */
  readonly periodCorrelation: number;
  /** How often the period is looked for again, in ms. */
  readonly periodRecheckMs: number;
}

export const DEFAULT_FORECAST_SETTINGS: ForecastSettings = {
  levelSeconds: 45,
  levelFallSeconds: 10,
  trendSeconds: 90,
  trendSignificance: 1,
  gamma: 0.2,
  seasonalBuckets: 48,
  periodBucketMs: 30_000,
  // Four and a half hours of 30 s buckets: periods from 1 min to 90 min.
  periodHistory: 540,
  minPeriodBuckets: 2,
  periodCorrelation: 0.6,
  periodRecheckMs: 60_000,
};

export interface Period {
  /** The period, in buckets of periodBucketMs. */
  readonly buckets: number;
  /** The series' autocorrelation at that lag. */
  readonly correlation: number;
}

export interface ForecastState {
  /** Smoothed request rate, without the daily component. */
  readonly level: number;
  /** Change of the level per second. */
  readonly trendPerSecond: number;
  /** Smoothed square of the one-step surprise (observation − what the level and trend expected). */
  readonly surprise: number;
  readonly lastAt: number;
  readonly firstAt: number;
  /** Usual request rate per time-of-day bucket (UTC); null until the bucket has been observed. */
  readonly profile: readonly (number | null)[];
  /** Mean arrivals per bucket of periodBucketMs, oldest first; the last one is still filling. */
  readonly series: readonly number[];
  /** Start (ms) of the series' last bucket, and how many observations it holds. */
  readonly seriesAt: number;
  readonly seriesCount: number;
  /** The period found in the series at the last look, and when that was. */
  readonly period: Period | undefined;
  readonly periodCheckedAt: number;
}

const DAY_MS = 86_400_000;

const bucketOf = (at: number, buckets: number): number => Math.floor((((at % DAY_MS) + DAY_MS) % DAY_MS) / (DAY_MS / buckets));

/** The daily profile is used only once a whole day of observations has shaped it. */
const seasonalReady = (state: ForecastState): boolean => state.lastAt - state.firstAt >= DAY_MS;

/** Weight of an observation Δt after the last one, for a time constant of τ seconds. */
const weight = (dtSeconds: number, tauSeconds: number): number => (tauSeconds <= 0 ? 1 : 1 - Math.exp(-dtSeconds / tauSeconds));

/** The series with `value` observed at `at`: into its bucket, a gap filled with the last value, the oldest dropped. */
function addToSeries(state: ForecastState, value: number, at: number, settings: ForecastSettings): Pick<ForecastState, 'series' | 'seriesAt' | 'seriesCount'> {
  const width = settings.periodBucketMs;
  const start = Math.floor(at / width) * width;
  if (start === state.seriesAt) {
    const series = [...state.series];
    const count = state.seriesCount + 1;
    series[series.length - 1] = ((series.at(-1) ?? value) * state.seriesCount + value) / count;
    return { series, seriesAt: start, seriesCount: count };
  }
  const gap = Math.min(settings.periodHistory, Math.round((start - state.seriesAt) / width) - 1);
  const last = state.series.at(-1) ?? value;
  const series = [...state.series, ...new Array<number>(Math.max(0, gap)).fill(last), value].slice(-settings.periodHistory);
  return { series, seriesAt: start, seriesCount: 1 };
}

/**
 * The period of `series`: the lag (from minLag to a third of the series: three repetitions, since
 * any two bursts are one "period" apart) where its autocorrelation has a local peak of at least
 * `threshold`, after it first fell below zero (so a trend, whose autocorrelation only decays, has
 * none). Of the peaks, the shortest lag within 0.05 of the highest: the fundamental, not one of
 * its multiples. Undefined when nothing repeats.
 */
export function findPeriod(series: readonly number[], minLag: number, threshold: number): Period | undefined {
  const n = series.length;
  const maxLag = Math.floor(n / 3);
  if (maxLag < Math.max(2, minLag)) return undefined;
  const mean = series.reduce((a, b) => a + b, 0) / n;
  const x = series.map((v) => v - mean);
  const correlation = (lag: number): number => {
    let xy = 0;
    let xx = 0;
    let yy = 0;
    for (let i = 0; i + lag < n; i++) {
      const a = x[i] ?? 0;
      const b = x[i + lag] ?? 0;
      xy += a * b;
      xx += a * a;
      yy += b * b;
    }
    return xx > 0 && yy > 0 ? xy / Math.sqrt(xx * yy) : 0;
  };
  const r = Array.from({ length: maxLag + 2 }, (_, lag) => (lag === 0 ? 1 : correlation(lag)));
  const firstNegative = r.findIndex((v) => v < 0);
  if (firstNegative < 0) return undefined;
  const peaks: Period[] = [];
  for (let lag = Math.max(minLag, firstNegative + 1); lag <= maxLag; lag++) {
    const here = r[lag] ?? 0;
    if (here >= threshold && here >= (r[lag - 1] ?? 0) && here >= (r[lag + 1] ?? -1)) peaks.push({ buckets: lag, correlation: Number(here.toFixed(3)) });
  }
  const best = Math.max(...peaks.map((p) => p.correlation));
  return peaks.find((p) => p.correlation >= best - 0.05);
}

export function observe(
  state: ForecastState | undefined,
  value: number,
  at: number,
  settings: ForecastSettings = DEFAULT_FORECAST_SETTINGS,
): ForecastState {
  if (!Number.isFinite(value) || value < 0) throw new Error(`observe: a request rate must be a finite number >= 0, not ${value}`);
  const bucket = bucketOf(at, settings.seasonalBuckets);
  if (state === undefined) {
    const profile = new Array<number | null>(settings.seasonalBuckets).fill(null);
    profile[bucket] = value;
    const seriesAt = Math.floor(at / settings.periodBucketMs) * settings.periodBucketMs;
    return { level: value, trendPerSecond: 0, surprise: 0, lastAt: at, firstAt: at, profile, series: [value], seriesAt, seriesCount: 1, period: undefined, periodCheckedAt: at };
  }
  if (at <= state.lastAt) return state; // an old or repeated sample teaches nothing
  const dtSeconds = (at - state.lastAt) / 1000;
  const projected = state.level + state.trendPerSecond * dtSeconds;
  const level = projected + weight(dtSeconds, value < projected ? settings.levelFallSeconds : settings.levelSeconds) * (value - projected);
  const toTrend = weight(dtSeconds, settings.trendSeconds);
  const trendPerSecond = state.trendPerSecond + toTrend * ((level - state.level) / dtSeconds - state.trendPerSecond);
  const surprise = state.surprise + toTrend * ((value - projected) ** 2 - state.surprise);
  const profile = [...state.profile];
  const usual = profile[bucket];
  profile[bucket] = usual === null || usual === undefined ? value : settings.gamma * value + (1 - settings.gamma) * usual;
  const series = addToSeries(state, value, at, settings);
  const recheck = at - state.periodCheckedAt >= settings.periodRecheckMs;
  return {
    level,
    trendPerSecond,
    surprise,
    lastAt: at,
    firstAt: state.firstAt,
    profile,
    ...series,
    // The last bucket is still filling: the period is looked for in the complete ones.
    period: recheck ? findPeriod(series.series.slice(0, -1), settings.minPeriodBuckets, settings.periodCorrelation) : state.period,
    periodCheckedAt: recheck ? at : state.periodCheckedAt,
  };
}

/** What each part of the forecast expects `horizonMs` after the last observation. */
export interface ForecastParts {
  /** The level, plus the trend where it stands out of the noise, plus the daily profile's change. */
  readonly trend: number;
  /** The most the arrivals reached one period ago over the coming horizon; undefined without a period. */
  readonly periodic: number | undefined;
  readonly period: Period | undefined;
}

export function forecastParts(state: ForecastState, horizonMs: number, settings: ForecastSettings = DEFAULT_FORECAST_SETTINGS): ForecastParts {
  const ahead = state.trendPerSecond * (horizonMs / 1000);
  const noise = Math.sqrt(state.surprise);
  const trended = state.level + (Math.abs(ahead) > settings.trendSignificance * noise ? ahead : 0);
  let daily = 0;
  if (seasonalReady(state)) {
    const then = state.profile[bucketOf(state.lastAt + horizonMs, settings.seasonalBuckets)];
    const now = state.profile[bucketOf(state.lastAt, settings.seasonalBuckets)];
    if (then !== null && then !== undefined && now !== null && now !== undefined) daily = then - now;
  }
  let periodic: number | undefined;
  const { period } = state;
  if (period !== undefined) {
    // The buckets one period before the ones from now to the horizon.
    const last = state.series.length - 1;
    const steps = Math.max(1, Math.ceil(horizonMs / settings.periodBucketMs));
    const seen = Array.from({ length: steps + 1 }, (_, k) => state.series[last - period.buckets + k]).filter((v): v is number => v !== undefined);
    if (seen.length > 0) periodic = Math.max(...seen);
  }
  return { trend: Math.max(0, trended + daily), periodic, period };
}

/** The request rate expected `horizonMs` after the last observation: the larger of the parts; never negative. */
export function forecast(state: ForecastState, horizonMs: number, settings: ForecastSettings = DEFAULT_FORECAST_SETTINGS): number {
  const parts = forecastParts(state, horizonMs, settings);
  return Math.max(parts.trend, parts.periodic ?? 0);
}
