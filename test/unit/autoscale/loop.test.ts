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
