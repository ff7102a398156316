// The autoscaler's loop: every interval it samples, decides (the pure policy), plans actions
// (pure), records the decision with its inputs and reason, and acts through Docker and the
// drainer, unless paused or in dry-run. Scale-down is one closed loop: drain the victim until
// HAProxy shows it idle (or the deadline), have the reconciler remove its server in a
// transaction, and only then stop that container. A scale-up that comes while a server drains
// puts that server back before starting anything.
import type { Drainer } from '../drain/drainer.js';
import type { Logger } from '../telemetry/logger.js';
import type { Replicas } from '../scaling/docker.js';
import { planActions, type Action, type PoolState, type ServingReplica } from './actions.js';
import { decide, EMPTY_HISTORY, type Decision, type History, type ScalingPolicy } from './policy.js';
import type { Sampler, SampleSet } from './sampler.js';

/** Replicas on their way out. The reconciler keeps a "draining" one's server and removes a "drained" one's. */
export interface Retirements {
  readonly entries: Map<string, { readonly server: string; state: 'draining' | 'drained' }>;
  isRemovable(containerId: string): boolean;
}

export function createRetirements(): Retirements {
  const entries = new Map<string, { readonly server: string; state: 'draining' | 'drained' }>();
  return { entries, isRemovable: (id) => entries.get(id)?.state === 'drained' };
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

export interface AutoscalerOptions {
  readonly backend: string;
  readonly policy: ScalingPolicy;
  readonly sampler: Sampler;
  readonly replicas: Replicas;
  readonly drainer: Drainer;
  readonly retirements: Retirements;
  /** containerId → server name in the backend, for the replicas discovery sees now. */
  readonly serverOfContainer: () => Promise<ReadonlyMap<string, string>>;
  /** Asks the reconciler for a pass (a drained replica's server is then removed). */
  readonly requestReconcile: (reason: string) => void;
  /** True once the server is no longer in HAProxy's configuration. */
  readonly serverRemoved: (server: string) => Promise<boolean>;
  readonly dryRun: boolean;
  readonly stopTimeoutSeconds: number;
  readonly logger: Logger;
  readonly recorder?: AutoscalerRecorder;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

export interface Autoscaler {
  /** One evaluation; what the interval timer runs. */
  evaluate(): Promise<DecisionRecord>;
  /** The decision and actions now, without applying anything. */
  dryRun(): Promise<DecisionRecord>;
  pause(): void;
  resume(): void;
  /** Sets the count by hand (within min/max) and pauses the policy until resume(). */
  setReplicas(replicas: number): Promise<DecisionRecord>;
  state(): { readonly mode: 'auto' | 'paused' | 'manual'; readonly manualReplicas: number | undefined; readonly inFlight: readonly string[] };
  recent(): readonly DecisionRecord[];
  /** Waits for retirements in progress (shutdown, tests). */
  idle(): Promise<void>;
}

const KEEP_DECISIONS = 50;
/** A started container that has not joined after this is no longer counted as starting. */
const STARTING_TIMEOUT_MS = 120_000;

export function createAutoscaler(options: AutoscalerOptions): Autoscaler {
  const { logger, backend, retirements } = options;
  let history: History = EMPTY_HISTORY;
  let mode: 'auto' | 'paused' | 'manual' = 'auto';
  let manualReplicas: number | undefined;
  const recent: DecisionRecord[] = [];
  const starting = new Map<string, number>(); // containerId → started at
  const retiring = new Set<Promise<void>>();
  let evaluating: Promise<DecisionRecord> | undefined;

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

  async function poolState(sample: SampleSet): Promise<PoolState & { readonly replicas: number }> {
    const [list, servers] = await Promise.all([options.replicas.list(), options.serverOfContainer()]);
    const sessions = new Map(sample.snapshot?.servers.map((s) => [s.name, s]) ?? []);
    const now = options.now();
    const serving: ServingReplica[] = [];
    // Without HAProxy's figures nobody can tell which replicas serve; Docker's running ones are
    // counted as serving, or every evaluation would start the whole pool again.
    const blind = sample.snapshot === undefined;
    for (const replica of list) {
      const server = servers.get(replica.id);
      const figures = server === undefined ? undefined : sessions.get(server);
      if (blind && !retirements.entries.has(replica.id)) {
        starting.delete(replica.id);
        serving.push({ containerId: replica.id, server: server ?? replica.name, sessions: undefined, createdAt: replica.createdAt });
      } else if (server !== undefined && figures?.state === 'UP' && !retirements.entries.has(replica.id)) {
        starting.delete(replica.id);
        serving.push({ containerId: replica.id, server, sessions: figures.currentSessions, createdAt: replica.createdAt });
      }
    }
    const running = new Set(list.map((r) => r.id));
    for (const [id, at] of starting) if (!running.has(id) || now - at > STARTING_TIMEOUT_MS) starting.delete(id);
    const draining = [...retirements.entries].filter(([, r]) => r.state === 'draining').map(([containerId, r]) => ({ containerId, server: r.server }));
    return { serving, draining, starting: starting.size, replicas: list.length };
  }

  async function retire(containerId: string, server: string): Promise<void> {
    retirements.entries.set(containerId, { server, state: 'draining' });
    try {
      const outcome = await options.drainer.drain(backend, server, { reason: 'scale-down' });
      if (outcome.outcome === 'cancelled') {
        logger.info({ backend, server }, `scale-down of ${server} cancelled: it was put back in service`);
        return;
      }
      if (outcome.outcome === 'failed') throw new Error(outcome.message);
      const entry = retirements.entries.get(containerId);
      if (entry !== undefined) entry.state = 'drained';
      options.requestReconcile(`scale-down: ${server} drained`);
      // The container stops only after HAProxy no longer has the server.
      for (let waited = 0; !(await options.serverRemoved(server)); waited += 500) {
        if (waited >= 60_000) throw new Error(`${server} still in the configuration 60 s after its drain; its container keeps running`);
        await options.sleep(500);
      }
      await options.replicas.stopAndRemove(containerId, options.stopTimeoutSeconds);
      logger.info({ backend, server, container: containerId.slice(0, 12) }, `scale-down: ${server} drained, removed and its container stopped`);
      options.recorder?.acted('down', true);
    } catch (error) {
      options.recorder?.acted('down', false);
      logger.error({ backend, server, error: (error as Error).message }, `scale-down of ${server} failed`);
    } finally {
      retirements.entries.delete(containerId);
    }
  }

  async function apply(actions: readonly Action[]): Promise<void> {
    for (const action of actions) {
      if (action.kind === 'undrain') {
        const result = await options.drainer.undrain(backend, action.server);
        retirements.entries.delete(action.containerId);
        logger.info({ backend, server: action.server, ok: result.ok }, `scale-up: ${action.server} put back in service instead of starting a container`);
        options.recorder?.acted('up', result.ok);
      } else if (action.kind === 'start') {
        try {
          const ids = await options.replicas.startLike(action.count);
          for (const id of ids) starting.set(id, options.now());
          logger.info({ backend, started: ids.map((id) => id.slice(0, 12)) }, `scale-up: started ${ids.length} container(s)`);
          options.recorder?.acted('up', true);
        } catch (error) {
          options.recorder?.acted('up', false);
          logger.error({ backend, error: (error as Error).message }, 'scale-up failed');
        }
      } else {
        const running = retire(action.containerId, action.server);
        retiring.add(running);
        void running.finally(() => retiring.delete(running));
      }
    }
  }

  async function evaluateOnce(apply_: boolean, recordMode?: DecisionRecord['mode']): Promise<DecisionRecord> {
    const sample = await options.sampler.sample();
    const now = options.now();
    const decision = decide(sample.samples, history, options.policy, now);
    const desired = mode === 'manual' && manualReplicas !== undefined ? manualReplicas : decision.replicas;
    const pool = await poolState(sample);
    noteService(pool.replicas);
    // Without a replica to copy there is nothing to act on: the decision is still recorded.
    const actions = pool.replicas === 0 ? [] : planActions(desired, pool);
    const applied = apply_ && mode !== 'paused' && !options.dryRun;
    // A dry run changes nothing. Otherwise the forecast and the recommendations (observations)
    // move on, but only an applied change counts against the rate limits.
    if (recordMode === undefined) history = applied ? decision.history : { ...decision.history, changes: history.changes };
    const record: DecisionRecord = {
      at: now,
      mode: recordMode ?? (options.dryRun ? 'dry-run' : mode),
      current: sample.samples.replicas,
      desired,
      direction: desired > sample.samples.replicas ? 'up' : desired < sample.samples.replicas ? 'down' : 'none',
      stage: mode === 'manual' ? 'clamp' : decision.stage,
      reason: mode === 'manual' ? `set by hand to ${desired}` : decision.reason,
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
      options.recorder?.decided(record, decision, sample);
      if (actions.length > 0 || record.direction !== 'none') {
        logger.info({ backend, current: record.current, desired, stage: record.stage, actions, applied, problems: sample.problems }, `autoscaler: ${record.reason}`);
      }
    }
    if (applied) await apply(actions);
    return record;
  }

  const serialised = (run: () => Promise<DecisionRecord>): Promise<DecisionRecord> => {
    // One evaluation at a time: a slow Docker call must not let two overlap.
    const next = (evaluating ?? Promise.resolve(undefined)).catch(() => undefined).then(run);
    evaluating = next;
    return next;
  };

  return {
    evaluate: () => serialised(() => evaluateOnce(true)),
    dryRun: () => serialised(() => evaluateOnce(false, 'dry-run')),
    pause() {
      mode = 'paused';
      manualReplicas = undefined;
    },
    resume() {
      mode = 'auto';
      manualReplicas = undefined;
    },
    setReplicas(replicas) {
      if (!Number.isInteger(replicas) || replicas < options.policy.minReplicas || replicas > options.policy.maxReplicas) {
        return Promise.reject(new RangeError(`replicas must be a whole number from ${options.policy.minReplicas} to ${options.policy.maxReplicas}`));
      }
      mode = 'manual';
      manualReplicas = replicas;
      return serialised(() => evaluateOnce(true));
    },
    state: () => ({ mode, manualReplicas, inFlight: [...retirements.entries.values()].map((r) => `${r.server} ${r.state}`) }),
    recent: () => [...recent],
    async idle() {
      await evaluating?.catch(() => undefined);
      await Promise.all([...retiring]);
    },
  };
}
