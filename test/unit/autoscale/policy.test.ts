import { describe, expect, it } from 'vitest';
import {
  decide,
  DEFAULT_POLICY,
  EMPTY_HISTORY,
  type History,
  type Samples,
  type ScalingPolicy,
  validatePolicy,
} from '../../../sidecar/autoscale/policy.js';
import { DEFAULT_FORECAST_SETTINGS, forecast, observe } from '../../../sidecar/autoscale/forecast.js';
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
  stabilisationWindow,
  stabiliseRecommendation,
} from '../../../sidecar/autoscale/stages.js';

const NOW = 1_800_000_000_000;
const fresh = (value: number, ageMs = 0) => ({ value, at: NOW - ageMs });
/** Only CPU and request rate, no forecast, one instance fewer per period: the original design's rule. */
const classic: ScalingPolicy = {
  ...DEFAULT_POLICY,
  signals: { cpu: { target: 0.7, scaleDownBelow: 0.3 }, requestRate: { target: 100, scaleDownBelow: 50 } },
  scaleUp: { instances: 4, fraction: 1, periodMs: 30_000 },
  scaleDown: { instances: 1, fraction: 0, periodMs: 30_000 },
  forecast: { ...DEFAULT_POLICY.forecast, mode: 'off' },
};
const samples = (replicas: number, values: Partial<Record<'cpu' | 'requestRate' | 'queue' | 'responseTime', number>>, extra: Partial<Samples> = {}): Samples => ({
  replicas,
  sourceUp: true,
  ...Object.fromEntries(Object.entries(values).map(([k, v]) => [k, fresh(v)])),
  ...extra,
});

describe('decide: proposals, tolerance, largest wins', () => {
  const cases: Array<{ name: string; input: Samples; policy?: ScalingPolicy; replicas: number; stage: string; reason: RegExp }> = [
    { name: 'in the band: hold', input: samples(4, { cpu: 0.5, requestRate: 300 }), replicas: 4, stage: 'largest', reason: /hold at 4/ },
    { name: 'within tolerance above target: hold', input: samples(4, { cpu: 0.76, requestRate: 300 }), replicas: 4, stage: 'largest', reason: /hold/ },
    { name: 'CPU over target: proportional', input: samples(4, { cpu: 0.91, requestRate: 300 }), replicas: 6, stage: 'largest', reason: /cpu wins: 0.91 > target 0.7: 6/ },
    { name: 'request rate over target: proportional', input: samples(2, { cpu: 0.5, requestRate: 500 }), replicas: 5, stage: 'largest', reason: /requestRate wins: 250 > target 100: 5/ },
    { name: 'largest of two rising signals wins', input: samples(2, { cpu: 1.4, requestRate: 500 }), replicas: 5, stage: 'largest', reason: /requestRate wins/ },
    { name: 'queue over target', input: samples(4, { cpu: 0.5, requestRate: 300, queue: 40 }), policy: { ...classic, signals: { ...classic.signals, queue: { target: 5, scaleDownBelow: 1 } } }, replicas: 8, stage: 'largest', reason: /queue wins: 10 > target 5: 8/ },
    {
      name: 'response time over target',
      input: samples(3, { cpu: 0.5, requestRate: 200, responseTime: 1.0 }),
      policy: { ...classic, signals: { ...classic.signals, responseTime: { target: 0.5, scaleDownBelow: 0.25 } } },
      replicas: 6,
      stage: 'largest',
      reason: /responseTime wins: 1 > target 0.5: 6/,
    },
    {
      name: 'a response time far over target at most doubles the pool (it grows without bound near saturation)',
      input: samples(3, { cpu: 0.5, requestRate: 200, responseTime: 12 }),
      policy: { ...classic, signals: { ...classic.signals, responseTime: { target: 0.5, scaleDownBelow: 0.25 } } },
      replicas: 6,
      stage: 'largest',
      reason: /responseTime wins: 12 > target 0.5: 6/,
    },
    { name: 'everything low: shrink, sized to stay under target (one step, rate-limited)', input: samples(6, { cpu: 0.1, requestRate: 120 }), replicas: 5, stage: 'rateLimit', reason: /at most 1 fewer per 30 s/ },
    { name: 'one signal low, the other in band: hold (the original rule needs both low)', input: samples(6, { cpu: 0.1, requestRate: 400 }), replicas: 6, stage: 'largest', reason: /hold/ },
    { name: 'max clamps', input: samples(8, { cpu: 2, requestRate: 100 }), replicas: 10, stage: 'clamp', reason: /lowered to the maximum 10/ },
    { name: 'min clamps', input: samples(1, { cpu: 0.05, requestRate: 1 }), replicas: 2, stage: 'clamp', reason: /raised to the minimum 2/ },
    { name: 'no instance at all: back to the minimum', input: samples(0, { cpu: 0, requestRate: 0 }), replicas: 2, stage: 'clamp', reason: /minimum/ },
  ];
  it.each(cases)('$name', ({ input, policy, replicas, stage, reason }) => {
    const decision = decide(input, EMPTY_HISTORY, policy ?? classic, NOW);
    expect(decision.replicas).toBe(replicas);
    expect(decision.stage).toBe(stage);
    expect(decision.reason).toMatch(reason);
  });

  it('explains every stage in order', () => {
    const decision = decide(samples(4, { cpu: 0.91, requestRate: 300 }), EMPTY_HISTORY, classic, NOW);
    expect(decision.stages.map((s) => `${s.stage}=${s.replicas}`)).toEqual([
      'demand=4',
      'proposals=4',
      'largest=6',
      'forecast=6',
      'stabilise=6',
      'rateLimit=6',
      'clamp=6',
      'safety=6',
    ]);
    expect(decision.proposals.map((p) => [p.signal, p.status, p.observed, p.replicas])).toEqual([
      ['cpu', 'ok', 0.91, 6],
      ['requestRate', 'ok', 75, 4],
    ]);
    expect(decision.direction).toBe('up');
  });
});

describe('decide: missing and stale data never scale down', () => {
  it.each([
    { name: 'a missing signal', input: samples(6, { cpu: 0.1 }), frozen: /requestRate wins: missing: hold/ },
    { name: 'a stale signal', input: { ...samples(6, { cpu: 0.1 }), requestRate: fresh(10, 120_000) }, frozen: /requestRate wins: stale \(120 s old\): hold/ },
  ])('$name holds the count: it proposes no change', ({ input, frozen }) => {
    const decision = decide(input, EMPTY_HISTORY, classic, NOW);
    expect(decision.replicas).toBe(6);
    expect(decision.scaleDownFrozen).toBe(true);
    expect(decision.reason).toMatch(frozen);
  });

  it('the metrics source down freezes a scale-down every signal would allow', () => {
    const decision = decide(samples(6, { cpu: 0.1, requestRate: 10 }, { sourceUp: false }), EMPTY_HISTORY, { ...classic, scaleDownStabilisationMs: 0 }, NOW);
    expect(decision.stages.find((s) => s.stage === 'clamp')?.replicas).toBe(5);
    expect(decision.replicas).toBe(6);
    expect(decision.scaleDownFrozen).toBe(true);
    expect(decision.stage).toBe('safety');
    expect(decision.reason).toBe('metrics source down: scale-down frozen');
  });

  it('still scales up on the fresh signals when another is missing', () => {
    const decision = decide(samples(2, { cpu: 1.4 }), EMPTY_HISTORY, classic, NOW);
    expect(decision.replicas).toBe(4);
    expect(decision.scaleDownFrozen).toBe(true);
  });

  it('a missing signal is never read as zero', () => {
    const decision = decide(samples(4, { cpu: 0.5 }), EMPTY_HISTORY, classic, NOW);
    expect(decision.proposals.find((p) => p.signal === 'requestRate')).toEqual({ signal: 'requestRate', status: 'missing', observed: undefined, replicas: 4, reason: 'missing: hold' });
  });

  it('an idle backend does not let a stale average response time hold the pool', () => {
    const policy = { ...classic, signals: { ...classic.signals, responseTime: { target: 0.5, scaleDownBelow: 0.25 } } };
    const decision = decide(samples(3, { cpu: 0.05, requestRate: 0, responseTime: 0.9 }), EMPTY_HISTORY, policy, NOW);
    expect(decision.replicas).toBe(2);
  });
});

describe('decide: stabilisation and rate limits', () => {
  const history = (recommendations: Array<[number, number]>, changes: Array<[number, number, number]> = []): History => ({
    ...EMPTY_HISTORY,
    recommendations: recommendations.map(([ago, replicas]) => ({ at: NOW - ago, replicas })),
    changes: changes.map(([ago, from, to]) => ({ at: NOW - ago, from, to })),
  });

  it('holds a scale-down while a higher recommendation is in the window', () => {
    const decision = decide(samples(6, { cpu: 0.1, requestRate: 120 }), history([[60_000, 6], [30_000, 4]]), classic, NOW);
    expect(decision.replicas).toBe(6);
    expect(decision.stage).toBe('stabilise');
    expect(decision.reason).toMatch(/scale-down held: 6 recommended within the last 120 s/);
  });

  it('scales down once the window holds only lower recommendations', () => {
    const decision = decide(samples(6, { cpu: 0.1, requestRate: 120 }), history([[130_000, 6], [60_000, 4], [30_000, 3]]), classic, NOW);
    expect(decision.stages.find((s) => s.stage === 'stabilise')?.replicas).toBe(4);
    expect(decision.replicas).toBe(5); // then the scale-down limit: one per 30 s
  });

  it('acts on a scale-up at once, whatever the window says', () => {
    const decision = decide(samples(2, { cpu: 1.4, requestRate: 100 }), history([[10_000, 2]]), classic, NOW);
    expect(decision.replicas).toBe(4);
  });

  it('limits scale-up per period, counting changes already made', () => {
    const decision = decide(samples(4, { cpu: 2.8, requestRate: 100 }), history([], [[10_000, 2, 4]]), { ...classic, scaleUp: { instances: 4, fraction: 0, periodMs: 30_000 } }, NOW);
    expect(decision.replicas).toBe(6);
    expect(decision.reason).toMatch(/at most 2 more per 30 s/);
  });

  it('waits for the next period when the scale-down budget is used', () => {
    const decision = decide(samples(5, { cpu: 0.05, requestRate: 20 }), history([], [[10_000, 6, 5]]), { ...classic, scaleDownStabilisationMs: 0 }, NOW);
    expect(decision.replicas).toBe(5);
    expect(decision.reason).toMatch(/scale-down limit used/);
  });

  it('records the change in the returned history (its window, whether for a breach) and forgets what is older than the periods', () => {
    const decision = decide(samples(4, { cpu: 0.91, requestRate: 300 }), history([], [[100_000, 2, 4]]), { ...classic, adaptiveWindow: { maxMs: 0, memoryMs: 0 } }, NOW);
    // CPU over target is no breach (a breach is saturation, or a request rate far over target).
    expect(decision.history.changes).toEqual([{ at: NOW, from: 4, to: 6, windowMs: 120_000, breach: false }]);
  });

  it('lengthens the window where a scale-down had to be taken back under saturation', () => {
    const returned: History = {
      ...history([[150_000, 6]]),
      changes: [
        { at: NOW - 400_000, from: 6, to: 3, windowMs: 120_000, breach: false },
        { at: NOW - 320_000, from: 3, to: 6, windowMs: 120_000, breach: true },
      ],
    };
    const decision = decide(samples(6, { cpu: 0.1, requestRate: 120 }), returned, classic, NOW);
    expect(decision.replicas).toBe(6);
    expect(decision.reason).toBe('scale-down held: 6 recommended within the last 200 s (window 200 s, not 120 s: the pool came back 80 s after its scale-down to 3)');
  });
});

describe('decide: forecast', () => {
  const ramp = (policy: ScalingPolicy, steps: number, perStep: number, start = 50): { history: History; last: number } => {
    let history = EMPTY_HISTORY;
    let last = start;
    for (let i = 0; i < steps; i++) {
      const at = NOW - (steps - 1 - i) * 10_000;
      last = start + perStep * i;
      history = decide({ replicas: 4, sourceUp: true, cpu: { value: 0.5, at }, requestRate: { value: last, at } }, history, policy, at).history;
    }
    return { history, last };
  };
  const predictive: ScalingPolicy = { ...classic, forecast: { ...DEFAULT_POLICY.forecast, mode: 'act', horizonMs: 60_000 } };

  it('predicts a linear ramp', () => {
    let state = undefined as ReturnType<typeof observe> | undefined;
    for (let i = 0; i < 30; i++) state = observe(state, 100 + 5 * i, NOW + i * 10_000);
    if (state === undefined) throw new Error('no state');
    // 5 req/s more every 10 s: 60 s ahead is 30 req/s more than the last observation (245).
    // Holt's trend lags a little behind a ramp; within 3 % is the prediction we rely on.
    expect(forecast(state, 60_000)).toBeGreaterThan(275 * 0.97);
    expect(forecast(state, 60_000)).toBeLessThan(275 * 1.03);
  });

  it('scales up ahead of a ramp, before the current load needs it', () => {
    const { history } = ramp(predictive, 20, 10, 200); // 200 → 390 req/s over 190 s, 4 instances
    const decision = decide({ replicas: 4, sourceUp: true, cpu: fresh(0.5), requestRate: fresh(400) }, history, predictive, NOW + 10_000);
    // 400 req/s on 4 instances is on target; the forecast (~460 req/s in 60 s) needs 5.
    expect(decision.proposals.every((p) => p.replicas <= 4)).toBe(true);
    expect(decision.replicas).toBe(5);
    expect(decision.stage).toBe('forecast');
    expect(decision.predictedRequestRate).toBeGreaterThan(440);
  });

  it('never scales in on a forecast: a falling forecast leaves the recommendation alone', () => {
    const { history } = ramp(predictive, 20, -15, 390); // falling fast
    const decision = decide({ replicas: 4, sourceUp: true, cpu: fresh(0.5), requestRate: fresh(100 * 4 * 0.8) }, history, predictive, NOW + 10_000);
    expect(decision.replicas).toBe(4);
    expect(decision.stages.find((s) => s.stage === 'forecast')?.reason).toMatch(/never scales in/);
  });

  it('shadow mode records the forecast without acting on it', () => {
    const shadow: ScalingPolicy = { ...predictive, forecast: { ...predictive.forecast, mode: 'shadow' } };
    const { history } = ramp(shadow, 20, 10, 200);
    const decision = decide({ replicas: 4, sourceUp: true, cpu: fresh(0.5), requestRate: fresh(400) }, history, shadow, NOW + 10_000);
    expect(decision.replicas).toBe(4);
    expect(decision.stages.find((s) => s.stage === 'forecast')?.reason).toMatch(/^shadow: forecast .* would need 5; not acted on$/);
    expect(decision.history.predictions.at(-1)).toMatchObject({ madeAt: NOW + 10_000, forAt: NOW + 70_000 });
  });

  it('uses a daily profile once a day has been seen', () => {
    // Busy from 12:00 to 13:00 UTC every day, quiet otherwise; observations every 5 minutes for 3 days.
    const day0 = Date.UTC(2026, 10, 1);
    let state = undefined as ReturnType<typeof observe> | undefined;
    for (let t = day0; t < day0 + 3 * 86_400_000 - 3_600_000 * 12.5; t += 300_000) {
      const hour = new Date(t).getUTCHours();
      state = observe(state, hour === 12 ? 500 : 50, t);
    }
    if (state === undefined) throw new Error('no state');
    // It is now 11:30 on day 3: one hour ahead lies the busy hour.
    expect(new Date(state.lastAt).getUTCHours()).toBe(11);
    expect(forecast(state, 45 * 60_000)).toBeGreaterThan(250);
  });
});

describe('decide: misuse', () => {
  it('throws on a policy that cannot be satisfied', () => {
    expect(() => decide(samples(2, { cpu: 0.5 }), EMPTY_HISTORY, { ...classic, minReplicas: 5, maxReplicas: 3 }, NOW)).toThrow(/min <= max/);
    expect(() => decide(samples(2, { cpu: 0.5 }), EMPTY_HISTORY, { ...classic, signals: { cpu: { target: 0.3, scaleDownBelow: 0.7 } } }, NOW)).toThrow(/cpu needs/);
  });
});

describe('decide: composes the stages', () => {
  const history: History = {
    ...EMPTY_HISTORY,
    recommendations: [{ at: NOW - 60_000, replicas: 5 }],
    changes: [{ at: NOW - 10_000, from: 5, to: 6 }],
  };
  const predictive: ScalingPolicy = { ...DEFAULT_POLICY, scaleDownStabilisationMs: 30_000 };
  it.each([
    { name: 'a scale-up', input: samples(4, { cpu: 0.91, requestRate: 300, queue: 2, responseTime: 0.3 }) },
    { name: 'a scale-down the rate limit holds', input: samples(6, { cpu: 0.1, requestRate: 60, queue: 0, responseTime: 0.1 }) },
    { name: 'a scale-down frozen by a missing signal', input: samples(6, { cpu: 0.1, requestRate: 60 }) },
    { name: 'the metrics source down', input: samples(3, { cpu: 0.1, requestRate: 60, queue: 0, responseTime: 0.1 }, { sourceUp: false }) },
    {
      name: 'a saturated pool: demand over what it serves',
      input: samples(2, { cpu: 1, requestRate: 280, queue: 0, responseTime: 0.4 }, { inFlight: fresh(900), inFlightGrowth: fresh(450) }),
    },
  ])('$name: each stage as its function returns it, in order', ({ input }) => {
    const decision = decide(input, history, predictive, NOW);
    const demand = estimateDemand(input, predictive, NOW);
    const proposed = proposeReplicas({ ...input, requestRate: demand.requestRate }, predictive, NOW);
    const largest = largestProposal(proposed.proposals, input.replicas);
    const state = observeRequestRate(history.forecast, demand.arrivals, predictive, NOW);
    const forecasted = forecastRecommendation(largest.value, state, history.predictions, predictive, NOW);
    const window = stabilisationWindow(history.changes, predictive, NOW);
    const stabilised = stabiliseRecommendation(forecasted.value, input.replicas, history.recommendations, { ...window, keepMs: predictive.adaptiveWindow.maxMs }, NOW);
    const limited = limitRate(stabilised.value, input.replicas, history.changes, predictive, NOW);
    const clamped = clampReplicas(limited.value, predictive);
    const safe = holdOnIncompleteData(clamped.value, input.replicas, proposed.proposals, input.sourceUp, predictive);
    expect(decision.stages.map((s) => [s.stage, s.replicas, s.reason])).toEqual(
      [{ value: input.replicas, reason: demand.reason }, proposed, largest, forecasted, stabilised, limited, clamped, safe].map((r, i) => [
        ['demand', 'proposals', 'largest', 'forecast', 'stabilise', 'rateLimit', 'clamp', 'safety'][i],
        r.value,
        r.reason,
      ]),
    );
    expect(decision.replicas).toBe(safe.value);
    expect(decision.scaleDownFrozen).toBe(safe.scaleDownFrozen);
    expect(decision.proposals).toEqual(proposed.proposals);
    expect(decision.predictedRequestRate).toBe(forecasted.predicted);
    expect(decision.history.forecast).toEqual(state);
    expect(decision.history.recommendations).toEqual(stabilised.recommendations);
    expect(decision.history.changes).toEqual(rememberChange(history.changes, input.replicas, safe.value, window.windowMs, decision.breach, predictive, NOW));
  });

  it('is pure: frozen inputs, and the same inputs give the same decision', () => {
    const freeze = <T>(value: T): T => {
      if (value !== null && typeof value === 'object') {
        for (const inner of Object.values(value)) freeze(inner);
        Object.freeze(value);
      }
      return value;
    };
    const input = freeze(samples(6, { cpu: 0.1, requestRate: 60 }));
    const policy = freeze({ ...DEFAULT_POLICY, forecast: { ...DEFAULT_POLICY.forecast, settings: { ...DEFAULT_FORECAST_SETTINGS } } });
    const first = decide(input, freeze(history), policy, NOW);
    expect(decide(input, history, policy, NOW)).toEqual(first);
    const next = decide(input, freeze(first.history), policy, NOW + 30_000);
    expect(next.history.recommendations).toHaveLength(3);
  });
});

describe('validatePolicy', () => {
  it('accepts the default policy and the tests\' own', () => {
    expect(() => validatePolicy(DEFAULT_POLICY)).not.toThrow();
    expect(() => validatePolicy(classic)).not.toThrow();
    expect(() => validatePolicy({ ...classic, minReplicas: 0, maxReplicas: 0, tolerance: 0, scaleDownStabilisationMs: 0, signals: {} })).not.toThrow();
  });

  it.each([
    { name: 'min above max', policy: { ...classic, minReplicas: 5, maxReplicas: 3 }, message: /min <= max/ },
    { name: 'a negative min', policy: { ...classic, minReplicas: -1 }, message: /min <= max/ },
    { name: 'a fractional max', policy: { ...classic, maxReplicas: 2.5 }, message: /whole numbers/ },
    { name: 'scaleDownBelow above target', policy: { ...classic, signals: { cpu: { target: 0.3, scaleDownBelow: 0.7 } } }, message: /cpu needs target > 0/ },
    { name: 'a zero target', policy: { ...classic, signals: { queue: { target: 0, scaleDownBelow: 0 } } }, message: /queue needs target > 0/ },
    { name: 'a negative tolerance', policy: { ...classic, tolerance: -0.1 }, message: /tolerance must be a finite number >= 0/ },
    { name: 'a NaN sample age', policy: { ...classic, maxSampleAgeMs: Number.NaN }, message: /maxSampleAgeMs/ },
    { name: 'a negative horizon', policy: { ...classic, forecast: { ...classic.forecast, horizonMs: -1 } }, message: /forecast.horizonMs/ },
    { name: 'a fractional rate limit', policy: { ...classic, scaleUp: { instances: 1.5, fraction: 0, periodMs: 30_000 } }, message: /scaleUp needs whole instances/ },
    { name: 'a negative scale-down fraction', policy: { ...classic, scaleDown: { instances: 1, fraction: -1, periodMs: 30_000 } }, message: /scaleDown needs/ },
    { name: 'a daily weight above one', policy: { ...classic, forecast: { ...classic.forecast, settings: { ...DEFAULT_FORECAST_SETTINGS, gamma: 1.5 } } }, message: /forecast.settings/ },
    { name: 'a negative time constant', policy: { ...classic, forecast: { ...classic.forecast, settings: { ...DEFAULT_FORECAST_SETTINGS, trendSeconds: -1 } } }, message: /time constants/ },
    { name: 'no period bucket', policy: { ...classic, forecast: { ...classic.forecast, settings: { ...DEFAULT_FORECAST_SETTINGS, periodBucketMs: 0 } } }, message: /periodBucketMs/ },
    { name: 'a negative adaptive window', policy: { ...classic, adaptiveWindow: { maxMs: -1, memoryMs: 0 } }, message: /adaptiveWindow.maxMs/ },
    { name: 'no daily buckets', policy: { ...classic, forecast: { ...classic.forecast, settings: { ...DEFAULT_FORECAST_SETTINGS, seasonalBuckets: 0 } } }, message: /seasonalBuckets/ },
  ])('rejects $name', ({ policy, message }) => {
    expect(() => validatePolicy(policy)).toThrow(message);
    expect(() => decide(samples(4, { cpu: 0.5, requestRate: 300 }), EMPTY_HISTORY, policy, NOW)).toThrow(message);
  });
});

describe('decide: the default policy sizes steps and steps down fast, still safely', () => {
  const reactive: ScalingPolicy = { ...DEFAULT_POLICY, forecast: { ...DEFAULT_POLICY.forecast, mode: 'off' } };
  const noWindow: ScalingPolicy = { ...reactive, scaleDownStabilisationMs: 0 };
  const all = (replicas: number, cpu: number, requestRate: number, extra: Partial<Samples> = {}) =>
    samples(replicas, { cpu, requestRate, queue: 0, responseTime: 0.05 }, extra);
  it.each([
    { name: 'a saturated pool of 2 is sized for its demand and backlog in one decision (up to 5×)', input: all(2, 1, 280, { inFlight: fresh(900), inFlightGrowth: fresh(450) }), policy: reactive, replicas: 10, breach: true },
    { name: 'the same throughput without in-flight growth is only its rate (40 % over target: a breach)', input: all(2, 1, 280, { inFlight: fresh(20), inFlightGrowth: fresh(0) }), policy: reactive, replicas: 3, breach: true },
    { name: 'a rate just over target is no breach', input: all(2, 0.6, 230, { inFlight: fresh(20), inFlightGrowth: fresh(0) }), policy: reactive, replicas: 3, breach: false },
    { name: 'an overshoot steps down once every signal is a tolerance and a half under target', input: all(10, 0.55, 800), policy: noWindow, replicas: 8, breach: false },
    { name: 'in the band (85..110 req/s per instance) it holds', input: all(10, 0.62, 880), policy: noWindow, replicas: 10, breach: false },
    { name: 'after a burst: half the pool per period', input: all(10, 0.1, 120), policy: noWindow, replicas: 5, breach: false },
    { name: 'the stabilisation window still holds a step-down', input: all(10, 0.1, 120), policy: reactive, replicas: 10, breach: false },
  ])('$name', ({ input, policy, replicas, breach }) => {
    const history = policy === reactive ? { ...EMPTY_HISTORY, recommendations: [{ at: NOW - 60_000, replicas: 10 }] } : EMPTY_HISTORY;
    const decision = decide(input, history, policy, NOW);
    expect(decision.replicas).toBe(replicas);
    expect(decision.breach).toBe(breach);
  });

  it('never scales in on missing data, however fast the step-down', () => {
    const decision = decide(samples(10, { cpu: 0.1, requestRate: 120 }), EMPTY_HISTORY, noWindow, NOW);
    expect(decision.replicas).toBe(10);
    expect(decision.scaleDownFrozen).toBe(true);
  });
});
