// How the sidecar's parts are put together, one named function per area, so that main.ts is only
// the order of the calls and the bench and the tests build the same parts the same way instead
// of copying the wiring. Nothing here decides anything: every function turns the configuration
// and the parts it needs into one part.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { createAdminRoutes } from './admin/routes.js';
import { createAdminService, type AdminService } from './admin/service.js';
import { createAutoscaler, isRemovableRetiree, type Autoscaler, type PoolView } from './autoscale/controller.js';
import { BREACH_WINDOW_CHECKS, createSampler } from './autoscale/sampler.js';
import { autoscalerWork } from './autoscale/work.js';
import type { SidecarConfig } from './config/index.js';
import { createDataplaneClient, type TransactionLedger } from './dataplane/client.js';
import { createDataplaneDriver } from './dataplane/driver.js';
import { createDiscovery, isOwnedServerName, type Discovery, type DockerSource, type Probe } from './discovery/discovery.js';
import type { DiscoveryOptions } from './discovery/parse.js';
import { watchContainerEvents } from './discovery/events.js';
import { createDockerEdge, isLeavingEvent, isReturningEvent, type DockerEdge, type ServiceUpdate } from './docker/compose.js';
import { createSwarmEdge } from './docker/swarm.js';
import type { HaproxyDriver } from './driver/port.js';
import { ok, type Result } from './edge/result.js';
import { createBackendLoadReader, createServerFiguresReader, createServerLoadReader, scrape, type ScrapeOptions } from './haproxy-metrics/exporter.js';
import { createHttpServer, type HttpServer } from './http/server.js';
import { createWorkQueue, realTimers, type WorkQueue } from './queue/queue.js';
import { createReconciler, reconcileWork, type ReconcileOutcome, type Reconciler } from './reconcile/reconciler.js';
import { createDrainer, type Drainer } from './records/drains.js';
import { createRetirementRunner, type RetirementRunner } from './records/retirements.js';
import { createRolloutRunner, type RolloutRunner } from './records/rollouts.js';
import { openStateStore, operationRecords, recordedAdminState, retirementsOf, type StateStore } from './records/store.js';
import { createRuntimeDriver } from './runtime/driver.js';
import { createRuntimeSocketOps } from './runtime/ops.js';
import { poolView } from './scaling/replicas.js';
import type { Logger } from './log/logger.js';
import { autoscalerRecorder, drainRecorder, rolloutRecorder, type SidecarMetrics } from './telemetry/metrics.js';

/** What a caller (the tests, the bench) may hand the sidecar instead of the real thing. */
export interface SidecarDependencies {
  readonly logger?: Logger;
  readonly docker?: DockerEdge;
  readonly probe?: Probe;
  readonly fetch?: typeof fetch;
}

export interface RunningSidecar {
  /** The port the HTTP listener bound (the configured one, or the OS's pick for port 0). */
  readonly port: number;
  /** Asks for a reconcile pass now (coalesced with any other pending trigger). */
  resync(reason: string): void;
  stop(): Promise<void>;
}

/** The queue's keys (sidecar/queue/queue.ts). */
export const RECONCILE = 'reconcile';
export const RECORDS = 'records';

/** The version in package.json, found from here whether running from sidecar/ (tsx) or dist/sidecar/ (built). */
export function packageVersion(): string {
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const parsed = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (parsed.name === 'haproxy-scaling-sidecar' && typeof parsed.version === 'string') return parsed.version;
    } catch {
      // Not at this level; try the next one up.
    }
  }
  return 'unknown';
}

/** The state file: drains, scale-downs, the autoscaler's mode and open transactions carry on from it. */
export async function openState(config: SidecarConfig, logger: Logger): Promise<StateStore> {
  const opened = await openStateStore(config.autoscale.stateFile);
  if (!opened.ok) throw new Error(`autoscale.stateFile: ${opened.error.operation}: ${opened.error.message}`);
  if (config.autoscale.stateFile === '') {
    logger.warn({}, 'autoscale.stateFile is not set: drains and scale-downs in progress do not survive a restart of the sidecar');
  }
  return opened.value;
}

/** The transaction ids the Data Plane API driver keeps while a transaction is open, in the state file. */
export function transactionLedger(state: StateStore): TransactionLedger {
  const change = async (edit: (ids: readonly string[]) => string[]): Promise<void> => {
    // A failed write only loses the trace of one transaction: nothing to stop a pass for.
    await state.update((s) => ({ ...s, transactions: edit(s.transactions) }));
  };
  return {
    opened: (id) => change((ids) => [...ids.filter((x) => x !== id), id]),
    closed: (id) => change((ids) => ids.filter((x) => x !== id)),
    list: () => state.read().transactions,
  };
}

/** The driver the configuration names; the only place that knows both adapters. */
export function wireHaproxy(config: SidecarConfig, logger: Logger, ledger: TransactionLedger, fetchImpl?: typeof fetch): HaproxyDriver {
  const { haproxy } = config;
  if (haproxy.driver === 'runtime') {
    return createRuntimeDriver({
      address: haproxy.runtimeSocket,
      timeoutMs: haproxy.socketTimeoutMs,
      configFile: haproxy.configFile,
      healthCheck: haproxy.check,
      isOwned: isOwnedServerName,
    });
  }
  const dataplane = config.dataplane;
  // The loader guarantees it; a missing one here is the wiring's own bug.
  if (dataplane === undefined) throw new Error('haproxy.driver is dataplane but the dataplane settings are missing');
  const client = createDataplaneClient({
    url: dataplane.url,
    username: dataplane.username,
    password: dataplane.password,
    timeoutMs: dataplane.timeoutMs,
    retries: dataplane.retries,
    ...(fetchImpl === undefined ? {} : { fetch: fetchImpl }),
    onRetry: (info) => logger.warn(info, 'Data Plane API request failed; retrying'),
  });
  return createDataplaneDriver({
    client,
    healthCheck: haproxy.check,
    reloadTimeoutMs: dataplane.reloadTimeoutMs,
    ledger,
    logger,
    ...(haproxy.runtimeSocket === '' ? {} : { socket: createRuntimeSocketOps({ address: haproxy.runtimeSocket, timeoutMs: haproxy.socketTimeoutMs }) }),
  });
}

export function wireDocker(config: SidecarConfig, logger: Logger): DockerEdge {
  return config.docker.mode === 'swarm' ? createSwarmEdge({ socketPath: config.docker.socketPath, logger }) : createDockerEdge(config.docker.socketPath);
}

export function discoveryOptions(config: SidecarConfig): DiscoveryOptions {
  return {
    labelPrefix: config.docker.labelPrefix,
    composeService: config.docker.composeService,
    composeProject: config.docker.composeProject,
    addressMode: config.docker.addressMode,
    network: config.docker.network,
    managedBackends: config.backends.managedBackends,
    defaultBackend: config.backends.defaultBackend,
    defaultPort: config.backends.port,
    defaultWeight: config.backends.weight,
    defaultHealthPath: config.backends.healthPath,
  };
}

export function wireDiscovery(config: SidecarConfig, docker: DockerSource, logger: Logger): Discovery {
  return createDiscovery(docker, discoveryOptions(config), logger);
}

export interface ReconcilerParts {
  readonly discovery: Discovery;
  readonly haproxy: HaproxyDriver;
  readonly probe: Probe;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** The records that ask for admin states and removals; absent: no records (the bench). */
  readonly state?: StateStore;
  /** A rollout's canary weight for a container just started (RolloutRunner.canaryWeightOf). */
  readonly runtimeWeightOf?: (containerId: string, fullWeight: number) => number | undefined;
}

export function wireReconciler(config: SidecarConfig, parts: ReconcilerParts): Reconciler {
  const { state } = parts;
  return createReconciler({
    discovery: parts.discovery,
    driver: parts.haproxy,
    probe: parts.probe,
    managedBackends: config.backends.managedBackends,
    maxConflictRetries: config.reconcile.maxConflictRetries,
    logger: parts.logger,
    metrics: parts.metrics,
    now: () => Date.now(),
    holdLastServerMs: config.docker.holdLastServerMs,
    ...(parts.runtimeWeightOf === undefined ? {} : { runtimeWeightOf: parts.runtimeWeightOf }),
    ...(state === undefined
      ? {}
      : {
          isRemovable: (containerId: string) => isRemovableRetiree(retirementsOf(state), containerId),
          adminStateOf: (backend: string, server: string) => recordedAdminState(state.read(), backend, server),
        }),
  });
}

/** HAProxy's exporter as the configuration names it. */
export const exporterOf = (config: SidecarConfig): ScrapeOptions => ({ url: config.haproxy.metricsUrl, timeoutMs: config.haproxy.metricsTimeoutMs });

export function wireDrains(config: SidecarConfig, parts: { haproxy: HaproxyDriver; state: StateStore; logger: Logger; metrics: SidecarMetrics }): Drainer {
  const { haproxy, state } = parts;
  const retirements = retirementsOf(state);
  return createDrainer({
    ports: {
      setAdminState: (backend, server, adminState) => haproxy.setAdminState(backend, server, adminState),
      listRuntimeServers: (backend) => haproxy.listRuntimeServers(backend),
      readLoad: createServerLoadReader(exporterOf(config)),
    },
    store: state,
    deadlineMs: config.drain.deadlineMs,
    now: () => Date.now(),
    logger: parts.logger,
    recorder: drainRecorder(parts.metrics),
    retiring: (backend, server) => retirements.list().some((r) => r.backend === backend && r.server === server),
  });
}

/** The runners of the records that replace replicas: retirements (any scale-down) and rollouts. */
export interface RecordRunners {
  readonly retirements: RetirementRunner;
  readonly rollouts: RolloutRunner;
}

/**
 * The retirement runner every scale-down and rollout retires replicas through, and the rollout
 * runner of `hsc rollout` (the autoscaler's service and backend), whether or not the autoscaler runs.
 */
export function wireRecords(
  config: SidecarConfig,
  parts: { docker: DockerEdge; discovery: Discovery; haproxy: HaproxyDriver; state: StateStore; logger: Logger; metrics: SidecarMetrics; requestReconcile: (reason: string) => void; requestPass: (reason: string) => void },
): RecordRunners {
  const { docker, discovery, haproxy, state, logger } = parts;
  const { backend, service, project } = config.autoscale;
  const ref = { service, project };
  const exporter = exporterOf(config);
  const retirements = createRetirementRunner({
    store: retirementsOf(state),
    running: async () => {
      const listed = await docker.listRunning();
      return listed.ok ? ok(new Set(listed.value.map((c) => c.id))) : listed;
    },
    haproxy,
    readLoad: createServerLoadReader(exporter),
    stopAndRemove: (id, timeoutSeconds) => docker.stopAndRemove(id, timeoutSeconds),
    stopTimeoutSeconds: config.autoscale.stopTimeoutSeconds,
    requestReconcile: parts.requestReconcile,
    logger,
    now: () => Date.now(),
    // A scale-down's end is an autoscaler action; a rollout's retirements are counted as rollouts.
    onFinished: (retirement, stopped) => {
      if (stopped && retirement.cause === undefined) parts.metrics.autoscaler.actions.inc({ service, direction: 'down', result: 'ok' });
    },
  });
  const rollouts = createRolloutRunner({
    ports: {
      listRunning: () => docker.listRunning(),
      startLike: (templateId, count, variant) => docker.startLike(ref, templateId, count, variant),
      versionOf: (id) => docker.versionOf(id),
      hasImage: (image) => docker.hasImage(image),
      serversOf: (containers, b) => poolView(containers, discovery.from(containers).candidates, ref, b).serverOf,
      haproxy,
      readFigures: createServerFiguresReader(exporter),
      // In Swarm mode a rollout is Swarm's own rolling update of the service's spec.
      ...(config.docker.mode === 'swarm' ? { swarm: { readService: () => docker.readService(ref), updateService: (change: ServiceUpdate) => docker.updateService(ref, change) } } : {}),
    },
    store: state,
    retirements,
    service: ref,
    backend,
    defaults: config.rollout,
    drainDeadlineMs: config.drain.deadlineMs,
    requestPass: parts.requestPass,
    logger,
    recorder: rolloutRecorder(parts.metrics, backend),
    now: () => Date.now(),
  });
  return { retirements, rollouts };
}

export interface AutoscalerParts {
  readonly docker: DockerEdge;
  readonly discovery: Discovery;
  readonly haproxy: HaproxyDriver;
  readonly drainer: Drainer;
  readonly state: StateStore;
  readonly records: RecordRunners;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  readonly requestReconcile: (reason: string) => void;
  /** False while HAProxy's server states cannot be set (found by the driver's inspection). */
  readonly canDrain: () => boolean;
}

/** The autoscaler, or undefined when autoscaling is off. */
export function wireAutoscaler(config: SidecarConfig, parts: AutoscalerParts): Autoscaler | undefined {
  if (!config.autoscale.enabled) return undefined;
  const { docker, discovery, state } = parts;
  const { backend, service, project, policy, dryRun } = config.autoscale;
  const ref = { service, project };
  const exporter = exporterOf(config);
  // One Docker list per evaluation: the replicas and their server names both come from it.
  const pool = async (): Promise<Result<PoolView>> => {
    const listed = await docker.listRunning();
    return listed.ok ? ok(poolView(listed.value, discovery.from(listed.value).candidates, ref, backend)) : listed;
  };
  return createAutoscaler({
    backend,
    policy,
    sampler: createSampler({
      backend,
      scrape: () => scrape(exporter),
      cpu: async (ids) => {
        const read = await docker.cpu(ids);
        return read.ok ? read.value : undefined;
      },
      now: () => Date.now(),
      peekWindowMs: config.autoscale.breachCheckMs * BREACH_WINDOW_CHECKS,
    }),
    pool,
    scaler: {
      // A scale-up during a rollout starts replicas of the new version.
      startLike: (templateId, count) => docker.startLike(ref, templateId, count, parts.records.rollouts.forAutoscaler().variant),
      stopAndRemove: (id, timeoutSeconds) => docker.stopAndRemove(id, timeoutSeconds),
      removeNeverStarted: (minAgeSeconds) => docker.removeNeverStarted(ref, minAgeSeconds, Date.now() / 1000),
    },
    drainer: parts.drainer,
    haproxy: parts.haproxy,
    readLoad: createServerLoadReader(exporter),
    store: retirementsOf(state),
    retirements: parts.records.retirements,
    held: () => parts.records.rollouts.forAutoscaler().hold,
    modeStore: {
      read: () => state.read().autoscaler,
      write: (setting) =>
        state.update((s) => {
          const { autoscaler: _previous, ...rest } = s;
          return setting === undefined ? rest : { ...rest, autoscaler: setting };
        }),
    },
    drainDeadlineMs: config.drain.deadlineMs,
    requestReconcile: parts.requestReconcile,
    dryRun,
    canDrain: parts.canDrain,
    stopTimeoutSeconds: config.autoscale.stopTimeoutSeconds,
    logger: parts.logger,
    recorder: autoscalerRecorder(parts.metrics, service, policy),
    now: () => Date.now(),
  });
}

/** The one work queue, on the real clock; its keys are registered by registerWork(). */
export const wireQueue = (logger: Logger): WorkQueue => createWorkQueue({ timers: realTimers, logger });

/**
 * Every key on the queue: the reconciler's passes, the records' passes (operator drains and
 * scale-downs moved on every drain poll period) and, with the autoscaler, its evaluations and
 * breach checks.
 */
export function registerWork(
  queue: WorkQueue,
  config: SidecarConfig,
  parts: { reconciler: Reconciler; drainer: Drainer; records: RecordRunners; autoscaler: Autoscaler | undefined; logger: Logger; onOutcome: (outcome: ReconcileOutcome) => void },
): void {
  const { logger, autoscaler, drainer } = parts;
  const onOutcome = (outcome: ReconcileOutcome): void => {
    parts.onOutcome(outcome);
    // A server just added may be a rollout's canary, whose weight is set by the records' pass:
    // that pass runs now rather than up to a poll period later.
    if (outcome.status === 'converged' && outcome.operations.some((o) => o.op === 'add')) queue.add(RECORDS, 'servers added');
  };
  queue.register(RECONCILE, reconcileWork(parts.reconciler, { ...config.reconcile, logger, onOutcome }));
  queue.register(RECORDS, {
    async run() {
      // Every poll period even with none in progress: a record may start outside the queue
      // (an admin API drain or count), and a pass with none reads nothing but the state file.
      await drainer.tick();
      // Rollouts first: the replicas they retire start their drain in the same pass.
      await parts.records.rollouts.tick();
      await parts.records.retirements.progress();
      if (await parts.reconciler.repairStates()) queue.add(RECONCILE, 'a managed server out of rotation without a record asking for it');
      return { requeueAfterMs: config.drain.pollMs };
    },
  });
  if (autoscaler !== undefined) {
    const work = autoscalerWork(autoscaler, queue, { intervalMs: config.autoscale.intervalMs, breachCheckMs: config.autoscale.breachCheckMs, logger, recordsKey: RECORDS });
    for (const [key, spec] of Object.entries(work)) queue.register(key, spec);
  }
}

export function wireAdmin(
  config: SidecarConfig,
  parts: { haproxy: HaproxyDriver; drainer: Drainer; discovery: Discovery; autoscaler: () => Autoscaler | undefined },
): AdminService {
  return createAdminService({
    haproxy: parts.haproxy,
    drainer: parts.drainer,
    backendLoad: createBackendLoadReader(exporterOf(config)),
    candidates: async () => {
      const discovered = await parts.discovery.discover();
      return discovered.ok ? discovered.value.candidates : [];
    },
    managedBackends: config.backends.managedBackends,
    isOwned: isOwnedServerName,
    undrained: (backend, server) => parts.autoscaler()?.cancelRetirement(backend, server) ?? Promise.resolve(),
  });
}

export function wireHttp(
  config: SidecarConfig,
  parts: {
    admin: AdminService;
    autoscaler: Autoscaler | undefined;
    records: RecordRunners;
    state: StateStore;
    metrics: SidecarMetrics;
    logger: Logger;
    resync: (reason: string) => void;
    readiness: () => { ready: boolean; detail: Record<string, unknown> };
  },
): HttpServer {
  const { autoscaler } = parts;
  return createHttpServer({
    registry: parts.metrics.registry,
    onError: (error, method, path) => parts.logger.error({ err: error, method, path }, 'HTTP request failed inside the sidecar'),
    routes: createAdminRoutes({
      service: parts.admin,
      adminToken: config.http.adminToken,
      resync: parts.resync,
      rollouts: parts.records.rollouts,
      records: () => ({ records: operationRecords(parts.state.read()), autoscaler: parts.state.read().autoscaler ?? null }),
      ...(autoscaler === undefined ? {} : { autoscaler: { controller: autoscaler, policy: config.autoscale.policy, service: config.autoscale.service } }),
    }),
    readiness: parts.readiness,
  });
}

/** Docker's event stream as triggers of reconcile passes; resolves when `signal` aborts. */
export function watchDocker(
  config: SidecarConfig,
  parts: {
    docker: DockerSource;
    signal: AbortSignal;
    logger: Logger;
    metrics: SidecarMetrics;
    /** Asks for a reconcile pass; `urgent`: without waiting for the events to calm down. */
    trigger: (reason: string, urgent?: boolean) => void;
    /** Told at once of a container that starts to stop or turned unhealthy, and of one that serves again. */
    reconciler?: Pick<Reconciler, 'leaving' | 'returned' | 'starved'>;
  },
): Promise<void> {
  return watchContainerEvents({
    source: parts.docker,
    signal: parts.signal,
    sleep: (ms, signal) => sleep(ms, undefined, { signal }).catch(() => undefined),
    now: () => Date.now(),
    logger: parts.logger,
    minBackoffMs: config.docker.eventsMinBackoffMs,
    maxBackoffMs: config.docker.eventsMaxBackoffMs,
    onEvent: (event) => {
      if (config.docker.drainOnStop && isLeavingEvent(event)) void parts.reconciler?.leaving(event.containerId);
      else if (isReturningEvent(event)) parts.reconciler?.returned(event.containerId);
      // Every server of a backend on its way out: each event may be the replacement starting.
      parts.trigger(`docker ${event.action} ${event.containerId.slice(0, 12)}`, parts.reconciler?.starved() === true);
    },
    onStreamState: (open) => {
      parts.metrics.eventsStreamUp.set(open ? 1 : 0);
      // Events may have been missed while the stream was closed: look at everything again.
      if (open) parts.trigger('docker event stream opened');
    },
  });
}

/** Reads whom the driver talks to and what does not work there; logs it. False: runtime states cannot be read. */
export async function inspectHaproxy(config: SidecarConfig, haproxy: HaproxyDriver, logger: Logger): Promise<boolean> {
  const report = await haproxy.inspect(config.backends.managedBackends);
  if (!report.ok) {
    // Not fatal: HAProxy or its API may come up after the sidecar; every pass retries.
    logger.warn({ error: report.error }, `cannot inspect HAProxy yet: ${report.error.message}`);
    return true;
  }
  const { driver, haproxyVersion, limitations, runtimeReads } = report.value;
  logger.info(
    { driver, haproxyVersion: haproxyVersion ?? null },
    `writing to HAProxy ${haproxyVersion ?? '(version unknown)'} through the ${driver === 'dataplane' ? 'Data Plane API' : 'runtime API'}`,
  );
  for (const limitation of limitations) logger.warn({ driver }, `limitation: ${limitation}`);
  return runtimeReads;
}
