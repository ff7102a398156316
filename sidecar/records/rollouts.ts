// The shell around the rollout's pure step (rollout.ts): begin() checks a request and writes
// the record; every pass of the control loop (tick) reads what Docker and HAProxy show of the
// service, lets the step decide, performs its effects (start replicas, set a canary's weight,
// retire replicas through the retirement runner, exactly as a scale-down does) and stores the
// record. A pass at a time; the record in the state file is the only memory that matters.
import { randomBytes } from 'node:crypto';
import type { ContainerSnapshot, ReplicaVariant, ReplicaVersion, ServiceRef, ServiceSpecView, ServiceUpdate } from '../docker/compose.js';
import { COMPOSE_PROJECT, COMPOSE_SERVICE, ROLLOUT_BATCH, ROLLOUT_ID } from '../docker/labels.js';
import type { HaproxyDriver } from '../driver/port.js';
import { fail, ok, type Result } from '../edge/result.js';
import type { ServerFigures } from '../haproxy-metrics/exporter.js';
import type { Logger } from '../log/logger.js';
import type { RetirementRunner } from './retirements.js';
import { advanceRollout, batchCount, canaryWeight, isFinished, type ReplicaView, type Rollout, type RolloutEffect, type RolloutSettings, type RolloutStep, type Version } from './rollout.js';
import { activeRollout, type StateStore } from './store.js';
import { advanceSwarmRollout, SWARM_BATCH, type SwarmServiceView } from './swarm-rollout.js';

/** Rollouts that ended kept in the state file for GET /v1/rollouts. */
const KEEP_ENDED = 10;

export interface RolloutPorts {
  /** Running containers (the sidecar's one Docker list). */
  listRunning(): Promise<Result<ContainerSnapshot[]>>;
  startLike(templateId: string, count: number, variant: ReplicaVariant): Promise<Result<string[]>>;
  versionOf(containerId: string): Promise<Result<ReplicaVersion>>;
  hasImage(image: string): Promise<Result<boolean>>;
  /** containerId → server name in `backend`, as discovery names them from the same list. */
  serversOf(containers: readonly ContainerSnapshot[], backend: string): ReadonlyMap<string, string>;
  readonly haproxy: Pick<HaproxyDriver, 'readServers' | 'listRuntimeServers' | 'setRuntimeWeight'>;
  readFigures(backend: string): Promise<ReadonlyMap<string, ServerFigures> | undefined>;
  /**
   * Swarm mode: the service's spec, read and changed; a rollout is then Swarm's own rolling
   * update (swarm-rollout.ts). Absent in Compose mode.
   */
  readonly swarm?: {
    readService(): Promise<Result<ServiceSpecView>>;
    updateService(change: ServiceUpdate): Promise<Result<void>>;
  };
}

export interface RolloutRecorder {
  phase(rollout: Rollout): void;
  ended(outcome: 'succeeded' | 'rolled-back', seconds: number): void;
}

export interface RolloutRunnerOptions {
  readonly ports: RolloutPorts;
  readonly store: StateStore;
  readonly retirements: RetirementRunner;
  /** The service and backend `hsc rollout` replaces (the autoscaler's). */
  readonly service: ServiceRef;
  readonly backend: string;
  readonly defaults: RolloutSettings;
  readonly drainDeadlineMs: number;
  /** Asks for a records pass soon (a new rollout, a rollback asked for). */
  readonly requestPass: (reason: string) => void;
  readonly logger: Logger;
  readonly recorder?: RolloutRecorder;
  readonly now: () => number;
}

/** What `hsc rollout` asks: a new image and/or environment variables, and settings over the defaults. */
export interface RolloutRequest {
  readonly image?: string;
  /** KEY=VALUE entries set over the current environment. */
  readonly env?: readonly string[];
  readonly settings?: Partial<RolloutSettings>;
}

export interface RolloutRunner {
  begin(request: RolloutRequest): Promise<Result<Rollout>>;
  /** Rolls the rollout in progress back (an operator's call); `not-found` when none runs. */
  rollBack(id: string, reason: string): Promise<Result<Rollout>>;
  /** One pass over the rollout in progress, if any. */
  tick(): Promise<void>;
  /** The rollout in progress, then the ones that ended, newest first. */
  list(): readonly Rollout[];
  /**
   * How a replica the autoscaler starts now must look: the new version while a rollout goes
   * forward, undefined when none runs. `hold`: what the autoscaler must not do meanwhile.
   */
  forAutoscaler(): { readonly variant: ReplicaVariant | undefined; readonly hold: 'none' | 'scale-down' | 'all' };
  /**
   * The weight a container this runner started as a canary must run with from its first moment
   * (canaryWeight of `fullWeight`); undefined for any other. Known from the start it made, so a
   * canary started before a restart gets its weight from the step's next pass instead.
   */
  canaryWeightOf(containerId: string, fullWeight: number): number | undefined;
}

/** The environment after `overrides` (KEY=VALUE) are set over `env`, keys in their first place. */
export function mergeEnv(env: readonly string[], overrides: readonly string[]): string[] {
  const keyOf = (entry: string): string => entry.split('=', 1)[0] ?? entry;
  const set = new Map(overrides.map((o) => [keyOf(o), o]));
  const merged = env.map((entry) => set.get(keyOf(entry)) ?? entry);
  const present = new Set(env.map(keyOf));
  return [...merged, ...overrides.filter((o) => !present.has(keyOf(o)))];
}

/** The service's spec as the Swarm step reads it: the rollout labels by name. */
const serviceView = (spec: ServiceSpecView): SwarmServiceView => ({
  version: spec.version,
  rollout: spec.containerLabels[ROLLOUT_ID],
  batch: spec.containerLabels[ROLLOUT_BATCH],
  update: spec.update,
});

export function createRolloutRunner(options: RolloutRunnerOptions): RolloutRunner {
  const { ports, store, logger, backend, service } = options;
  let lastReason = '';
  /** The containers started as the first batch of a canary rollout, by this process. */
  const canaries = new Set<string>();

  const ofService = (c: ContainerSnapshot): boolean =>
    c.running && c.labels[COMPOSE_SERVICE] === service.service && (service.project === '' || c.labels[COMPOSE_PROJECT] === service.project);

  const variantOf = (r: Rollout, version: 'to' | 'from', batch: string): ReplicaVariant => ({
    image: r[version].image,
    env: r[version].env,
    labels: { [ROLLOUT_ID]: r.id, [ROLLOUT_BATCH]: batch },
  });

  /** Stores `next` unless the record changed meanwhile (an operator's rollback): that change wins. */
  async function save(before: Rollout, next: Rollout): Promise<Result<void>> {
    return store.update((s) => {
      const all = s.rollouts ?? [];
      const current = all.find((x) => x.id === before.id);
      if (current === undefined || current.phase !== before.phase || current.phaseSince !== before.phaseSince) return s;
      const replaced = all.map((x) => (x.id === next.id ? next : x));
      const ended = replaced.filter((x) => isFinished(x.phase));
      const kept = ended.length > KEEP_ENDED ? replaced.filter((x) => !isFinished(x.phase) || ended.indexOf(x) >= ended.length - KEEP_ENDED) : replaced;
      return { ...s, rollouts: kept };
    });
  }

  async function observe(containers: readonly ContainerSnapshot[]): Promise<Result<{ replicas: ReplicaView[]; figures: ReadonlyMap<string, ServerFigures> | undefined }>> {
    const [configured, runtime, figures] = await Promise.all([ports.haproxy.readServers([backend]), ports.haproxy.listRuntimeServers(backend), ports.readFigures(backend)]);
    if (!configured.ok) return configured;
    if (!runtime.ok) return runtime;
    const servers = ports.serversOf(containers, backend);
    const running = new Map(runtime.value.map((s) => [s.name, s]));
    const retiring = new Set(options.retirements.list().map((x) => x.containerId));
    const replicas = containers.filter(ofService).map((c): ReplicaView => {
      const server = servers.get(c.id);
      const live = server === undefined ? undefined : running.get(server);
      return {
        id: c.id,
        rollout: c.labels[ROLLOUT_ID],
        batch: c.labels[ROLLOUT_BATCH],
        server,
        serving: live !== undefined && live.operationalState === 'up' && live.adminState === 'ready',
        failing: c.health === 'unhealthy',
        weight: live?.weight,
        configuredWeight: configured.value.servers.find((s) => s.name === server)?.weight,
        // A Swarm task told to stop is on its way out as surely as one with a retirement record.
        retiring: retiring.has(c.id) || c.stopping === true,
      };
    });
    return ok({ replicas, figures });
  }

  async function perform(r: Rollout, effect: RolloutEffect, containers: readonly ContainerSnapshot[], replicas: readonly ReplicaView[]): Promise<Result<void>> {
    switch (effect.kind) {
      case 'update-service': {
        if (ports.swarm === undefined) return fail('update the service', 'unsupported', 'a Swarm rollout needs docker.mode swarm');
        // The rollout's labels go on the new version's tasks; the old version's spec gets its
        // own labels back, so the tasks that never changed are not replaced by a rollback.
        const forward = effect.version === 'to';
        const done = await ports.swarm.updateService({
          version: r[effect.version],
          labels: forward || r.previous !== undefined ? { [ROLLOUT_ID]: forward ? r.id : r.previous, [ROLLOUT_BATCH]: SWARM_BATCH } : { [ROLLOUT_ID]: undefined, [ROLLOUT_BATCH]: undefined },
          parallelism: r.settings.batch,
          // A rollback bakes nothing: the old version was known good; Swarm waiting a bake
          // between batches and after the last one would keep the new tasks serving longer.
          bakeMs: forward ? r.settings.bakeMs : 0,
        });
        if (done.ok) logger.info({ rollout: r.id, image: r[effect.version].image }, `rollout ${r.id}: Swarm asked to update ${service.service} to ${r[effect.version].image}${forward ? '' : ' (rollback)'}`);
        return done;
      }
      case 'start': {
        // The newest replica of the service is the template, as for a scale-up; the variant
        // sets the version, so which one it is does not matter beyond its settings.
        const template = containers.filter(ofService).sort((a, b) => b.createdAt - a.createdAt)[0];
        if (template === undefined) return fail('start replicas', 'not-found', `no running replica of ${service.service} to copy`);
        const started = await ports.startLike(template.id, effect.count, variantOf(r, effect.version, effect.batch));
        if (!started.ok) return started;
        if (effect.version === 'to' && effect.batch === '0' && r.settings.canaryPercent < 100) for (const id of started.value) canaries.add(id);
        logger.info({ rollout: r.id, started: started.value.map((id) => id.slice(0, 12)), image: r[effect.version].image }, `rollout ${r.id}: started ${started.value.length} replica(s) of ${r[effect.version].image}`);
        return ok(undefined);
      }
      case 'set-weight':
        return ports.haproxy.setRuntimeWeight(backend, effect.server, effect.weight);
      case 'retire': {
        for (const id of effect.containerIds) {
          const server = replicas.find((x) => x.id === id)?.server ?? containers.find((c) => c.id === id)?.name ?? id.slice(0, 12);
          const recorded = await options.retirements.retire(id, backend, server, options.drainDeadlineMs, `rollout ${r.id}`);
          if (!recorded.ok) return recorded;
        }
        return ok(undefined);
      }
    }
  }

  async function tickOnce(): Promise<void> {
    const r = activeRollout(store.read());
    if (r === undefined) return;
    const listed = await ports.listRunning();
    if (!listed.ok) {
      logger.warn({ rollout: r.id, error: listed.error.message }, `rollout ${r.id} waits: cannot list the containers`);
      return;
    }
    const view = await observe(listed.value);
    if (!view.ok) {
      logger.warn({ rollout: r.id, error: view.error.message }, `rollout ${r.id} waits: cannot read HAProxy's servers`);
      return;
    }
    let step: RolloutStep;
    if (r.via === 'swarm') {
      const spec: Result<ServiceSpecView> = ports.swarm === undefined ? fail('read the service', 'unsupported', 'a Swarm rollout needs docker.mode swarm') : await ports.swarm.readService();
      if (!spec.ok) {
        logger.warn({ rollout: r.id, error: spec.error.message }, `rollout ${r.id} waits: cannot read the Swarm service: ${spec.error.message}`);
        return;
      }
      step = advanceSwarmRollout(r, { ...view.value, service: serviceView(spec.value) }, options.now());
    } else {
      step = advanceRollout(r, view.value, options.now());
    }
    for (const effect of step.effects) {
      const done = await perform(r, effect, listed.value, view.value.replicas);
      if (!done.ok) {
        // The record stays: the next pass observes again and asks for what is still missing.
        logger.warn({ rollout: r.id, effect: effect.kind, error: done.error.message }, `rollout ${r.id}: ${effect.kind} failed: ${done.error.message}; retrying`);
        return;
      }
    }
    if (step.next !== r) {
      const saved = await save(r, step.next);
      if (!saved.ok) {
        logger.error({ rollout: r.id, error: saved.error.message }, `rollout ${r.id}: cannot record its progress`);
        return;
      }
    }
    const fields = { rollout: r.id, phase: step.next.phase, batch: step.next.batch + 1, batches: batchCount(step.next) };
    if (step.next.phase !== r.phase) {
      options.recorder?.phase(step.next);
      const log = step.next.phase === 'rolling-back' ? logger.warn.bind(logger) : logger.info.bind(logger);
      log(fields, `rollout ${r.id}: ${step.reason}`);
      if (step.next.phase === 'succeeded' || step.next.phase === 'rolled-back') options.recorder?.ended(step.next.phase, ((step.next.endedAt ?? options.now()) - r.startedAt) / 1000);
    } else if (step.reason !== lastReason) {
      logger.info(fields, `rollout ${r.id}: ${step.reason}`);
    }
    lastReason = step.reason;
    if (step.effects.some((e) => e.kind === 'retire')) await options.retirements.progress();
  }

  /**
   * The version the replicas run: the Swarm service's task template (and the rollout that
   * brought it, if any), or the newest Compose replica's.
   */
  async function currentVersion(newestId: string): Promise<Result<ReplicaVersion & { previous?: string }>> {
    if (ports.swarm === undefined) return ports.versionOf(newestId);
    const spec = await ports.swarm.readService();
    if (!spec.ok) return spec;
    const previous = spec.value.containerLabels[ROLLOUT_ID];
    return ok({ ...spec.value.version, ...(previous === undefined ? {} : { previous }) });
  }

  let ticking: Promise<void> | undefined;

  function settingsOf(request: RolloutRequest): Result<RolloutSettings> {
    const s = { ...options.defaults, ...request.settings };
    const problems: string[] = [];
    if (!Number.isInteger(s.batch) || s.batch < 1) problems.push('batch must be a whole number of at least 1');
    if (!(s.canaryPercent >= 1 && s.canaryPercent <= 100)) problems.push('canaryPercent must be from 1 to 100 (100: no canary)');
    if (!(s.bakeMs >= 0)) problems.push('bakeMs must be 0 or more');
    if (!(s.readyTimeoutMs >= 1000)) problems.push('readyTimeoutMs must be at least 1000');
    if (!(s.maxErrorRatio >= 0 && s.maxErrorRatio <= 1)) problems.push('maxErrorRatio must be from 0 to 1');
    if (!(s.maxLatencyRatio >= 1)) problems.push('maxLatencyRatio must be at least 1');
    if (!Number.isInteger(s.minAnswers) || s.minAnswers < 1) problems.push('minAnswers must be a whole number of at least 1');
    return problems.length > 0 ? fail('start a rollout', 'invalid', problems.join('; ')) : ok(s);
  }

  return {
    async begin(request) {
      const operation = 'start a rollout';
      const running = activeRollout(store.read());
      if (running !== undefined) return fail(operation, 'conflict', `rollout ${running.id} is in progress (${running.phase}); wait for it or roll it back first`);
      if (request.image === undefined && (request.env ?? []).length === 0) return fail(operation, 'invalid', 'give a new image, environment variables (KEY=VALUE), or both');
      const badEnv = (request.env ?? []).find((e) => !/^[^=\s]+=/.test(e));
      if (badEnv !== undefined) return fail(operation, 'invalid', `environment entries are KEY=VALUE; got ${JSON.stringify(badEnv)}`);
      const settings = settingsOf(request);
      if (!settings.ok) return settings;
      const listed = await ports.listRunning();
      if (!listed.ok) return listed;
      // Oldest first: they are replaced in the order a scale-down would pick them. A Swarm task
      // already told to stop is no replica to replace.
      const old = listed.value.filter((c) => ofService(c) && c.stopping !== true).sort((a, b) => a.createdAt - b.createdAt);
      const newest = old.at(-1);
      if (newest === undefined) return fail(operation, 'not-found', `no running replica of ${service.service} to replace`);
      const current = await currentVersion(newest.id);
      if (!current.ok) return current;
      const image = request.image ?? current.value.image;
      // On Swarm the tasks run on the nodes, which pull the image or have it: this host's
      // images say nothing, so nothing is checked (a task that cannot start pauses Swarm's
      // update, and the rollout rolls back).
      if (ports.swarm === undefined) {
        const present = await ports.hasImage(image);
        if (!present.ok) return present;
        if (!present.value) return fail(operation, 'not-found', `the image ${image} is not on this Docker host (build or pull it first: a rollout pulls nothing)`);
      }
      const from: Version = { image: current.value.image, env: current.value.env };
      const now = options.now();
      const how =
        ports.swarm === undefined
          ? `replacing ${old.length} replica(s) of ${from.image} with ${image}, ${settings.value.batch} at a time`
          : `Swarm's rolling update replaces ${old.length} task(s) of ${from.image} with ${image}, ${settings.value.batch} at a time, start-first (the nodes must have the image or pull it: not checked)`;
      const rollout: Rollout = {
        id: `r-${new Date(now).toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomBytes(2).toString('hex')}`,
        backend,
        service: service.service,
        project: service.project,
        from,
        to: { image, env: mergeEnv(from.env, request.env ?? []) },
        settings: settings.value,
        phase: 'starting',
        old: old.map((c) => c.id),
        batch: 0,
        started: 0,
        startedAt: now,
        phaseSince: now,
        reason: how,
        ...(ports.swarm === undefined ? {} : { via: 'swarm' as const }),
        ...(current.value.previous === undefined ? {} : { previous: current.value.previous }),
      };
      const stored = await store.update((s) => (activeRollout(s) !== undefined ? s : { ...s, rollouts: [...(s.rollouts ?? []), rollout] }));
      if (!stored.ok) return stored;
      if (activeRollout(store.read())?.id !== rollout.id) return fail(operation, 'conflict', 'another rollout started meanwhile');
      logger.info({ rollout: rollout.id, image, replicas: old.length, batch: rollout.settings.batch }, `rollout ${rollout.id}: ${rollout.reason}`);
      options.recorder?.phase(rollout);
      options.requestPass(`rollout ${rollout.id} started`);
      return ok(rollout);
    },

    async rollBack(id, reason) {
      const r = activeRollout(store.read());
      if (r === undefined || r.id !== id) return fail('roll back', 'not-found', `no rollout ${id} in progress`);
      if (r.phase === 'rolling-back') return ok(r);
      const { bake: _bake, ...rest } = r;
      const next: Rollout = { ...rest, phase: 'rolling-back', phaseSince: options.now(), started: 0, reason };
      const saved = await save(r, next);
      if (!saved.ok) return saved;
      logger.warn({ rollout: id }, `rollout ${id}: rolling back: ${reason}`);
      options.recorder?.phase(next);
      options.requestPass(`rollout ${id} rolling back`);
      return ok(next);
    },

    tick() {
      ticking ??= tickOnce().finally(() => {
        ticking = undefined;
      });
      return ticking;
    },

    list() {
      const all = store.read().rollouts ?? [];
      return [...all].reverse();
    },

    canaryWeightOf(containerId, fullWeight) {
      const r = activeRollout(store.read());
      if (r === undefined || !canaries.has(containerId) || r.batch !== 0 || r.phase === 'rolling-back') return undefined;
      return canaryWeight(fullWeight, r.settings.canaryPercent);
    },

    forAutoscaler() {
      const r = activeRollout(store.read());
      if (r === undefined) return { variant: undefined, hold: 'none' };
      if (r.phase === 'rolling-back') return { variant: undefined, hold: 'all' };
      // Its own batch label: a scale-up's replica is new (a rollback retires it) but is no part
      // of the batch that bakes.
      return { variant: variantOf(r, 'to', 'scale'), hold: 'scale-down' };
    },
  };
}
