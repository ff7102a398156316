// The autoscaler's keys on the work queue: an evaluation every interval (the first one interval
// after start: the sampler needs two scrapes for a rate) and, between evaluations, a breach check
// every breachCheckMs (HAProxy's figures only, acting only on a scale-up for a breach), so a load
// step waits seconds for its decision, not up to a whole interval. A failure is logged and the
// schedule goes on: the next evaluation reads everything again.
import { errorMessage } from '../edge/result.js';
import type { WorkQueue, WorkSpec } from '../queue/queue.js';
import type { Logger } from '../log/logger.js';

export const EVALUATE = 'evaluate';
export const BREACH_CHECK = 'breach-check';

export interface AutoscalerSchedule {
  readonly intervalMs: number;
  /** How often the breach check runs between evaluations; 0 turns it off. */
  readonly breachCheckMs: number;
  readonly logger: Logger;
  /** The key whose run moves the records on: asked for right after an evaluation (it may have retired a replica). */
  readonly recordsKey: string;
}

/** What the schedule needs of the autoscaler (controller.ts): an evaluation and a breach check. */
export interface Evaluations {
  evaluate(): Promise<unknown>;
  checkBreach(): Promise<unknown>;
}

export function autoscalerWork(autoscaler: Evaluations, queue: Pick<WorkQueue, 'add' | 'requeue'>, schedule: AutoscalerSchedule): Record<string, WorkSpec> {
  const { logger } = schedule;
  const work: Record<string, WorkSpec> = {
    [EVALUATE]: {
      initialDelayMs: schedule.intervalMs,
      async run() {
        try {
          await autoscaler.evaluate();
          queue.add(schedule.recordsKey, 'evaluated');
        } catch (error) {
          logger.error({ error: errorMessage(error) }, 'autoscaler evaluation failed');
        }
        // The next breach check counts from this evaluation, never in the same moment as one.
        if (schedule.breachCheckMs > 0) queue.requeue(BREACH_CHECK, schedule.breachCheckMs);
        return { requeueAfterMs: schedule.intervalMs };
      },
    },
  };
  if (schedule.breachCheckMs > 0) {
    work[BREACH_CHECK] = {
      initialDelayMs: schedule.breachCheckMs,
      async run() {
        try {
          await autoscaler.checkBreach();
        } catch (error) {
          logger.error({ error: errorMessage(error) }, 'autoscaler breach check failed');
        }
        return { requeueAfterMs: schedule.breachCheckMs };
      },
    };
  }
  return work;
}
