import { describe, expect, it } from 'vitest';
import { decide } from '../../../sidecar/autoscale/policy.js';
import { comparedPolicies, hpaRule, oursPredictive, oursReactive } from '../../../bench/sim/policies.js';
import { erlangC, stationFigures } from '../../../bench/sim/queueing.js';
import { seededRandom } from '../../../bench/sim/random.js';
import { decisionFunction, DEFAULT_MODEL, simulate, stepTimings, type ModelSettings } from '../../../bench/sim/simulate.js';
import { doubleBurst, fromCsv, LOAD_STEP, loadStep, standardTraces, type Trace } from '../../../bench/sim/traces.js';

const constant = (rate: number, seconds: number): Trace => ({ name: 'constant', description: '', rates: new Array<number>(seconds).fill(rate) });

describe('queueing model', () => {
  it('matches M/M/1 closed forms: mean response 1/(μ−λ), p99 ≤ its exact value plus the service tail', () => {
    const station = { workers: 1, serviceTime: 0.01 }; // μ = 100/s
    const figures = stationFigures(station, 50); // ρ = 0.5
    expect(figures.utilisation).toBeCloseTo(0.5, 10);
    expect(figures.meanResponse).toBeCloseTo(1 / (100 - 50), 10);
    // Exact M/M/1 response-time p99: ln(100)/(μ−λ) = 92.1 ms; the model's bound is above it, not far.
    const exact = Math.log(100) / 50;
    expect(figures.p99Response).toBeGreaterThanOrEqual(exact);
    expect(figures.p99Response).toBeLessThan(exact * 1.6);
  });

  it('computes Erlang C: two servers at one erlang wait with probability 1/3', () => {
    expect(erlangC(2, 1)).toBeCloseTo(1 / 3, 12);
    expect(erlangC(1, 0.7)).toBeCloseTo(0.7, 12);
    expect(erlangC(4, 4)).toBe(1);
    expect(() => erlangC(0, 1)).toThrow(/positive integer/);
  });

  it('is unstable at or over capacity', () => {
    expect(stationFigures({ workers: 4, serviceTime: 0.025 }, 160)).toEqual({ utilisation: 1, meanResponse: Infinity, p99Response: Infinity });
  });
});

describe('the simulator', () => {
  const frozen: ModelSettings = { ...DEFAULT_MODEL, initialReplicas: 1 };
  const pinned = { ...oursReactive, name: 'pinned to 1', policy: { ...oursReactive.policy, minReplicas: 1, maxReplicas: 1 } };

  it('gives one instance under its capacity the queueing model’s response time and no failures', () => {
    const result = simulate(constant(80, 600), pinned, frozen);
    expect(result.summary.failedRequests).toBe(0);
    expect(result.summary.sloViolationMinutes).toBe(0);
    const expected = stationFigures(frozen.station, 80).p99Response;
    // Poisson arrivals per second wobble around 80; the worst second is a little above the mean figure.
    expect(result.summary.p99Worst).toBeGreaterThan(expected);
    expect(result.summary.p99Worst).toBeLessThan(expected * 2);
    expect(result.summary.instanceHours).toBeCloseTo(600 / 3600, 2);
  });

  it('builds a backlog at the excess rate over capacity, then fails what waits past the queue timeout', () => {
    // 200 req/s offered to 142.9 req/s of capacity (4 workers, 28 ms): 57.1 req/s pile up; 30 s
    // of capacity (4286) fills in 75 s.
    expect(frozen.station).toEqual({ workers: 4, serviceTime: 0.028 });
    const result = simulate(constant(200, 300), pinned, frozen);
    expect(result.summary.sloViolationMinutes).toBeGreaterThan(4.5);
    const failedShare = result.summary.failedRequests / result.summary.requests;
    // From second 75 on, 57.1 of 200 requests a second fail: 225/300 × 57.1/200 = 21.4 % of all.
    expect(failedShare).toBeGreaterThan(0.19);
    expect(failedShare).toBeLessThan(0.235);
  });

  it('runs the sidecar’s own decide(), not a copy', () => {
    expect(decisionFunction).toBe(decide);
    expect(comparedPolicies.map((p) => p.name)).toEqual(['bash rule', 'HPA rule', 'ours, reactive', 'ours, predictive']);
  });

  it('is reproducible for a seed and differs between seeds', () => {
    const a = JSON.stringify(simulate(doubleBurst(7), oursReactive));
    const b = JSON.stringify(simulate(doubleBurst(7), oursReactive));
    const c = JSON.stringify(simulate(doubleBurst(8), oursReactive, { ...DEFAULT_MODEL, seed: 8 }));
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('scales a pool up for a load step and back down to the minimum after it', () => {
    const step: Trace = { name: 'step', description: '', rates: Array.from({ length: 1800 }, (_, t) => (t >= 300 && t < 900 ? 600 : 60)) };
    const result = simulate(step, oursReactive);
    const during = result.series.filter((p) => p.t >= 600 && p.t < 900).map((p) => p.replicas);
    const end = result.series.at(-1);
    expect(Math.min(...during)).toBeGreaterThanOrEqual(5); // 600 req/s needs 5 at 142.9 req/s each
    expect(end?.replicas).toBe(2);
  });
});

describe('what the simulator models for the policies', () => {
  const step = loadStep();
  const endAt = LOAD_STEP.stepAt + LOAD_STEP.seconds;

  it('runs ours as the sidecar’s configuration loader builds its defaults', () => {
    expect(oursPredictive).toMatchObject({ intervalSeconds: 30, breachCheckSeconds: 2 });
    expect(oursPredictive.policy.forecast).toMatchObject({ mode: 'act', horizonMs: 50_000 });
    expect(oursPredictive.policy.demand).toEqual({ startupMs: DEFAULT_MODEL.startupSeconds * 1000, backlogDrainMs: 30_000 });
    expect(hpaRule).toMatchObject({ intervalSeconds: 15, breachCheckSeconds: 0, policy: { scaleDownStabilisationMs: 300_000, tolerance: 0.1 } });
  });

  it('a breach check decides within its period of a step, the HPA rule at its sync, and capacity comes a start-up later', () => {
    const ours = stepTimings(simulate(step, oursReactive), LOAD_STEP.stepAt, endAt);
    const hpa = stepTimings(simulate(step, hpaRule), LOAD_STEP.stepAt, endAt);
    expect(ours.decisionSeconds).toBeLessThanOrEqual(2);
    expect(ours.firstCapacitySeconds).toBe((ours.decisionSeconds ?? NaN) + DEFAULT_MODEL.startupSeconds);
    // The step comes 7 s after an HPA sync; the next one, 8 s later, averages 7 s of rest into its
    // 15 s of CPU (under target), so the HPA rule decides at the one after, 23 s after the step.
    expect(hpa.decisionSeconds).toBe(23);
    expect(hpa.firstCapacitySeconds).toBe(23 + DEFAULT_MODEL.startupSeconds);
  });

  it('sizes a step from the demand, not the throughput: within two breach checks it starts more than 500 req/s needs at the target', () => {
    const run = simulate(step, oursReactive);
    const started = run.scaleUps.filter((u) => u.decidedAt >= LOAD_STEP.stepAt && u.decidedAt <= LOAD_STEP.stepAt + 4).reduce((sum, u) => sum + u.started, 0);
    // 2 instances serve 286 req/s of the 500: five at 100 req/s each, and more for the backlog
    // that grows while they start (the first checks' 4 s windows still hold seconds of rest).
    expect(2 + started).toBeGreaterThan(5);
  });

  it('times a step from the run’s scale-ups', () => {
    const summary = { sloViolationMinutes: 0, instanceHours: 0, scalingActions: 4, failedRequests: 0, requests: 0, maxReplicas: 10, p99Worst: 0 };
    const run = { trace: 't', policy: 'p', summary, series: [], scaleUps: [
      { decidedAt: 105, undrained: 0, started: 3, servingAt: 125 },
      { decidedAt: 140, undrained: 1, started: 0, servingAt: 140 },
      { decidedAt: 150, undrained: 0, started: 2, servingAt: 170 },
      { decidedAt: 400, undrained: 0, started: 2, servingAt: 420 },
    ] };
    expect(stepTimings(run, 100, 300)).toEqual({ decisionSeconds: 5, firstCapacitySeconds: 25, fullCapacitySeconds: 70 });
    expect(stepTimings(run, 500, 600)).toEqual({ decisionSeconds: undefined, firstCapacitySeconds: undefined, fullCapacitySeconds: undefined });
  });

  it('flags the held-out traces', () => {
    expect(standardTraces(42).map((t) => `${t.name}${t.heldOut === true ? '*' : ''}`)).toEqual([
      'flash-sale',
      'diurnal',
      'sudden-spike',
      'slow-ramp',
      'double-burst*',
      'noisy-ramp*',
      'double-burst-b*',
      'noisy-ramp-b*',
      'staircase*',
    ]);
  });
});

describe('recorded traces', () => {
  it('reads CSV with a header, ISO or numeric timestamps, interpolating to one value a second', () => {
    const trace = fromCsv('shop', 'time,rps\n0,100\n10,200\n20,200\n');
    expect(trace.rates).toHaveLength(21);
    expect(trace.rates[5]).toBe(150);
    expect(trace.rates[20]).toBe(200);
    const iso = fromCsv('iso', '2026-11-01T00:00:00Z,10\n2026-11-01T00:00:04Z,50\n');
    expect(iso.rates).toEqual([10, 20, 30, 40, 50]);
  });

  it('names the bad line', () => {
    expect(() => fromCsv('bad', 'time,rps\n0,100\n5,lots\n')).toThrow('bad: line 3 is not "timestamp,requests per second": "5,lots"');
  });
});

describe('seeded random', () => {
  it('draws Poisson counts with the right mean, small and large', () => {
    const random = seededRandom(1);
    for (const mean of [3, 400]) {
      let sum = 0;
      for (let i = 0; i < 20_000; i++) sum += random.poisson(mean);
      expect(sum / 20_000).toBeGreaterThan(mean * 0.98);
      expect(sum / 20_000).toBeLessThan(mean * 1.02);
    }
  });
});
