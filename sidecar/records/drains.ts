// Operator drains as durable records. `hsc drain` writes a record (drain/record.ts) and puts the
// server in drain; from then on every pass of the control loop (tick) reads what HAProxy shows
// and moves each record on by its pure step: complete when idle, forced to maintenance at the
// deadline, and set again whenever HAProxy lost the state (a reload by anyone, a HAProxy restart).
// `hsc undrain` deletes the record and puts the server back to ready. Nothing waits in a sleep
// loop and nothing that matters lives only in memory: the records are in the state file, so a
// drain outlives a restart or a SIGKILL of the sidecar. Only `wait` answers (the admin API's
// `?wait`) and the outcome of drains that were cancelled are kept in memory.
import type { AdminState, RuntimeServer } from '../driver/port.js';
import type { Result } from '../edge/result.js';
import type { DrainRecord, StateStore } from './store.js';
import type { Logger } from '../log/logger.js';
import { advanceDrain, type ServerLoad } from './drain.js';

export type { ServerLoad } from './drain.js';

/** What the drainer needs from HAProxy: runtime states through the driver, load from its exporter. */
export interface DrainPorts {
  setAdminState(backend: string, server: string, state: AdminState): Promise<Result<void>>;
  listRuntimeServers(backend: string): Promise<Result<readonly RuntimeServer[]>>;
  /** Current sessions and queue of one server; undefined when they cannot be read now. */
  readLoad(backend: string, server: string): Promise<ServerLoad | undefined>;
}

export interface DrainRecorder {
  started(backend: string): void;
  finished(backend: string, outcome: 'drained' | 'forced' | 'cancelled', seconds: number): void;
  inProgress(backend: string, count: number): void;
}

export interface DrainerOptions {
  readonly ports: DrainPorts;
  /** Where the drain records live (the sidecar's state file). */
  readonly store: StateStore;
  readonly deadlineMs: number;
  readonly now: () => number;
  readonly logger: Logger;
  readonly recorder?: DrainRecorder;
  /** Servers with a scale-down record of their own: start-up adoption leaves them to it. */
  readonly retiring?: (backend: string, server: string) => boolean;
}

export type DrainOutcome =
  | { readonly outcome: 'drained'; readonly durationMs: number }
  | { readonly outcome: 'forced'; readonly durationMs: number; readonly sessionsCut: number; readonly queueCut: number }
  | { readonly outcome: 'cancelled'; readonly durationMs: number }
  | { readonly outcome: 'failed'; readonly message: string };

export interface DrainProgress {
  readonly backend: string;
  readonly server: string;
  readonly reason: string;
  readonly startedAt: number;
  readonly deadlineAt: number;
  /** The last figures read; undefined until the first read succeeds. */
  readonly load: ServerLoad | undefined;
  readonly state: 'draining' | 'drained' | 'forced' | 'cancelled' | 'failed';
}

export interface DrainRequest {
  readonly reason: string;
  /** Overrides the default deadline for this drain. */
  readonly deadlineMs?: number;
}

/** A drain whose state HAProxy accepted, or why it refused. */
export type DrainStart = { readonly ok: true; readonly done: Promise<DrainOutcome> } | { readonly ok: false; readonly message: string };

export interface Drainer {
  /**
   * Records the drain, puts the server in drain and resolves once HAProxy took the state (or
   * refused it: then no record is kept), with the drain's outcome to come. A call for a server
   * already draining joins that drain.
   */
  start(backend: string, server: string, request: DrainRequest): Promise<DrainStart>;
  /** start(), then its outcome: a refused state is a failed drain. */
  drain(backend: string, server: string, request: DrainRequest): Promise<DrainOutcome>;
  /** Deletes the drain's record (a drain in progress resolves as cancelled) and puts the server back to ready. */
  undrain(backend: string, server: string): Promise<Result<void>>;
  progress(backend: string, server: string): DrainProgress | undefined;
  /** The drains on record and the last outcome of recently cancelled ones. */
  list(): readonly DrainProgress[];
  /**
   * At start-up: records a drain for every owned server HAProxy shows in drain without a record
   * (a sidecar that ran with no state file, or one from before drains were records).
   */
  adopt(backends: readonly string[], owned: (server: string) => boolean): Promise<number>;
  /** One pass over the records: observe, advance, store. Resolves with how many are on record. */
  tick(): Promise<number>;
}

const KEEP_FINISHED = 100;

const key = (backend: string, server: string): string => `${backend}/${server}`;

const progressOf = (r: DrainRecord): DrainProgress => ({
  backend: r.backend,
  server: r.server,
  reason: r.reason,
  startedAt: r.startedAt,
  deadlineAt: r.deadlineAt,
  load: r.load,
  state: r.stage,
});

export function createDrainer(options: DrainerOptions): Drainer {
  const { ports, logger, now, store } = options;
  /** Callers waiting for the end of a drain (the admin API's wait), by server. */
  const waiters = new Map<string, Array<(outcome: DrainOutcome) => void>>();
  /** Drains that ended without a record left (cancelled, failed), for the admin API only. */
  const finished = new Map<string, DrainProgress>();
  /** Last reason logged per drain, so a pass that changes nothing logs nothing. */
  const lastReasons = new Map<string, string>();
  // One change to the drains at a time: an undrain must not interleave with a pass that read the
  // state before it and would set the drain again.
  let turn: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(run: () => Promise<T>): Promise<T> => {
    const next = turn.then(run, run);
    turn = next.catch(() => undefined);
    return next;
  };

  const recordOf = (backend: string, server: string): DrainRecord | undefined =>
    store.read().drains.find((d) => d.backend === backend && d.server === server);

  const countInProgress = (backend: string): void => {
    options.recorder?.inProgress(backend, store.read().drains.filter((d) => d.backend === backend && d.stage === 'draining').length);
  };

  function settle(id: string, outcome: DrainOutcome): void {
    const waiting = waiters.get(id) ?? [];
    waiters.delete(id);
    for (const resolve of waiting) resolve(outcome);
  }

  function remember(progress: DrainProgress): void {
    finished.delete(key(progress.backend, progress.server));
    finished.set(key(progress.backend, progress.server), progress);
    while (finished.size > KEEP_FINISHED) finished.delete(finished.keys().next().value ?? '');
  }

  function outcomeOf(r: DrainRecord): DrainOutcome | undefined {
    const durationMs = (r.endedAt ?? now()) - r.startedAt;
    if (r.stage === 'drained') return { outcome: 'drained', durationMs };
    if (r.stage === 'forced') return { outcome: 'forced', durationMs, sessionsCut: r.load?.sessions ?? 0, queueCut: r.load?.queue ?? 0 };
    return undefined;
  }

  /** Replaces the record that was read as `before`, unless it was deleted or replaced meanwhile. */
  const replace = (before: DrainRecord, next: DrainRecord | undefined): Promise<Result<void>> =>
    store.update((s) => {
      const current = s.drains.find((d) => d.backend === before.backend && d.server === before.server);
      if (current?.startedAt !== before.startedAt) return s;
      const others = s.drains.filter((d) => d !== current);
      return { ...s, drains: next === undefined ? others : [...others, next] };
    });

  function waitFor(id: string): Promise<DrainOutcome> {
    return new Promise((resolve) => {
      waiters.set(id, [...(waiters.get(id) ?? []), resolve]);
    });
  }

  async function start(backend: string, server: string, request: DrainRequest): Promise<DrainStart> {
    const id = key(backend, server);
    const existing = recordOf(backend, server);
    if (existing?.stage === 'draining') return { ok: true, done: waitFor(id) };
    return exclusive(async (): Promise<DrainStart> => {
      const again = recordOf(backend, server);
      if (again?.stage === 'draining') return { ok: true, done: waitFor(id) };
      const startedAt = now();
      const record: DrainRecord = {
        backend,
        server,
        stage: 'draining',
        reason: request.reason,
        startedAt,
        deadlineAt: startedAt + (request.deadlineMs ?? options.deadlineMs),
        quietReads: 0,
      };
      // The record first: a sidecar killed right after the state change still knows the drain is
      // the operator's. A state HAProxy refuses deletes the record again.
      const stored = await store.update((s) => ({ ...s, drains: [...s.drains.filter((d) => d.backend !== backend || d.server !== server), record] }));
      if (!stored.ok) return { ok: false, message: `recording the drain of ${id}: ${stored.error.message}` };
      const set = await ports.setAdminState(backend, server, 'drain');
      if (!set.ok) {
        await store.update((s) => ({ ...s, drains: s.drains.filter((d) => d !== record) }));
        return { ok: false, message: `setting ${id} to drain: ${set.error.message}` };
      }
      finished.delete(id);
      logger.info({ backend, server, reason: request.reason }, `draining ${id}: ${request.reason}`);
      options.recorder?.started(backend);
      countInProgress(backend);
      return { ok: true, done: waitFor(id) };
    });
  }

  async function observe(records: readonly DrainRecord[]): Promise<Map<string, { present: boolean; adminState: AdminState | undefined }> | undefined> {
    const states = new Map<string, { present: boolean; adminState: AdminState | undefined }>();
    for (const backend of new Set(records.map((r) => r.backend))) {
      const servers = await ports.listRuntimeServers(backend);
      if (!servers.ok) {
        logger.debug({ backend, error: servers.error.message }, 'drains: cannot read runtime states; trying again on the next pass');
        continue;
      }
      for (const r of records.filter((x) => x.backend === backend)) {
        const found = servers.value.find((s) => s.name === r.server);
        states.set(key(backend, r.server), { present: found !== undefined, adminState: found?.adminState });
      }
    }
    return states;
  }

  async function tickOnce(): Promise<number> {
    const records = store.read().drains;
    if (records.length === 0) return 0;
    const states = await observe(records);
    if (states === undefined) return records.length;
    for (const r of records) {
      const id = key(r.backend, r.server);
      const state = states.get(id);
      if (state === undefined) continue;
      const load = r.stage === 'draining' ? await ports.readLoad(r.backend, r.server) : undefined;
      const step = advanceDrain(r, { serverPresent: state.present, adminState: state.adminState, load }, now());
      let failure: string | undefined;
      for (const effect of step.effects) {
        const set = await ports.setAdminState(r.backend, r.server, effect === 'set-maint' ? 'maint' : 'drain');
        if (!set.ok) {
          failure = set.error.message;
          break;
        }
      }
      if (failure !== undefined) {
        if (lastReasons.get(id) !== failure) logger.warn({ backend: r.backend, server: r.server, error: failure }, `drain of ${id}: ${failure}; retrying`);
        lastReasons.set(id, failure);
        continue;
      }
      const stored = await replace(r, step.next);
      if (!stored.ok) {
        logger.error({ backend: r.backend, server: r.server, error: stored.error.message }, `drain of ${id}: cannot record its progress`);
        continue;
      }
      const fields = { backend: r.backend, server: r.server, reason: r.reason, stage: step.next?.stage ?? 'done' };
      if (step.ended === 'forced') logger.warn(fields, step.reason);
      else if (step.effects.length > 0) logger.warn(fields, step.reason);
      else if (lastReasons.get(id) !== step.reason && step.next?.stage !== r.stage) logger.info(fields, step.reason);
      lastReasons.set(id, step.reason);
      if (step.next === undefined) {
        lastReasons.delete(id);
        remember({ ...progressOf(r), state: 'failed' });
        settle(id, { outcome: 'failed', message: step.reason });
      } else if (step.ended !== undefined) {
        const outcome = outcomeOf(step.next);
        if (outcome !== undefined && outcome.outcome !== 'failed') {
          options.recorder?.finished(r.backend, step.ended, (now() - r.startedAt) / 1000);
          settle(id, outcome);
        }
      }
      if (step.next?.stage !== r.stage) countInProgress(r.backend);
    }
    return store.read().drains.length;
  }

  return {
    start,

    async drain(backend, server, request) {
      const started = await start(backend, server, request);
      return started.ok ? started.done : { outcome: 'failed', message: started.message };
    },

    undrain(backend, server) {
      return exclusive(async () => {
        const id = key(backend, server);
        // The record first: a reconcile pass in between must not see the record and set the
        // drain again. Should the state change then fail, the next pass sets ready anyway.
        const record = recordOf(backend, server);
        if (record !== undefined) {
          const removed = await replace(record, undefined);
          if (!removed.ok) return removed;
          const durationMs = now() - record.startedAt;
          remember({ ...progressOf(record), state: record.stage === 'draining' ? 'cancelled' : record.stage });
          if (record.stage === 'draining') options.recorder?.finished(backend, 'cancelled', durationMs / 1000);
          settle(id, { outcome: 'cancelled', durationMs });
          countInProgress(backend);
        }
        lastReasons.delete(id);
        const result = await ports.setAdminState(backend, server, 'ready');
        if (result.ok) logger.info({ backend, server }, `${id} back to ready`);
        return result;
      });
    },

    progress(backend, server) {
      const record = recordOf(backend, server);
      return record === undefined ? finished.get(key(backend, server)) : progressOf(record);
    },

    list: () => [...[...finished.values()].filter((p) => recordOf(p.backend, p.server) === undefined), ...store.read().drains.map(progressOf)],

    adopt(backends, owned) {
      return exclusive(async () => {
        let adopted = 0;
        for (const backend of backends) {
          const servers = await ports.listRuntimeServers(backend);
          if (!servers.ok) {
            logger.warn({ backend, error: servers.error.message }, 'cannot read runtime states to adopt drains without a record');
            continue;
          }
          for (const s of servers.value) {
            if (s.adminState !== 'drain' || !owned(s.name) || recordOf(backend, s.name) !== undefined || options.retiring?.(backend, s.name) === true) continue;
            // The drain's real start is unknown: its deadline counts from now.
            const startedAt = now();
            const record: DrainRecord = { backend, server: s.name, stage: 'draining', reason: 'found in drain at start-up', startedAt, deadlineAt: startedAt + options.deadlineMs, quietReads: 0 };
            const stored = await store.update((st) => ({ ...st, drains: [...st.drains, record] }));
            if (!stored.ok) continue;
            logger.info({ backend, server: s.name }, `drain of ${key(backend, s.name)} found in HAProxy without a record: recorded and watched`);
            adopted++;
          }
          countInProgress(backend);
        }
        return adopted;
      });
    },

    tick: () => exclusive(tickOnce),
  };
}
