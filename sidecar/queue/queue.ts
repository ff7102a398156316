// The sidecar's one work queue, in controller-runtime's shape. Each kind of work is a key
// (`reconcile`, `records`, `evaluate`, `breach-check`) with one handler that reads the world, acts,
// and says when it wants to run again. The queue owns everything about time:
//   - add() only marks a key's work pending; a run starts once adds have been quiet for the key's
//     debounce, but never later than its maximum delay after the first of them, so a burst gives
//     one run and a steady trickle cannot starve it;
//   - a key never runs twice at once: an add during a run gives exactly one more run after it;
//   - a failed run (or one that threw) is retried with exponential backoff, and adds wait for the
//     backoff too, so a stream of events cannot retry a refusing writer faster;
//   - after a successful run the key runs again when its handler asked (a periodic resync, a poll).
// Different keys run independently: a slow reconcile pass does not hold up a drain's poll.
// Timers are injected, so one manual clock drives every key in tests.
import { errorMessage } from '../edge/result.js';
import type { Logger } from '../log/logger.js';

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

/** What a run says about the next one. */
export interface RunResult {
  /** The run failed: retry after the backoff. */
  readonly failed?: boolean;
  /** Run again this long after a successful run (absent: only when work is added). */
  readonly requeueAfterMs?: number;
}

export interface WorkSpec {
  /** One run: reads the world, acts; the reasons are the adds it serves. */
  readonly run: (reasons: readonly string[]) => Promise<RunResult>;
  /** Quiet time after the last add before a run starts (default 0). */
  readonly debounceMs?: number;
  /** Longest an add waits for quiet (default: the debounce). */
  readonly maxDebounceMs?: number;
  /** First retry delay after a failed run; doubles up to maxBackoffMs (default 1 s and 30 s). */
  readonly backoffMs?: number;
  readonly maxBackoffMs?: number;
  /** The first run, at start(), after this long (default 0: at once). */
  readonly initialDelayMs?: number;
}

export interface WorkQueue {
  /** Adds a kind of work; before start() only. */
  register(key: string, spec: WorkSpec): void;
  /**
   * Marks the key's work pending; `reason` is passed to the run that serves it. `urgent` skips the
   * debounce: the run starts now (or right after the one in progress), never before a backoff.
   */
  add(key: string, reason: string, urgent?: boolean): void;
  /** Replaces the key's next periodic run (not a pending add) with one `ms` from now. */
  requeue(key: string, ms: number): void;
  /** Runs every key once (after its initial delay), then as the runs ask. */
  start(): void;
  /** Stops scheduling and waits for the runs in progress. */
  stop(): Promise<void>;
  /** Resolves when the key has no run in progress and none pending (a periodic one may be due later). */
  settled(key: string): Promise<void>;
}

type Kind = 'debounce' | 'retry' | 'periodic';

interface KeyState {
  readonly spec: WorkSpec;
  running: Promise<void> | undefined;
  reasons: string[];
  /** When the oldest add not yet served by a run arrived. */
  firstPendingAt: number | undefined;
  scheduled: { at: number; kind: Kind; cancel: () => void } | undefined;
  failures: number;
  /** After a failure, no run before its backoff is over, whatever adds it. */
  retryNotBefore: number | undefined;
  /** An urgent add is pending: the next run is not debounced. */
  urgent: boolean;
  waiters: Array<() => void>;
}

export function createWorkQueue(options: { readonly timers: Timers; readonly logger: Logger }): WorkQueue {
  const { timers, logger } = options;
  const keys = new Map<string, KeyState>();
  let stopped = true;

  const stateOf = (key: string): KeyState => {
    const state = keys.get(key);
    // Our own misuse: every key is registered by the wiring before anything adds to it.
    if (state === undefined) throw new Error(`work queue: unknown key ${key}`);
    return state;
  };

  const replaceSchedule = (key: string, state: KeyState, at: number, kind: Kind): void => {
    state.scheduled?.cancel();
    state.scheduled = { at, kind, cancel: timers.schedule(() => void runKey(key), Math.max(0, at - timers.now())) };
  };

  /** A retry or periodic run never delays an earlier one already due. */
  const scheduleRun = (key: string, state: KeyState, delayMs: number, kind: 'retry' | 'periodic'): void => {
    if (stopped) return;
    const at = timers.now() + delayMs;
    if (state.scheduled !== undefined && state.scheduled.at <= at) return;
    replaceSchedule(key, state, at, kind);
  };

  /** Trailing debounce, capped: each add pushes the run back, up to maxDebounceMs after the first. */
  const debounce = (key: string, state: KeyState): void => {
    if (stopped) return;
    const now = timers.now();
    state.firstPendingAt ??= now;
    // A run already due now (start-up) serves this add too; pushing it back would only delay.
    if (state.scheduled !== undefined && state.scheduled.at <= now) return;
    const debounceMs = state.urgent ? 0 : (state.spec.debounceMs ?? 0);
    const at = Math.max(Math.min(now + debounceMs, state.firstPendingAt + (state.spec.maxDebounceMs ?? debounceMs)), state.retryNotBefore ?? 0);
    // A retry or periodic run due even sooner serves the pending adds too.
    if (state.scheduled !== undefined && state.scheduled.kind !== 'debounce' && state.scheduled.at <= at) return;
    replaceSchedule(key, state, at, 'debounce');
  };

  const notifySettled = (state: KeyState): void => {
    if (state.running !== undefined || state.reasons.length > 0) return;
    if (state.scheduled !== undefined && state.scheduled.kind !== 'periodic') return;
    const resolve = state.waiters;
    state.waiters = [];
    for (const w of resolve) w();
  };

  async function runKey(key: string): Promise<void> {
    const state = stateOf(key);
    const periodic = state.scheduled?.kind === 'periodic' && state.reasons.length === 0;
    state.scheduled = undefined;
    if (stopped) return;
    if (state.running !== undefined) {
      // Due while a run is in progress (a requeue): served by one more run after it.
      state.reasons.push(periodic ? 'periodic' : 'retry');
      state.firstPendingAt ??= timers.now();
      return;
    }
    const reasons = state.reasons.length > 0 ? state.reasons : [periodic ? 'periodic' : 'retry'];
    state.reasons = [];
    state.urgent = false;
    state.firstPendingAt = undefined;
    let result: RunResult = { failed: true };
    state.running = (async () => {
      try {
        result = await state.spec.run([...new Set(reasons)]);
      } catch (error) {
        // Handlers return their failures as values; a throw is a bug, but the queue must live on.
        logger.error({ key, error: errorMessage(error) }, `${key} threw: ${errorMessage(error)}`);
        result = { failed: true };
      }
    })();
    try {
      await state.running;
    } finally {
      state.running = undefined;
    }
    if (result.failed === true) {
      state.failures++;
      const backoff = Math.min((state.spec.backoffMs ?? 1_000) * 2 ** (state.failures - 1), state.spec.maxBackoffMs ?? 30_000);
      state.retryNotBefore = timers.now() + backoff;
    } else {
      state.failures = 0;
      state.retryNotBefore = undefined;
    }
    if (state.reasons.length > 0) {
      debounce(key, state);
    } else if (result.failed === true) {
      scheduleRun(key, state, (state.retryNotBefore ?? timers.now()) - timers.now(), 'retry');
    } else if (result.requeueAfterMs !== undefined) {
      scheduleRun(key, state, result.requeueAfterMs, 'periodic');
    }
    notifySettled(state);
  }

  return {
    register(key, spec) {
      if (keys.has(key)) throw new Error(`work queue: ${key} registered twice`);
      keys.set(key, { spec, running: undefined, reasons: [], firstPendingAt: undefined, scheduled: undefined, failures: 0, retryNotBefore: undefined, urgent: false, waiters: [] });
    },
    add(key, reason, urgent = false) {
      const state = stateOf(key);
      state.reasons.push(reason);
      state.urgent ||= urgent;
      // During a run, the run's end schedules the next one.
      if (state.running === undefined) debounce(key, state);
      else state.firstPendingAt ??= timers.now();
    },
    requeue(key, ms) {
      const state = stateOf(key);
      if (stopped || state.reasons.length > 0 || (state.scheduled !== undefined && state.scheduled.kind !== 'periodic')) return;
      replaceSchedule(key, state, timers.now() + ms, 'periodic');
    },
    start() {
      if (!stopped) return;
      stopped = false;
      for (const [key, state] of keys) {
        const delay = state.spec.initialDelayMs ?? 0;
        if (delay === 0) {
          state.reasons.push('start-up');
          replaceSchedule(key, state, timers.now(), 'debounce');
        } else {
          replaceSchedule(key, state, timers.now() + delay, 'periodic');
        }
      }
    },
    async stop() {
      stopped = true;
      for (const state of keys.values()) {
        state.scheduled?.cancel();
        state.scheduled = undefined;
        state.reasons = [];
        state.firstPendingAt = undefined;
        state.urgent = false;
      }
      await Promise.all([...keys.values()].map((s) => s.running ?? Promise.resolve()));
      for (const state of keys.values()) notifySettled(state);
    },
    settled(key) {
      const state = stateOf(key);
      return new Promise((resolve) => {
        state.waiters.push(resolve);
        notifySettled(state);
      });
    },
  };
}
