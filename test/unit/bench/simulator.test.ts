import { describe, expect, it } from 'vitest';
import { decide } from '../../../sidecar/autoscale/policy.js';
import { comparedPolicies, oursReactive } from '../../../bench/sim/policies.js';
import { erlangC, stationFigures } from '../../../bench/sim/queueing.js';
import { seededRandom } from '../../../bench/sim/random.js';
import { decisionFunction, DEFAULT_MODEL, simulate, type ModelSettings } from '../../../bench/sim/simulate.js';
import { diurnal, fromCsv, type Trace } from '../../../bench/sim/traces.js';

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
    // 200 req/s offered to 160 req/s of capacity: 40 req/s pile up; 30 s of capacity (4800) fills in 120 s.
    const result = simulate(constant(200, 300), pinned, frozen);
    expect(result.summary.sloViolationMinutes).toBeGreaterThan(4.5);
    const failedShare = result.summary.failedRequests / result.summary.requests;
    // From second 120 on, 40 of 200 requests a second fail: 180/300 × 40/200 = 12 % of all.
    expect(failedShare).toBeGreaterThan(0.1);
    expect(failedShare).toBeLessThan(0.14);
  });

  it('runs the sidecar’s own decide(), not a copy', () => {
    expect(decisionFunction).toBe(decide);
    expect(comparedPolicies.map((p) => p.name)).toEqual(['bash rule', 'HPA rule', 'ours, reactive', 'ours, predictive']);
  });

  it('is reproducible for a seed and differs between seeds', () => {
    const a = JSON.stringify(simulate(diurnal(7), oursReactive));
    const b = JSON.stringify(simulate(diurnal(7), oursReactive));
    const c = JSON.stringify(simulate(diurnal(8), oursReactive, { ...DEFAULT_MODEL, seed: 8 }));
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('scales a pool up for a load step and back down to the minimum after it', () => {
    const step: Trace = { name: 'step', description: '', rates: Array.from({ length: 1800 }, (_, t) => (t >= 300 && t < 900 ? 600 : 60)) };
    const result = simulate(step, oursReactive);
    const during = result.series.filter((p) => p.t >= 600 && p.t < 900).map((p) => p.replicas);
    const end = result.series.at(-1);
    expect(Math.min(...during)).toBeGreaterThanOrEqual(4); // 600 req/s needs 4 at 160 req/s each
    expect(end?.replicas).toBe(2);
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
