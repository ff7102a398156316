import { describe, expect, it } from 'vitest';
import { autoscalerWork } from '../../../sidecar/autoscale/work.js';
import { createWorkQueue, type Timers } from '../../../sidecar/queue/queue.js';
import { silentLogger } from '../../../sidecar/log/logger.js';
import { manualTimers } from '../../support/timers.js';

/** The autoscaler's keys and a records key polled like the sidecar's, on one queue. */
function createControlLoop(options: {
  evaluate: () => Promise<unknown>;
  breachCheck?: () => Promise<unknown>;
  breachCheckMs?: number;
  progress: () => Promise<unknown>;
  intervalMs: number;
  pollMs: number;
  timers: Timers;
}) {
  const queue = createWorkQueue({ timers: options.timers, logger: silentLogger });
  queue.register('records', {
    run: async () => {
      await options.progress();
      return { requeueAfterMs: options.pollMs };
    },
  });
  const autoscaler = { evaluate: options.evaluate, checkBreach: options.breachCheck ?? (() => Promise.resolve(undefined)) };
  const work = autoscalerWork(autoscaler, queue, { intervalMs: options.intervalMs, breachCheckMs: options.breachCheck === undefined ? 0 : (options.breachCheckMs ?? 0), logger: silentLogger, recordsKey: 'records' });
  for (const [key, spec] of Object.entries(work)) queue.register(key, spec);
  return { start: () => queue.start(), stop: () => queue.stop() };
}

function harness(evaluate: () => Promise<unknown> = () => Promise.resolve()) {
  const timers = manualTimers();
  const calls: string[] = [];
  const loop = createControlLoop({
    evaluate: async () => {
      calls.push(`evaluate @${timers.now()}`);
      await evaluate();
    },
    progress: () => {
      calls.push(`progress @${timers.now()}`);
      return Promise.resolve(0);
    },
    intervalMs: 1_000,
    pollMs: 250,
    timers,
  });
  return { timers, calls, loop };
}

describe('the autoscaler control loop', () => {
  it('evaluates once per interval, the first one interval after start, and moves scale-downs on every poll period', async () => {
    const { timers, calls, loop } = harness();
    loop.start();
    await timers.advance(2_000);
    await loop.stop();
    expect(calls.filter((c) => c.startsWith('evaluate'))).toEqual(['evaluate @1000', 'evaluate @2000']);
    // Every poll period, and right after each evaluation (it may have started a retirement): at
    // 1000 the evaluation's request is served by the poll run due at that moment, after it.
    expect(calls.filter((c) => c.startsWith('progress')).slice(0, 5)).toEqual(['progress @0', 'progress @250', 'progress @500', 'progress @750', 'progress @1000']);
    expect(calls.indexOf('progress @1000')).toBeGreaterThan(calls.indexOf('evaluate @1000'));
    expect(calls.lastIndexOf('progress @2000')).toBeGreaterThan(calls.indexOf('evaluate @2000'));
  });

  it('goes on after a failed evaluation, and schedules nothing once stopped', async () => {
    let fail = true;
    const { timers, calls, loop } = harness(() => (fail ? Promise.reject(new Error('docker down')) : Promise.resolve()));
    loop.start();
    await timers.advance(1_000);
    fail = false;
    await timers.advance(1_000);
    await loop.stop();
    const evaluations = calls.filter((c) => c.startsWith('evaluate')).length;
    expect(evaluations).toBe(2);
    expect(timers.pending()).toEqual([]);
  });
});

describe('the breach check between evaluations', () => {
  it('runs every breachCheckMs between evaluations, never in the same tick as one', async () => {
    const timers = manualTimers();
    const calls: string[] = [];
    const loop = createControlLoop({
      evaluate: () => Promise.resolve(calls.push(`evaluate @${timers.now()}`)),
      breachCheck: () => Promise.resolve(calls.push(`breach @${timers.now()}`)),
      breachCheckMs: 300,
      progress: () => Promise.resolve(0),
      intervalMs: 1_000,
      pollMs: 250,
      timers,
    });
    loop.start();
    await timers.advance(2_000);
    await loop.stop();
    expect(calls).toEqual(['breach @300', 'breach @600', 'breach @900', 'evaluate @1000', 'breach @1300', 'breach @1600', 'breach @1900', 'evaluate @2000']);
  });

  it('goes on after a failed check; 0 turns it off', async () => {
    for (const breachCheckMs of [0, 500]) {
      const timers = manualTimers();
      let checks = 0;
      const loop = createControlLoop({
        evaluate: () => Promise.resolve(),
        breachCheck: () => {
          checks++;
          return Promise.reject(new Error('exporter down'));
        },
        breachCheckMs,
        progress: () => Promise.resolve(0),
        intervalMs: 1_000,
        pollMs: 250,
        timers,
      });
      loop.start();
      await timers.advance(2_000);
      await loop.stop();
      expect(checks).toBe(breachCheckMs === 0 ? 0 : 2);
    }
  });
});
