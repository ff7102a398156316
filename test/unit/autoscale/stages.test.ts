// Each stage of the decision on its own, table-driven: its value and its reason.
import { describe, expect, it } from 'vitest';
import { DEFAULT_POLICY, type History, type Reading, type Samples, type SignalProposal, type Stage } from '../../../sidecar/autoscale/policy.js';
import type { ForecastState } from '../../../sidecar/autoscale/forecast.js';
import {
  clampReplicas,
  estimateDemand,
  forecastRecommendation,
  holdOnIncompleteData,
  largestProposal,
  limitRate,
  observeRequestRate,
  proposeForSignal,
  proposeReplicas,
  rateAllowance,
  rememberChange,
  saturationBreach,
  settlingStage,
  SIGNALS,
  stabilisationWindow,
  stabiliseRecommendation,
} from '../../../sidecar/autoscale/stages.js';

const NOW = 1_800_000_000_000;
const at = (value: number, ageMs = 0): Reading => ({ value, at: NOW - ageMs });
const settings = { tolerance: 0.1, maxSampleAgeMs: 90_000, idleRequestRate: 1 };
const cpu = { target: 0.7, scaleDownBelow: 0.3 };
const rps = { target: 100, scaleDownBelow: 50 };
const queue = { target: 5, scaleDownBelow: 1 };
const rt = { target: 0.5, scaleDownBelow: 0.25 };
const samples = (replicas: number, readings: Partial<Pick<Samples, 'cpu' | 'requestRate' | 'queue' | 'responseTime'>>, sourceUp = true): Samples => ({ replicas, sourceUp, ...readings });
const proposal = (signal: SignalProposal['signal'], replicas: number, status: SignalProposal['status'] = 'ok'): SignalProposal => ({
  signal,
  status,
  observed: status === 'ok' ? 1 : undefined,
  replicas,
  reason: `${signal} says ${replicas}`,
});

describe('proposeForSignal', () => {
  const cases: Array<{ name: string; signal: SignalProposal['signal']; target: typeof cpu; input: Samples; status: string; observed: number | undefined; replicas: number; reason: string }> = [
    { name: 'missing: holds, never read as zero', signal: 'cpu', target: cpu, input: samples(6, {}), status: 'missing', observed: undefined, replicas: 6, reason: 'missing: hold' },
    { name: 'not a number (an exporter may write NaN): missing, so it freezes a scale-down instead of holding as "within"', signal: 'responseTime', target: rt, input: samples(6, { responseTime: at(NaN) }), status: 'missing', observed: undefined, replicas: 6, reason: 'not a number (NaN): hold' },
    { name: 'an infinity is no reading either', signal: 'cpu', target: cpu, input: samples(6, { cpu: at(Infinity) }), status: 'missing', observed: undefined, replicas: 6, reason: 'not a number (Infinity): hold' },
    { name: 'stale: holds, with its age', signal: 'cpu', target: cpu, input: samples(6, { cpu: at(0.05, 120_000) }), status: 'stale', observed: undefined, replicas: 6, reason: 'stale (120 s old): hold' },
    { name: 'exactly maxSampleAgeMs old is still fresh', signal: 'cpu', target: cpu, input: samples(4, { cpu: at(0.5, 90_000) }), status: 'ok', observed: 0.5, replicas: 4, reason: '0.5 within 0.3..0.7: hold' },
    { name: 'CPU over target: proportional', signal: 'cpu', target: cpu, input: samples(4, { cpu: at(0.91) }), status: 'ok', observed: 0.91, replicas: 6, reason: '0.91 > target 0.7: 6' },
    { name: 'within the tolerance above target: hold', signal: 'cpu', target: cpu, input: samples(4, { cpu: at(0.76) }), status: 'ok', observed: 0.76, replicas: 4, reason: '0.76 within 0.3..0.7: hold' },
    { name: 'request rate is per instance', signal: 'requestRate', target: rps, input: samples(2, { requestRate: at(500) }), status: 'ok', observed: 250, replicas: 5, reason: '250 > target 100: 5' },
    { name: 'low request rate: sized to stay under target', signal: 'requestRate', target: rps, input: samples(6, { requestRate: at(120) }), status: 'ok', observed: 20, replicas: 2, reason: '20 < 50: 2 suffice' },
    { name: 'a scale-down never proposes fewer than one', signal: 'requestRate', target: rps, input: samples(6, { requestRate: at(0) }), status: 'ok', observed: 0, replicas: 1, reason: '0 < 50: 1 suffice' },
    { name: 'no instance at all: the whole load stands for one', signal: 'requestRate', target: rps, input: samples(0, { requestRate: at(300) }), status: 'ok', observed: 300, replicas: 3, reason: '300 > target 100: 3' },
    { name: 'queue over target, within the cap', signal: 'queue', target: queue, input: samples(4, { queue: at(28) }), status: 'ok', observed: 7, replicas: 6, reason: '7 > target 5: 6' },
    { name: 'queue far over target: at most double', signal: 'queue', target: queue, input: samples(4, { queue: at(400) }), status: 'ok', observed: 100, replicas: 8, reason: '100 > target 5: 8' },
    { name: 'response time far over target: at most double', signal: 'responseTime', target: rt, input: samples(3, { responseTime: at(12), requestRate: at(200) }), status: 'ok', observed: 12, replicas: 6, reason: '12 > target 0.5: 6' },
    { name: 'response time of an idle backend: no constraint', signal: 'responseTime', target: rt, input: samples(3, { responseTime: at(0.9), requestRate: at(0) }), status: 'idle', observed: 0.9, replicas: 0, reason: 'backend idle: no constraint' },
    { name: 'a stale request rate does not make the backend idle', signal: 'responseTime', target: rt, input: samples(3, { responseTime: at(0.9), requestRate: at(0, 120_000) }), status: 'ok', observed: 0.9, replicas: 6, reason: '0.9 > target 0.5: 6' },
    { name: 'no request rate at all does not make the backend idle', signal: 'responseTime', target: rt, input: samples(3, { responseTime: at(0.1) }), status: 'ok', observed: 0.1, replicas: 1, reason: '0.1 < 0.25: 1 suffice' },
  ];
  it.each(cases)('$name', ({ signal, target, input, status, observed, replicas, reason }) => {
    expect(proposeForSignal(signal, target, input, settings, NOW)).toEqual({ signal, status, observed, replicas, reason });
  });
});

describe('proposeForSignal: a backlog that clears by itself', () => {
  const withDrain = { ...settings, demand: { backlogDrainMs: 30_000 } };
  const backlog = (inFlight: number, growth: number): Samples => ({ ...samples(4, { queue: at(28), responseTime: at(1.2) }), inFlight: at(inFlight), inFlightGrowth: at(growth) });
  it.each([
    { name: 'the queue shrinks fast enough to be gone within backlogDrainMs: hold', signal: 'queue' as const, target: queue, input: backlog(300, -20), replicas: 4, reason: '7 > target 5, but the 300 in flight shrink by 20/s (gone in 15 s): hold' },
    { name: 'the response time too', signal: 'responseTime' as const, target: rt, input: backlog(300, -20), replicas: 4, reason: '1.2 > target 0.5, but the 300 in flight shrink by 20/s (gone in 15 s): hold' },
    { name: 'shrinking too slowly: the proposal stands', signal: 'queue' as const, target: queue, input: backlog(300, -5), replicas: 6, reason: '7 > target 5: 6' },
    { name: 'growing: the proposal stands', signal: 'queue' as const, target: queue, input: backlog(300, 5), replicas: 6, reason: '7 > target 5: 6' },
  ])('$name', ({ signal, target, input, replicas, reason }) => {
    expect(proposeForSignal(signal, target, input, withDrain, NOW)).toMatchObject({ replicas, reason });
  });

  it('not without backlogDrainMs, and not for CPU or the request rate', () => {
    expect(proposeForSignal('queue', queue, backlog(300, -20), settings, NOW).replicas).toBe(6);
    expect(proposeForSignal('cpu', cpu, { ...backlog(300, -20), cpu: at(0.91) }, withDrain, NOW).replicas).toBe(6);
  });
});

describe('proposeReplicas (stage proposals)', () => {
  it.each([
    {
      name: 'one proposal per configured signal, in SIGNALS order; the stage keeps the current count',
      signals: { responseTime: rt, cpu },
      input: samples(4, { cpu: at(0.91), responseTime: at(0.4), requestRate: at(300) }),
      reason: 'cpu: 0.91 > target 0.7: 6; responseTime: 0.4 within 0.25..0.5: hold',
      proposed: ['cpu', 'responseTime'],
    },
    { name: 'no signal configured', signals: {}, input: samples(4, { cpu: at(0.91) }), reason: 'no signals configured', proposed: [] },
    { name: 'a configured signal without a reading is proposed as missing', signals: { requestRate: rps }, input: samples(4, {}), reason: 'requestRate: missing: hold', proposed: ['requestRate'] },
  ])('$name', ({ signals, input, reason, proposed }) => {
    const result = proposeReplicas(input, { ...settings, signals }, NOW);
    expect(result.value).toBe(4);
    expect(result.reason).toBe(reason);
    expect(result.proposals.map((p) => p.signal)).toEqual(proposed);
  });

  it('knows every signal', () => {
    expect(SIGNALS).toEqual(['cpu', 'requestRate', 'queue', 'responseTime']);
  });
});

describe('largestProposal (stage largest)', () => {
  it.each([
    { name: 'no proposal: hold', proposals: [], value: 4, reason: 'no signal: hold' },
    { name: 'the largest wins', proposals: [proposal('cpu', 6), proposal('requestRate', 5)], value: 6, reason: 'cpu wins: cpu says 6' },
    { name: 'a tie goes to the first signal', proposals: [proposal('cpu', 5), proposal('requestRate', 5)], value: 5, reason: 'cpu wins: cpu says 5' },
    { name: 'one signal holding keeps a low one from shrinking the pool', proposals: [proposal('cpu', 2), proposal('requestRate', 4)], value: 4, reason: 'requestRate wins: requestRate says 4' },
    { name: 'an idle signal (0) never wins over another', proposals: [proposal('responseTime', 0, 'idle'), proposal('cpu', 2)], value: 2, reason: 'cpu wins: cpu says 2' },
  ])('$name', ({ proposals, value, reason }) => {
    expect(largestProposal(proposals, 4)).toEqual({ value, reason });
  });
});

/** A forecast state of Holt's level and trend alone: no surprise, no daily profile, no period. */
const holt = (level: number, trendPerSecond: number, lastAt: number): ForecastState => ({
  level,
  trendPerSecond,
  surprise: 0,
  lastAt,
  firstAt: lastAt,
  profile: [],
  series: [level],
  seriesAt: lastAt,
  seriesCount: 1,
  period: undefined,
  periodCheckedAt: lastAt,
});

describe('observeRequestRate', () => {
  const policy = { forecast: DEFAULT_POLICY.forecast, maxSampleAgeMs: 90_000 };
  const state: ForecastState = { ...holt(100, 0, NOW - 30_000), profile: new Array<number | null>(48).fill(null) };

  it.each([
    { name: 'no reading: the state is unchanged', reading: undefined },
    { name: 'a stale reading teaches nothing', reading: at(500, 120_000) },
  ])('$name', ({ reading }) => {
    expect(observeRequestRate(state, reading, policy, NOW)).toBe(state);
    expect(observeRequestRate(undefined, reading, policy, NOW)).toBeUndefined();
  });

  it('learns from a fresh reading, at the time it was measured', () => {
    expect(observeRequestRate(undefined, at(80, 5_000), policy, NOW)).toMatchObject({ level: 80, trendPerSecond: 0, lastAt: NOW - 5_000, firstAt: NOW - 5_000 });
    const next = observeRequestRate(state, at(200), policy, NOW);
    expect(next?.lastAt).toBe(NOW);
    expect(next?.level).toBeGreaterThan(100);
  });
});

describe('forecastRecommendation (stage forecast)', () => {
  // Holt without a daily profile or a period, on a quiet load: level + trend × (horizon + time
  // since the last observation).
  const rising: ForecastState = { ...holt(400, 1, NOW), firstAt: NOW - 600_000 };
  const falling: ForecastState = { ...rising, trendPerSecond: -5 };
  const policy = (mode: 'off' | 'shadow' | 'act', signals: typeof DEFAULT_POLICY.signals = { requestRate: rps }) => ({
    forecast: { ...DEFAULT_POLICY.forecast, mode, horizonMs: 60_000 },
    signals,
  });
  const earlier = [{ madeAt: NOW - 30_000, forAt: NOW + 30_000, requestRate: 420 }];

  it.each([
    { name: 'off: nothing predicted', mode: 'off' as const, state: rising, recommended: 4, value: 4, reason: 'forecast off', predicted: undefined },
    { name: 'no history yet', mode: 'act' as const, state: undefined, recommended: 4, value: 4, reason: 'no request-rate history yet', predicted: undefined },
    { name: 'act: a rising forecast raises the recommendation', mode: 'act' as const, state: rising, recommended: 4, value: 5, reason: 'forecast 460 req/s in 60 s needs 5', predicted: 460 },
    { name: 'act: a forecast the recommendation covers changes nothing', mode: 'act' as const, state: rising, recommended: 6, value: 6, reason: 'forecast 460 req/s needs 5: no more than recommended (a forecast never scales in)', predicted: 460 },
    { name: 'act: a falling forecast never lowers', mode: 'act' as const, state: falling, recommended: 4, value: 4, reason: 'forecast 100 req/s needs 1: no more than recommended (a forecast never scales in)', predicted: 100 },
    { name: 'shadow: recorded, not acted on', mode: 'shadow' as const, state: rising, recommended: 4, value: 4, reason: 'shadow: forecast 460 req/s would need 5; not acted on', predicted: 460 },
  ])('$name', ({ mode, state, recommended, value, reason, predicted }) => {
    const result = forecastRecommendation(recommended, state, earlier, policy(mode), NOW);
    expect(result).toMatchObject({ value, reason, predicted });
    expect(result.value).toBeGreaterThanOrEqual(recommended);
    if (predicted === undefined) expect(result.predictions).toBe(earlier);
    else expect(result.predictions).toEqual([...earlier, { madeAt: NOW, forAt: NOW + 60_000, requestRate: predicted }]);
  });

  it('without a request-rate target there is nothing to size by: no forecast', () => {
    const result = forecastRecommendation(4, rising, earlier, policy('act', { cpu }), NOW);
    expect(result).toMatchObject({ value: 4, predicted: undefined, reason: 'no request-rate history yet' });
  });

  it('looks ahead from the last observation: an older state looks further', () => {
    // Observed 20 s ago: 60 s horizon + 20 s = 80 s of trend.
    expect(forecastRecommendation(4, { ...rising, lastAt: NOW - 20_000 }, [], policy('act'), NOW).predicted).toBe(480);
  });

  it('a trend within the noise of the load is not extrapolated', () => {
    // A trend of 1 req/s² would add 60 req/s over the horizon; surprises of ±80 req/s are the load's own noise.
    const noisy: ForecastState = { ...rising, surprise: 80 ** 2 };
    expect(forecastRecommendation(4, noisy, [], policy('act'), NOW)).toMatchObject({ predicted: 400, value: 4 });
  });

  it('a load that repeats: what it reached one period ago over the horizon, and why', () => {
    // 30 s buckets, a period of 4 buckets (2 min): one period ago the next two buckets held 700.
    const periodic: ForecastState = { ...holt(200, 0, NOW), series: [200, 200, 700, 700, 200, 200, 700, 700, 200, 200, 700, 700, 200], period: { buckets: 4, correlation: 0.9 } };
    expect(forecastRecommendation(2, periodic, [], policy('act'), NOW)).toMatchObject({
      value: 7,
      predicted: 700,
      reason: 'forecast 700 req/s in 60 s (the load repeats every 2 min: this is what it reached one period ago) needs 7',
    });
  });

  it('keeps the last 200 predictions', () => {
    const many = Array.from({ length: 200 }, (_, i) => ({ madeAt: i, forAt: i, requestRate: i }));
    const result = forecastRecommendation(4, rising, many, policy('shadow'), NOW);
    expect(result.predictions).toHaveLength(200);
    expect(result.predictions[0]?.madeAt).toBe(1);
    expect(result.predictions.at(-1)?.madeAt).toBe(NOW);
  });
});

describe('stabiliseRecommendation (stage stabilise)', () => {
  const window = 120_000;
  const fixed = (windowMs: number) => ({ windowMs, reason: undefined, keepMs: 0 });
  const recent = (entries: Array<[ago: number, replicas: number]>): History['recommendations'] => entries.map(([ago, replicas]) => ({ at: NOW - ago, replicas }));
  it.each([
    { name: 'scale-up acts at once, whatever the window says', recommended: 8, current: 4, recent: recent([[10_000, 2]]), value: 8, reason: 'scale-up or hold acts at once' },
    { name: 'a hold acts at once', recommended: 4, current: 4, recent: recent([[10_000, 9]]), value: 4, reason: 'scale-up or hold acts at once' },
    { name: 'scale-down held by a higher recommendation in the window', recommended: 4, current: 6, recent: recent([[60_000, 6], [30_000, 4]]), value: 6, reason: 'scale-down held: 6 recommended within the last 120 s' },
    { name: 'held partly: the highest of the window', recommended: 3, current: 6, recent: recent([[60_000, 5], [30_000, 4]]), value: 5, reason: 'scale-down held: 5 recommended within the last 120 s' },
    { name: 'never above the current count', recommended: 3, current: 6, recent: recent([[60_000, 9]]), value: 6, reason: 'scale-down held: 9 recommended within the last 120 s' },
    { name: 'the window holds only lower ones: scale down', recommended: 4, current: 6, recent: recent([[130_000, 6], [60_000, 4], [30_000, 3]]), value: 4, reason: '4 recommended throughout the last 120 s' },
    { name: 'a recommendation exactly at the window start is out', recommended: 4, current: 6, recent: recent([[120_000, 6]]), value: 4, reason: '4 recommended throughout the last 120 s' },
    { name: 'an empty history lets a scale-down through', recommended: 2, current: 6, recent: [], value: 2, reason: '2 recommended throughout the last 120 s' },
  ])('$name', ({ recommended, current, recent: history, value, reason }) => {
    const result = stabiliseRecommendation(recommended, current, history, fixed(window), NOW);
    expect({ value: result.value, reason: result.reason }).toEqual({ value, reason });
    expect(result.recommendations.at(-1)).toEqual({ at: NOW, replicas: recommended });
    expect(result.recommendations.every((r) => r.at > NOW - window)).toBe(true);
  });

  it('with no window, a scale-down acts at once', () => {
    expect(stabiliseRecommendation(2, 6, recent([[0, 6]]), fixed(0), NOW)).toMatchObject({ value: 2, reason: '2 recommended throughout the last 0 s' });
  });

  it('keeps what the longest window may need, and says why a window was lengthened', () => {
    const result = stabiliseRecommendation(2, 6, recent([[250_000, 6], [100_000, 3]]), { windowMs: 120_000, reason: 'window 180 s, not 120 s: why', keepMs: 300_000 }, NOW);
    expect(result).toMatchObject({ value: 3, reason: 'scale-down held: 3 recommended within the last 120 s (window 180 s, not 120 s: why)' });
    expect(result.recommendations.map((r) => r.at)).toEqual([NOW - 250_000, NOW - 100_000, NOW]);
  });

  it('remembers at most 500 recommendations', () => {
    const full = Array.from({ length: 600 }, (_, i) => ({ at: NOW - 600 + i, replicas: 6 }));
    const result = stabiliseRecommendation(2, 6, full, fixed(window), NOW);
    expect(result.value).toBe(6);
    expect(result.recommendations).toHaveLength(500);
  });
});

describe('rateAllowance', () => {
  const changes = (entries: Array<[ago: number, from: number, to: number]>): History['changes'] => entries.map(([ago, from, to]) => ({ at: NOW - ago, from, to }));
  it.each([
    { name: 'instances when larger than the fraction', limit: { instances: 4, fraction: 0.5, periodMs: 30_000 }, current: 4, changes: [], direction: 'up' as const, allowed: 4 },
    { name: 'the fraction when larger, rounded down', limit: { instances: 4, fraction: 1, periodMs: 30_000 }, current: 7, changes: [], direction: 'up' as const, allowed: 7 },
    { name: 'less what the period already added', limit: { instances: 4, fraction: 0, periodMs: 30_000 }, current: 4, changes: changes([[10_000, 2, 4]]), direction: 'up' as const, allowed: 2 },
    { name: 'changes of the other direction do not count', limit: { instances: 1, fraction: 0, periodMs: 30_000 }, current: 6, changes: changes([[10_000, 4, 6]]), direction: 'down' as const, allowed: 1 },
    { name: 'changes older than the period do not count', limit: { instances: 1, fraction: 0, periodMs: 30_000 }, current: 5, changes: changes([[30_000, 6, 5]]), direction: 'down' as const, allowed: 1 },
    { name: 'never below zero', limit: { instances: 1, fraction: 0, periodMs: 30_000 }, current: 4, changes: changes([[10_000, 6, 4]]), direction: 'down' as const, allowed: 0 },
  ])('$name', ({ limit, current, changes: made, direction, allowed }) => {
    expect(rateAllowance(limit, current, made, NOW, direction)).toBe(allowed);
  });
});

describe('limitRate (stage rateLimit)', () => {
  const limits = { scaleUp: { instances: 2, fraction: 0, periodMs: 30_000 }, scaleDown: { instances: 1, fraction: 0, periodMs: 60_000 } };
  const used = (from: number, to: number): History['changes'] => [{ at: NOW - 10_000, from, to }];
  it.each([
    { name: 'up within the limit', proposed: 6, current: 4, changes: [], value: 6, reason: 'within the scale-up limit' },
    { name: 'up beyond the limit', proposed: 9, current: 4, changes: [], value: 6, reason: 'at most 2 more per 30 s' },
    { name: 'up with the budget partly used', proposed: 9, current: 5, changes: used(4, 5), value: 6, reason: 'at most 1 more per 30 s' },
    { name: 'up with the budget used: hold', proposed: 9, current: 6, changes: used(4, 6), value: 6, reason: 'at most 0 more per 30 s' },
    { name: 'down within the limit', proposed: 5, current: 6, changes: [], value: 5, reason: 'within the scale-down limit' },
    { name: 'down beyond the limit', proposed: 2, current: 6, changes: [], value: 5, reason: 'at most 1 fewer per 60 s' },
    { name: 'down with the budget used: hold', proposed: 2, current: 5, changes: used(6, 5), value: 5, reason: 'scale-down limit used for this 60 s' },
    { name: 'no change', proposed: 4, current: 4, changes: used(6, 4), value: 4, reason: 'no change' },
  ])('$name', ({ proposed, current, changes, value, reason }) => {
    expect(limitRate(proposed, current, changes, limits, NOW)).toEqual({ value, reason });
  });
});

describe('clampReplicas (stage clamp)', () => {
  it.each([
    { name: 'within', proposed: 5, min: 2, max: 10, value: 5, reason: 'within 2..10' },
    { name: 'at the maximum', proposed: 10, min: 2, max: 10, value: 10, reason: 'within 2..10' },
    { name: 'raised to the minimum', proposed: 0, min: 2, max: 10, value: 2, reason: 'raised to the minimum 2' },
    { name: 'lowered to the maximum', proposed: 14, min: 2, max: 10, value: 10, reason: 'lowered to the maximum 10' },
    { name: 'min equal to max pins the count', proposed: 7, min: 3, max: 3, value: 3, reason: 'lowered to the maximum 3' },
    { name: 'a minimum of zero allows none', proposed: 0, min: 0, max: 3, value: 0, reason: 'within 0..3' },
  ])('$name', ({ proposed, min, max, value, reason }) => {
    expect(clampReplicas(proposed, { minReplicas: min, maxReplicas: max })).toEqual({ value, reason });
  });
});

describe('holdOnIncompleteData (stage safety)', () => {
  const fresh = [proposal('cpu', 2), proposal('requestRate', 2)];
  it.each([
    { name: 'all fresh: a scale-down passes', proposed: 4, current: 6, proposals: fresh, sourceUp: true, max: 10, value: 4, frozen: false, reason: 'all signals fresh' },
    { name: 'a missing signal freezes a scale-down', proposed: 4, current: 6, proposals: [proposal('cpu', 2), proposal('requestRate', 6, 'missing')], sourceUp: true, max: 10, value: 6, frozen: true, reason: 'scale-down frozen: requestRate missing' },
    { name: 'a stale signal freezes a scale-down', proposed: 4, current: 6, proposals: [proposal('cpu', 6, 'stale'), proposal('requestRate', 2)], sourceUp: true, max: 10, value: 6, frozen: true, reason: 'scale-down frozen: cpu stale' },
    { name: 'every incomplete signal is named', proposed: 4, current: 6, proposals: [proposal('cpu', 6, 'stale'), proposal('requestRate', 6, 'missing')], sourceUp: true, max: 10, value: 6, frozen: true, reason: 'scale-down frozen: cpu stale, requestRate missing' },
    { name: 'the metrics source down freezes a scale-down', proposed: 4, current: 6, proposals: fresh, sourceUp: false, max: 10, value: 6, frozen: true, reason: 'metrics source down: scale-down frozen' },
    { name: 'frozen, the maximum still lowers the count', proposed: 8, current: 12, proposals: fresh, sourceUp: false, max: 8, value: 8, frozen: true, reason: 'metrics source down: scale-down frozen' },
    { name: 'frozen, a scale-up still passes', proposed: 8, current: 6, proposals: [proposal('cpu', 8), proposal('requestRate', 6, 'missing')], sourceUp: true, max: 10, value: 8, frozen: true, reason: 'data incomplete: scale-down would be frozen' },
    { name: 'frozen, a hold is a hold', proposed: 6, current: 6, proposals: fresh, sourceUp: false, max: 10, value: 6, frozen: true, reason: 'data incomplete: scale-down would be frozen' },
    { name: 'an idle signal is not incomplete', proposed: 4, current: 6, proposals: [proposal('responseTime', 0, 'idle'), proposal('cpu', 2)], sourceUp: true, max: 10, value: 4, frozen: false, reason: 'all signals fresh' },
  ])('$name', ({ proposed, current, proposals, sourceUp, max, value, frozen, reason }) => {
    expect(holdOnIncompleteData(proposed, current, proposals, sourceUp, { maxReplicas: max })).toEqual({ value, reason, scaleDownFrozen: frozen });
  });
});

describe('settlingStage', () => {
  const stages = (...replicas: number[]): Stage[] =>
    (['proposals', 'largest', 'forecast', 'stabilise', 'rateLimit', 'clamp', 'safety'] as const).slice(0, replicas.length).map((stage, i) => ({ stage, replicas: replicas[i] ?? 0, reason: stage }));
  it.each([
    { name: 'no stage changed the count', stages: stages(4, 4, 4, 4), settled: undefined },
    { name: 'the only change', stages: stages(4, 6, 6, 6), settled: 'largest' },
    { name: 'the last change wins', stages: stages(4, 6, 7, 7, 5, 5), settled: 'rateLimit' },
    { name: 'a change back to the current count is a change', stages: stages(4, 6, 6, 6, 4), settled: 'rateLimit' },
  ])('$name', ({ stages: input, settled }) => {
    expect(settlingStage(input, 4)?.stage).toBe(settled);
  });
});

describe('rememberChange', () => {
  const limits = { scaleUp: { instances: 4, fraction: 1, periodMs: 30_000 }, scaleDown: { instances: 1, fraction: 0, periodMs: 60_000 }, adaptiveWindow: { maxMs: 0, memoryMs: 0 } };
  const old = [{ at: NOW - 90_000, from: 2, to: 3 }, { at: NOW - 45_000, from: 3, to: 4 }];
  it.each([
    { name: 'no change: only forgets what is older than the longer period', current: 4, replicas: 4, expected: [old[1]] },
    { name: 'a change is appended, with its window and whether it was for a breach', current: 4, replicas: 6, expected: [old[1], { at: NOW, from: 4, to: 6, windowMs: 120_000, breach: true }] },
  ])('$name', ({ current, replicas, expected }) => {
    expect(rememberChange(old, current, replicas, 120_000, true, limits, NOW)).toEqual(expected);
  });

  it('keeps what the window’s adaptation looks back on', () => {
    const adaptive = { ...limits, adaptiveWindow: { maxMs: 60_000, memoryMs: 60_000 } };
    expect(rememberChange(old, 4, 4, 120_000, false, adaptive, NOW)).toEqual(old);
  });
});

describe('stabilisationWindow', () => {
  const settings = { scaleDownStabilisationMs: 120_000, adaptiveWindow: { maxMs: 300_000, memoryMs: 1_800_000 } };
  type Change = History['changes'][number];
  const down = (ago: number, from: number, to: number, windowMs = 120_000): Change => ({ at: NOW - ago, from, to, windowMs, breach: false });
  const up = (ago: number, from: number, to: number, breach = true): Change => ({ at: NOW - ago, from, to, windowMs: 120_000, breach });
  it.each([
    { name: 'no history: the configured window', changes: [], windowMs: 120_000, reason: undefined },
    { name: 'a scale-down not taken back', changes: [up(900_000, 2, 6), down(600_000, 6, 2)], windowMs: 120_000, reason: undefined },
    {
      name: 'taken back under saturation 100 s later: held 120 + 100 s next time',
      changes: [down(600_000, 6, 2), up(500_000, 2, 6)],
      windowMs: 220_000,
      reason: 'window 220 s, not 120 s: the pool came back 100 s after its scale-down to 2',
    },
    { name: 'taken back by a forecast ahead of the load (no breach): the scale-down paid', changes: [down(600_000, 6, 2), up(500_000, 2, 6, false)], windowMs: 120_000, reason: undefined },
    { name: 'back, but not above where it went down to', changes: [down(600_000, 6, 3), up(500_000, 2, 3)], windowMs: 120_000, reason: undefined },
    { name: 'back later than the longest window would have held: no help', changes: [down(900_000, 6, 2), up(650_000, 2, 6)], windowMs: 120_000, reason: undefined },
    { name: 'forgotten after memoryMs', changes: [down(2_000_000, 6, 2), up(1_900_000, 2, 6)], windowMs: 120_000, reason: undefined },
    {
      name: 'the longest of the returns, from the window each scale-down had',
      changes: [down(1_000_000, 6, 2), up(950_000, 2, 6), down(600_000, 6, 2, 170_000), up(520_000, 2, 6)],
      windowMs: 250_000,
      reason: 'window 250 s, not 120 s: the pool came back 80 s after its scale-down to 2',
    },
  ])('$name', ({ changes, windowMs, reason }) => {
    expect(stabilisationWindow(changes, settings, NOW)).toEqual({ windowMs, reason });
  });
});

describe('estimateDemand (stage demand)', () => {
  const policy = { demand: { startupMs: 20_000, backlogDrainMs: 30_000 }, maxSampleAgeMs: 90_000, signals: { requestRate: rps, responseTime: rt } };
  const noRt = { ...policy, signals: { requestRate: rps } };
  const noDrain = { ...policy, demand: { startupMs: 20_000, backlogDrainMs: 0 } };
  const cases: Array<{ name: string; input: Samples; settings?: typeof policy | typeof noRt; rate: number | undefined; arrivals: number | undefined; reason: string }> = [
    { name: 'no request rate: nothing to estimate', input: samples(2, {}), rate: undefined, arrivals: undefined, reason: 'no fresh request rate: nothing to estimate' },
    { name: 'a stale request rate passes through untouched', input: samples(2, { requestRate: at(50, 120_000) }), rate: 50, arrivals: 50, reason: 'no fresh request rate: nothing to estimate' },
    { name: 'no in-flight figures: the counted rate stands', input: samples(2, { requestRate: at(120) }), rate: 120, arrivals: 120, reason: 'no in-flight figures: the counted 120 req/s stands' },
    {
      name: 'stale in-flight figures count as none',
      input: { ...samples(2, { requestRate: at(120) }), inFlight: at(900, 120_000), inFlightGrowth: at(450, 120_000) },
      rate: 120,
      arrivals: 120,
      reason: 'no in-flight figures: the counted 120 req/s stands',
    },
    {
      name: 'a rising load without a backlog: arrivals only',
      input: { ...samples(2, { requestRate: at(120) }), inFlight: at(4), inFlightGrowth: at(0.5) },
      rate: 120.5,
      arrivals: 120.5,
      reason: '120 req/s ended + 0.5/s more in flight: sized for 120.5 req/s',
    },
    {
      name: 'nothing growing: the counted rate stands',
      input: { ...samples(2, { requestRate: at(120) }), inFlight: at(4), inFlightGrowth: at(0) },
      rate: 120,
      arrivals: 120,
      reason: '120 req/s ended + 0/s more in flight: the counted rate stands',
    },
    {
      // 730 arrive, 280 end; 900 in flight where 365 would be at the 0.5 s target: 535 more, plus
      // 450/s for the 20 s start-up = 9535 to clear within 30 s: 730 + 317.83.
      name: 'a saturated pool: the arrivals and its backlog by the time new instances serve',
      input: { ...samples(2, { requestRate: at(280) }), inFlight: at(900), inFlightGrowth: at(450) },
      rate: 1047.833,
      arrivals: 730,
      reason: '280 req/s ended + 450/s more in flight; a backlog of 9535 by the time new instances serve, cleared within 30 s: sized for 1047.83 req/s',
    },
    {
      name: 'a backlog draining: the estimate never lowers the counted rate',
      input: { ...samples(8, { requestRate: at(900) }), inFlight: at(2000), inFlightGrowth: at(-300) },
      rate: 900,
      arrivals: 600,
      reason: '900 req/s ended − 300/s more in flight: the counted rate stands',
    },
    {
      name: 'backlogDrainMs 0 leaves the backlog out',
      settings: noDrain,
      input: { ...samples(2, { requestRate: at(280) }), inFlight: at(900), inFlightGrowth: at(450) },
      rate: 730,
      arrivals: 730,
      reason: '280 req/s ended + 450/s more in flight: sized for 730 req/s',
    },
    {
      name: 'no response-time target: no backlog measure, arrivals only',
      settings: noRt,
      input: { ...samples(2, { requestRate: at(280) }), inFlight: at(900), inFlightGrowth: at(450) },
      rate: 730,
      arrivals: 730,
      reason: '280 req/s ended + 450/s more in flight: sized for 730 req/s',
    },
  ];
  it.each(cases)('$name', ({ input, settings: s, rate, arrivals, reason }) => {
    const result = estimateDemand(input, s ?? policy, NOW);
    expect(result.requestRate?.value).toBe(rate);
    expect(result.arrivals?.value).toBe(arrivals);
    expect(result.reason).toBe(reason);
    if (result.requestRate !== undefined) expect(result.requestRate.at).toBe(input.requestRate?.at);
  });
});

describe('saturationBreach', () => {
  const policy = { tolerance: 0.1, signals: { requestRate: rps } };
  const withObserved = (p: SignalProposal, observed: number): SignalProposal => ({ ...p, observed });
  const cases: Array<{ name: string; counted?: number; estimated?: number; proposals: SignalProposal[]; breach: boolean }> = [
    { name: 'demand above the counted rate beyond the tolerance', counted: 280, estimated: 1047, proposals: [], breach: true },
    { name: 'demand within the tolerance of the counted rate', counted: 280, estimated: 300, proposals: [], breach: false },
    { name: 'less than one request a second more is no breach', counted: 2, estimated: 2.9, proposals: [], breach: false },
    { name: 'a queue over target', proposals: [proposal('queue', 6)], breach: true },
    { name: 'a response time over target', proposals: [proposal('responseTime', 6)], breach: true },
    { name: 'a missing queue is no breach', proposals: [proposal('queue', 4, 'missing')], breach: false },
    { name: 'CPU over target alone waits for the evaluation', proposals: [proposal('cpu', 6)], breach: false },
    { name: 'a request rate just over its target waits for the evaluation', proposals: [withObserved(proposal('requestRate', 5), 115)], breach: false },
    { name: 'a request rate beyond twice the tolerance over target', proposals: [withObserved(proposal('requestRate', 6), 125)], breach: true },
    { name: 'nothing above the current count', counted: 100, estimated: 100, proposals: [proposal('queue', 4), withObserved(proposal('requestRate', 4), 130)], breach: false },
  ];
  it.each(cases)('$name', ({ counted, estimated, proposals, breach }) => {
    expect(saturationBreach(counted === undefined ? undefined : at(counted), estimated === undefined ? undefined : at(estimated), proposals, policy, 4)).toBe(breach);
  });
});
