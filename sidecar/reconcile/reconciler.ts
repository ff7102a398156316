// One reconcile pass: list Docker, read HAProxy's servers through the driver, plan with the pure
// planner, and have the driver apply the whole plan (one Data Plane API transaction, or runtime
// API commands after the managed region of the file is written). Level-triggered: nothing
// from an earlier pass or from an event's payload is trusted; every pass starts from what Docker
// and HAProxy show now, so a restart, a lost event or a failed reload heals on the next pass.
import type { Candidate, Discovery, Probe } from '../discovery/discovery.js';
import { admitWhenEmpty, isOwnedServerName, selectReady } from '../discovery/discovery.js';
import type { AdminState, ApplyOutcome, HaproxyDriver, RuntimeServer, ServerSnapshot } from '../driver/port.js';
import { isReplanKind, ok, type EdgeError, type Result } from '../edge/result.js';
import type { Logger } from '../log/logger.js';
import type { SidecarMetrics } from '../telemetry/metrics.js';
import type { WorkSpec } from '../queue/queue.js';
import { plan, planStates, serverKey, type DesiredServer, type Operation, type StateOperation } from './plan.js';

export interface ReconcilerOptions {
  readonly discovery: Discovery;
  readonly driver: HaproxyDriver;
  readonly probe: Probe;
  readonly managedBackends: readonly string[];
  /** How many times a version conflict is re-read and re-planned within one pass. */
  readonly maxConflictRetries: number;
  readonly logger: Logger;
  readonly metrics: SidecarMetrics;
  /** Milliseconds since the epoch; injected so tests control time. */
  readonly now: () => number;
  /**
   * Containers whose server should go although they still run: a scale-down victim once its
   * drain is over. Until then its server stays (in drain), so it is never removed mid-request.
   */
  readonly isRemovable?: (containerId: string) => boolean;
  /**
   * The admin state the sidecar's records ask of a server (drain, maint); undefined for ready.
   * Read at every pass, so a state lost to a reload or changed by someone else is set again.
   */
  readonly adminStateOf?: (backend: string, server: string) => AdminState | undefined;
  /**
   * A weight a new server runs with from its first moment, set at run time right after it is
   * added in the same pass (a rollout's canary: a fraction of `fullWeight`); undefined: its own.
   */
  readonly runtimeWeightOf?: (containerId: string, fullWeight: number) => number | undefined;
  /**
   * How long the server of a backend's last container in rotation is kept after that container
   * is gone, waiting for a replacement (every replica stopped at once: a Compose recreate);
   * 0: removed at the next pass, as any other. See `lastInRotation` below.
   */
  readonly holdLastServerMs?: number;
}

export type ReconcileOutcome =
  | {
      readonly status: 'converged';
      /** What was applied; empty when HAProxy already matched Docker (nothing was written). */
      readonly operations: readonly Operation[];
      /** Admin states and health checks set to what the records ask. */
      readonly stateOperations: readonly StateOperation[];
      readonly transactions: number;
      /** HAProxy reloads the writes caused. */
      readonly reloads: number;
      readonly conflicts: number;
      /** Running containers not ready yet: the caller looks again soon. */
      readonly waiting: number;
      /** Of those, the ones a backend without any server that stays waits for: the caller looks again at once. */
      readonly starving: number;
    }
  | {
      readonly status: 'failed';
      readonly message: string;
      readonly error: EdgeError | undefined;
      readonly transactions: number;
      readonly conflicts: number;
    };

export interface Reconciler {
  reconcile(): Promise<ReconcileOutcome>;
  /**
   * The first sign that a container is going away (Docker's `kill` with a stopping signal): its
   * servers leave rotation now, in drain, before its process closes its listeners, without
   * waiting for a debounced pass; they are removed once the container is gone. Servers of
   * several containers stopped together go out together (the calls do not wait for each other).
   */
  leaving(containerId: string): Promise<void>;
  /** The container runs again (a restart): its servers may serve again once it is ready. */
  returned(containerId: string): void;
  /**
   * True when a managed backend had servers at the last pass and every one of them is now on its
   * way out (all replicas stopped at once: a Compose recreate): the next pass should not wait
   * for the events to calm down.
   */
  starved(): boolean;
  /**
   * Between passes, without listing Docker: the servers the last pass wanted are compared with
   * what their records ask. Out of rotation (drain, maint) and checks on are set at once; back in
   * rotation is left to a full pass, which knows whether the container still runs (a removal in
   * progress puts its server in maintenance first). Resolves true when such a pass is needed. A
   * reload by anyone (an operator's, HAProxy 2.6 loading a stale state file) is then repaired
   * within one poll period, not at the next resync.
   */
  repairStates(): Promise<boolean>;
}

export function createReconciler(options: ReconcilerOptions): Reconciler {
  const { driver, metrics, logger } = options;
  /** Last failure logged per server, so a state HAProxy keeps refusing is not logged every pass. */
  const stateFailures = new Map<string, string>();
  /** The managed servers of each container, as the last pass found them. */
  let serversOf = new Map<string, Array<{ backend: string; server: string }>>();
  /** The ready containers of the last converged pass, for repairStates(). */
  let lastReady: readonly Candidate[] = [];
  /** Containers on their way out (a stopping `kill` seen), until they are gone or start again. */
  const leaving = new Set<string>();
  const isLeavingServer = (backend: string, server: string): boolean =>
    [...leaving].some((id) => serversOf.get(id)?.some((s) => s.backend === backend && s.server === server) === true);
  /**
   * The sidecar never empties a backend by its own hand. When every replica of a backend stops
   * at once (a Compose recreate, `docker compose restart`), the last one to begin stopping stays
   * in rotation instead of draining, and once it is gone its server is held for
   * `holdLastServerMs` while nothing replaces it: HAProxy then treats it as it would a static
   * server, holding each request in its retries (`retry-on conn-failure`, `timeout connect`)
   * instead of answering 503 "no server" at once, until its checks take the server down or a new
   * replica serves. A replacement that comes back under the same name and address (Compose's
   * numbering, Docker's lowest free address) then needs no change at all.
   */
  const lastInRotation = new Set<string>();
  /**
   * The held servers of gone containers, by backend/name, with the time their container went, and
   * once the hold is over, the time their release began (in maintenance, before their removal).
   */
  const held = new Map<string, { readonly server: DesiredServer; readonly since: number; readonly releasing?: number }>();
  /** What the last pass wanted, for the servers a gone container leaves to be held. */
  let lastDesired: readonly DesiredServer[] = [];
  const holdMs = options.holdLastServerMs ?? 0;

  const goingAway = (c: Candidate): boolean => leaving.has(c.containerId) || c.stopping === true;
  /** Backends with a server that stays in rotation: its container is not going away and no record takes it out. */
  const backendsWithStayingServer = (candidates: readonly Candidate[]): Set<string> =>
    new Set(candidates.filter((c) => !goingAway(c) && options.adminStateOf?.(c.backend, c.serverName) === undefined).map((c) => c.backend));

  /**
   * What a server's records ask; for a container on its way out, drain, unless it is its
   * backend's last server in rotation (above) and nothing else stays there.
   */
  const wantedState = (c: Candidate, staying: ReadonlySet<string>): AdminState => {
    const recorded = options.adminStateOf?.(c.backend, c.serverName);
    if (recorded !== undefined) return recorded;
    if (!goingAway(c)) return 'ready';
    return lastInRotation.has(c.containerId) && !staying.has(c.backend) ? 'ready' : 'drain';
  };

  return {
    async leaving(containerId) {
      leaving.add(containerId);
      const servers = serversOf.get(containerId) ?? [];
      const staying = backendsWithStayingServer(lastReady);
      await Promise.all(
        servers.map(async ({ backend, server }) => {
          const recorded = options.adminStateOf?.(backend, server);
          if (recorded === undefined && !staying.has(backend)) {
            lastInRotation.add(containerId);
            logger.info(
              { backend, server, container: containerId.slice(0, 12) },
              `${backend}/${server} stays in rotation although its container is stopping: no other server of ${backend} stays; HAProxy's retries hold its requests until a replacement serves`,
            );
            return;
          }
          const set = await driver.setAdminState(backend, server, recorded === 'maint' ? 'maint' : 'drain');
          // Gone already (a retirement removed it first) is fine: nothing serves through it.
          if (!set.ok && set.error.kind !== 'not-found') logger.warn({ backend, server, error: set.error.message }, `cannot take ${backend}/${server} out of rotation: ${set.error.message}`);
          else if (set.ok) logger.info({ backend, server, container: containerId.slice(0, 12) }, `${backend}/${server} out of rotation: its container is stopping`);
        }),
      );
    },
    returned(containerId) {
      leaving.delete(containerId);
      lastInRotation.delete(containerId);
    },
    starved() {
      const backends = new Set(lastReady.map((c) => c.backend));
      return [...backends].some((b) => lastReady.every((c) => c.backend !== b || goingAway(c)));
    },
    async repairStates() {
      if (lastReady.length === 0) return false;
      const staying = backendsWithStayingServer(lastReady);
      const planned = await convergeStates(
        lastReady.map((c) => toDesired(c, wantedState(c, staying))),
        [],
        (operation) => operation.op === 'enable-checks' || operation.state !== 'ready',
      );
      return planned.some((operation) => operation.op === 'set-state' && operation.state === 'ready');
    },
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
    let reloads = 0;
    const failed = (message: string, error?: EdgeError): ReconcileOutcome => ({
      status: 'failed',
      message,
      error,
      transactions,
      conflicts,
    });

    for (let attempt = 0; attempt <= options.maxConflictRetries; attempt++) {
      const listed = await options.discovery.discover();
      if (!listed.ok) return failed(`listing Docker's containers: ${listed.error.message}`, listed.error);
      const discovered = listed.value;
      // A container no longer running has left: its mark goes with it.
      const running = new Set(discovered.candidates.map((c) => c.containerId));
      for (const id of leaving) if (!running.has(id)) leaving.delete(id);
      for (const id of lastInRotation) {
        if (running.has(id)) continue;
        lastInRotation.delete(id);
        if (holdMs === 0) continue;
        for (const server of lastDesired) {
          if (server.containerId === id && server.adminState === 'ready') held.set(serverKey(server.backend, server.name), { server, since: options.now() });
        }
      }
      serversOf = new Map();
      for (const c of discovered.candidates) serversOf.set(c.containerId, [...(serversOf.get(c.containerId) ?? []), { backend: c.backend, server: c.serverName }]);
      const candidates = discovered.candidates.filter((c) => options.isRemovable?.(c.containerId) !== true);
      const snapshot = await driver.readServers(options.managedBackends);
      if (!snapshot.ok) return failed(`reading servers: ${snapshot.error.message}`, snapshot.error);
      const actual = snapshot.value.servers;

      const serving = new Set(
        actual.filter((s) => isOwnedServerName(s.name)).map((s) => `${s.backend}/${s.name}/${s.address}/${s.port}`),
      );
      const isServing = (c: Candidate): boolean => serving.has(`${c.backend}/${c.serverName}/${c.address}/${c.port}`);
      // A container on its way out keeps the server it has (drained); it never gets a new one.
      const { ready, waiting, starving } = await admitWhenEmpty(
        await selectReady(
          candidates.filter((c) => c.stopping !== true || isServing(c)),
          isServing,
          options.probe,
        ),
        goingAway,
        isServing,
        options.probe,
      );
      const staying = backendsWithStayingServer(ready);
      const desired = holdLastServers(ready.map((c) => toDesired(c, wantedState(c, staying))), new Set(actual.map((s) => serverKey(s.backend, s.name))));
      lastReady = ready;
      lastDesired = desired;
      const operations = deferRemovals(
        plan({
          desired,
          actual,
          managedBackends: options.managedBackends,
          isOwned: isOwnedServerName,
        }),
        desired,
        discovered.candidates,
      );
      if (operations.length === 0) {
        // Nothing to change in HAProxy; a driver that keeps its own copy of the servers (the
        // runtime driver's file) repairs it here if it drifted, and writes nothing otherwise.
        const kept = await driver.apply([], snapshot.value);
        if (!kept.ok) return failed(`keeping the servers HAProxy runs in its configuration: ${kept.error.message}`, kept.error);
        const stateOperations = await convergeStates(desired, operations);
        recordDrift(operations, stateOperations);
        return { status: 'converged', operations, stateOperations, transactions, reloads, conflicts, waiting: waiting.length, starving: starving + held.size };
      }

      const applied = await applyInStages(operations, snapshot.value, desired);
      if (applied.ok) {
        transactions += applied.value.transactions;
        reloads += applied.value.reloads;
        if (applied.value.transactions > 0) metrics.transactions.inc({ result: 'committed' }, applied.value.transactions);
        if (applied.value.reloads > 0) metrics.reloads.inc({ result: 'ok' }, applied.value.reloads);
        const retired = discovered.candidates.filter((c) => !candidates.includes(c));
        for (const operation of operations) logApplied(operation, candidates, retired);
        const stateOperations = await convergeStates(desired, operations);
        recordDrift(operations, stateOperations);
        return { status: 'converged', operations, stateOperations, transactions, reloads, conflicts, waiting: waiting.length, starving: starving + held.size };
      }
      const error = applied.error;
      if (driver.kind === 'dataplane') metrics.transactions.inc({ result: error.kind === 'conflict' ? 'conflict' : 'failed' });
      if (isReplanKind(error.kind)) {
        conflicts++;
        metrics.reconcileConflicts.inc();
        logger.info(
          { attempt: attempt + 1, kind: error.kind, error: error.message },
          error.kind === 'exists'
            ? 'a server was created by another writer meanwhile; re-reading and re-planning'
            : 'configuration changed while applying; re-reading and re-planning',
        );
        continue;
      }
      if (error.kind === 'reload-failed') {
        metrics.reloads.inc({ result: 'failed' });
        return failed(`HAProxy reload after the commit failed: ${error.message}`, error);
      }
      return failed(`applying ${operations.length} operation(s): ${error.message}`, error);
    }
    return failed(`the configuration kept changing: ${conflicts} version conflicts in a row; retrying on the next pass`);
  }

  /**
   * A plan with removals is applied in three stages, so that no backend stands without a server
   * in rotation while a removal waits for its server's connections to end: first the additions
   * and replacements, then every wanted server's way back into rotation (a replica recreated
   * under its name takes over its drained server, in place), then the removals, planned against
   * a fresh read. A plan without removals is applied as one.
   */
  async function applyInStages(operations: readonly Operation[], snapshot: ServerSnapshot, desired: readonly DesiredServer[]): Promise<Result<ApplyOutcome>> {
    const removals = operations.filter((o) => o.op === 'remove');
    const rest = operations.filter((o) => o.op !== 'remove');
    if (removals.length === 0) return driver.apply(operations, snapshot);
    let first: ApplyOutcome = { reloads: 0, transactions: 0, runtimeChanges: 0 };
    let current = snapshot;
    if (rest.length > 0) {
      const applied = await driver.apply(rest, snapshot);
      if (!applied.ok) return applied;
      first = applied.value;
      const reread = await driver.readServers(options.managedBackends);
      if (!reread.ok) return reread;
      current = reread.value;
    }
    await convergeStates(desired, [], (o) => o.op === 'set-state' && o.state === 'ready');
    const removed = await driver.apply(removals, current);
    if (!removed.ok) return removed;
    return ok({
      reloads: first.reloads + removed.value.reloads,
      transactions: first.transactions + removed.value.transactions,
      runtimeChanges: first.runtimeChanges + removed.value.runtimeChanges,
    });
  }

  /**
   * The wanted servers, plus the held servers of gone containers whose backend has no server in
   * rotation yet. A hold ends when a server of the backend is in rotation again, or after
   * `holdLastServerMs`; a replacement under the same name takes the held one's place at once (no
   * change at all when its address is the same too). Otherwise the held server is released: in
   * maintenance for HELD_RELEASE_MS, in which the requests HAProxy still holds for it finish
   * their retries elsewhere, and only then removed, so that no removal cuts them.
   */
  function holdLastServers(wanted: readonly DesiredServer[], configured: ReadonlySet<string>): DesiredServer[] {
    const inRotation = new Set(wanted.filter((s) => s.adminState === 'ready').map((s) => s.backend));
    const names = new Set(wanted.map((s) => serverKey(s.backend, s.name)));
    const kept: DesiredServer[] = [];
    const now = options.now();
    for (const [id, hold] of held) {
      const { server, since, releasing } = hold;
      if (names.has(id) || !configured.has(id) || (releasing !== undefined && now - releasing >= HELD_RELEASE_MS)) {
        held.delete(id);
        continue;
      }
      if (releasing === undefined && (inRotation.has(server.backend) || now - since >= holdMs)) {
        if (!inRotation.has(server.backend)) logger.info({ backend: server.backend, server: server.name }, `${id}: no replacement came within ${holdMs} ms; removing it`);
        held.set(id, { ...hold, releasing: now });
      }
      kept.push(held.get(id)?.releasing === undefined ? server : { ...server, adminState: 'maint' });
    }
    return [...wanted, ...kept];
  }

  /**
   * While a backend waits for a replacement (its last replica kept in rotation, or its server
   * held), the servers of its other gone replicas stay where they are, out of rotation, and go
   * once a replacement serves: in one change with it, not one each (with the Data Plane API each
   * removal is a reload, which a recreate of every replica would otherwise pay several times).
   */
  function deferRemovals(operations: readonly Operation[], desired: readonly DesiredServer[], candidates: readonly Candidate[]): Operation[] {
    const waiting = new Set([...held.values()].map((h) => h.server.backend));
    for (const c of candidates) if (lastInRotation.has(c.containerId)) waiting.add(c.backend);
    const byId = new Map(candidates.map((c) => [c.containerId, c]));
    for (const server of desired) {
      const c = byId.get(server.containerId);
      if (server.adminState === 'ready' && c !== undefined && !goingAway(c)) waiting.delete(server.backend);
    }
    if (waiting.size === 0) return [...operations];
    return operations.filter((o) => o.op !== 'remove' || !waiting.has(o.backend));
  }

  /** hsc_servers: the managed servers by the admin state the running HAProxy shows. */
  async function recordAdminStates(): Promise<void> {
    for (const backend of options.managedBackends) {
      const servers = await driver.listRuntimeServers(backend);
      if (!servers.ok) {
        logger.debug({ backend, error: servers.error.message }, 'runtime server states unavailable; hsc_servers not updated');
        continue;
      }
      const counts: Record<AdminState, number> = { ready: 0, drain: 0, maint: 0 };
      for (const s of servers.value) if (isOwnedServerName(s.name) && s.adminState !== undefined) counts[s.adminState]++;
      for (const [state, count] of Object.entries(counts)) metrics.servers.set({ backend, state }, count);
    }
  }

  /**
   * Sets the admin state and health checks of the wanted servers HAProxy runs to what the
   * records ask. A failure is logged and left to the next pass: it does not undo the pass's
   * structural changes, and a driver that cannot read runtime states plans nothing here.
   */
  async function convergeStates(
    desired: readonly DesiredServer[],
    operations: readonly Operation[],
    /** Which of the planned changes to make now; the rest are only returned. */
    applies: (operation: StateOperation) => boolean = () => true,
  ): Promise<StateOperation[]> {
    const running = new Map<string, RuntimeServer>();
    for (const backend of options.managedBackends) {
      const servers = await driver.listRuntimeServers(backend);
      if (servers.ok) for (const s of servers.value) running.set(serverKey(backend, s.name), s);
    }
    const changing = new Set(operations.flatMap((o) => (o.op === 'remove' ? [] : [serverKey(o.server.backend, o.server.name)])));
    // A canary takes its small weight now, not at the records' next pass: until then it would
    // carry a full replica's share of the traffic.
    for (const operation of operations) {
      if (operation.op !== 'add') continue;
      const { server } = operation;
      const weight = options.runtimeWeightOf?.(server.containerId, server.weight);
      if (weight === undefined || weight === server.weight) continue;
      const set = await driver.setRuntimeWeight(server.backend, server.name, weight);
      if (set.ok) logger.info({ backend: server.backend, server: server.name, weight }, `${server.backend}/${server.name} added at weight ${weight} of ${server.weight} (a rollout's canary)`);
      else logger.warn({ backend: server.backend, server: server.name, error: set.error.message }, `cannot give ${server.backend}/${server.name} its canary weight yet: ${set.error.message}`);
    }
    const planned = planStates({ desired, running, changing });
    for (const operation of planned.filter(applies)) {
      const id = serverKey(operation.backend, operation.name);
      // Its container began to stop after this pass planned: it stays out of rotation.
      if (operation.op === 'set-state' && operation.state === 'ready' && isLeavingServer(operation.backend, operation.name)) continue;
      const result = operation.op === 'enable-checks' ? await driver.enableChecks(operation.backend, operation.name) : await driver.setAdminState(operation.backend, operation.name, operation.state);
      const what = operation.op === 'enable-checks' ? 'health checks on' : `state ${operation.state}`;
      if (!result.ok) {
        if (stateFailures.get(id) !== result.error.message) logger.warn({ backend: operation.backend, server: operation.name, op: operation.op, error: result.error.message }, `cannot set ${id} to ${what}: ${result.error.message}; retrying on the next pass`);
        stateFailures.set(id, result.error.message);
        continue;
      }
      stateFailures.delete(id);
      metrics.reconcileOperations.inc({ backend: operation.backend, op: operation.op });
      logger.warn({ op: operation.op, backend: operation.backend, server: operation.name, reason: operation.reason }, `drift repaired: ${id} ${what}: ${operation.reason}`);
    }
    return planned;
  }

  function recordDrift(operations: readonly Operation[], stateOperations: readonly StateOperation[]): void {
    for (const backend of options.managedBackends) {
      const structural = operations.filter((o) => (o.op === 'remove' ? o.backend : o.server.backend) === backend).length;
      const states = new Set(stateOperations.filter((o) => o.backend === backend).map((o) => o.name)).size;
      metrics.driftServers.set({ backend }, structural + states);
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

function toDesired(c: Candidate, adminState: AdminState): DesiredServer {
  return {
    backend: c.backend,
    name: c.serverName,
    address: c.address,
    port: c.port,
    weight: c.weight,
    adminState,
    containerId: c.containerId,
  };
}

export interface ReconcileSchedule {
  /** Quiet time after the last trigger (a Docker event, the admin API) before a pass starts. */
  readonly debounceMs: number;
  /** Longest a trigger waits for quiet: the pass starts by then even if events keep coming. */
  readonly maxDebounceMs: number;
  readonly resyncIntervalMs: number;
  /** Delay before looking again at containers that were running but not ready. */
  readonly readinessRetryMs: number;
  /** First retry delay after a failed pass; doubles up to the resync interval. */
  readonly failureBackoffMs: number;
  readonly logger: Logger;
  /** Called after every pass, for /readyz. */
  readonly onOutcome?: (outcome: ReconcileOutcome) => void;
}

/**
 * The reconciler's key on the work queue: a pass per burst of triggers, a periodic resync, a
 * quick second look while containers are starting, and backoff after a failed pass.
 */
/** How soon a pass looks again at the starting containers a backend without any server waits for. */
const STARVING_RETRY_MS = 100;
/**
 * How long a held server stays in maintenance before its removal: longer than HAProxy takes to
 * give up on a request it holds in its retries (the templates' `retries 2` × `timeout connect 1s`),
 * so that the runtime driver's removal finds no session left to cut.
 */
const HELD_RELEASE_MS = 3_000;

export function reconcileWork(reconciler: Pick<Reconciler, 'reconcile'>, schedule: ReconcileSchedule): WorkSpec {
  return {
    debounceMs: schedule.debounceMs,
    maxDebounceMs: schedule.maxDebounceMs,
    backoffMs: schedule.failureBackoffMs,
    maxBackoffMs: schedule.resyncIntervalMs,
    async run(reasons) {
      schedule.logger.debug({ reasons }, 'reconcile pass');
      const outcome = await reconciler.reconcile();
      schedule.onOutcome?.(outcome);
      if (outcome.status === 'failed') return { failed: true };
      // A backend with no server waits for a starting container: look again within 100 ms.
      if (outcome.starving > 0) return { requeueAfterMs: Math.min(STARVING_RETRY_MS, schedule.readinessRetryMs) };
      return { requeueAfterMs: outcome.waiting > 0 ? schedule.readinessRetryMs : schedule.resyncIntervalMs };
    },
  };
}
