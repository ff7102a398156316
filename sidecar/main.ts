// The sidecar's entry point: the order in which its parts (sidecar/wiring.ts) are built and
// started. Run directly, it loads the configuration from the environment (and HSC_CONFIG_FILE),
// and stops cleanly on SIGTERM or SIGINT.
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfigFromProcess, redactConfig, type SidecarConfig } from './config/index.js';
import { httpProbe, isOwnedServerName } from './discovery/discovery.js';
import type { ReconcileOutcome } from './reconcile/reconciler.js';
import { createLogger } from './log/logger.js';
import { createMetrics, initialiseBackendSeries } from './telemetry/metrics.js';
import * as wire from './wiring.js';
import type { RunningSidecar, SidecarDependencies } from './wiring.js';

export { packageVersion, type RunningSidecar, type SidecarDependencies } from './wiring.js';

export async function startSidecar(config: SidecarConfig, deps: SidecarDependencies = {}): Promise<RunningSidecar> {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const metrics = createMetrics({ version: wire.packageVersion(), processMetrics: true });
  initialiseBackendSeries(metrics, config.backends.managedBackends);
  const queue = wire.wireQueue(logger);
  const resync = (reason: string, urgent = false): void => queue.add(wire.RECONCILE, reason, urgent);
  const state = await wire.openState(config, logger);
  const haproxy = wire.wireHaproxy(config, logger, wire.transactionLedger(state), deps.fetch);
  const docker = deps.docker ?? wire.wireDocker(config, logger);
  const discovery = wire.wireDiscovery(config, docker, logger);
  const probe = deps.probe ?? httpProbe(config.backends.probeTimeoutMs);
  const requestPass = (reason: string): void => queue.add(wire.RECORDS, reason);
  const records = wire.wireRecords(config, { docker, discovery, haproxy, state, logger, metrics, requestReconcile: resync, requestPass });
  const reconciler = wire.wireReconciler(config, { discovery, haproxy, probe, logger, metrics, state, runtimeWeightOf: (id, full) => records.rollouts.canaryWeightOf(id, full) });
  const drainer = wire.wireDrains(config, { haproxy, state, logger, metrics });
  // Until the driver's inspection says otherwise, states are assumed settable (every call answers for itself).
  let runtimeReads = true;
  const autoscaler = wire.wireAutoscaler(config, { docker, discovery, haproxy, drainer, state, records, logger, metrics, requestReconcile: resync, canDrain: () => runtimeReads });

  let lastOutcome: ReconcileOutcome | undefined;
  let everConverged = false;
  wire.registerWork(queue, config, {
    reconciler, drainer, records, autoscaler, logger,
    onOutcome: (outcome) => {
      lastOutcome = outcome;
      if (outcome.status === 'converged') everConverged = true;
    },
  });
  const admin = wire.wireAdmin(config, { haproxy, drainer, discovery, autoscaler: () => autoscaler });
  const http = wire.wireHttp(config, {
    admin,
    autoscaler,
    records,
    state,
    metrics,
    logger,
    resync,
    // Ready once the first pass converged: before that, HAProxy may not have the servers yet.
    readiness: () => ({
      ready: everConverged,
      detail: { lastReconcile: lastOutcome === undefined ? null : lastOutcome.status === 'converged' ? 'converged' : lastOutcome.message },
    }),
  });
  const port = await http.listen(config.http.host, config.http.port);
  const watching = new AbortController();
  const watcher = wire.watchDocker(config, { docker, signal: watching.signal, logger, metrics, trigger: resync, reconciler });

  runtimeReads = await wire.inspectHaproxy(config, haproxy, logger);
  // A drain HAProxy shows without a record (a sidecar that ran without a state file) is the
  // operator's: recorded, so the reconciler keeps it instead of setting the server ready.
  await drainer.adopt(config.backends.managedBackends, isOwnedServerName);
  queue.start();
  logger.info({ port, config: redactConfig(config) }, 'sidecar started');

  return {
    port,
    resync,
    async stop() {
      // A drain or scale-down in progress is not waited for: its record is in the state file and
      // its drain in HAProxy, and the next start carries it on.
      await queue.stop();
      watching.abort();
      await watcher;
      await http.close();
      logger.info({}, 'sidecar stopped');
    },
  };
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
