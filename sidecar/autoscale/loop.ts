// The control loop's schedule: a pass over the records in progress (scale-down retirements,
// operator drains) every poll period (a pass with none in progress reads nothing), and, where
// the autoscaler runs, an evaluation every interval and between evaluations a
// breach check every breachCheckMs (HAProxy's figures only, acting only on a scale-up for a
// breach), so a load step waits seconds for its decision, not up to a whole interval.
// One pass at a time; a failure is logged and the schedule goes on. Timers are injected, the same
// ones the reconcile loop uses, so tests drive it with a manual clock.
import { errorMessage } from '../edge/result.js';
import type { Timers } from '../reconcile/loop.js';
import type { Logger } from '../telemetry/logger.js';

export interface ControlLoopOptions {
  /** The autoscaler's evaluation; absent when autoscaling is off (records still move on). */
  readonly evaluate?: () => Promise<unknown>;
  /** Moves the records on (drains, scale-downs); resolves with how many are still in progress. */
  readonly progress: () => Promise<unknown>;
  readonly intervalMs: number;
  /** A breach check between evaluations (it decides whether to act itself); optional. */
  readonly breachCheck?: () => Promise<unknown>;
  /** How often the breach check runs between evaluations; 0 turns it off. */
  readonly breachCheckMs?: number;
  /** How often scale-downs in progress are looked at (the drain poll period). */
  readonly pollMs: number;
  readonly timers: Timers;
  readonly logger: Logger;
}

export interface ControlLoop {
  start(): void;
  /** Stops scheduling and waits for a pass in progress. */
  stop(): Promise<void>;
}

export function createControlLoop(options: ControlLoopOptions): ControlLoop {
  const { timers, logger } = options;
  let stopped = true;
  let cancel: (() => void) | undefined;
  let running: Promise<void> | undefined;
  let nextEvaluationAt = 0;
  let nextBreachCheckAt = Infinity;
  const breachCheckMs = options.breachCheck === undefined ? 0 : (options.breachCheckMs ?? 0);

  const schedule = (ms: number): void => {
    cancel?.();
    cancel = timers.schedule(() => {
      cancel = undefined;
      running = tick().finally(() => {
        running = undefined;
      });
    }, ms);
  };

  async function tick(): Promise<void> {
    if (stopped) return;
    try {
      await options.progress();
    } catch (error) {
      logger.error({ error: errorMessage(error) }, 'progress of drains and scale-downs failed');
    }
    if (stopped) return;
    if (options.evaluate !== undefined && timers.now() >= nextEvaluationAt) {
      nextEvaluationAt = timers.now() + options.intervalMs;
      nextBreachCheckAt = breachCheckMs > 0 ? timers.now() + breachCheckMs : Infinity;
      try {
        await options.evaluate();
        // An evaluation may have started a retirement: take its first step at once.
        await options.progress();
      } catch (error) {
        logger.error({ error: errorMessage(error) }, 'autoscaler evaluation failed');
      }
    } else if (timers.now() >= nextBreachCheckAt) {
      nextBreachCheckAt = timers.now() + breachCheckMs;
      try {
        await options.breachCheck?.();
      } catch (error) {
        logger.error({ error: errorMessage(error) }, 'autoscaler breach check failed');
      }
    }
    if (stopped) return;
    // Every poll period even with nothing in progress: a retirement may start outside the loop
    // (a count set through the admin API), and a pass with none reads nothing but the record.
    const next = Math.min(nextEvaluationAt, nextBreachCheckAt) - timers.now();
    schedule(Math.min(options.pollMs, Math.max(0, next)));
  }

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      // The first evaluation one interval after start: the sampler needs two scrapes for a rate.
      nextEvaluationAt = options.evaluate === undefined ? Infinity : timers.now() + options.intervalMs;
      nextBreachCheckAt = breachCheckMs > 0 ? timers.now() + breachCheckMs : Infinity;
      schedule(0);
    },
    async stop() {
      stopped = true;
      cancel?.();
      cancel = undefined;
      await running;
    },
  };
}
