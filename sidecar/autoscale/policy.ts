// The autoscaling decision, a pure function in named stages, as the Kubernetes HPA structures it:
//
//   proposals    one per signal (CPU, request rate per instance, queue, response time), sized
//                proportionally: ceil(current × observed / target), with a tolerance band and a
//                scale-down threshold under which a signal allows fewer instances
//   largest      the largest proposal wins; a signal in its band holds the current count, so the
//                pool shrinks only when every signal is low (the original design's "and")
//   forecast     the request rate forecast over the start-up time of a new instance may raise the
//                recommendation, never lower it; in shadow mode it is recorded, not acted on
//   stabilise    scale-down takes the highest recommendation of the window; scale-up acts at once
//   rate limit   at most so many instances added or removed per period
//   clamp        min and max
//   safety       a missing or stale signal, or a metrics source that is down, never lets the count fall
//
// decide(samples, history, policy, now) returns the replicas, the reason, every stage's value and
// reason, and the next history. Nothing here reads a clock or does I/O.
import { DEFAULT_FORECAST_SETTINGS, forecast, observe, type ForecastSettings, type ForecastState } from './forecast.js';

export type SignalName = 'cpu' | 'requestRate' | 'queue' | 'responseTime';
export const SIGNALS: readonly SignalName[] = ['cpu', 'requestRate', 'queue', 'responseTime'];

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
}

/** The original design's rule with this project's stages: CPU 70/30 %, 100/50 req/s, 2..10. */
export const DEFAULT_POLICY: ScalingPolicy = {
  minReplicas: 2,
  maxReplicas: 10,
  signals: {
    cpu: { target: 0.7, scaleDownBelow: 0.3 },
    requestRate: { target: 100, scaleDownBelow: 50 },
    queue: { target: 5, scaleDownBelow: 1 },
    responseTime: { target: 0.5, scaleDownBelow: 0.25 },
  },
  tolerance: 0.1,
  maxSampleAgeMs: 90_000,
  scaleDownStabilisationMs: 120_000,
  scaleUp: { instances: 4, fraction: 1, periodMs: 30_000 },
  scaleDown: { instances: 1, fraction: 0, periodMs: 30_000 },
  forecast: { mode: 'act', horizonMs: 30_000, settings: DEFAULT_FORECAST_SETTINGS },
  idleRequestRate: 1,
};

export interface History {
  /** Recent recommendations (before stabilisation), for the scale-down window. */
  readonly recommendations: readonly { readonly at: number; readonly replicas: number }[];
  /** Recent scaling decisions that changed the count, for the rate limits. */
  readonly changes: readonly { readonly at: number; readonly from: number; readonly to: number }[];
  readonly forecast: ForecastState | undefined;
  /** Forecasts made, to compare with what came (shadow mode's record). */
  readonly predictions: readonly { readonly madeAt: number; readonly forAt: number; readonly requestRate: number }[];
}

export const EMPTY_HISTORY: History = { recommendations: [], changes: [], forecast: undefined, predictions: [] };

export type StageName = 'proposals' | 'largest' | 'forecast' | 'stabilise' | 'rateLimit' | 'clamp' | 'safety';

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
  readonly history: History;
}

/** The most a queue or response-time proposal multiplies the pool by in one decision. */
const NON_LINEAR_MAX_FACTOR = 2;

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

export function decide(samples: Samples, history: History, policy: ScalingPolicy, now: number): Decision {
  validatePolicy(policy);
  const current = samples.replicas;
  const stages: Stage[] = [];
  const stage = (name: StageName, replicas: number, reason: string): number => {
    stages.push({ stage: name, replicas, reason });
    return replicas;
  };

  // proposals
  const proposals = SIGNALS.flatMap((signal) => {
    const target = policy.signals[signal];
    return target === undefined ? [] : [proposeFor(signal, target, samples, policy, now)];
  });
  const frozenSignals = proposals.filter((p) => p.status === 'missing' || p.status === 'stale');
  stage(
    'proposals',
    current,
    proposals.map((p) => `${p.signal}: ${p.reason}`).join('; ') || 'no signals configured',
  );

  // largest
  const best = proposals.reduce<SignalProposal | undefined>((a, b) => (a === undefined || b.replicas > a.replicas ? b : a), undefined);
  let replicas = stage('largest', best?.replicas ?? current, best === undefined ? 'no signal: hold' : `${best.signal} wins: ${best.reason}`);

  // forecast
  let forecastState = history.forecast;
  const rate = samples.requestRate;
  if (rate !== undefined && now - rate.at <= policy.maxSampleAgeMs) {
    forecastState = observe(forecastState, rate.value, rate.at, policy.forecast.settings);
  }
  let predicted: number | undefined;
  let predictions = history.predictions;
  const rateTarget = policy.signals.requestRate;
  if (policy.forecast.mode !== 'off' && forecastState !== undefined && rateTarget !== undefined) {
    predicted = round(forecast(forecastState, policy.forecast.horizonMs + (now - forecastState.lastAt), policy.forecast.settings), 2);
    predictions = [...predictions, { madeAt: now, forAt: now + policy.forecast.horizonMs, requestRate: predicted }].slice(-200);
    const needed = Math.ceil(predicted / rateTarget.target);
    if (policy.forecast.mode === 'act' && needed > replicas) {
      replicas = stage('forecast', needed, `forecast ${predicted} req/s in ${policy.forecast.horizonMs / 1000} s needs ${needed}`);
    } else {
      stage(
        'forecast',
        replicas,
        policy.forecast.mode === 'shadow'
          ? `shadow: forecast ${predicted} req/s would need ${needed}; not acted on`
          : `forecast ${predicted} req/s needs ${needed}: no more than recommended (a forecast never scales in)`,
      );
    }
  } else {
    stage('forecast', replicas, policy.forecast.mode === 'off' ? 'forecast off' : 'no request-rate history yet');
  }
  const recommended = replicas;

  // stabilise: a scale-down must hold for the whole window; the highest recent recommendation wins.
  const windowStart = now - policy.scaleDownStabilisationMs;
  const recommendations = [...history.recommendations.filter((r) => r.at > windowStart), { at: now, replicas: recommended }];
  if (recommended < current) {
    const highest = Math.max(...recommendations.map((r) => r.replicas));
    replicas = Math.min(current, highest);
    stage(
      'stabilise',
      replicas,
      replicas > recommended
        ? `scale-down held: ${highest} recommended within the last ${policy.scaleDownStabilisationMs / 1000} s`
        : `${recommended} recommended throughout the last ${policy.scaleDownStabilisationMs / 1000} s`,
    );
  } else {
    stage('stabilise', replicas, 'scale-up or hold acts at once');
  }

  // rate limit
  if (replicas > current) {
    const allowed = allowance(policy.scaleUp, current, history.changes, now, 'up');
    if (replicas > current + allowed) {
      replicas = current + allowed;
      stage('rateLimit', replicas, `at most ${allowed} more per ${policy.scaleUp.periodMs / 1000} s`);
    } else stage('rateLimit', replicas, 'within the scale-up limit');
  } else if (replicas < current) {
    const allowed = allowance(policy.scaleDown, current, history.changes, now, 'down');
    if (replicas < current - allowed) {
      replicas = current - allowed;
      stage('rateLimit', replicas, allowed === 0 ? `scale-down limit used for this ${policy.scaleDown.periodMs / 1000} s` : `at most ${allowed} fewer per ${policy.scaleDown.periodMs / 1000} s`);
    } else stage('rateLimit', replicas, 'within the scale-down limit');
  } else stage('rateLimit', replicas, 'no change');

  // clamp
  const clamped = Math.min(policy.maxReplicas, Math.max(policy.minReplicas, replicas));
  stage(
    'clamp',
    clamped,
    clamped > replicas ? `raised to the minimum ${policy.minReplicas}` : clamped < replicas ? `lowered to the maximum ${policy.maxReplicas}` : `within ${policy.minReplicas}..${policy.maxReplicas}`,
  );
  replicas = clamped;

  // safety: no scale-down on incomplete data (a minimum the pool is below is still restored).
  const scaleDownFrozen = !samples.sourceUp || frozenSignals.length > 0;
  if (scaleDownFrozen && replicas < current) {
    // Only the maximum may still lower the count: never above max, even on incomplete data.
    replicas = Math.min(current, policy.maxReplicas);
    stage(
      'safety',
      replicas,
      !samples.sourceUp ? 'metrics source down: scale-down frozen' : `scale-down frozen: ${frozenSignals.map((p) => `${p.signal} ${p.status}`).join(', ')}`,
    );
  } else {
    stage('safety', replicas, scaleDownFrozen ? 'data incomplete: scale-down would be frozen' : 'all signals fresh');
  }

  const direction = replicas > current ? 'up' : replicas < current ? 'down' : 'none';
  // The stage that settled the count is the last one that changed it.
  let settled: Stage | undefined;
  stages.forEach((s, i) => {
    if (s.replicas !== (stages[i - 1]?.replicas ?? current)) settled = s;
  });
  const changes = direction === 'none' ? history.changes : [...history.changes, { at: now, from: current, to: replicas }];
  const keepFor = Math.max(policy.scaleUp.periodMs, policy.scaleDown.periodMs);
  return {
    replicas,
    direction,
    stage: settled?.stage ?? 'largest',
    reason: settled?.reason ?? `hold at ${current}: ${stages.find((s) => s.stage === 'largest')?.reason ?? ''}`,
    stages,
    proposals,
    predictedRequestRate: predicted,
    scaleDownFrozen,
    history: {
      recommendations: recommendations.slice(-500),
      changes: changes.filter((c) => c.at > now - keepFor),
      forecast: forecastState,
      predictions,
    },
  };
}

function proposeFor(signal: SignalName, target: SignalTarget, samples: Samples, policy: ScalingPolicy, now: number): SignalProposal {
  const current = samples.replicas;
  const reading = samples[signal];
  if (reading === undefined) return { signal, status: 'missing', observed: undefined, replicas: current, reason: 'missing: hold' };
  const age = now - reading.at;
  if (age > policy.maxSampleAgeMs) {
    return { signal, status: 'stale', observed: undefined, replicas: current, reason: `stale (${Math.round(age / 1000)} s old): hold` };
  }
  if (signal === 'responseTime') {
    const rate = samples.requestRate;
    if (rate !== undefined && now - rate.at <= policy.maxSampleAgeMs && rate.value < policy.idleRequestRate) {
      return { signal, status: 'idle', observed: reading.value, replicas: 0, reason: 'backend idle: no constraint' };
    }
  }
  // Per instance for the load signals; with no instance at all, the whole load stands for one.
  const perInstance = signal === 'cpu' || signal === 'responseTime' ? reading.value : reading.value / Math.max(current, 1);
  const observed = round(perInstance, 4);
  const ratio = perInstance / target.target;
  const base = Math.max(current, 1);
  if (ratio > 1 + policy.tolerance) {
    // Queue length and response time grow without bound near saturation, far faster than the
    // instances needed: their proposals at most double the pool per decision. CPU and request
    // rate scale with the load, so their proportion is used as it is.
    const nonLinear = signal === 'queue' || signal === 'responseTime';
    const replicas = Math.ceil(base * (nonLinear ? Math.min(ratio, NON_LINEAR_MAX_FACTOR) : ratio));
    return { signal, status: 'ok', observed, replicas, reason: `${observed} > target ${target.target}: ${replicas}` };
  }
  if (perInstance < target.scaleDownBelow) {
    // Size so that the remaining instances stay under the target, never under one.
    const replicas = Math.max(1, Math.ceil(base * ratio));
    return { signal, status: 'ok', observed, replicas, reason: `${observed} < ${target.scaleDownBelow}: ${replicas} suffice` };
  }
  return { signal, status: 'ok', observed, replicas: current, reason: `${observed} within ${target.scaleDownBelow}..${target.target}: hold` };
}

function allowance(limit: RateLimit, current: number, changes: History['changes'], now: number, direction: 'up' | 'down'): number {
  const budget = Math.max(limit.instances, Math.floor(current * limit.fraction));
  const used = changes
    .filter((c) => c.at > now - limit.periodMs)
    .reduce((sum, c) => sum + (direction === 'up' ? Math.max(0, c.to - c.from) : Math.max(0, c.from - c.to)), 0);
  return Math.max(0, budget - used);
}

function validatePolicy(policy: ScalingPolicy): void {
  if (!(policy.minReplicas >= 0 && policy.maxReplicas >= policy.minReplicas)) {
    throw new Error(`policy: minReplicas ${policy.minReplicas} and maxReplicas ${policy.maxReplicas} must satisfy 0 <= min <= max`);
  }
  for (const [signal, target] of Object.entries(policy.signals)) {
    if (!(target.target > 0 && target.scaleDownBelow >= 0 && target.scaleDownBelow <= target.target)) {
      throw new Error(`policy: ${signal} needs target > 0 and 0 <= scaleDownBelow <= target`);
    }
  }
}
