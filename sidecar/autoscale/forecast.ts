// Request-rate forecasting: Holt's double exponential smoothing (level and trend) on irregularly
// spaced observations, plus a daily profile once a full day has been seen: the usual request
// rate per time-of-day bucket. The profile's difference between the bucket ahead and the bucket
// now is added to Holt's forecast, so a ramp that happens every day at 12:00 is anticipated
// before it starts, while the level keeps following today's actual traffic. Pure: the state is a
// value the caller keeps (in the autoscaler's history) and passes back in.

export interface ForecastSettings {
  /** Weight of a new observation in the level, 0..1. */
  readonly alpha: number;
  /** Weight of a new slope in the trend, 0..1. */
  readonly beta: number;
  /** Weight of a new observation in its time-of-day bucket of the daily profile, 0..1. */
  readonly gamma: number;
  /** Time-of-day buckets in the daily profile (48 = half hours). */
  readonly seasonalBuckets: number;
}

export const DEFAULT_FORECAST_SETTINGS: ForecastSettings = { alpha: 0.5, beta: 0.3, gamma: 0.2, seasonalBuckets: 48 };

export interface ForecastState {
  /** Smoothed request rate, without the daily component. */
  readonly level: number;
  /** Change of the level per second. */
  readonly trendPerSecond: number;
  readonly lastAt: number;
  readonly firstAt: number;
  /** Usual request rate per time-of-day bucket (UTC); null until the bucket has been observed. */
  readonly profile: readonly (number | null)[];
}

const DAY_MS = 86_400_000;

const bucketOf = (at: number, buckets: number): number => Math.floor((((at % DAY_MS) + DAY_MS) % DAY_MS) / (DAY_MS / buckets));

/** The daily profile is used only once a whole day of observations has shaped it. */
const seasonalReady = (state: ForecastState): boolean => state.lastAt - state.firstAt >= DAY_MS;

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
    return { level: value, trendPerSecond: 0, lastAt: at, firstAt: at, profile };
  }
  if (at <= state.lastAt) return state; // an old or repeated sample teaches nothing
  const dtSeconds = (at - state.lastAt) / 1000;
  const projected = state.level + state.trendPerSecond * dtSeconds;
  const level = settings.alpha * value + (1 - settings.alpha) * projected;
  const trendPerSecond = settings.beta * ((level - state.level) / dtSeconds) + (1 - settings.beta) * state.trendPerSecond;
  const profile = [...state.profile];
  const usual = profile[bucket];
  profile[bucket] = usual === null || usual === undefined ? value : settings.gamma * value + (1 - settings.gamma) * usual;
  return { level, trendPerSecond, lastAt: at, firstAt: state.firstAt, profile };
}

/** The request rate expected `horizonMs` after the last observation; never negative. */
export function forecast(state: ForecastState, horizonMs: number, settings: ForecastSettings = DEFAULT_FORECAST_SETTINGS): number {
  const holt = state.level + state.trendPerSecond * (horizonMs / 1000);
  let daily = 0;
  if (seasonalReady(state)) {
    const then = state.profile[bucketOf(state.lastAt + horizonMs, settings.seasonalBuckets)];
    const now = state.profile[bucketOf(state.lastAt, settings.seasonalBuckets)];
    if (then !== null && then !== undefined && now !== null && now !== undefined) daily = then - now;
  }
  return Math.max(0, holt + daily);
}
