// A manual clock for the loops' unit tests (the reconcile loop, the autoscaler's control loop).
import type { Timers } from '../../sidecar/queue/queue.js';

export /** A clock that moves only when the test says so, running due callbacks in time order. */
function manualTimers(): Timers & { advance(ms: number): Promise<void>; pending(): number[] } {
  let now = 0;
  let seq = 0;
  const queue: Array<{ at: number; seq: number; callback: () => void }> = [];
  const flush = async (): Promise<void> => {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  };
  return {
    now: () => now,
    schedule(callback, ms) {
      const entry = { at: now + ms, seq: seq++, callback };
      queue.push(entry);
      return () => {
        const index = queue.indexOf(entry);
        if (index >= 0) queue.splice(index, 1);
      };
    },
    async advance(ms) {
      const until = now + ms;
      for (;;) {
        await flush();
        queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
        const next = queue[0];
        if (next === undefined || next.at > until) break;
        queue.shift();
        now = next.at;
        next.callback();
      }
      now = until;
      await flush();
    },
    pending: () => queue.map((e) => e.at - now).sort((a, b) => a - b),
  };
}
