import { describe, expect, it } from 'vitest';
import { createAutoscaler } from '../../../sidecar/autoscale/controller.js';
import { createSampler } from '../../../sidecar/autoscale/sampler.js';
import { autoscalerWork } from '../../../sidecar/autoscale/work.js';
import { createWorkQueue } from '../../../sidecar/queue/queue.js';
import { createDrainer } from '../../../sidecar/records/drains.js';
import { hpaRule, oursPredictive, oursReactive } from '../../../sidecar/simulation/policies.js';
import { stationFigures } from '../../../sidecar/simulation/queueing.js';
import { DEFAULT_MODEL, product, simulate, stepTimings, type ModelSettings } from '../../../sidecar/simulation/simulate.js';
import type { Trace } from '../../../sidecar/simulation/trace.js';
import { LOAD_STEP, loadStep } from '../../../bench/sim/traces.js';
import { FAMILIES } from '../../../bench/sim/families.js';

const constant = (rate: number, seconds: number): Trace => ({ name: 'constant', description: '', rates: new Array<number>(seconds).fill(rate) });
const frozen: ModelSettings = { ...DEFAULT_MODEL, initialReplicas: 1 };
const pinned = { ...oursReactive, name: 'pinned to 1', policy: { ...oursReactive.policy, minReplicas: 1, maxReplicas: 1 } };
const queueing = { workers: 4, serviceTime: 0.028 };

describe('the simulator', () => {
  it('runs the sidecar’s own work queue, autoscaler schedule, autoscaler, sampler and drainer, not copies', async () => {
    expect(product).toEqual({ createAutoscaler, createSampler, createWorkQueue, autoscalerWork, createDrainer });
    expect(product.createAutoscaler).toBe(createAutoscaler);
    expect(product.createSampler).toBe(createSampler);
    expect(product.createWorkQueue).toBe(createWorkQueue);
    expect(product.autoscalerWork).toBe(autoscalerWork);
    // The decisions that acted are the controller's own records: a breach check's reason is the
    // controller's "breach check: …", and the actions are planActions' (a start of several at once).
    const step: Trace = { name: 'step', description: '', rates: Array.from({ length: 600 }, (_, t) => (t >= 120 ? 600 : 60)) };
    const run = await simulate(step, oursReactive);
    const first = run.acted[0];
    expect(first?.reason).toMatch(/^breach check: /);
    expect(first?.actions).toEqual([{ kind: 'start', count: expect.any(Number) as number }]);
    expect(first?.applied).toBe(true);
  });

  it('gives one instance under its capacity the queueing model’s response time and no failures', async () => {
    const result = await simulate(constant(80, 600), pinned, frozen);
    expect(result.summary.failedRequests).toBe(0);
    expect(result.summary.sloViolationMinutes).toBe(0);
    const expected = stationFigures(queueing, 80).p99Response;
    // The steady state of the offered rate: a second's Poisson count alone does not make a queue.
    expect(result.summary.p99Worst).toBeCloseTo(expected, 3);
    expect(result.summary.instanceHours).toBeCloseTo(600 / 3600, 2);
  });

  it('builds a backlog at the excess rate over capacity, then fails what waits past the queue timeout', async () => {
    // 200 req/s offered to 142.9 req/s of capacity (4 workers, 28 ms): 57.1 req/s pile up; 30 s
    // of capacity (4286) fills in 75 s.
    expect(frozen.station).toEqual({ kind: 'mmc', ...queueing });
    const result = await simulate(constant(200, 300), pinned, frozen);
    expect(result.summary.sloViolationMinutes).toBeGreaterThan(4.5);
    const failedShare = result.summary.failedRequests / result.summary.requests;
    // From second 75 on, 57.1 of 200 requests a second fail: 225/300 × 57.1/200 = 21.4 % of all.
    expect(failedShare).toBeGreaterThan(0.19);
    expect(failedShare).toBeLessThan(0.235);
  });

  it('is reproducible for a seed and differs between seeds', async () => {
    const trace = FAMILIES.find((f) => f.name === 'bursts')?.generate(3);
    if (trace === undefined) throw new Error('no bursts family');
    const a = JSON.stringify((await simulate(trace, oursPredictive)).summary);
    const b = JSON.stringify((await simulate(trace, oursPredictive)).summary);
    const c = JSON.stringify((await simulate(trace, oursPredictive, { ...DEFAULT_MODEL, seed: 8 })).summary);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });

  it('scales a pool up for a load step and back down to the minimum through retirements', async () => {
    const step: Trace = { name: 'step', description: '', rates: Array.from({ length: 1800 }, (_, t) => (t >= 300 && t < 900 ? 600 : 60)) };
    const result = await simulate(step, oursReactive, DEFAULT_MODEL, { perSecond: true });
    const during = result.series.filter((p) => p.t >= 600 && p.t < 900).map((p) => p.replicas);
    expect(Math.min(...during)).toBeGreaterThanOrEqual(5); // 600 req/s needs 5 at 142.9 req/s each
    expect(result.perSecond?.serving.at(-1)).toBe(2);
    // The way down went through the controller's retirements (its records say "retire").
    expect(result.acted.some((r) => r.actions.some((a) => a.kind === 'retire'))).toBe(true);
  });

  it('models the local environment’s /work: a token bucket per instance, a 503 beyond its line', async () => {
    const work: ModelSettings = { ...frozen, station: { kind: 'token-bucket', rate: 50, burst: 200, workSeconds: 0.01 } };
    const under = await simulate(constant(40, 120), pinned, work);
    expect(under.summary.failedRequests).toBe(0);
    expect(under.summary.sloViolationMinutes).toBe(0);
    // 70 req/s on 50: 20 a second wait, the line of 200 is full after 10 s, then 20 a second fail.
    const over = await simulate(constant(70, 120), pinned, work);
    expect(over.summary.failedRequests / over.summary.requests).toBeGreaterThan(0.2);
    expect(over.summary.failedRequests / over.summary.requests).toBeLessThan(0.3);
  });

  it('serves closed-loop clients at the pool’s capacity, with every client’s request in flight', async () => {
    const work: ModelSettings = { ...frozen, station: { kind: 'token-bucket', rate: 50, burst: 200, workSeconds: 0.01 } };
    const run = await simulate(constant(0, 60), pinned, work, { clients: new Array<number>(60).fill(12) });
    // 12 clients on one instance of 50 req/s: 50 a second, each answer 12 / 50 = 0.24 s.
    expect(run.summary.requests).toBe(12 * 60);
    expect(run.summary.failedRequests).toBe(0);
    expect(run.summary.p99Worst).toBeCloseTo(0.24, 2);
  });
});

describe('what the simulator models for the policies', () => {
  const step = loadStep();
  const endAt = LOAD_STEP.stepAt + LOAD_STEP.seconds;

  it('runs ours as the sidecar’s configuration loader builds its defaults', () => {
    expect(oursPredictive).toMatchObject({ intervalSeconds: 30, breachCheckSeconds: 2, cpu: { windowSeconds: 1, readyOnly: false, latencyMs: 1000 } });
    expect(oursPredictive.policy.forecast).toMatchObject({ mode: 'act', horizonMs: 50_000 });
    expect(oursPredictive.policy.demand).toEqual({ startupMs: DEFAULT_MODEL.startupSeconds * 1000, backlogDrainMs: 30_000 });
    expect(hpaRule).toMatchObject({ intervalSeconds: 15, breachCheckSeconds: 0, cpu: { windowSeconds: 15, readyOnly: true, latencyMs: 0 }, policy: { scaleDownStabilisationMs: 300_000, tolerance: 0.1 } });
  });

  it('a breach check decides within its period of a step, the HPA rule at its sync, and capacity comes a start-up later', async () => {
    const ours = stepTimings(await simulate(step, oursReactive), LOAD_STEP.stepAt, endAt);
    const hpa = stepTimings(await simulate(step, hpaRule), LOAD_STEP.stepAt, endAt);
    expect(ours.decisionSeconds).toBeLessThanOrEqual(3);
    expect(ours.firstCapacitySeconds).toBe((ours.decisionSeconds ?? NaN) + DEFAULT_MODEL.startupSeconds);
    // The step comes 7 s after an HPA sync; the next one, 8 s later, averages 7 s of rest into its
    // 15 s of CPU (under target), so the HPA rule decides at the one after, 23 s after the step.
    expect(hpa.decisionSeconds).toBe(23);
    expect(hpa.firstCapacitySeconds).toBe(23 + DEFAULT_MODEL.startupSeconds);
  });

  it('sizes a step from the demand, not the throughput: within two breach checks it starts more than 500 req/s needs at the target', async () => {
    const run = await simulate(step, oursReactive);
    const started = run.scaleUps.filter((u) => u.decidedAt >= LOAD_STEP.stepAt && u.decidedAt <= LOAD_STEP.stepAt + 5).reduce((sum, u) => sum + u.started, 0);
    expect(2 + started).toBeGreaterThan(5);
  });

  it('times a step from the run’s scale-ups', () => {
    const run = {
      scaleUps: [
        { decidedAt: 105, undrained: 0, started: 3, firstServingAt: 125, servingAt: 127 },
        { decidedAt: 140, undrained: 1, started: 0, firstServingAt: 140, servingAt: 140 },
        { decidedAt: 150, undrained: 0, started: 2, firstServingAt: 170, servingAt: 171 },
        { decidedAt: 400, undrained: 0, started: 2, firstServingAt: 420, servingAt: 421 },
      ],
    };
    expect(stepTimings(run, 100, 300)).toEqual({ decisionSeconds: 5, firstCapacitySeconds: 25, fullCapacitySeconds: 71 });
    expect(stepTimings(run, 500, 600)).toEqual({ decisionSeconds: undefined, firstCapacitySeconds: undefined, fullCapacitySeconds: undefined });
  });
});
