// Wires the sidecar: configuration, Docker discovery, the Data Plane API client, the reconcile
// loop, the Docker event watcher and the HTTP listener. Run directly, it loads the configuration
// from the environment (and HSC_CONFIG_FILE), and stops cleanly on SIGTERM or SIGINT.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfigFromProcess, redactConfig, type SidecarConfig } from './config/index.js';
import { createDataplaneClient } from './dataplane/client.js';
import { createDataplaneDriver } from './dataplane/driver.js';
import type { HaproxyDriver } from './driver/port.js';
import { createRuntimeDriver } from './runtime/driver.js';
import { createRuntimeSocketOps } from './runtime/ops.js';
import {
  createDiscovery,
  discoveryOptions,
  httpProbe,
  isOwnedServerName,
  type Probe,
} from './discovery/discovery.js';
import { watchContainerEvents } from './discovery/events.js';
import { createAdminRoutes } from './admin/routes.js';
import { createAutoscaler, isRemovableRetiree, type Autoscaler, type PoolView } from './autoscale/controller.js';
import { ok, type Result } from './edge/result.js';
import { createControlLoop } from './autoscale/loop.js';
import { openStateStore, recordedAdminState, retirementsOf, type StateStore } from './state/store.js';
import type { TransactionLedger } from './dataplane/client.js';
import { BREACH_WINDOW_CHECKS, createSampler } from './autoscale/sampler.js';
import { createDockerEdge, type DockerEdge } from './docker/compose.js';
import { createSwarmEdge } from './docker/swarm.js';
import { poolView } from './scaling/replicas.js';
import { createAdminService } from './admin/service.js';
import { createDrainer } from './drain/drainer.js';
import { createBackendLoadReader, createServerLoadReader, scrape } from './haproxy-metrics/exporter.js';
import { createHttpServer } from './http/server.js';
import { createReconcileLoop, realTimers } from './reconcile/loop.js';
import { createReconciler, type ReconcileOutcome } from './reconcile/reconciler.js';
import { createLogger, type Logger } from './telemetry/logger.js';
import { autoscalerRecorder, createMetrics, drainRecorder, initialiseBackendSeries } from './telemetry/metrics.js';

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

export async function startSidecar(config: SidecarConfig, deps: SidecarDependencies = {}): Promise<RunningSidecar> {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics({ version: packageVersion(), processMetrics: true });
  initialiseBackendSeries(metrics, config.backends.managedBackends);
  // Drains, scale-downs, the autoscaler's mode and open transactions in progress when the
  // sidecar last stopped are in this file: they carry on.
  const opened = await openStateStore(config.autoscale.stateFile);
  if (!opened.ok) throw new Error(`autoscale.stateFile: ${opened.error.operation}: ${opened.error.message}`);
  const state = opened.value;
  if (config.autoscale.stateFile === '') {
    logger.warn({}, 'autoscale.stateFile is not set: drains and scale-downs in progress do not survive a restart of the sidecar');
  }
  const haproxy = createHaproxyDriver(config, logger, deps.fetch, transactionLedger(state));
  const docker =
    deps.docker ??
    (config.docker.mode === 'swarm' ? createSwarmEdge({ socketPath: config.docker.socketPath, logger }) : createDockerEdge(config.docker.socketPath));
  const discovery = createDiscovery(docker, discoveryOptions(config), logger);
  const retirements = retirementsOf(state);
  const reconciler = createReconciler({
    discovery,
    driver: haproxy,
    probe: deps.probe ?? httpProbe(config.backends.probeTimeoutMs),
    managedBackends: config.backends.managedBackends,
    maxConflictRetries: config.reconcile.maxConflictRetries,
    logger,
    metrics,
    now: () => Date.now(),
    isRemovable: (containerId) => isRemovableRetiree(retirements, containerId),
    adminStateOf: (backend, server) => recordedAdminState(state.read(), backend, server),
  });

  let lastOutcome: ReconcileOutcome | undefined;
  let everConverged = false;
  const loop = createReconcileLoop({
    reconcile: () => reconciler.reconcile(),
    debounceMs: config.reconcile.debounceMs,
    maxDebounceMs: config.reconcile.maxDebounceMs,
    resyncIntervalMs: config.reconcile.resyncIntervalMs,
    readinessRetryMs: config.reconcile.readinessRetryMs,
    failureBackoffMs: config.reconcile.failureBackoffMs,
    timers: realTimers,
    logger,
    onOutcome: (outcome) => {
      lastOutcome = outcome;
      if (outcome.status === 'converged') everConverged = true;
    },
  });

  const exporter = { url: config.haproxy.metricsUrl, timeoutMs: config.haproxy.metricsTimeoutMs };
  const drainer = createDrainer({
    ports: {
      setAdminState: (backend, server, state) => haproxy.setAdminState(backend, server, state),
      listRuntimeServers: (backend) => haproxy.listRuntimeServers(backend),
      readLoad: createServerLoadReader(exporter),
    },
    store: state,
    deadlineMs: config.drain.deadlineMs,
    now: () => Date.now(),
    logger,
    recorder: drainRecorder(metrics),
    retiring: (backend, server) => retirements.list().some((r) => r.backend === backend && r.server === server),
  });
  const admin = createAdminService({
    haproxy,
    drainer,
    backendLoad: createBackendLoadReader(exporter),
    candidates: async () => {
      const discovered = await discovery.discover();
      return discovered.ok ? discovered.value.candidates : [];
    },
    managedBackends: config.backends.managedBackends,
    isOwned: isOwnedServerName,
    undrained: (backend, server) => autoscaler?.cancelRetirement(backend, server) ?? Promise.resolve(),
  });

  // Set from the driver's start-up inspection; until then assumed (a failed inspection is retried
  // by every pass, and the driver's calls answer for themselves).
  let runtimeReads = true;
  const autoscaler = config.autoscale.enabled ? createConfiguredAutoscaler() : undefined;

  function createConfiguredAutoscaler(): Autoscaler {
    const { backend, service, project, policy, dryRun } = config.autoscale;
    const ref = { service, project };
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
        startLike: (templateId, count) => docker.startLike(ref, templateId, count),
        stopAndRemove: (id, timeoutSeconds) => docker.stopAndRemove(id, timeoutSeconds),
        removeNeverStarted: (minAgeSeconds) => docker.removeNeverStarted(ref, minAgeSeconds, Date.now() / 1000),
      },
      drainer,
      haproxy,
      readLoad: createServerLoadReader(exporter),
      store: retirements,
      modeStore: {
        read: () => state.read().autoscaler,
        write: (setting) => state.update((s) => {
          const { autoscaler: _previous, ...rest } = s;
          return setting === undefined ? rest : { ...rest, autoscaler: setting };
        }),
      },
      drainDeadlineMs: config.drain.deadlineMs,
      requestReconcile: (reason) => loop.trigger(reason),
      dryRun,
      canDrain: () => runtimeReads,
      stopTimeoutSeconds: config.autoscale.stopTimeoutSeconds,
      logger,
      recorder: autoscalerRecorder(metrics, service, policy),
      now: () => Date.now(),
    });
  }

  const http = createHttpServer({
    registry: metrics.registry,
    onError: (error, method, path) => logger.error({ err: error, method, path }, 'HTTP request failed inside the sidecar'),
    routes: createAdminRoutes({
      service: admin,
      adminToken: config.http.adminToken,
      resync: (reason) => loop.trigger(reason),
      ...(autoscaler === undefined ? {} : { autoscaler: { controller: autoscaler, policy: config.autoscale.policy, service: config.autoscale.service } }),
    }),
    // Ready once the first pass converged: before that, HAProxy may not have the servers yet.
    readiness: () => ({
      ready: everConverged,
      detail: {
        lastReconcile: lastOutcome === undefined ? null : lastOutcome.status === 'converged' ? 'converged' : lastOutcome.message,
      },
    }),
  });
  const port = await http.listen(config.http.host, config.http.port);

  const watching = new AbortController();
  const watcher = watchContainerEvents({
    source: docker,
    signal: watching.signal,
    sleep: (ms, signal) => sleep(ms, undefined, { signal }).catch(() => undefined),
    now: () => Date.now(),
    logger,
    minBackoffMs: config.docker.eventsMinBackoffMs,
    maxBackoffMs: config.docker.eventsMaxBackoffMs,
    onEvent: (event) => loop.trigger(`docker ${event.action} ${event.containerId.slice(0, 12)}`),
    onStreamState: (open) => {
      metrics.eventsStreamUp.set(open ? 1 : 0);
      // Events may have been missed while the stream was closed: look at everything again.
      if (open) loop.trigger('docker event stream opened');
    },
  });

  const report = await haproxy.inspect(config.backends.managedBackends);
  if (report.ok) {
    runtimeReads = report.value.runtimeReads;
    logger.info(
      { driver: report.value.driver, haproxyVersion: report.value.haproxyVersion ?? null },
      `writing to HAProxy ${report.value.haproxyVersion ?? '(version unknown)'} through the ${report.value.driver === 'dataplane' ? 'Data Plane API' : 'runtime API'}`,
    );
    for (const limitation of report.value.limitations) logger.warn({ driver: report.value.driver }, `limitation: ${limitation}`);
  } else {
    // Not fatal: HAProxy or its API may come up after the sidecar; every pass retries.
    logger.warn({ error: report.error }, `cannot inspect HAProxy yet: ${report.error.message}`);
  }

  // A drain HAProxy shows without a record (a sidecar that ran without a state file) is the
  // operator's: recorded, so the reconciler keeps it instead of setting the server ready.
  await drainer.adopt(config.backends.managedBackends, isOwnedServerName);
  loop.start();
  const scaling = createControlLoop({
    ...(autoscaler === undefined
      ? {}
      : { evaluate: () => autoscaler.evaluate(), breachCheck: () => autoscaler.checkBreach(), breachCheckMs: config.autoscale.breachCheckMs }),
    progress: async () => (await drainer.tick()) + (autoscaler === undefined ? 0 : await autoscaler.progress()),
    intervalMs: config.autoscale.intervalMs,
    pollMs: config.drain.pollMs,
    timers: realTimers,
    logger,
  });
  scaling.start();
  logger.info({ port, config: redactConfig(config) }, 'sidecar started');

  return {
    port,
    resync: (reason) => loop.trigger(reason),
    async stop() {
      // A scale-down in progress is not waited for: its drain lives in HAProxy and is resumed by
      // the next start, and a drain may take up to its deadline, longer than a stop should.
      await scaling.stop();
      watching.abort();
      await watcher;
      await loop.stop();
      await http.close();
      logger.info({}, 'sidecar stopped');
    },
  };
}

/** The driver the configuration names; the only place that knows both adapters. */
/** The transaction ids the Data Plane API driver keeps while a transaction is open, in the state file. */
function transactionLedger(state: StateStore): TransactionLedger {
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

function createHaproxyDriver(config: SidecarConfig, logger: Logger, fetchImpl: typeof fetch | undefined, ledger: TransactionLedger): HaproxyDriver {
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

async function main(): Promise<void> {
  let config: SidecarConfig;
  try {
    config = loadConfigFromProcess();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`configuration error: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const sidecar = await startSidecar(config);
  let stopping = false;
  const shutdown = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`received ${signal}; stopping\n`);
    sidecar.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`unclean stop: ${String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error: unknown) => {
    process.stderr.write(`sidecar failed to start: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
