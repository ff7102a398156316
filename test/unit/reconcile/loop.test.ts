import { describe, expect, it } from 'vitest';
import { createWorkQueue } from '../../../sidecar/queue/queue.js';
import { manualTimers } from '../../support/timers.js';
import { reconcileWork, type ReconcileOutcome } from '../../../sidecar/reconcile/reconciler.js';
import { silentLogger } from '../../../sidecar/log/logger.js';


const converged = (waiting = 0, starving = 0): ReconcileOutcome => ({ status: 'converged', operations: [], stateOperations: [], transactions: 0, reloads: 0, conflicts: 0, waiting, starving });
const failed: ReconcileOutcome = { status: 'failed', message: 'boom', error: undefined, transactions: 0, conflicts: 0 };

function setup(outcomes: Array<ReconcileOutcome | (() => Promise<ReconcileOutcome>)> = []) {
  const timers = manualTimers();
  const runs: number[] = [];
  const queue = createWorkQueue({ timers, logger: silentLogger });
  const reconciler = {
    reconcile: async () => {
      runs.push(timers.now());
      const next = outcomes.shift() ?? converged();
      return typeof next === 'function' ? next() : next;
    },
  };
  queue.register(
    'reconcile',
    reconcileWork(reconciler, { debounceMs: 100, maxDebounceMs: 2_000, resyncIntervalMs: 30_000, readinessRetryMs: 1_000, failureBackoffMs: 1_000, logger: silentLogger }),
  );
  const loop = { start: () => queue.start(), stop: () => queue.stop(), trigger: (reason: string, urgent = false) => queue.add('reconcile', reason, urgent) };
  return { timers, runs, loop };
}

describe('the reconcile key on the work queue', () => {
  it('runs at start, then resyncs periodically', async () => {
    const { timers, runs, loop } = setup();
    loop.start();
    await timers.advance(65_000);
    expect(runs).toEqual([0, 30_000, 60_000]);
    await loop.stop();
  });

  it('a trigger right at start-up does not delay the start-up pass', async () => {
    const { timers, runs, loop } = setup();
    loop.start();
    loop.trigger('docker event stream opened');
    await timers.advance(1_000);
    expect(runs).toEqual([0]);
    await loop.stop();
  });

  it('coalesces a burst of triggers into one pass', async () => {
    const { timers, runs, loop } = setup();
    loop.start();
    await timers.advance(1_000);
    for (let i = 0; i < 50; i++) loop.trigger(`event ${i}`);
    await timers.advance(5_000);
    expect(runs).toEqual([0, 1_100]);
    await loop.stop();
  });

  it('waits for quiet after a trickle of events, but never longer than the maximum delay', async () => {
    const { timers, runs, loop } = setup();
    loop.start();
    await timers.advance(1_000);
    // An event every 50 ms for 5 s: never 100 ms of quiet.
    for (let i = 0; i < 100; i++) {
      loop.trigger(`event ${i}`);
      await timers.advance(50);
    }
    await timers.advance(1_000);
    // Capped at 2 s after the first pending trigger each time; then 100 ms after the last one.
    expect(runs).toEqual([0, 3_000, 5_000, 6_050]);
    await loop.stop();
  });

  it('an urgent trigger (every server of a backend on its way out) runs a pass at once, and a starving pass looks again within 100 ms', async () => {
    const { timers, runs, loop } = setup([converged(), converged(1, 1), converged(1, 1), converged()]);
    loop.start();
    await timers.advance(1_000);
    loop.trigger('docker kill', true);
    await timers.advance(0);
    expect(runs).toEqual([0, 1_000]);
    // That pass found the backend waiting for a starting container: again at 1 100 and 1 200; the
    // last one served it, and the next pass is the periodic resync (30 s).
    await timers.advance(5_000);
    expect(runs).toEqual([0, 1_000, 1_100, 1_200]);
    await loop.stop();
  });

  it('a trigger during a pass gives exactly one more pass after it, never two at once', async () => {
    let release: () => void = () => {};
    const slow = (): Promise<ReconcileOutcome> =>
      new Promise((resolve) => {
        release = () => resolve(converged());
      });
    const { timers, runs, loop } = setup([slow]);
    let concurrent = 0;
    loop.start();
    await timers.advance(0);
    expect(runs).toEqual([0]);
    loop.trigger('a');
    loop.trigger('b');
    await timers.advance(500);
    concurrent = runs.length;
    release();
    await timers.advance(1_000);
    expect(concurrent).toBe(1);
    expect(runs).toEqual([0, 600]);
    await loop.stop();
  });

  it('backs off exponentially after failures, up to the resync interval, and resets on success', async () => {
    const { timers, runs, loop } = setup([failed, failed, failed, failed, failed, failed, failed, converged()]);
    loop.start();
    await timers.advance(200_000);
    const gaps = runs.slice(1).map((t, i) => t - (runs[i] ?? 0));
    expect(gaps.slice(0, 8)).toEqual([1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
    await loop.stop();
  });

  it('after a failure, triggers wait for the backoff: a stream of events does not retry a refusing writer faster', async () => {
    const { timers, runs, loop } = setup([failed, failed, failed, converged()]);
    loop.start();
    // Events of other containers every 300 ms (found by the fault suite: a failing pass ran on each).
    for (let t = 0; t < 6_900; t += 300) {
      loop.trigger(`event at ${t}`);
      await timers.advance(300);
    }
    await timers.advance(500);
    expect(runs).toEqual([0, 1_000, 3_000, 7_000]);
    // Converged again: a trigger runs after the debounce alone.
    loop.trigger('event');
    await timers.advance(200);
    expect(runs).toEqual([0, 1_000, 3_000, 7_000, 7_500]);
    await loop.stop();
  });

  it('looks again soon while containers are starting', async () => {
    const { timers, runs, loop } = setup([converged(2), converged(1), converged(0)]);
    loop.start();
    await timers.advance(10_000);
    expect(runs).toEqual([0, 1_000, 2_000]);
    await loop.stop();
  });

  it('stop waits for the pass in progress and schedules nothing after it', async () => {
    let release: () => void = () => {};
    const { timers, runs, loop } = setup([
      () =>
        new Promise((resolve) => {
          release = () => resolve(converged());
        }),
    ]);
    loop.start();
    await timers.advance(0);
    let stopped = false;
    const stopping = loop.stop().then(() => {
      stopped = true;
    });
    await timers.advance(10);
    expect(stopped).toBe(false);
    release();
    await stopping;
    loop.trigger('late');
    await timers.advance(100_000);
    expect(runs).toEqual([0]);
    expect(timers.pending()).toEqual([]);
  });

  it('survives a reconcile that throws, treating it as a failed pass', async () => {
    const { timers, runs, loop } = setup([() => Promise.reject(new Error('bug')), converged()]);
    loop.start();
    await timers.advance(1_500);
    expect(runs).toEqual([0, 1_000]);
    await loop.stop();
  });
});
