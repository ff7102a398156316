// The shell around the retirement's pure step (retirement.ts): one pass reads what HAProxy and
// Docker show of every retirement in progress, performs the effects its step asks for, and
// stores the result. Scale-downs (the autoscaler) and rollouts (rollouts.ts: the old replicas
// once the new ones baked, the new ones on a rollback) write retirement records; this one runner
// moves them all on, so a replica leaves the pool the same way whoever decided it should.
import type { HaproxyDriver } from '../driver/port.js';
import { ok, type Result } from '../edge/result.js';
import type { ServerLoad } from '../haproxy-metrics/exporter.js';
import type { Logger } from '../log/logger.js';
import { advanceRetirement, type Retirement, type RetirementEffect, type RetirementView } from './retirement.js';
import type { RetirementStore } from './store.js';

export interface RetirementRunnerOptions {
  readonly store: RetirementStore;
  /** The ids of the running containers (one Docker list). */
  readonly running: () => Promise<Result<ReadonlySet<string>>>;
  readonly haproxy: Pick<HaproxyDriver, 'readServers' | 'listRuntimeServers' | 'setAdminState'>;
  /** Sessions and queue of one server from HAProxy's exporter; undefined when unreadable. */
  readonly readLoad: (backend: string, server: string) => Promise<ServerLoad | undefined>;
  /**
   * Stops and removes the container. A `conflict` means it was not stopped because another one
   * would have been instead (Swarm picks the task that stops): the retirement is given up.
   */
  readonly stopAndRemove: (id: string, timeoutSeconds: number) => Promise<Result<void>>;
  readonly stopTimeoutSeconds: number;
  /** Asks the reconciler for a pass (a drained replica's server is then removed). */
  readonly requestReconcile: (reason: string) => void;
  readonly logger: Logger;
  readonly now: () => number;
  /** Told when a retirement ends with its container stopped (true) or is given up (false). */
  readonly onFinished?: (retirement: Retirement, stopped: boolean) => void;
}

export interface RetirementRunner {
  /** Records a retirement (its drain starts at the next pass); false when it cannot be stored. */
  retire(containerId: string, backend: string, server: string, drainDeadlineMs: number, cause?: string): Promise<Result<void>>;
  /**
   * One pass over the retirements in progress: reads HAProxy and Docker, moves each one stage on
   * where it can, and stores the result. Returns how many are still in progress. A call during a
   * pass joins it.
   */
  progress(): Promise<number>;
  /** Retirements in progress. */
  list(): readonly Retirement[];
  /** Resolves when no pass is running (shutdown, tests). */
  settled(): Promise<void>;
}

/** What went wrong with an effect; `abandon`: the retirement cannot go on as planned. */
type Failure = { readonly message: string; readonly abandon: boolean };

export function createRetirementRunner(options: RetirementRunnerOptions): RetirementRunner {
  const { store, logger } = options;
  /** Last reason logged per retirement, so a pass that changes nothing logs nothing. */
  const lastReasons = new Map<string, string>();

  /** What HAProxy and Docker show of every retirement in progress; undefined when unreadable. */
  async function observe(records: readonly Retirement[]): Promise<Map<string, RetirementView> | undefined> {
    const backends = [...new Set(records.map((r) => r.backend))];
    const [running, configured, ...runtime] = await Promise.all([
      options.running(),
      options.haproxy.readServers(backends),
      ...backends.map((b) => options.haproxy.listRuntimeServers(b)),
    ]);
    if (!running.ok) {
      logger.warn({ error: running.error.message }, 'scale-down paused: cannot list the replicas');
      return undefined;
    }
    if (!configured.ok) {
      logger.warn({ error: configured.error.message }, 'scale-down paused: cannot read HAProxy\'s servers');
      return undefined;
    }
    const states = new Map<string, RetirementView['adminState']>();
    runtime.forEach((result, i) => {
      if (result.ok) for (const s of result.value) states.set(`${backends[i] ?? ''}/${s.name}`, s.adminState);
    });
    const views = new Map<string, RetirementView>();
    for (const r of records) {
      views.set(r.containerId, {
        containerRunning: running.value.has(r.containerId),
        // Present while the configuration still has it or the running HAProxy still serves it: a
        // removal committed through the Data Plane API leaves the file first and the running
        // HAProxy only at the reload, and the container must outlast the latter.
        serverPresent: configured.value.servers.some((s) => s.backend === r.backend && s.name === r.server) || states.has(`${r.backend}/${r.server}`),
        adminState: states.get(`${r.backend}/${r.server}`),
        load: r.stage === 'draining' ? await options.readLoad(r.backend, r.server) : undefined,
      });
    }
    return views;
  }

  async function perform(effect: RetirementEffect, r: Retirement): Promise<Failure | undefined> {
    switch (effect) {
      case 'set-drain':
      case 'set-maint': {
        const set = await options.haproxy.setAdminState(r.backend, r.server, effect === 'set-drain' ? 'drain' : 'maint');
        return set.ok ? undefined : { message: set.error.message, abandon: false };
      }
      case 'request-removal':
        // Sent once the record says drained (below): the reconciler reads it to remove the server.
        return undefined;
      case 'stop-container': {
        const stopped = await options.stopAndRemove(r.containerId, options.stopTimeoutSeconds);
        return stopped.ok ? undefined : { message: stopped.error.message, abandon: stopped.error.kind === 'conflict' };
      }
    }
  }

  async function progressOnce(): Promise<number> {
    const records = store.list();
    if (records.length === 0) return 0;
    const views = await observe(records);
    if (views === undefined) return records.length;
    for (const r of records) {
      const view = views.get(r.containerId);
      if (view === undefined) continue;
      const step = advanceRetirement(r, view, options.now());
      let outcome: Failure | undefined;
      for (const effect of step.effects) {
        outcome = await perform(effect, r);
        if (outcome !== undefined) break;
      }
      const failure = outcome?.message;
      const fields = { backend: r.backend, server: r.server, container: r.containerId.slice(0, 12), stage: step.next?.stage ?? 'done', cause: r.cause ?? 'scale-down' };
      const what = r.cause ?? 'scale-down';
      if (outcome?.abandon === true) {
        // Nothing was stopped: without its record the replica is an ordinary one again, so the
        // reconciler puts its server back; the next evaluation decides again from what it sees.
        const removed = await store.remove(r.containerId);
        if (!removed.ok) continue;
        lastReasons.delete(r.containerId);
        logger.warn({ ...fields, stage: 'abandoned', error: outcome.message }, `${what} of ${r.server} given up: ${outcome.message}; it serves again`);
        options.requestReconcile(`${what} of ${r.server} given up`);
        options.onFinished?.(r, false);
        continue;
      }
      if (failure !== undefined) {
        // The record stays as it was: the next pass tries again from what it then observes.
        if (lastReasons.get(r.containerId) !== failure) logger.warn({ ...fields, error: failure }, `${what} of ${r.server}: ${failure}; retrying`);
        lastReasons.set(r.containerId, failure);
        continue;
      }
      if (step.drain === 'forced') logger.warn(fields, `${what}: ${step.reason}`);
      else if (lastReasons.get(r.containerId) !== step.reason) logger.info(fields, `${what}: ${step.reason}`);
      lastReasons.set(r.containerId, step.reason);
      const stored = step.next === undefined ? await store.remove(r.containerId) : await store.put(step.next);
      if (!stored.ok) {
        logger.error({ ...fields, error: stored.error.message }, `${what} of ${r.server}: cannot record its progress`);
        continue;
      }
      if (step.effects.includes('request-removal')) options.requestReconcile(`${what}: ${step.reason}`);
      if (step.next === undefined) {
        lastReasons.delete(r.containerId);
        const stopped = r.stage === 'removed' || step.effects.includes('stop-container');
        if (stopped) logger.info(fields, `${what}: ${r.server} drained, removed and its container stopped`);
        options.onFinished?.(r, true);
      }
    }
    return store.list().length;
  }

  let progressing: Promise<number> | undefined;
  return {
    async retire(containerId, backend, server, drainDeadlineMs, cause) {
      if (store.list().some((r) => r.containerId === containerId)) return ok(undefined);
      const now = options.now();
      return store.put({ containerId, backend, server, stage: 'draining', startedAt: now, deadlineAt: now + drainDeadlineMs, quietReads: 0, ...(cause === undefined ? {} : { cause }) });
    },
    progress() {
      progressing ??= progressOnce().finally(() => {
        progressing = undefined;
      });
      return progressing;
    },
    list: () => store.list(),
    async settled() {
      await progressing;
    },
  };
}
