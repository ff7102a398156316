import { describe, expect, it } from 'vitest';
import { createControlLoop } from '../../../sidecar/autoscale/loop.js';
import { silentLogger } from '../../../sidecar/telemetry/logger.js';
import { manualTimers } from '../../support/timers.js';

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
    logger: silentLogger,
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
    // Every poll period, and right after each evaluation (it may have started a retirement).
    expect(calls.filter((c) => c.startsWith('progress')).slice(0, 6)).toEqual([
      'progress @0',
      'progress @250',
      'progress @500',
      'progress @750',
      'progress @1000',
      'progress @1000',
    ]);
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
      logger: silentLogger,
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
        logger: silentLogger,
      });
      loop.start();
      await timers.advance(2_000);
      await loop.stop();
      expect(checks).toBe(breachCheckMs === 0 ? 0 : 2);
    }
  });
});
