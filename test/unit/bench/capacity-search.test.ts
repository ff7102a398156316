import { describe, expect, it } from 'vitest';
import {
  bendAt,
  designFigure,
  judgeProbe,
  limitingResource,
  nextProbe,
  probeConnections,
  scalingRatios,
  type ProbeMeasure,
  type SearchOptions,
  type SearchOutcome,
  type SearchPoint,
} from '../../../bench/lib/capacity-search.js';

describe('designFigure', () => {
  it.each([
    // instances, rate, mean, p99, stated
    [2, 500, 45, 120, true],
    [4, 1000, 46.75, 126.25, false],
    [6, 1500, 48.5, 132.5, false],
    [8, 2000, 50.25, 138.75, false],
    [10, 2500, 52, 145, true],
    [12, 3000, 53.75, 151.25, false],
  ])('%i instances: %d req/s, mean %d ms, p99 %d ms (stated %s)', (instances, rate, mean, p99, stated) => {
    expect(designFigure(instances)).toEqual({ instances, ratePerSecond: rate, meanMs: mean, p99Ms: p99, stated });
  });

  it.each([0, -2, 2.5, NaN])('refuses %d instances', (n) => {
    expect(() => designFigure(n)).toThrow(RangeError);
  });
});

describe('judgeProbe', () => {
  const good: ProbeMeasure = { targetPerSecond: 500, achievedPerSecond: 498, requests: 2490, meanMs: 10, p99Ms: 80, errors: 0, lateSends: 0 };

  it.each<[string, Partial<ProbeMeasure>, boolean, RegExp | '']>([
    ['within every rule', {}, true, ''],
    ['p99 exactly at the limit', { p99Ms: 120 }, true, ''],
    ['p99 above the limit', { p99Ms: 120.1 }, false, /p99 120\.1 ms > 120\.0 ms/],
    ['answers 95 % of the rate', { achievedPerSecond: 475 }, true, ''],
    ['answers less than 95 % of the rate', { achievedPerSecond: 474 }, false, /answered 474 req\/s < 95 % of 500/],
    ['two failures in 2490 (0.08 %)', { errors: 2 }, true, ''],
    ['three failures in 2490 (0.12 %)', { errors: 3 }, false, /3 failed requests/],
    ['24 late sends in 2490 (< 1 %)', { lateSends: 24 }, true, ''],
    ['25 late sends in 2490 (> 1 %)', { lateSends: 25 }, false, /25 requests sent late/],
    ['no answer at all', { achievedPerSecond: 0, requests: 0 }, false, /answered 0 req\/s/],
    ['a NaN rate is not sustained', { achievedPerSecond: NaN }, false, /answered NaN/],
  ])('%s', (_, change, sustained, why) => {
    const verdict = judgeProbe({ ...good, ...change }, { p99Ms: 120 });
    expect(verdict.sustained).toBe(sustained);
    if (why === '') expect(verdict.why).toBe('');
    else expect(verdict.why).toMatch(why);
  });

  it('names every rule broken', () => {
    const verdict = judgeProbe({ ...good, p99Ms: 300, achievedPerSecond: 300, errors: 100, lateSends: 100 }, { p99Ms: 120 });
    expect(verdict.why.split('; ')).toHaveLength(4);
  });
});

describe('nextProbe', () => {
  const options: SearchOptions = { start: 500, floor: 20, ceiling: 6000, resolution: 1.12, growth: 1.6, maxProbes: 6, step: 10 };

  /** Runs the search against a pool that sustains every rate up to `capacity`. */
  const searchAgainst = (capacity: number, opts: SearchOptions = options): { rates: number[]; outcome: SearchOutcome } => {
    const history: SearchPoint[] = [];
    for (let guard = 0; guard < 100; guard++) {
      const next = nextProbe(history, opts);
      if ('done' in next) return { rates: history.map((p) => p.rate), outcome: next.done };
      history.push({ rate: next.rate, sustained: next.rate <= capacity });
    }
    throw new Error('the search did not end');
  };

  it('starts at the start rate, snapped to the step', () => {
    expect(nextProbe([], { ...options, start: 503 })).toEqual({ rate: 500 });
  });

  it('steps up from a sustained start, then bisects the bracket', () => {
    const { rates, outcome } = searchAgainst(700);
    expect(rates).toEqual([500, 800, 630, 710, 670]);
    expect(outcome).toEqual({ sustained: 670, failed: 710, stop: 'resolution' });
  });

  it('steps down from a failed start', () => {
    const { rates, outcome } = searchAgainst(350);
    expect(rates[0]).toBe(500);
    expect(rates[1]).toBe(310);
    expect(outcome.sustained).toBeLessThanOrEqual(350);
    expect(outcome.failed).toBeGreaterThan(350);
    expect((outcome.failed ?? 0) / (outcome.sustained ?? 1)).toBeLessThanOrEqual(1.12);
  });

  it.each([30, 150, 400, 999, 1000, 2500, 4000])('brackets a capacity of %d req/s within the resolution or the probe budget', (capacity) => {
    const { rates, outcome } = searchAgainst(capacity, { ...options, maxProbes: 10 });
    expect(rates.length).toBeLessThanOrEqual(10);
    expect(new Set(rates).size).toBe(rates.length);
    expect(outcome.sustained).toBeLessThanOrEqual(capacity);
    expect(outcome.failed).toBeGreaterThan(capacity);
    expect(outcome.stop).toBe('resolution');
  });

  it('stops at the probe budget with the bracket it has', () => {
    const { rates, outcome } = searchAgainst(700, { ...options, maxProbes: 3 });
    expect(rates).toEqual([500, 800, 630]);
    expect(outcome).toEqual({ sustained: 630, failed: 800, stop: 'probes' });
  });

  it('stops at the ceiling when every rate is sustained', () => {
    const { rates, outcome } = searchAgainst(Infinity, { ...options, ceiling: 1000 });
    expect(rates).toEqual([500, 800, 1000]);
    expect(outcome).toEqual({ sustained: 1000, failed: undefined, stop: 'ceiling' });
  });

  it('stops at the floor when nothing is sustained', () => {
    const { rates, outcome } = searchAgainst(0, { ...options, floor: 100 });
    expect(rates).toEqual([500, 310, 190, 120, 100]);
    expect(outcome).toEqual({ sustained: undefined, failed: 100, stop: 'floor' });
  });

  it('steps down to below what a saturated pool answered, when that is further down than one step', () => {
    // Offered 2500, answered 1100: the next probe is 0.8 × 1100, not 2500 / 1.6.
    expect(nextProbe([{ rate: 2500, sustained: false, answered: 1100 }], options)).toEqual({ rate: 880 });
    // Answered nearly all of it (a p99 failure): one ordinary step down.
    expect(nextProbe([{ rate: 2500, sustained: false, answered: 2400 }], options)).toEqual({ rate: 1560 });
    // Never below the floor.
    expect(nextProbe([{ rate: 100, sustained: false, answered: 5 }], options)).toEqual({ rate: 20 });
  });

  it('keeps the sustained rate when a failure below it is noise', () => {
    const history: SearchPoint[] = [
      { rate: 500, sustained: true },
      { rate: 800, sustained: false },
      { rate: 400, sustained: false },
    ];
    expect(nextProbe(history, options)).toEqual({ rate: 630 });
  });

  it('ends when the step cannot split the bracket', () => {
    const history: SearchPoint[] = [
      { rate: 30, sustained: true },
      { rate: 40, sustained: false },
    ];
    expect(nextProbe(history, { ...options, resolution: 1.05 })).toEqual({ done: { sustained: 30, failed: 40, stop: 'resolution' } });
  });

  it('refuses options that cannot end', () => {
    expect(() => nextProbe([], { ...options, growth: 1 })).toThrow(RangeError);
    expect(() => nextProbe([], { ...options, resolution: 1 })).toThrow(RangeError);
    expect(() => nextProbe([], { ...options, floor: 0 })).toThrow(RangeError);
  });
});

describe('probeConnections', () => {
  it.each([
    [10, 2, 8],
    [500, 2, 150],
    [2500, 2, 750],
    [10_000, 2, 1200],
  ])('%d req/s on %d threads: %d connections', (rate, threads, expected) => {
    expect(probeConnections(rate, threads)).toBe(expected);
  });
});

describe('scalingRatios and bendAt', () => {
  const linear = [
    { instances: 2, sustained: 300 },
    { instances: 4, sustained: 600 },
    { instances: 6, sustained: 900 },
  ];
  const bent = [
    { instances: 2, sustained: 300 },
    { instances: 4, sustained: 580 },
    { instances: 6, sustained: 700 },
    { instances: 8, sustained: 690 },
  ];

  it('gives each size against the first, and per instance', () => {
    expect(scalingRatios(bent)).toEqual([
      { instances: 2, ratio: 1, perInstance: 150 },
      { instances: 4, ratio: 580 / 300, perInstance: 145 },
      { instances: 6, ratio: 700 / 300, perInstance: 700 / 6 },
      { instances: 8, ratio: 690 / 300, perInstance: 690 / 8 },
    ]);
  });

  it('has no ratio where a size sustained nothing measurable', () => {
    expect(scalingRatios([{ instances: 2, sustained: undefined }, { instances: 4, sustained: 100 }])[1]?.ratio).toBeUndefined();
    expect(scalingRatios([{ instances: 2, sustained: 300 }, { instances: 4, sustained: undefined }])[1]).toEqual({ instances: 4, ratio: undefined, perInstance: undefined });
  });

  it('finds no bend in a linear curve', () => {
    expect(bendAt(linear)).toBeUndefined();
  });

  it('counts a size that sustained nothing as 0', () => {
    expect(bendAt([{ instances: 2, sustained: 300 }, { instances: 4, sustained: undefined }, { instances: 6, sustained: 900 }])).toBe(4);
    expect(bendAt([{ instances: 2, sustained: undefined }, { instances: 4, sustained: 600 }])).toBeUndefined();
  });

  it('finds the first step that added less than half of linear', () => {
    // 4: +280 of +300 linear; 6: +120 of +290 linear (< half).
    expect(bendAt(bent)).toBe(6);
  });
});

describe('limitingResource', () => {
  const base = { app: 70, db: 30, haproxy: 10, wrk: 5, sidecar: 1, machine: 130, cores: 2 };

  it("names the replicas' CPU limit when they used nearly all of it", () => {
    expect(limitingResource(base, 4, 0.2)).toMatch(/^the replicas' CPU limit \(70 % of one core used of 80 %\)$/);
  });

  it('names the machine and its biggest users when it was nearly all busy', () => {
    expect(limitingResource({ ...base, app: 50, machine: 190 }, 4, 0.2)).toBe("the machine's CPU (95 % busy: the rest of the machine 94 %, PHP-FPM + nginx 50 %, MariaDB 30 %)");
  });

  it('says when nothing was saturated', () => {
    expect(limitingResource({ ...base, app: 40, machine: 100 }, 4, 0.2)).toMatch(/^no CPU saturation seen \(machine 50 % busy/);
  });

  it('without a CPU limit looks at the machine only', () => {
    expect(limitingResource({ ...base, app: 150, machine: 199 }, 2, undefined)).toMatch(/^the machine's CPU \(100 % busy: PHP-FPM \+ nginx 150 %/);
  });
});
