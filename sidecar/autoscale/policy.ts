// The autoscaling decision, a pure function in named stages, as the Kubernetes HPA structures it.
// Each stage is a function of stages.ts that returns its value and its reason:
//
//   demand       estimateDemand: HAProxy counts a request when it ends, so a saturated pool's
//                request rate is the throughput it manages; the requests arriving are that rate
//                plus the growth of the requests in flight (queued or at the servers), and a
//                backlog that will have grown by the time new instances serve asks for enough
//                to clear it. The estimate may raise the request rate, never lower it
//   proposals    proposeReplicas: one per signal (CPU, request rate per instance, queue, response
//                time), sized proportionally: ceil(current × observed / target), with a tolerance
//                band and a scale-down threshold under which a signal allows fewer instances
//   largest      largestProposal: the largest proposal wins; a signal in its band holds the current
//                count, so the pool shrinks only when every signal is low (the original design's "and")
//   forecast     forecastRecommendation: the request rate forecast over the start-up time of a new
//                instance may raise the recommendation, never lower it; in shadow mode it is
//                recorded, not acted on
//   stabilise    stabiliseRecommendation: scale-down takes the highest recommendation of the
//                window; scale-up acts at once. The window lengthens (stabilisationWindow) where
//                scale-downs had to be taken back within minutes
//   rateLimit    limitRate: at most so many instances added or removed per period
//   clamp        clampReplicas: min and max
//   safety       holdOnIncompleteData: a missing or stale signal, or a metrics source that is down,
//                never lets the count fall
//
// decide(samples, history, policy, now) runs them in this order and returns the replicas, the
// reason, every stage's value and reason, and the next history. Nothing here reads a clock or does
// I/O. A policy is checked once, by validatePolicy where it is built (the configuration loader).
import { DEFAULT_FORECAST_SETTINGS, type ForecastSettings, type ForecastState } from './forecast.js';
import {
  clampReplicas,
  estimateDemand,
  forecastRecommendation,
  holdOnIncompleteData,
  largestProposal,
  limitRate,
  observeRequestRate,
  proposeReplicas,
  rememberChange,
  saturationBreach,
  settlingStage,
  stabilisationWindow,
  stabiliseRecommendation,
} from './stages.js';

export { SIGNALS } from './stages.js';
export type SignalName = 'cpu' | 'requestRate' | 'queue' | 'responseTime';

/** One measured value and when it was measured (ms since the epoch). */
export interface Reading {
  readonly value: number;
  readonly at: number;
}

export interface Samples {
  /** Instances currently serving (ready servers of the backend). */
  readonly replicas: number;
  /** Mean CPU per instance, as a fraction of one core (0.7 = 70 %). */
  readonly cpu?: Reading | undefined;
  /** Requests per second over all instances. */
  readonly requestRate?: Reading | undefined;
  /** Requests waiting in HAProxy's queues for this backend. */
  readonly queue?: Reading | undefined;
  /** Mean response time, in seconds. */
  readonly responseTime?: Reading | undefined;
  /**
   * Requests in the backend now, queued in HAProxy or at the servers (its current sessions).
   * With inFlightGrowth it tells the demand a saturated pool does not serve (stage `demand`).
   */
  readonly inFlight?: Reading | undefined;
  /** Change of inFlight per second over the same window as requestRate (negative when it shrinks). */
  readonly inFlightGrowth?: Reading | undefined;
  /** False when the metrics source could not be read at the last scrape. */
  readonly sourceUp: boolean;
}

export interface SignalTarget {
  /** Per instance for cpu, requestRate and queue; the backend's mean for responseTime. */
  readonly target: number;
  /** Below this (same unit) the signal allows scaling down. */
  readonly scaleDownBelow: number;
}

export interface RateLimit {
  /** At most this many instances per period… */
  readonly instances: number;
  /** …or this fraction of the current count, whichever is larger (0 to disable). */
  readonly fraction: number;
  readonly periodMs: number;
}

export type ForecastMode = 'off' | 'shadow' | 'act';

export interface DemandSettings {
  /** Time a new instance needs to serve: a growing backlog grows this much longer after a scale-up. */
  readonly startupMs: number;
  /**
   * A backlog (requests in flight beyond what the pool holds at the response-time target) is sized
   * to be served within this time on top of the arrivals; 0 leaves the backlog out.
   */
  readonly backlogDrainMs: number;
}

export interface ScalingPolicy {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** Signals absent here are not used. */
  readonly signals: Partial<Readonly<Record<SignalName, SignalTarget>>>;
  /** |observed / target − 1| within this is "on target": no change. */
  readonly tolerance: number;
  /** A reading older than this is stale. */
  readonly maxSampleAgeMs: number;
  readonly scaleDownStabilisationMs: number;
  /**
   * The scale-down window lengthens, up to maxMs, to what would have held the pool through the
   * scale-downs it had to take back within maxMs; those older than memoryMs are forgotten (see
   * stabilisationWindow). maxMs at or below scaleDownStabilisationMs keeps the window fixed.
   */
  readonly adaptiveWindow: { readonly maxMs: number; readonly memoryMs: number };
  readonly scaleUp: RateLimit;
  readonly scaleDown: RateLimit;
  readonly forecast: {
    readonly mode: ForecastMode;
    /** How far ahead to look: the time a new instance needs to serve. */
    readonly horizonMs: number;
    readonly settings: ForecastSettings;
  };
  /** Below this request rate the response time is not a signal (an idle backend keeps its last average). */
  readonly idleRequestRate: number;
  readonly demand: DemandSettings;
}

/**
 * The original design's scale-up thresholds (CPU 70 %, 100 req/s per instance, 2..10) with this
 * project's stages. Scale-down is HPA-like rather than the original ±1 rule: a signal allows fewer
 * instances once it is a tolerance-and-a-half under its target (CPU 60 %, 85 req/s), sized to stay
 * under the target, after the stabilisation window, and up to half the pool per period; the
 * original 30 % / 50 req/s band kept a pool that served a burst at up to twice its need for as long
 * as the load stayed between the two (bench/sim measures it). Scale-up may multiply the pool by
 * five per period: the demand stage sizes a step in one decision, and a slower limit only leaves
 * the backlog to grow while new instances start.
 */
export const DEFAULT_POLICY: ScalingPolicy = {
  minReplicas: 2,
  maxReplicas: 10,
  signals: {
    cpu: { target: 0.7, scaleDownBelow: 0.6 },
    requestRate: { target: 100, scaleDownBelow: 85 },
    queue: { target: 5, scaleDownBelow: 1 },
    responseTime: { target: 0.5, scaleDownBelow: 0.25 },
  },
  tolerance: 0.1,
  maxSampleAgeMs: 90_000,
  scaleDownStabilisationMs: 120_000,
  adaptiveWindow: { maxMs: 300_000, memoryMs: 1_800_000 },
  scaleUp: { instances: 4, fraction: 4, periodMs: 30_000 },
  scaleDown: { instances: 1, fraction: 0.5, periodMs: 30_000 },
  forecast: { mode: 'act', horizonMs: 30_000, settings: DEFAULT_FORECAST_SETTINGS },
  idleRequestRate: 1,
  demand: { startupMs: 20_000, backlogDrainMs: 30_000 },
};

export interface History {
  /** Recent recommendations (before stabilisation), for the scale-down window. */
  readonly recommendations: readonly { readonly at: number; readonly replicas: number }[];
  /** Recent scaling decisions that changed the count (with the scale-down window then), for the rate limits and the window. */
  readonly changes: readonly { readonly at: number; readonly from: number; readonly to: number; readonly windowMs?: number; readonly breach?: boolean }[];
  readonly forecast: ForecastState | undefined;
  /** Forecasts made, to compare with what came (shadow mode's record). */
  readonly predictions: readonly { readonly madeAt: number; readonly forAt: number; readonly requestRate: number }[];
}

export const EMPTY_HISTORY: History = { recommendations: [], changes: [], forecast: undefined, predictions: [] };

export type StageName = 'demand' | 'proposals' | 'largest' | 'forecast' | 'stabilise' | 'rateLimit' | 'clamp' | 'safety';

export interface Stage {
  readonly stage: StageName;
  readonly replicas: number;
  readonly reason: string;
}

export interface SignalProposal {
  readonly signal: SignalName;
  readonly status: 'ok' | 'missing' | 'stale' | 'idle';
  /** Per instance (or the mean, for response time), as compared with the target. */
  readonly observed: number | undefined;
  readonly replicas: number;
  readonly reason: string;
}

export interface Decision {
  readonly replicas: number;
  readonly direction: 'up' | 'down' | 'none';
  /** The stage that settled the final count, and why. */
  readonly stage: StageName;
  readonly reason: string;
  readonly stages: readonly Stage[];
  readonly proposals: readonly SignalProposal[];
  readonly predictedRequestRate: number | undefined;
  /** True when scale-down was held back because data is missing, stale or the source is down. */
  readonly scaleDownFrozen: boolean;
  /**
   * True when the pool shows saturation, not only a high request rate: demand the pool does not
   * serve, or a queue or response time over target. A breach check between evaluations acts on an
   * upward decision only then (a short window's request rate alone is too noisy to act on).
   */
  readonly breach: boolean;
  readonly history: History;
}

/** Policies validatePolicy has accepted; decide() checks any other policy once, at its first use. */
const validated = new WeakSet<ScalingPolicy>();

/**
 * Checks what the stages rely on and throws (our own misuse, not bad input: the configuration
 * loader reports bad keys by name before it builds the policy). Call it where a policy is built;
 * decide() then trusts that policy object without checking it again.
 */
export function validatePolicy(policy: ScalingPolicy): void {
  if (!(Number.isInteger(policy.minReplicas) && Number.isInteger(policy.maxReplicas) && policy.minReplicas >= 0 && policy.maxReplicas >= policy.minReplicas)) {
    throw new Error(`policy: minReplicas ${policy.minReplicas} and maxReplicas ${policy.maxReplicas} must be whole numbers with 0 <= min <= max`);
  }
  for (const [signal, target] of Object.entries(policy.signals)) {
    if (!(target.target > 0 && target.scaleDownBelow >= 0 && target.scaleDownBelow <= target.target)) {
      throw new Error(`policy: ${signal} needs target > 0 and 0 <= scaleDownBelow <= target`);
    }
  }
  const atLeastZero = { tolerance: policy.tolerance, maxSampleAgeMs: policy.maxSampleAgeMs, scaleDownStabilisationMs: policy.scaleDownStabilisationMs, 'adaptiveWindow.maxMs': policy.adaptiveWindow.maxMs, 'adaptiveWindow.memoryMs': policy.adaptiveWindow.memoryMs, idleRequestRate: policy.idleRequestRate, 'forecast.horizonMs': policy.forecast.horizonMs, 'demand.startupMs': policy.demand.startupMs, 'demand.backlogDrainMs': policy.demand.backlogDrainMs };
  for (const [name, value] of Object.entries(atLeastZero)) {
    if (!(Number.isFinite(value) && value >= 0)) throw new Error(`policy: ${name} must be a finite number >= 0, not ${value}`);
  }
  for (const [name, limit] of [['scaleUp', policy.scaleUp], ['scaleDown', policy.scaleDown]] as const) {
    if (!(Number.isInteger(limit.instances) && limit.instances >= 0 && Number.isFinite(limit.fraction) && limit.fraction >= 0 && Number.isFinite(limit.periodMs) && limit.periodMs >= 0)) {
      throw new Error(`policy: ${name} needs whole instances >= 0, fraction >= 0 and periodMs >= 0`);
    }
  }
  const f = policy.forecast.settings;
  const positive = [f.levelSeconds, f.levelFallSeconds, f.trendSeconds, f.trendSignificance, f.periodBucketMs, f.periodRecheckMs].every((v) => Number.isFinite(v) && v >= 0);
  const counts = [f.seasonalBuckets, f.periodHistory, f.minPeriodBuckets].every((v) => Number.isInteger(v) && v >= 1);
  if (!positive || !counts || !(f.gamma >= 0 && f.gamma <= 1) || !(f.periodCorrelation >= 0 && f.periodCorrelation <= 1) || f.periodBucketMs === 0) {
    throw new Error('policy: forecast.settings needs time constants >= 0, gamma and periodCorrelation from 0 to 1, a periodBucketMs > 0 and whole seasonalBuckets, periodHistory and minPeriodBuckets >= 1');
  }
  validated.add(policy);
}

export function decide(samples: Samples, history: History, policy: ScalingPolicy, now: number): Decision {
  if (!validated.has(policy)) validatePolicy(policy);
  const current = samples.replicas;
  const demand = estimateDemand(samples, policy, now);
  // The signals see the estimated demand in place of the counted request rate (never below it).
  const sized: Samples = { ...samples, requestRate: demand.requestRate };
  const proposed = proposeReplicas(sized, policy, now);
  const largest = largestProposal(proposed.proposals, current);
  // The forecaster learns the arrivals (without the backlog's share): what the traffic does.
  const forecastState = observeRequestRate(history.forecast, demand.arrivals, policy, now);
  const forecasted = forecastRecommendation(largest.value, forecastState, history.predictions, policy, now);
  const window = stabilisationWindow(history.changes, policy, now);
  const stabilised = stabiliseRecommendation(forecasted.value, current, history.recommendations, { ...window, keepMs: policy.adaptiveWindow.maxMs }, now);
  const limited = limitRate(stabilised.value, current, history.changes, policy, now);
  const clamped = clampReplicas(limited.value, policy);
  const safe = holdOnIncompleteData(clamped.value, current, proposed.proposals, samples.sourceUp, policy);
  const stages = (
    [
      ['demand', { value: current, reason: demand.reason }],
      ['proposals', proposed],
      ['largest', largest],
      ['forecast', forecasted],
      ['stabilise', stabilised],
      ['rateLimit', limited],
      ['clamp', clamped],
      ['safety', safe],
    ] as const
  ).map(([stage, { value, reason }]): Stage => ({ stage, replicas: value, reason }));
  const replicas = safe.value;
  const settled = settlingStage(stages, current);
  const breach = saturationBreach(samples.requestRate, demand.requestRate, proposed.proposals, policy, current);
  return {
    replicas,
    direction: replicas > current ? 'up' : replicas < current ? 'down' : 'none',
    stage: settled?.stage ?? 'largest',
    reason: settled?.reason ?? `hold at ${current}: ${largest.reason}`,
    stages,
    proposals: proposed.proposals,
    predictedRequestRate: forecasted.predicted,
    scaleDownFrozen: safe.scaleDownFrozen,
    breach,
    history: {
      recommendations: stabilised.recommendations,
      changes: rememberChange(history.changes, current, replicas, window.windowMs, breach, policy, now),
      forecast: forecastState,
      predictions: forecasted.predictions,
    },
  };
}
