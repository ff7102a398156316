// Runs reconcile passes one at a time. Triggers (Docker events, the admin API, start-up) only mark
// work pending. A pass starts once triggers have been quiet for the debounce time, but never later
// than the maximum delay after the first of them, so a burst (20 containers starting together)
// gives one pass and a steady trickle of events cannot starve the loop; a trigger that arrives
// during a pass gives exactly one more after it. Between triggers a periodic resync runs,
// failures back off exponentially, and containers still starting are looked at again soon.
import type { Logger } from '../telemetry/logger.js';
import type { ReconcileOutcome } from './reconciler.js';

export interface Timers {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Runs `callback` after `ms`; the returned function cancels it. */
  schedule(callback: () => void, ms: number): () => void;
}

export const realTimers: Timers = {
  now: () => Date.now(),
  schedule(callback, ms) {
    const handle = setTimeout(callback, ms);
    return () => clearTimeout(handle);
  },
};

export interface LoopOptions {
  readonly reconcile: () => Promise<ReconcileOutcome>;
  /** Quiet time after the last trigger before a pass starts. */
  readonly debounceMs: number;
  /** Longest a trigger waits for quiet: the pass starts by then even if events keep coming. */
  readonly maxDebounceMs: number;
  readonly resyncIntervalMs: number;
  /** Delay before looking again at containers that were running but not ready. */
  readonly readinessRetryMs: number;
  /** First retry delay after a failed pass; doubles up to the resync interval. */
  readonly failureBackoffMs: number;
  readonly timers: Timers;
  readonly logger: Logger;
  /** Called after every pass, for /readyz and the admin API. */
  readonly onOutcome?: (outcome: ReconcileOutcome) => void;
}

export interface ReconcileLoop {
  /** Marks work pending; `reason` is logged with the pass it causes. */
  trigger(reason: string): void;
  start(): void;
  /** Stops scheduling and waits for a pass in progress to finish. */
  stop(): Promise<void>;
  /** Resolves when no pass runs and none is due before the next resync (tests, shutdown). */
  settled(): Promise<void>;
}

export function createReconcileLoop(options: LoopOptions): ReconcileLoop {
  const { timers, logger } = options;
  let stopped = true;
  let running: Promise<void> | undefined;
  let pendingReasons: string[] = [];
  let scheduled: { at: number; cancel: () => void; kind: 'debounce' | 'retry' | 'resync' } | undefined;
  /** When the oldest trigger not yet served by a pass arrived. */
  let firstPendingAt: number | undefined;
  let consecutiveFailures = 0;
  /**
   * After a failed pass, no pass before its backoff is over, whatever triggers it: events of
   * unrelated containers arrive all the time on a busy host, and would otherwise retry a writer
   * that keeps refusing (an invalid configuration, an API down) several times a second.
   */
  let retryNotBefore: number | undefined;
  let waiters: Array<() => void> = [];

  const scheduleRun = (delayMs: number, kind: 'retry' | 'resync'): void => {
    if (stopped) return;
    const at = timers.now() + delayMs;
    // Keep an earlier run that is already due; a retry or resync never delays one.
    if (scheduled !== undefined && scheduled.at <= at) return;
    replaceSchedule(at, kind);
  };

  const replaceSchedule = (at: number, kind: 'debounce' | 'retry' | 'resync'): void => {
    scheduled?.cancel();
    scheduled = { at, kind, cancel: timers.schedule(() => void runPass(), Math.max(0, at - timers.now())) };
  };

  /** Trailing debounce, capped: each trigger pushes the pass back, up to maxDebounceMs after the first. */
  const debounce = (): void => {
    if (stopped) return;
    const now = timers.now();
    firstPendingAt ??= now;
    // A pass already due now (start-up) serves this trigger too; pushing it back would only delay.
    if (scheduled !== undefined && scheduled.at <= now) return;
    const at = Math.max(Math.min(now + options.debounceMs, firstPendingAt + options.maxDebounceMs), retryNotBefore ?? 0);
    // A retry or resync due even sooner serves the pending triggers too.
    if (scheduled !== undefined && scheduled.kind !== 'debounce' && scheduled.at <= at) return;
    replaceSchedule(at, 'debounce');
  };

  const notifySettled = (): void => {
    if (running !== undefined || pendingReasons.length > 0) return;
    if (scheduled !== undefined && scheduled.kind !== 'resync') return;
    const resolve = waiters;
    waiters = [];
    for (const w of resolve) w();
  };

  async function runPass(): Promise<void> {
    const resync = scheduled?.kind === 'resync' && pendingReasons.length === 0;
    scheduled = undefined;
    if (stopped || running !== undefined) return;
    const reasons = pendingReasons.length > 0 ? pendingReasons : [resync ? 'periodic resync' : 'retry'];
    pendingReasons = [];
    firstPendingAt = undefined;
    let outcome: ReconcileOutcome | undefined;
    running = (async () => {
      logger.debug({ reasons: [...new Set(reasons)] }, 'reconcile pass');
      try {
        outcome = await options.reconcile();
        options.onOutcome?.(outcome);
      } catch (error) {
        // The reconciler returns its failures as values; this is a bug, but the loop must live on.
        const message = `reconcile pass threw: ${error instanceof Error ? error.message : String(error)}`;
        logger.error({}, message);
        outcome = { status: 'failed', message, error: undefined, transactions: 0, conflicts: 0 };
      }
    })();
    try {
      await running;
    } finally {
      running = undefined;
    }
    if (outcome === undefined) return;
    if (outcome.status === 'failed') {
      consecutiveFailures++;
      retryNotBefore = timers.now() + Math.min(options.failureBackoffMs * 2 ** (consecutiveFailures - 1), options.resyncIntervalMs);
    } else {
      consecutiveFailures = 0;
      retryNotBefore = undefined;
    }
    if (pendingReasons.length > 0) {
      debounce();
    } else if (outcome.status === 'failed') {
      scheduleRun((retryNotBefore ?? timers.now()) - timers.now(), 'retry');
    } else if (outcome.waiting > 0) {
      scheduleRun(options.readinessRetryMs, 'retry');
    } else {
      scheduleRun(options.resyncIntervalMs, 'resync');
    }
    notifySettled();
  }

  return {
    trigger(reason) {
      pendingReasons.push(reason);
      // During a pass, the pass's end schedules the next one.
      if (running === undefined) debounce();
      else firstPendingAt ??= timers.now();
    },
    start() {
      if (!stopped) return;
      stopped = false;
      pendingReasons.push('start-up');
      replaceSchedule(timers.now(), 'debounce');
    },
    async stop() {
      stopped = true;
      scheduled?.cancel();
      scheduled = undefined;
      pendingReasons = [];
      firstPendingAt = undefined;
      await running;
      notifySettled();
    },
    settled() {
      return new Promise((resolve) => {
        waiters.push(resolve);
        notifySettled();
      });
    },
  };
}
