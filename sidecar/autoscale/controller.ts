// The autoscaler: each evaluation samples, decides (the pure policy), plans actions (pure),
// records the decision with its inputs and reason, and acts through Docker and HAProxy, unless
// paused or in dry-run. Scale-down is one closed loop kept as durable state (retirement.ts):
// a retirement record is written, and every pass of progress() moves it on from what HAProxy and
// Docker show: drain until idle (or the deadline), have the reconciler remove the server, and
// only then stop that container. A scale-up that comes while a server drains puts that server
// back before starting anything.
import type { Drainer } from '../records/drains.js';
import type { HaproxyDriver } from '../driver/port.js';
import type { Logger } from '../log/logger.js';
import type { Replica } from '../scaling/replicas.js';
import type { Result } from '../edge/result.js';
import { planActions, type Action, type PoolState, type ServingReplica } from './actions.js';
import { decide, EMPTY_HISTORY, type Decision, type History, type ScalingPolicy } from './policy.js';
import type { RetirementStore } from '../records/retirement.js';
import { createRetirementRunner, type RetirementRunner } from '../records/retirements.js';
import type { AutoscalerSetting } from '../records/store.js';
import type { ServerLoad } from '../haproxy-metrics/exporter.js';
import type { Sampler, SampleSet } from './sampler.js';

/**
 * True for a container whose server the reconciler may remove although it still runs: a
 * scale-down victim whose drain is over. Until then its server stays (in drain).
 */
export function isRemovableRetiree(store: Pick<RetirementStore, 'list'>, containerId: string): boolean {
  return store.list().some((r) => r.containerId === containerId && r.stage !== 'draining');
}

export interface DecisionRecord {
  readonly at: number;
  readonly mode: 'auto' | 'paused' | 'manual' | 'dry-run';
  readonly current: number;
  readonly desired: number;
  readonly direction: Decision['direction'];
  readonly stage: Decision['stage'];
  readonly reason: string;
  /** Every stage of the policy with its value and reason, and each signal's proposal. */
  readonly stages: Decision['stages'];
  readonly proposals: Decision['proposals'];
  readonly inputs: SampleSet['samples'];
  readonly problems: readonly string[];
  readonly predictedRequestRate: number | undefined;
  readonly actions: readonly Action[];
  /** False when the actions were only planned (paused, dry-run). */
  readonly applied: boolean;
}

export interface AutoscalerRecorder {
  decided(record: DecisionRecord, decision: Decision, sample: SampleSet): void;
  acted(direction: 'up' | 'down', ok: boolean): void;
  /** Whether the scaled service has a running replica (without one nothing can be started). */
  servicePresent(present: boolean): void;
}

export interface PoolView {
  /** Running replicas, oldest first. */
  readonly replicas: readonly Replica[];
  /** containerId → server name in the backend, as discovery names it. */
  readonly serverOf: ReadonlyMap<string, string>;
}

export interface ReplicaActions {
  /** Creates and starts `count` replicas like `templateId`; resolves with their IDs. */
  startLike(templateId: string, count: number): Promise<Result<string[]>>;
  /**
   * Stops and removes the replica. A `conflict` means it was not stopped because another one
   * would have been instead (Swarm picks the task that stops: sidecar/docker/swarm.ts): the
   * retirement is given up, the replica serves again, and the next evaluation plans anew.
   */
  stopAndRemove(id: string, timeoutSeconds: number): Promise<Result<void>>;
  /**
   * Removes the service's containers that were created but never started and are older than
   * `minAgeSeconds`: a scale-up cut between create and start (the sidecar killed) leaves one.
   * Resolves with how many were removed.
   */
  removeNeverStarted?(minAgeSeconds: number): Promise<Result<number>>;
}

/** Where the operator's choice of mode (paused, a count set by hand) is kept across restarts. */
export interface ModeStore {
  read(): AutoscalerSetting | undefined;
  write(setting: AutoscalerSetting | undefined): Promise<Result<void>>;
}

export interface AutoscalerOptions {
  readonly backend: string;
  readonly policy: ScalingPolicy;
  readonly sampler: Sampler;
  /**
   * The scaled service's replicas and their servers, from one Docker list: what one evaluation
   * (or one pass over the retirements) reads from Docker.
   */
  readonly pool: () => Promise<Result<PoolView>>;
  /** Starts and stops replicas through the Docker edge. */
  readonly scaler: ReplicaActions;
  /** Undrain goes through it, so an operator's drain watch of the same server ends too. */
  readonly drainer: Pick<Drainer, 'undrain'>;
  readonly haproxy: Pick<HaproxyDriver, 'readServers' | 'listRuntimeServers' | 'setAdminState'>;
  /** Sessions and queue of one server from HAProxy's exporter; undefined when unreadable. */
  readonly readLoad: (backend: string, server: string) => Promise<ServerLoad | undefined>;
  readonly store: RetirementStore;
  /**
   * The runner that moves retirements on (shared with rollouts, sidecar/wiring.ts); absent: one
   * of its own over `store`.
   */
  readonly retirements?: RetirementRunner;
  /** The mode an operator chose; absent keeps it in memory only. */
  readonly modeStore?: ModeStore;
  /** A scale-down drain still going after this is forced (the server goes to maintenance). */
  readonly drainDeadlineMs: number;
  /** Asks the reconciler for a pass (a drained replica's server is then removed). */
  readonly requestReconcile: (reason: string) => void;
  readonly dryRun: boolean;
  /**
   * False when HAProxy's server states cannot be set through the driver (the Data Plane API on
   * HAProxy 2.6 without the runtime socket): no replica is retired, since none could be drained.
   */
  readonly canDrain?: () => boolean;
  readonly stopTimeoutSeconds: number;
  /**
   * What a rollout in progress holds back (sidecar/records/rollouts.ts): scale-downs while it
   * replaces replicas (its surge is not excess), everything while it rolls back. Absent: nothing.
   */
  readonly held?: () => 'none' | 'scale-down' | 'all';
  readonly logger: Logger;
  readonly recorder?: AutoscalerRecorder;
  readonly now: () => number;
}

export interface Autoscaler {
  /** One evaluation; what the interval timer runs. */
  evaluate(): Promise<DecisionRecord>;
  /**
   * A breach check between evaluations: HAProxy's figures over the time since the last read,
   * decided on like an evaluation, but acted on (and recorded) only when the decision scales up
   * for a breach (Decision.breach); otherwise it leaves no trace. Resolves with the record when
   * it acted. Not while paused, set by hand or in dry-run.
   */
  checkBreach(): Promise<DecisionRecord | undefined>;
  /** The decision and actions now, without applying anything. */
  dryRun(): Promise<DecisionRecord>;
  /** Pauses the policy (stored, so a restarted sidecar stays paused); rejects when it cannot be stored. */
  pause(): Promise<void>;
  /** Back to automatic mode (stored). */
  resume(): Promise<void>;
  /** Sets the count by hand (within min/max) and pauses the policy until resume(); stored like pause(). */
  setReplicas(replicas: number): Promise<DecisionRecord>;
  state(): { readonly mode: 'auto' | 'paused' | 'manual'; readonly manualReplicas: number | undefined; readonly inFlight: readonly string[] };
  recent(): readonly DecisionRecord[];
  /**
   * One pass over the retirements in progress: reads HAProxy and Docker, moves each one stage on
   * where it can (retirement.ts), and stores the result. Returns how many are still in progress.
   */
  progress(): Promise<number>;
  /** Ends a scale-down whose server an operator put back in service (hsc undrain). */
  cancelRetirement(backend: string, server: string): Promise<void>;
  /** Waits for an evaluation in progress (shutdown, tests). */
  idle(): Promise<void>;
}

const KEEP_DECISIONS = 50;
/** A container created but never started is left alone this long: Compose starts its own within seconds. */
const NEVER_STARTED_GRACE_SECONDS = 120;
/** A running replica not serving yet counts as starting for this long after its creation. */
const STARTING_TIMEOUT_MS = 120_000;

export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { logger, backend, store } = options;
  const retirements =
    options.retirements ??
    createRetirementRunner({
      store,
      running: async () => {
        const pool = await options.pool();
        return pool.ok ? { ok: true, value: new Set(pool.value.replicas.map((r) => r.id)) } : pool;
      },
      haproxy: options.haproxy,
      readLoad: options.readLoad,
      stopAndRemove: (id, timeoutSeconds) => options.scaler.stopAndRemove(id, timeoutSeconds),
      stopTimeoutSeconds: options.stopTimeoutSeconds,
      requestReconcile: options.requestReconcile,
      logger,
      now: options.now,
      onFinished: (_retirement, stopped) => {
        if (stopped) options.recorder?.acted('down', true);
      },
    });
  let history: History = EMPTY_HISTORY;
  // The mode an operator chose before a restart holds: a count set by hand is not undone by one.
  const stored = options.modeStore?.read();
  let mode: 'auto' | 'paused' | 'manual' = stored?.mode ?? 'auto';
  // A count set under other bounds is kept within today's (the sidecar may restart with a new min or max).
  let manualReplicas: number | undefined =
    stored?.mode === 'manual' && stored.replicas !== undefined ? Math.min(options.policy.maxReplicas, Math.max(options.policy.minReplicas, stored.replicas)) : undefined;
  if (stored !== undefined) logger.info({ backend, mode, manualReplicas: manualReplicas ?? null }, `autoscaler: ${mode === 'manual' ? `count set by hand to ${manualReplicas ?? '?'}` : 'paused'} since ${new Date(stored.since).toISOString()} (from the state file)`);

  async function storeMode(next: 'auto' | 'paused' | 'manual', replicas: number | undefined): Promise<void> {
    const setting: AutoscalerSetting | undefined = next === 'auto' ? undefined : { mode: next, ...(replicas === undefined ? {} : { replicas }), since: options.now() };
    const written = await options.modeStore?.write(setting);
    if (written !== undefined && !written.ok) throw new Error(`cannot store the autoscaler's mode: ${written.error.message}`);
    mode = next;
    manualReplicas = replicas;
  }
  const recent: DecisionRecord[] = [];
  let evaluating: Promise<DecisionRecord | undefined> | undefined;

  let serviceMissing = false;
  /** One warning when the service has no running replica, one line when it is back; never one per evaluation. */
  function noteService(replicas: number): void {
    const missing = replicas === 0;
    options.recorder?.servicePresent(!missing);
    if (missing && !serviceMissing) {
      logger.warn({ backend }, 'autoscaler: the scaled service has no running replica to copy; nothing is scaled until one runs (start one, e.g. docker compose up)');
    } else if (!missing && serviceMissing) {
      logger.info({ backend, replicas }, 'autoscaler: the scaled service has running replicas again');
    }
    serviceMissing = missing;
  }

  function poolState(sample: SampleSet, view: PoolView): PoolState & { readonly replicas: number } {
    const list = view.replicas;
    const servers = view.serverOf;
    const sessions = new Map(sample.snapshot?.servers.map((s) => [s.name, s]) ?? []);
    const now = options.now();
    const serving: ServingReplica[] = [];
    // Without HAProxy's figures nobody can tell which replicas serve; Docker's running ones are
    // counted as serving, or every evaluation would start the whole pool again.
    const blind = sample.snapshot === undefined;
    const retiring = new Set(store.list().map((r) => r.containerId));
    // Starting: running, not serving yet, and young; read from Docker every time, whoever started
    // it (this sidecar before a restart, Compose, an operator), so none is started twice.
    let starting = 0;
    for (const replica of list) {
      if (retiring.has(replica.id)) continue;
      const server = servers.get(replica.id);
      const order = replica.removalOrder === undefined ? {} : { removalOrder: replica.removalOrder };
      const figures = server === undefined ? undefined : sessions.get(server);
      if (blind) {
        serving.push({ containerId: replica.id, server: server ?? replica.name, sessions: undefined, createdAt: replica.createdAt, ...order });
      } else if (server !== undefined && figures?.state === 'UP') {
        serving.push({ containerId: replica.id, server, sessions: figures.currentSessions, createdAt: replica.createdAt, ...order });
      } else if (now - replica.createdAt * 1000 < STARTING_TIMEOUT_MS) {
        starting++;
      }
    }
    const draining = store
      .list()
      .filter((r) => r.backend === backend && r.stage === 'draining')
      .map((r) => ({ containerId: r.containerId, server: r.server }));
    return { serving, draining, starting, retiring: store.list().filter((r) => r.backend === backend).length, replicas: list.length };
  }

  async function retire(containerId: string, server: string): Promise<void> {
    const stored = await retirements.retire(containerId, backend, server, options.drainDeadlineMs);
    if (!stored.ok) {
      options.recorder?.acted('down', false);
      logger.error({ backend, server, error: stored.error.message }, `scale-down of ${server} not started: cannot record it`);
      return;
    }
    logger.info({ backend, server, container: containerId.slice(0, 12) }, `scale-down: retiring ${server}`);
  }

  async function apply(actions: readonly Action[], view: PoolView): Promise<void> {
    for (const action of actions) {
      if (action.kind === 'undrain') {
        // The record first, so no pass in between sets the drain again from it.
        await store.remove(action.containerId);
        const result = await options.drainer.undrain(backend, action.server);
        logger.info({ backend, server: action.server, ok: result.ok }, `scale-up: ${action.server} put back in service instead of starting a container`);
        options.recorder?.acted('up', result.ok);
      } else if (action.kind === 'start') {
        // The newest running replica is the template, as Compose would use the service's spec.
        const template = view.replicas.at(-1);
        if (template === undefined) continue;
        const started = await options.scaler.startLike(template.id, action.count);
        if (started.ok) {
          logger.info({ backend, started: started.value.map((id) => id.slice(0, 12)) }, `scale-up: started ${started.value.length} container(s)`);
        } else {
          logger.error({ backend, error: started.error.message }, 'scale-up failed');
        }
        options.recorder?.acted('up', started.ok);
      } else {
        await retire(action.containerId, action.server);
      }
    }
  }

  async function evaluateOnce(apply_: boolean, recordMode?: DecisionRecord['mode'], breachCheck = false): Promise<DecisionRecord | undefined> {
    // Docker is read once per evaluation: the sampler, the pool and the actions share this list.
    const listed = await options.pool();
    const view: PoolView = listed.ok ? listed.value : { replicas: [], serverOf: new Map() };
    const replicas = listed.ok ? { ids: view.replicas.map((r) => r.id), servers: new Set(view.serverOf.values()) } : undefined;
    const sample = await (breachCheck ? options.sampler.peek(replicas) : options.sampler.sample(replicas));
    const now = options.now();
    const decision = decide(sample.samples, history, options.policy, now);
    // A breach check acts on a scale-up for a breach only; anything else waits for the evaluation.
    if (breachCheck && !(decision.direction === 'up' && decision.breach)) return undefined;
    const desired = mode === 'manual' && manualReplicas !== undefined ? manualReplicas : decision.replicas;
    const pool = poolState(sample, view);
    if (listed.ok) noteService(pool.replicas);
    else logger.warn({ backend, error: listed.error.message }, 'autoscaler: cannot list the replicas; no action this time');
    // Without a replica to copy there is nothing to act on: the decision is still recorded.
    const planned = pool.replicas === 0 ? [] : planActions(desired, pool);
    const drainable = options.canDrain?.() ?? true;
    const held = options.held?.() ?? 'none';
    // While a rollout holds scale-downs, the replicas draining are its own: none is put back either.
    const actions = held === 'all' ? [] : held === 'scale-down' ? planned.filter((a) => a.kind === 'start') : drainable ? planned : planned.filter((a) => a.kind !== 'retire');
    // A breach check whose scale-up is already under way (the replicas are starting) has nothing to do.
    if (breachCheck && actions.length === 0) return undefined;
    const applied = apply_ && mode !== 'paused' && !options.dryRun;
    // A dry run changes nothing. Otherwise the forecast and the recommendations (observations)
    // move on, but only a change that acted counts against the rate limits: a decision held back
    // because a retirement is under way must not use up the next one's allowance.
    const acted = applied && actions.length > 0;
    if (recordMode === undefined) history = acted ? decision.history : { ...decision.history, changes: history.changes };
    const record: DecisionRecord = {
      at: now,
      mode: recordMode ?? (options.dryRun ? 'dry-run' : mode),
      current: sample.samples.replicas,
      desired,
      direction: desired > sample.samples.replicas ? 'up' : desired < sample.samples.replicas ? 'down' : 'none',
      stage: mode === 'manual' ? 'clamp' : decision.stage,
      reason: mode === 'manual' ? `set by hand to ${desired}` : breachCheck ? `breach check: ${decision.reason}` : decision.reason,
      stages: decision.stages,
      proposals: decision.proposals,
      inputs: sample.samples,
      problems: sample.problems,
      predictedRequestRate: decision.predictedRequestRate,
      actions,
      applied,
    };
    if (recordMode === undefined) {
      recent.push(record);
      if (recent.length > KEEP_DECISIONS) recent.shift();
      // A breach check reads no CPU: its sample would set Docker's source gauges down.
      if (!breachCheck) options.recorder?.decided(record, decision, sample);
      if (actions.length > 0 || record.direction !== 'none') {
        logger.info({ backend, current: record.current, desired, stage: record.stage, actions, applied, problems: sample.problems }, `autoscaler: ${record.reason}`);
      }
    }
    if (applied) await apply(actions, view);
    if (applied && !actions.some((a) => a.kind === 'start')) await sweepNeverStarted();
    // A retirement just recorded gets its drain at once, not at the next pass.
    if (applied && actions.some((a) => a.kind === 'retire')) await progress();
    return record;
  }

  async function sweepNeverStarted(): Promise<void> {
    const removed = await options.scaler.removeNeverStarted?.(NEVER_STARTED_GRACE_SECONDS);
    if (removed === undefined) return;
    if (!removed.ok) logger.warn({ backend, error: removed.error.message }, 'autoscaler: cannot remove containers that were created but never started');
    else if (removed.value > 0) logger.warn({ backend, removed: removed.value }, `autoscaler: removed ${removed.value} container(s) created but never started (a scale-up cut short)`);
  }

  const serialised = <T extends DecisionRecord | undefined>(run: () => Promise<T>): Promise<T> => {
    // One evaluation at a time: a slow Docker call must not let two overlap.
    const next = (evaluating ?? Promise.resolve(undefined)).catch(() => undefined).then(run);
    evaluating = next;
    return next;
  };
  /** An evaluation (not a breach check) always records its decision. */
  const recorded = async (run: Promise<DecisionRecord | undefined>): Promise<DecisionRecord> => {
    const record = await run;
    if (record === undefined) throw new Error('autoscaler: an evaluation returned no record');
    return record;
  };

  /** One pass at a time; a call during a pass joins it. */
  const progress = (): Promise<number> => retirements.progress();

  return {
    evaluate: () => serialised(() => recorded(evaluateOnce(true))),
    checkBreach: () => (mode === 'auto' && !options.dryRun ? serialised(() => evaluateOnce(true, undefined, true)) : Promise.resolve(undefined)),
    progress,
    async cancelRetirement(b, server) {
      for (const r of store.list()) {
        if (r.backend !== b || r.server !== server) continue;
        await store.remove(r.containerId);
        logger.info({ backend: b, server }, `scale-down of ${server} cancelled: it was put back in service`);
      }
    },
    dryRun: () => serialised(() => recorded(evaluateOnce(false, 'dry-run'))),
    pause: () => storeMode('paused', undefined),
    resume: () => storeMode('auto', undefined),
    async setReplicas(replicas) {
      if (!Number.isInteger(replicas) || replicas < options.policy.minReplicas || replicas > options.policy.maxReplicas) {
        throw new RangeError(`replicas must be a whole number from ${options.policy.minReplicas} to ${options.policy.maxReplicas}`);
      }
      await storeMode('manual', replicas);
      return serialised(() => recorded(evaluateOnce(true)));
    },
    state: () => ({ mode, manualReplicas, inFlight: store.list().map((r) => `${r.server} ${r.stage}`) }),
    recent: () => [...recent],
    async idle() {
      await evaluating?.catch(() => undefined);
      await retirements.settled();
    },
  };
}
