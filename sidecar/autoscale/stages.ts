// The stages of the autoscaling decision, each a small pure function that takes its inputs and
// returns its value and its reason (and any state the next decision needs), as the Kubernetes HPA
// controller splits its own (computeReplicasForMetrics, stabilizeRecommendation…,
// calculateScaleUpLimit…). decide() in policy.ts only runs them in order and records each one.
// Every function here trusts a policy that validatePolicy accepted.
import { forecastParts, observe, type ForecastState } from './forecast.js';
import type { DemandSettings, History, RateLimit, Reading, Samples, ScalingPolicy, SignalName, SignalProposal, SignalTarget, Stage } from './types.js';

/** What a stage decided: the replica count it hands on, and why. */
export interface StageResult {
  readonly value: number;
  readonly reason: string;
}

export const SIGNALS: readonly SignalName[] = ['cpu', 'requestRate', 'queue', 'responseTime'];

/** The most a queue or response-time proposal multiplies the pool by in one decision. */
export const NON_LINEAR_MAX_FACTOR = 2;
/** Recommendations and predictions the history keeps at most. */
const KEEP_RECOMMENDATIONS = 500;
const KEEP_PREDICTIONS = 200;

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));

/** A reading no older than maxSampleAgeMs at `now`. */
const isFresh = (reading: Reading, maxSampleAgeMs: number, now: number): boolean => now - reading.at <= maxSampleAgeMs;

export interface DemandEstimate {
  readonly reason: string;
  /** The request rate the signals size for: the counted rate, or the estimated demand when higher. */
  readonly requestRate: Reading | undefined;
  /** Requests arriving per second (counted rate plus in-flight growth), without the backlog's share. */
  readonly arrivals: Reading | undefined;
}

/**
 * Stage `demand`. HAProxy counts a request in its backend's request counter when the request
 * ends, so a saturated pool's request rate is what it manages to serve, not what arrives: the
 * arrivals are that rate plus the growth of the requests in flight (queued in HAProxy or waiting
 * at the servers). Requests in flight beyond what the pool would hold at the response-time target
 * are a backlog; it keeps growing until new instances serve (the start-up time), and the pool is
 * sized to clear it within backlogDrainMs on top of the arrivals. The estimate may raise the
 * request rate the signals see, never lower it, and missing or stale figures leave it alone.
 */
export function estimateDemand(
  samples: Samples,
  settings: Pick<ScalingPolicy, 'demand' | 'maxSampleAgeMs' | 'signals'>,
  now: number,
): DemandEstimate {
  const rate = samples.requestRate;
  if (rate === undefined || !isFresh(rate, settings.maxSampleAgeMs, now)) {
    return { reason: 'no fresh request rate: nothing to estimate', requestRate: rate, arrivals: rate };
  }
  const fresh = (r: Reading | undefined): number | undefined => (r !== undefined && isFresh(r, settings.maxSampleAgeMs, now) ? r.value : undefined);
  const growth = fresh(samples.inFlightGrowth);
  const inFlight = fresh(samples.inFlight);
  if (growth === undefined && inFlight === undefined) {
    return { reason: `no in-flight figures: the counted ${round(rate.value, 2)} req/s stands`, requestRate: rate, arrivals: rate };
  }
  const arrivals = Math.max(0, rate.value + (growth ?? 0));
  const rtTarget = settings.signals.responseTime?.target;
  const { startupMs, backlogDrainMs } = settings.demand;
  let backlog = 0;
  if (inFlight !== undefined && rtTarget !== undefined && backlogDrainMs > 0) {
    // Little's law: at the target response time the pool holds arrivals × target requests.
    const excess = Math.max(0, inFlight - arrivals * rtTarget);
    // Only a pool with a backlog is saturated: its backlog grows at the in-flight growth until
    // new instances serve. Without one, a growth is a rising load, counted in the arrivals.
    backlog = excess > 0 ? excess + Math.max(0, growth ?? 0) * (startupMs / 1000) : 0;
  }
  const demand = arrivals + (backlogDrainMs > 0 ? backlog / (backlogDrainMs / 1000) : 0);
  const counted = `${round(rate.value, 2)} req/s ended`;
  const inflow = growth === undefined ? '' : ` ${growth >= 0 ? '+' : '−'} ${round(Math.abs(growth), 2)}/s more in flight`;
  const arrived = { value: round(arrivals, 3), at: rate.at };
  if (demand <= rate.value) {
    return { reason: `${counted}${inflow}: the counted rate stands`, requestRate: rate, arrivals: arrived };
  }
  const backlogPart = backlog > 0 ? `; a backlog of ${Math.round(backlog)} by the time new instances serve, cleared within ${backlogDrainMs / 1000} s` : '';
  return {
    reason: `${counted}${inflow}${backlogPart}: sized for ${round(demand, 2)} req/s`,
    requestRate: { value: round(demand, 3), at: rate.at },
    arrivals: arrived,
  };
}

/** How far over its target a request rate must be, in tolerances, to be a breach on its own. */
export const RATE_BREACH_TOLERANCES = 2;

/**
 * A breach, as a check between evaluations may act on it: saturation (the demand estimate above
 * the counted request rate by more than the tolerance, because requests arrive faster than they
 * end, or a queue or response-time proposal above the current count), or a request rate per
 * instance beyond twice the tolerance over its target. A rate just over its target is not one: over
 * a few seconds that is mostly noise, and the next evaluation sees it.
 */
export function saturationBreach(
  counted: Reading | undefined,
  estimated: Reading | undefined,
  proposals: readonly SignalProposal[],
  settings: Pick<ScalingPolicy, 'tolerance' | 'signals'>,
  current: number,
): boolean {
  const unserved = counted !== undefined && estimated !== undefined && estimated.value > counted.value * (1 + settings.tolerance) && estimated.value - counted.value >= 1;
  const rateTarget = settings.signals.requestRate?.target;
  return (
    unserved ||
    proposals.some((p) => {
      if (p.status !== 'ok' || p.replicas <= current) return false;
      if (p.signal === 'queue' || p.signal === 'responseTime') return true;
      return p.signal === 'requestRate' && rateTarget !== undefined && (p.observed ?? 0) > rateTarget * (1 + RATE_BREACH_TOLERANCES * settings.tolerance);
    })
  );
}

export type ProposalSettings = Pick<ScalingPolicy, 'tolerance' | 'maxSampleAgeMs' | 'idleRequestRate'> & { readonly demand?: Pick<DemandSettings, 'backlogDrainMs'> };

/**
 * One signal's proposal, sized proportionally: ceil(current × observed / target). Above the
 * tolerance band it asks for more; under scaleDownBelow it allows fewer; between, it holds. A
 * missing or stale reading holds (it is never read as zero).
 */
export function proposeForSignal(signal: SignalName, target: SignalTarget, samples: Samples, settings: ProposalSettings, now: number): SignalProposal {
  const current = samples.replicas;
  const reading = samples[signal];
  if (reading === undefined) return { signal, status: 'missing', observed: undefined, replicas: current, reason: 'missing: hold' };
  // NaN or an infinity (an exporter may write either) compares false with every bound, which
  // would read as "within the band" and hold the pool without freezing it visibly: it is missing.
  if (!Number.isFinite(reading.value)) return { signal, status: 'missing', observed: undefined, replicas: current, reason: `not a number (${reading.value}): hold` };
  const age = now - reading.at;
  if (age > settings.maxSampleAgeMs) {
    return { signal, status: 'stale', observed: undefined, replicas: current, reason: `stale (${Math.round(age / 1000)} s old): hold` };
  }
  if (signal === 'responseTime') {
    const rate = samples.requestRate;
    if (rate !== undefined && isFresh(rate, settings.maxSampleAgeMs, now) && rate.value < settings.idleRequestRate) {
      return { signal, status: 'idle', observed: reading.value, replicas: 0, reason: 'backend idle: no constraint' };
    }
  }
  // Per instance for the load signals; with no instance at all, the whole load stands for one.
  const perInstance = signal === 'cpu' || signal === 'responseTime' ? reading.value : reading.value / Math.max(current, 1);
  const observed = round(perInstance, 4);
  const ratio = perInstance / target.target;
  const base = Math.max(current, 1);
  if (ratio > 1 + settings.tolerance) {
    // Queue length and response time grow without bound near saturation, far faster than the
    // instances needed: their proposals at most double the pool per decision. CPU and request
    // rate scale with the load, so their proportion is used as it is.
    const nonLinear = signal === 'queue' || signal === 'responseTime';
    const clearing = nonLinear ? backlogClearing(samples, settings, now) : undefined;
    if (clearing !== undefined) {
      // The pool already serves more than arrives and the backlog will be gone within the time it
      // is given (the demand stage's backlogDrainMs): more instances would come after it has.
      return { signal, status: 'ok', observed, replicas: current, reason: `${observed} > target ${target.target}, but ${clearing}: hold` };
    }
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

/**
 * Why a backlog needs no more instances, if it does not: the requests in flight shrink fast
 * enough to be gone within the demand stage's backlogDrainMs. Undefined when they do not, or
 * when the figures to tell are missing or stale.
 */
function backlogClearing(samples: Samples, settings: ProposalSettings, now: number): string | undefined {
  const drainMs = settings.demand?.backlogDrainMs ?? 0;
  const growth = samples.inFlightGrowth;
  const inFlight = samples.inFlight;
  if (drainMs <= 0 || growth === undefined || inFlight === undefined || !isFresh(growth, settings.maxSampleAgeMs, now) || !isFresh(inFlight, settings.maxSampleAgeMs, now)) return undefined;
  if (!(growth.value < 0)) return undefined;
  const seconds = inFlight.value / -growth.value;
  return seconds * 1000 <= drainMs ? `the ${Math.round(inFlight.value)} in flight shrink by ${round(-growth.value, 1)}/s (gone in ${Math.round(seconds)} s)` : undefined;
}

/** Stage `proposals`: every configured signal's proposal; its value is the current count (it decides nothing yet). */
export function proposeReplicas(
  samples: Samples,
  settings: ProposalSettings & Pick<ScalingPolicy, 'signals'>,
  now: number,
): StageResult & { readonly proposals: readonly SignalProposal[] } {
  const proposals = SIGNALS.flatMap((signal) => {
    const target = settings.signals[signal];
    return target === undefined ? [] : [proposeForSignal(signal, target, samples, settings, now)];
  });
  return {
    value: samples.replicas,
    reason: proposals.map((p) => `${p.signal}: ${p.reason}`).join('; ') || 'no signals configured',
    proposals,
  };
}

/**
 * Stage `largest`: the largest proposal wins. A signal in its band proposes the current count, so
 * the pool shrinks only when every signal is low; with no signal at all, hold.
 */
export function largestProposal(proposals: readonly SignalProposal[], current: number): StageResult {
  const best = proposals.reduce<SignalProposal | undefined>((a, b) => (a === undefined || b.replicas > a.replicas ? b : a), undefined);
  return best === undefined ? { value: current, reason: 'no signal: hold' } : { value: best.replicas, reason: `${best.signal} wins: ${best.reason}` };
}

/**
 * The forecaster learns from every fresh request-rate reading, whatever the forecast mode, so that
 * switching it on finds a trained state. Not a stage: it only moves the forecast state on.
 */
export function observeRequestRate(
  state: ForecastState | undefined,
  requestRate: Reading | undefined,
  settings: Pick<ScalingPolicy, 'forecast' | 'maxSampleAgeMs'>,
  now: number,
): ForecastState | undefined {
  if (requestRate === undefined || !isFresh(requestRate, settings.maxSampleAgeMs, now)) return state;
  return observe(state, requestRate.value, requestRate.at, settings.forecast.settings);
}

/**
 * Stage `forecast`: the request rate forecast over the horizon (the time a new instance needs)
 * may raise the recommendation, never lower it; in shadow mode it is recorded, not acted on.
 * Every forecast made is remembered in `predictions`, to compare with what came.
 */
export function forecastRecommendation(
  recommended: number,
  state: ForecastState | undefined,
  predictions: History['predictions'],
  settings: Pick<ScalingPolicy, 'forecast' | 'signals'>,
  now: number,
): StageResult & { readonly predicted: number | undefined; readonly predictions: History['predictions'] } {
  const { mode, horizonMs } = settings.forecast;
  const rateTarget = settings.signals.requestRate;
  if (mode === 'off' || state === undefined || rateTarget === undefined) {
    return { value: recommended, reason: mode === 'off' ? 'forecast off' : 'no request-rate history yet', predicted: undefined, predictions };
  }
  // The state was last updated at state.lastAt: look from there to `now` plus the horizon.
  const parts = forecastParts(state, horizonMs + (now - state.lastAt), settings.forecast.settings);
  const periodic = parts.periodic !== undefined && parts.periodic > parts.trend;
  const predicted = round(Math.max(parts.trend, parts.periodic ?? 0), 2);
  const remembered = [...predictions, { madeAt: now, forAt: now + horizonMs, requestRate: predicted }].slice(-KEEP_PREDICTIONS);
  const needed = Math.ceil(predicted / rateTarget.target);
  if (mode === 'act' && needed > recommended) {
    const why = periodic && parts.period !== undefined ? ` (the load repeats every ${periodText(parts.period.buckets * settings.forecast.settings.periodBucketMs)}: this is what it reached one period ago)` : '';
    return { value: needed, reason: `forecast ${predicted} req/s in ${horizonMs / 1000} s${why} needs ${needed}`, predicted, predictions: remembered };
  }
  return {
    value: recommended,
    reason:
      mode === 'shadow'
        ? `shadow: forecast ${predicted} req/s would need ${needed}; not acted on`
        : `forecast ${predicted} req/s needs ${needed}: no more than recommended (a forecast never scales in)`,
    predicted,
    predictions: remembered,
  };
}

const periodText = (ms: number): string => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${ms / 1000} s`);

/**
 * The scale-down window now. A scale-down that the pool had to take back under saturation (its
 * first scale-up after it, for a breach, above its count) shows how long the low would have had
 * to be held through: the window that scale-down had, plus the time until the pool came back.
 * The window is the longest of these up to `adaptiveWindow.maxMs` over the last `memoryMs` (a cron
 * job's teeth, bursts that come back), never shorter than the configured one: releasing instances
 * that are needed again within minutes saves little and meets the next rise a start-up late. A
 * return later than maxMs does not count: holding a pool that long costs more than a late start.
 */
export function stabilisationWindow(
  changes: History['changes'],
  settings: Pick<ScalingPolicy, 'scaleDownStabilisationMs' | 'adaptiveWindow'>,
  now: number,
): { readonly windowMs: number; readonly reason: string | undefined } {
  const base = settings.scaleDownStabilisationMs;
  const { maxMs, memoryMs } = settings.adaptiveWindow;
  let needed = base;
  let why: string | undefined;
  changes.forEach((down, i) => {
    if (down.to >= down.from) return;
    // Only the first scale-up after it, and only one the pool needed at once (saturation, a
    // breach): one the forecast made ahead of the load cost no violation, so the scale-down paid.
    const back = changes.slice(i + 1).find((c) => c.to > c.from);
    if (back === undefined || back.breach !== true || back.at < now - memoryMs || back.to <= down.to) return;
    // In whole seconds: a window is a setting one reads, not a measurement. A return later than
    // the longest window would have held through is not one this can help.
    const hold = Math.ceil(((down.windowMs ?? base) + back.at - down.at) / 1000) * 1000;
    if (hold > maxMs) return;
    if (hold > needed) {
      needed = hold;
      why = `the pool came back ${Math.round((back.at - down.at) / 1000)} s after its scale-down to ${down.to}`;
    }
  });
  return { windowMs: needed, reason: why === undefined ? undefined : `window ${needed / 1000} s, not ${base / 1000} s: ${why}` };
}

/**
 * Stage `stabilise`: a scale-down must hold for the whole window, so the highest recommendation
 * of the window wins (never above the current count); a scale-up or a hold acts at once. Returns
 * the recommendations the longest window may need, with this one, for the next decision.
 */
export function stabiliseRecommendation(
  recommended: number,
  current: number,
  recent: History['recommendations'],
  window: { readonly windowMs: number; readonly reason: string | undefined; readonly keepMs: number },
  now: number,
): StageResult & { readonly recommendations: History['recommendations'] } {
  const { windowMs } = window;
  const mine = { at: now, replicas: recommended };
  const recommendations = [...recent.filter((r) => r.at > now - Math.max(windowMs, window.keepMs)), mine].slice(-KEEP_RECOMMENDATIONS);
  if (recommended >= current) return { value: recommended, reason: 'scale-up or hold acts at once', recommendations };
  const inWindow = recommendations.filter((r) => r === mine || r.at > now - windowMs);
  const highest = Math.max(...inWindow.map((r) => r.replicas));
  const value = Math.min(current, highest);
  const lengthened = window.reason === undefined ? '' : ` (${window.reason})`;
  return {
    value,
    reason:
      value > recommended
        ? `scale-down held: ${highest} recommended within the last ${windowMs / 1000} s${lengthened}`
        : `${recommended} recommended throughout the last ${windowMs / 1000} s${lengthened}`,
    recommendations,
  };
}

/**
 * How many instances may still be added (`up`) or removed (`down`) now: the larger of the limit's
 * instances and its fraction of the current count, less what the changes of the period already used.
 */
export function rateAllowance(limit: RateLimit, current: number, changes: History['changes'], now: number, direction: 'up' | 'down'): number {
  const budget = Math.max(limit.instances, Math.floor(current * limit.fraction));
  const used = changes
    .filter((c) => c.at > now - limit.periodMs)
    .reduce((sum, c) => sum + (direction === 'up' ? Math.max(0, c.to - c.from) : Math.max(0, c.from - c.to)), 0);
  return Math.max(0, budget - used);
}

/** Stage `rateLimit`: at most so many instances added or removed per period. */
export function limitRate(
  proposed: number,
  current: number,
  changes: History['changes'],
  limits: Pick<ScalingPolicy, 'scaleUp' | 'scaleDown'>,
  now: number,
): StageResult {
  if (proposed > current) {
    const allowed = rateAllowance(limits.scaleUp, current, changes, now, 'up');
    if (proposed <= current + allowed) return { value: proposed, reason: 'within the scale-up limit' };
    return { value: current + allowed, reason: `at most ${allowed} more per ${limits.scaleUp.periodMs / 1000} s` };
  }
  if (proposed < current) {
    const allowed = rateAllowance(limits.scaleDown, current, changes, now, 'down');
    if (proposed >= current - allowed) return { value: proposed, reason: 'within the scale-down limit' };
    const period = limits.scaleDown.periodMs / 1000;
    return { value: current - allowed, reason: allowed === 0 ? `scale-down limit used for this ${period} s` : `at most ${allowed} fewer per ${period} s` };
  }
  return { value: proposed, reason: 'no change' };
}

/** Stage `clamp`: min and max. */
export function clampReplicas(proposed: number, bounds: Pick<ScalingPolicy, 'minReplicas' | 'maxReplicas'>): StageResult {
  const { minReplicas: min, maxReplicas: max } = bounds;
  const value = Math.min(max, Math.max(min, proposed));
  return {
    value,
    reason: value > proposed ? `raised to the minimum ${min}` : value < proposed ? `lowered to the maximum ${max}` : `within ${min}..${max}`,
  };
}

/**
 * Stage `safety`: a missing or stale signal, or a metrics source that is down, never lets the
 * count fall. Only the maximum may still lower it, and a minimum the pool is below is restored.
 */
export function holdOnIncompleteData(
  proposed: number,
  current: number,
  proposals: readonly SignalProposal[],
  sourceUp: boolean,
  bounds: Pick<ScalingPolicy, 'maxReplicas'>,
): StageResult & { readonly scaleDownFrozen: boolean } {
  const frozenSignals = proposals.filter((p) => p.status === 'missing' || p.status === 'stale');
  const scaleDownFrozen = !sourceUp || frozenSignals.length > 0;
  if (scaleDownFrozen && proposed < current) {
    return {
      value: Math.min(current, bounds.maxReplicas),
      reason: !sourceUp ? 'metrics source down: scale-down frozen' : `scale-down frozen: ${frozenSignals.map((p) => `${p.signal} ${p.status}`).join(', ')}`,
      scaleDownFrozen,
    };
  }
  return { value: proposed, reason: scaleDownFrozen ? 'data incomplete: scale-down would be frozen' : 'all signals fresh', scaleDownFrozen };
}

/** The stage that settled the final count: the last one that changed the count it was handed. */
export function settlingStage(stages: readonly Stage[], current: number): Stage | undefined {
  let settled: Stage | undefined;
  stages.forEach((s, i) => {
    if (s.replicas !== (stages[i - 1]?.replicas ?? current)) settled = s;
  });
  return settled;
}

/**
 * The changes the rate limits and the window's adaptation count: this decision's, if it changes
 * the count (with the scale-down window it had, and whether the pool was saturated), and those
 * of the longest time either looks back.
 */
export function rememberChange(
  changes: History['changes'],
  current: number,
  replicas: number,
  windowMs: number,
  breach: boolean,
  settings: Pick<ScalingPolicy, 'scaleUp' | 'scaleDown' | 'adaptiveWindow'>,
  now: number,
): History['changes'] {
  const all = replicas === current ? changes : [...changes, { at: now, from: current, to: replicas, windowMs, breach }];
  const keepFor = Math.max(settings.scaleUp.periodMs, settings.scaleDown.periodMs, settings.adaptiveWindow.memoryMs + settings.adaptiveWindow.maxMs);
  return all.filter((c) => c.at > now - keepFor);
}
