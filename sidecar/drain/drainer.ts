// Draining: a server in `drain` takes no new traffic while its open and persistent connections
// finish and its health checks go on. The drain is complete when HAProxy's own figures show no
// session and no queued request on it (twice in a row, so a request dispatched between two
// reads is not missed), not after a fixed sleep. Past the deadline the server goes to `maint`
// and the drain ends as forced, with the sessions that were still open reported as cut.
//
// State lives in HAProxy, not here: after a restart, resume() finds the servers still in drain
// and watches them again.
import type { AdminState, Result, RuntimeServer } from '../dataplane/index.js';
import type { Logger } from '../telemetry/logger.js';

export interface ServerLoad {
  readonly sessions: number;
  readonly queue: number;
}

/** What the drainer needs from HAProxy: runtime state through the Data Plane API, load from its exporter. */
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
  readonly pollMs: number;
  readonly deadlineMs: number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
  readonly logger: Logger;
  readonly recorder?: DrainRecorder;
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
   * Puts the server in drain and resolves once HAProxy took the state (or refused it), with the
   * drain's outcome to come. A call for a server already draining joins that drain.
   */
  start(backend: string, server: string, request: DrainRequest): Promise<DrainStart>;
  /** start(), then its outcome: a refused state is a failed drain. */
  drain(backend: string, server: string, request: DrainRequest): Promise<DrainOutcome>;
  /** Ends a drain in progress (its promise resolves as cancelled) and puts the server back to ready. */
  undrain(backend: string, server: string): Promise<Result<void>>;
  progress(backend: string, server: string): DrainProgress | undefined;
  /** Drains in progress and the last outcome of each recently drained server. */
  list(): readonly DrainProgress[];
  /** After a restart: watches again every server HAProxy shows in drain, among those `owned` accepts. */
  resume(backends: readonly string[], owned: (server: string) => boolean): Promise<number>;
}

interface Watched {
  progress: DrainProgress;
  cancelled: boolean;
}

interface Active extends Watched {
  readonly done: Promise<DrainOutcome>;
}

const KEEP_FINISHED = 100;

const key = (backend: string, server: string): string => `${backend}/${server}`;

export function createDrainer(options: DrainerOptions): Drainer {
  const { ports, logger, now } = options;
  const drains = new Map<string, Active>();
  const startingDrains = new Map<string, Promise<DrainStart>>();

  const countInProgress = (backend: string): void => {
    const count = [...drains.values()].filter((d) => d.progress.backend === backend && d.progress.state === 'draining').length;
    options.recorder?.inProgress(backend, count);
  };

  async function watch(entry: Watched): Promise<DrainOutcome> {
    const { backend, server } = entry.progress;
    let quiet = 0;
    for (;;) {
      if (entry.cancelled) return finish(entry, { outcome: 'cancelled', durationMs: now() - entry.progress.startedAt });
      const load = await ports.readLoad(backend, server);
      if (load !== undefined) entry.progress = { ...entry.progress, load };
      quiet = load !== undefined && load.sessions === 0 && load.queue === 0 ? quiet + 1 : 0;
      if (quiet >= 2) return finish(entry, { outcome: 'drained', durationMs: now() - entry.progress.startedAt });
      if (now() >= entry.progress.deadlineAt) {
        const forced = await ports.setAdminState(backend, server, 'maint');
        if (!forced.ok) return finish(entry, { outcome: 'failed', message: `putting ${key(backend, server)} in maintenance: ${forced.error.message}` });
        const cut = entry.progress.load ?? { sessions: 0, queue: 0 };
        return finish(entry, {
          outcome: 'forced',
          durationMs: now() - entry.progress.startedAt,
          sessionsCut: cut.sessions,
          queueCut: cut.queue,
        });
      }
      await options.sleep(options.pollMs);
    }
  }

  function finish(entry: Watched, outcome: DrainOutcome): DrainOutcome {
    const { backend, server, startedAt } = entry.progress;
    entry.progress = { ...entry.progress, state: outcome.outcome };
    const fields = { backend, server, reason: entry.progress.reason, ...outcome };
    if (outcome.outcome === 'forced') {
      logger.warn(fields, `forced drain of ${key(backend, server)}: deadline reached with ${outcome.sessionsCut} session(s) and ${outcome.queueCut} queued request(s) still there; they are cut`);
    } else if (outcome.outcome === 'failed') {
      logger.error(fields, `drain of ${key(backend, server)} failed: ${outcome.message}`);
    } else {
      logger.info(fields, `drain of ${key(backend, server)} ${outcome.outcome} after ${((now() - startedAt) / 1000).toFixed(1)} s`);
    }
    if (outcome.outcome !== 'failed') options.recorder?.finished(backend, outcome.outcome, (now() - startedAt) / 1000);
    countInProgress(backend);
    return outcome;
  }

  function begin(backend: string, server: string, reason: string, deadlineMs: number): Active {
    const startedAt = now();
    const watched: Watched = {
      progress: { backend, server, reason, startedAt, deadlineAt: startedAt + deadlineMs, load: undefined, state: 'draining' },
      cancelled: false,
    };
    const entry: Active = Object.assign(watched, { done: watch(watched) });
    drains.delete(key(backend, server));
    drains.set(key(backend, server), entry);
    // Keep the outcome of the most recent finished drains for the admin API, not all of them.
    const finished = [...drains.entries()].filter(([, d]) => d.progress.state !== 'draining');
    for (const [k] of finished.slice(0, Math.max(0, finished.length - KEEP_FINISHED))) drains.delete(k);
    options.recorder?.started(backend);
    countInProgress(backend);
    return entry;
  }

function start(backend: string, server: string, request: DrainRequest): Promise<DrainStart> {
    const id = key(backend, server);
    const existing = drains.get(id);
    if (existing?.progress.state === 'draining') return Promise.resolve({ ok: true, done: existing.done });
    // A second call while the first is still setting the state joins it too.
    const starting = startingDrains.get(id);
    if (starting !== undefined) return starting;
    const started = (async (): Promise<DrainStart> => {
      const set = await ports.setAdminState(backend, server, 'drain');
      if (!set.ok) return { ok: false, message: `setting ${id} to drain: ${set.error.message}` };
      logger.info({ backend, server, reason: request.reason }, `draining ${id}: ${request.reason}`);
      return { ok: true, done: begin(backend, server, request.reason, request.deadlineMs ?? options.deadlineMs).done };
    })();
    startingDrains.set(id, started);
    const forget = (): void => {
      startingDrains.delete(id);
    };
    started.then(forget, forget);
    return started;
  }

  return {
    start,

    async drain(backend, server, request) {
      const started = await start(backend, server, request);
      return started.ok ? started.done : { outcome: 'failed', message: started.message };
    },

    async undrain(backend, server) {
      const existing = drains.get(key(backend, server));
      const result = await ports.setAdminState(backend, server, 'ready');
      if (!result.ok) return result;
      if (existing !== undefined && existing.progress.state === 'draining') {
        existing.cancelled = true;
        await existing.done;
      }
      logger.info({ backend, server }, `${key(backend, server)} back to ready`);
      return result;
    },

    progress: (backend, server) => drains.get(key(backend, server))?.progress,

    list: () => [...drains.values()].map((d) => d.progress),

    async resume(backends, owned) {
      let resumed = 0;
      for (const backend of backends) {
        const servers = await ports.listRuntimeServers(backend);
        if (!servers.ok) {
          logger.warn({ backend, error: servers.error.message }, 'cannot read runtime states to resume drains; will not resume them');
          continue;
        }
        for (const s of servers.value) {
          if (s.adminState !== 'drain' || !owned(s.name) || drains.get(key(backend, s.name))?.progress.state === 'draining') continue;
          // The drain's real start is unknown after a restart: its deadline counts from now.
          begin(backend, s.name, 'resumed after a sidecar restart', options.deadlineMs);
          logger.info({ backend, server: s.name }, `resumed the drain of ${key(backend, s.name)}`);
          resumed++;
        }
      }
      return resumed;
    },
  };
}
