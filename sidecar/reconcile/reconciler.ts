// One reconcile pass: list Docker, read HAProxy's configuration through the Data Plane API, plan
// with the pure planner, and apply the whole plan in one transaction. Level-triggered: nothing
// from an earlier pass or from an event's payload is trusted; every pass starts from what Docker
// and HAProxy show now, so a restart, a lost event or a failed reload heals on the next pass.
import type { Candidate, Discovery, Probe } from '../discovery/index.js';
import { isOwnedServerName, selectReady } from '../discovery/index.js';
import {
  applyInTransaction,
  type AdminState,
  type DataplaneClient,
  type DataplaneError,
  type Result,
  type ServerSpec,
} from '../dataplane/index.js';
import type { Logger } from '../telemetry/logger.js';
import type { SidecarMetrics } from '../telemetry/metrics.js';
import { plan, type ActualServer, type DesiredServer, type Operation } from './plan.js';

export interface ReconcilerOptions {
  readonly discovery: Discovery;
  readonly dataplane: DataplaneClient;
  readonly probe: Probe;
  readonly managedBackends: readonly string[];
  /** How many times a version conflict is re-read and re-planned within one pass. */
  readonly maxConflictRetries: number;
  readonly reloadTimeoutMs: number;
  /** Health checks every server the sidecar adds gets. */
  readonly healthCheck: NonNullable<ServerSpec['check']>;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly now: () => number;
  /**
   * Containers whose server should go although they still run: a scale-down victim once its
   * drain is over. Until then its server stays (in drain), so it is never removed mid-request.
   */
  readonly isRemovable?: (containerId: string) => boolean;
}

export type ReconcileOutcome =
  | {
      readonly status: 'converged';
      /** What was applied; empty when HAProxy already matched Docker (nothing was written). */
      readonly operations: readonly Operation[];
      readonly transactions: number;
      readonly conflicts: number;
      /** Running containers not ready yet: the caller looks again soon. */
      readonly waiting: number;
    }
  | {
      readonly status: 'failed';
      readonly message: string;
      readonly error: DataplaneError | undefined;
      readonly transactions: number;
      readonly conflicts: number;
    };

export interface Reconciler {
  reconcile(): Promise<ReconcileOutcome>;
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { dataplane, metrics, logger } = options;

  return {
    async reconcile() {
      const started = options.now();
      const outcome = await pass().catch(
        (error: unknown): ReconcileOutcome => ({
          status: 'failed',
          message: `reconcile failed: ${error instanceof Error ? error.message : String(error)}`,
          error: undefined,
          transactions: 0,
          conflicts: 0,
        }),
      );
      if (outcome.status === 'converged') await recordAdminStates();
      metrics.reconcileDuration.observe((options.now() - started) / 1000);
      metrics.reconcileRuns.inc({ result: outcome.status === 'converged' ? 'ok' : 'error' });
      if (outcome.status === 'converged') {
        metrics.reconcileLastSuccess.set(options.now() / 1000);
      } else {
        logger.error({ error: outcome.error }, outcome.message);
      }
      return outcome;
    },
  };

  async function pass(): Promise<ReconcileOutcome> {
    let transactions = 0;
    let conflicts = 0;
    const failed = (message: string, error?: DataplaneError): ReconcileOutcome => ({
      status: 'failed',
      message,
      error,
      transactions,
      conflicts,
    });

    for (let attempt = 0; attempt <= options.maxConflictRetries; attempt++) {
      const discovered = await options.discovery.discover();
      const candidates = discovered.candidates.filter((c) => options.isRemovable?.(c.containerId) !== true);
      // The version is read before the servers, so a write that lands in between makes the
      // commit conflict rather than go through on a plan made from stale servers.
      const version = await dataplane.configurationVersion();
      if (!version.ok) return failed(`reading the configuration version: ${version.error.message}`, version.error);
      const actual = await readServers();
      if (!actual.ok) return failed(`reading servers: ${actual.error.message}`, actual.error);

      const serving = new Set(
        actual.value.filter((s) => isOwnedServerName(s.name)).map((s) => `${s.backend}/${s.name}/${s.address}/${s.port}`),
      );
      const { ready, waiting } = await selectReady(
        candidates,
        (c) => serving.has(`${c.backend}/${c.serverName}/${c.address}/${c.port}`),
        options.probe,
      );
      const operations = plan({
        desired: ready.map(toDesired),
        actual: actual.value,
        managedBackends: options.managedBackends,
        isOwned: isOwnedServerName,
      });
      recordDrift(operations);
      if (operations.length === 0) return { status: 'converged', operations, transactions, conflicts, waiting: waiting.length };

      transactions++;
      const applied = await applyInTransaction(
        dataplane,
        (transactionId) => applyOperations(operations, transactionId),
        options.reloadTimeoutMs,
        version.value,
      );
      metrics.transactions.inc({ result: applied.ok ? 'committed' : applied.error.kind === 'conflict' ? 'conflict' : 'failed' });
      if (applied.ok) {
        if (applied.value.reloadId !== undefined) metrics.reloads.inc({ result: 'ok' });
        const retired = discovered.candidates.filter((c) => !candidates.includes(c));
        for (const operation of operations) logApplied(operation, candidates, retired);
        return { status: 'converged', operations, transactions, conflicts, waiting: waiting.length };
      }
      const error = applied.error;
      if (error.kind === 'conflict') {
        conflicts++;
        metrics.reconcileConflicts.inc();
        logger.info({ attempt: attempt + 1, error: error.message }, 'configuration changed while applying; re-reading and re-planning');
        continue;
      }
      if (error.kind === 'reload-failed') {
        metrics.reloads.inc({ result: 'failed' });
        return failed(`HAProxy reload after the commit failed: ${error.message}`, error);
      }
      return failed(`applying ${operations.length} operation(s) in a transaction: ${error.message}`, error);
    }
    return failed(`the configuration kept changing: ${conflicts} version conflicts in a row; retrying on the next pass`);
  }

  /** hsc_servers: the managed servers by the admin state the running HAProxy shows. */
  async function recordAdminStates(): Promise<void> {
    for (const backend of options.managedBackends) {
      const servers = await dataplane.listRuntimeServers(backend);
      if (!servers.ok) {
        logger.debug({ backend, error: servers.error.message }, 'runtime server states unavailable; hsc_servers not updated');
        continue;
      }
      const counts: Record<AdminState, number> = { ready: 0, drain: 0, maint: 0 };
      for (const s of servers.value) if (isOwnedServerName(s.name) && s.adminState !== undefined) counts[s.adminState]++;
      for (const [state, count] of Object.entries(counts)) metrics.servers.set({ backend, state }, count);
    }
  }

  async function readServers(): Promise<Result<ActualServer[]>> {
    const all: ActualServer[] = [];
    for (const backend of options.managedBackends) {
      const servers = await dataplane.listServers(backend);
      if (!servers.ok) return servers;
      for (const s of servers.value) all.push({ backend, name: s.name, address: s.address, port: s.port, weight: s.weight });
    }
    return { ok: true, value: all };
  }

  async function applyOperations(operations: readonly Operation[], transactionId: string): Promise<Result<void>> {
    // Sequential on purpose: the Data Plane API serialises writes to one transaction anyway,
    // and the first failure must stop the rest (the transaction is then deleted whole).
    for (const operation of operations) {
      if (operation.op === 'remove' || operation.op === 'replace') {
        const backend = operation.op === 'remove' ? operation.backend : operation.server.backend;
        const name = operation.op === 'remove' ? operation.name : operation.server.name;
        const removed = await dataplane.deleteServer(backend, name, transactionId);
        if (!removed.ok) return removed;
      }
      if (operation.op === 'add' || operation.op === 'replace') {
        const { server } = operation;
        const spec: ServerSpec = {
          name: server.name,
          address: server.address,
          port: server.port,
          weight: server.weight,
          check: options.healthCheck,
        };
        const added = await dataplane.addServer(server.backend, spec, transactionId);
        if (!added.ok) return added;
      }
    }
    return { ok: true, value: undefined };
  }

  function recordDrift(operations: readonly Operation[]): void {
    for (const backend of options.managedBackends) {
      const drift = operations.filter((o) => (o.op === 'remove' ? o.backend : o.server.backend) === backend).length;
      metrics.driftServers.set({ backend }, drift);
    }
  }

  function logApplied(operation: Operation, candidates: readonly Candidate[], retired: readonly Candidate[]): void {
    const removedOnPurpose = (server: string): boolean => retired.some((c) => c.serverName === server);
    const backend = operation.op === 'remove' ? operation.backend : operation.server.backend;
    const server = operation.op === 'remove' ? operation.name : operation.server.name;
    const container = [...candidates, ...retired].find((c) => c.backend === backend && c.serverName === server)?.containerName;
    metrics.reconcileOperations.inc({ backend, op: operation.op });
    logger.info(
      {
        op: operation.op,
        backend,
        server,
        container: container ?? null,
        ...(operation.op === 'remove' ? {} : { address: `${operation.server.address}:${operation.server.port}` }),
        reason: operation.op === 'remove' && removedOnPurpose(operation.name) ? 'drained for scale-down' : operation.reason,
      },
      `${operation.op} server ${backend}/${server}: ${operation.reason}`,
    );
  }
}

function toDesired(c: Candidate): DesiredServer {
  return {
    backend: c.backend,
    name: c.serverName,
    address: c.address,
    port: c.port,
    weight: c.weight,
    containerId: c.containerId,
  };
}
