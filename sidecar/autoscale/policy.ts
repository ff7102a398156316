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
import { DEFAULT_FORECAST_SETTINGS } from './forecast.js';
import type { Decision, History, Samples, ScalingPolicy, Stage } from './types.js';
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

export type { Decision, DemandSettings, ForecastMode, History, RateLimit, Reading, Samples, ScalingPolicy, SignalName, SignalProposal, SignalTarget, Stage, StageName } from './types.js';

export { SIGNALS } from './stages.js';
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

export const EMPTY_HISTORY: History = { recommendations: [], changes: [], forecast: undefined, predictions: [] };

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
