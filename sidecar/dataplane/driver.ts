// The Data Plane API driver: the HAProxy driver port over the Data Plane API.
//
// What reloads HAProxy, measured on Data Plane API v3.2 with HAProxy 2.6 and 3.0:
//   - a server POSTed outside a transaction, with `?version=`, to a backend without a
//     default-server line is written to the file AND added to the running HAProxy (201, no
//     reload), but there it starts in maintenance with its health checks off, and the API has no
//     call that turns checks on. So scale-up goes this way only where the sidecar also reaches
//     HAProxy's runtime socket (`enable health`); the outcome is then the same as a reload's;
//   - everything else (removals, replacements, and additions without the socket) goes in one
//     transaction per pass, started at the version the plan was made from: one seamless reload
//     per batch, and a concurrent writer makes it fail as a conflict, to re-read and re-plan.
//
// HAProxy 2.6 answers the API's runtime reads with 404 ("no data for <backend>"): drain state
// then goes through the runtime socket when it is configured, and is reported as unsupported
// when it is not (inspect() says so at start-up).
import type {
  AdminState,
  ApplyOutcome,
  ConfiguredServer,
  DriverReport,
  HaproxyDriver,
  HealthCheck,
  RuntimeServer,
  RuntimeSocketOps,
  ServerSnapshot,
} from '../driver/port.js';
import { fail, ok, type EdgeErrorKind, type Result } from '../edge/result.js';
import type { DesiredServer, Operation } from '../driver/port.js';
import { applyInTransaction, type DataplaneClient, type ServerSpec, type TransactionLedger } from './client.js';
import type { Logger } from '../log/logger.js';

export interface DataplaneDriverOptions {
  readonly client: DataplaneClient;
  readonly healthCheck: HealthCheck;
  /** How long to wait for a reload the API scheduled. */
  readonly reloadTimeoutMs: number;
  /** HAProxy's runtime socket, when the sidecar can reach it; see the header comment. */
  readonly socket?: RuntimeSocketOps;
  /**
   * The managed backends use `cookie … dynamic` persistence (default true): on HAProxy < 3.0 a
   * server added at run time then needs its cookie computed.
   */
  readonly dynamicCookies?: boolean;
  /** The ids of transactions the sidecar opened (the state file): those a crash left are deleted. */
  readonly ledger?: TransactionLedger;
  readonly logger?: Logger;
}

const NO_RUNTIME_DATA = /no data for/i;
/** Failures that say the API did not answer at all, after the transport's own retries. */
const UNREACHABLE: ReadonlySet<EdgeErrorKind> = new Set(['timeout', 'network', 'unavailable']);

export function createDataplaneDriver(options: DataplaneDriverOptions): HaproxyDriver {
  const { client, socket } = options;
  // Until inspect() says otherwise, the API's runtime endpoints are assumed to work (HAProxy 3.0).
  let apiRuntimeWorks = true;
  let before30 = false;
  // Whether the capabilities above were read from HAProxy. A start-up inspection that failed (the
  // API not up yet) is done again by the first pass that can read the servers.
  let inspected = false;

  const specOf = (server: DesiredServer): ServerSpec => ({
    name: server.name,
    address: server.address,
    port: server.port,
    weight: server.weight,
    check: options.healthCheck,
  });

  /** Foreign transactions already reported, so each is logged once. */
  const reported = new Set<string>();
  /** Transactions this process has open now: a sweep from another caller must not take them. */
  const live = new Set<string>();
  const ledger: TransactionLedger = {
    async opened(id) {
      live.add(id);
      await options.ledger?.opened(id);
    },
    async closed(id) {
      live.delete(id);
      await options.ledger?.closed(id);
    },
    list: () => options.ledger?.list() ?? [],
  };

  /**
   * Deletes the transactions the sidecar opened and never closed (a crash between opening and
   * committing one leaves it in_progress, then outdated, for ever); another writer's are left
   * alone and reported once. Failures are left to the next pass, except an API that does not
   * answer: the pass's next read would only wait as long again before it failed (measured with
   * the API stopped: the pass then failed after about twice the request timeout and retries).
   */
  async function sweepTransactions(): Promise<Result<void>> {
    const listed = await client.listTransactions();
    if (!listed.ok) return UNREACHABLE.has(listed.error.kind) ? listed : ok(undefined);
    const ours = new Set(ledger.list());
    for (const t of listed.value) {
      if (live.has(t.id)) continue;
      if (ours.has(t.id)) {
        const deleted = await client.deleteTransaction(t.id);
        if (deleted.ok || deleted.error.kind === 'not-found') {
          await options.ledger?.closed(t.id);
          options.logger?.warn({ transaction: t.id, status: t.status ?? null, version: t.version }, `deleted transaction ${t.id}, left open by an earlier run of the sidecar`);
        }
      } else if (t.status === 'in_progress' || t.status === 'outdated' || t.status === 'failed') {
        if (!reported.has(t.id)) options.logger?.warn({ transaction: t.id, status: t.status, version: t.version }, `transaction ${t.id} (${t.status}, version ${t.version}) was opened by another writer; left alone`);
        reported.add(t.id);
      }
    }
    // Ids the API no longer holds are closed already.
    const held = new Set(listed.value.map((t) => t.id));
    for (const id of ours) if (!held.has(id) && !live.has(id)) await options.ledger?.closed(id);
    return ok(undefined);
  }

  async function readServers(backends: readonly string[]): Promise<Result<ServerSnapshot>> {
    if (!inspected) await inspect(backends);
    const swept = await sweepTransactions();
    if (!swept.ok) return swept;
    // The version first: a write between the two reads then makes the plan's commit conflict.
    const version = await client.configurationVersion();
    if (!version.ok) return version;
    const servers: ConfiguredServer[] = [];
    for (const backend of backends) {
      const listed = await client.listServers(backend);
      if (!listed.ok) return listed;
      for (const s of listed.value) servers.push({ backend, name: s.name, address: s.address, port: s.port, weight: s.weight });
    }
    return ok({ revision: version.value, backends, servers });
  }

  async function setAdminState(backend: string, server: string, state: AdminState): Promise<Result<void>> {
    // The socket where there is one: a server whose replica is stopping must leave rotation in
    // the milliseconds before the replica closes its listeners, and the API's round trip (an
    // HTTP request, then the same runtime command) took long enough that requests still met them.
    if (socket !== undefined) return socket.setAdminState(backend, server, state);
    if (apiRuntimeWorks) return client.setAdminState(backend, server, state);
    return fail(`set server ${backend}/${server} to ${state}`, 'unsupported', UNSUPPORTED_RUNTIME);
  }

  async function setRuntimeWeight(backend: string, server: string, weight: number): Promise<Result<void>> {
    // The API's runtime server has no weight: only the socket can set one without a reload.
    if (socket !== undefined) return socket.setRuntimeWeight(backend, server, weight);
    return fail(`set the weight of ${backend}/${server} to ${weight}`, 'unsupported', 'a weight at run time needs HAProxy\'s runtime socket (haproxy.runtimeSocket) beside the Data Plane API');
  }

  async function listRuntimeServers(backend: string): Promise<Result<readonly RuntimeServer[]>> {
    // The socket where there is one: it also tells whether a server's health checks run, which
    // the API does not, and it answers on HAProxy 2.6 too.
    if (socket !== undefined) return socket.listRuntimeServers(backend);
    if (apiRuntimeWorks) return client.listRuntimeServers(backend);
    return fail(`list runtime servers of backend ${backend}`, 'unsupported', UNSUPPORTED_RUNTIME);
  }

  function enableChecks(backend: string, server: string): Promise<Result<void>> {
    if (socket !== undefined) return socket.enableHealth(backend, server);
    return Promise.resolve(fail(`enable health ${backend}/${server}`, 'unsupported', 'the Data Plane API cannot turn on health checks at run time, and no runtime socket is configured (haproxy.runtimeSocket)'));
  }

  /** One server into the running HAProxy without a reload, then enabled with its checks on. */
  async function addAtRuntime(backend: string, server: DesiredServer, version: number): Promise<Result<{ reloaded: boolean }>> {
    const added = await client.addServerAtVersion(backend, specOf(server), version);
    if (!added.ok) return added;
    if (!added.value.atRuntime) {
      // The API chose a reload (a default-server line appeared in the backend): the server comes
      // from the file, enabled and checked, once the reload is through.
      if (added.value.reloadId === undefined) return ok({ reloaded: false });
      const reload = await client.waitForReload(added.value.reloadId, options.reloadTimeoutMs);
      return reload.ok ? ok({ reloaded: true }) : reload;
    }
    // A server added at run time starts in maintenance with checks off: checks first, so it
    // takes traffic only under their watch.
    if (socket !== undefined) {
      if (before30 && options.dynamicCookies !== false) {
        const cookies = await socket.enableDynamicCookies(backend);
        if (!cookies.ok) return cookies;
      }
      const health = await socket.enableHealth(backend, server.name);
      if (!health.ok) return health;
    }
    const ready = await setAdminState(backend, server.name, 'ready');
    return ready.ok ? ok({ reloaded: false }) : ready;
  }

  /** A server's new address, through the API outside a transaction: set at run time, no reload. */
  async function replaceAtRuntime(backend: string, server: DesiredServer, version: number): Promise<Result<{ reloaded: boolean }>> {
    const replaced = await client.replaceServerAtVersion(backend, specOf(server), version);
    if (!replaced.ok) return replaced;
    if (replaced.value.atRuntime || replaced.value.reloadId === undefined) return ok({ reloaded: false });
    // The API found more than the address changed: the running HAProxy takes it at the reload.
    const reload = await client.waitForReload(replaced.value.reloadId, options.reloadTimeoutMs);
    return reload.ok ? ok({ reloaded: true }) : reload;
  }

  async function apply(operations: readonly Operation[], snapshot: ServerSnapshot): Promise<Result<ApplyOutcome>> {
    let version = snapshot.revision;
    if (version === undefined) return fail('apply a plan', 'invalid', 'the snapshot has no configuration version');
    const runtimeAdds = socket !== undefined;
    type ServerChange = Extract<Operation, { op: 'add' | 'replace' }>;
    // An address change is a `set server addr` the API makes itself: the server keeps its state
    // and the requests HAProxy holds for it in its retries (a replica recreated under its name).
    const atRuntime = (o: Operation): o is ServerChange => o.op === 'add' || (o.op === 'replace' && o.reason === 'address changed');
    const changes = runtimeAdds ? operations.filter(atRuntime) : [];
    const rest = runtimeAdds ? operations.filter((o) => !atRuntime(o)) : operations;
    let reloads = 0;
    let runtimeChanges = 0;
    // Capacity first: additions go in before anything is taken out.
    for (const operation of [...changes].sort((a, b) => (a.op === b.op ? 0 : a.op === 'add' ? -1 : 1))) {
      const changed =
        operation.op === 'add'
          ? await addAtRuntime(operation.server.backend, operation.server, version)
          : await replaceAtRuntime(operation.server.backend, operation.server, version);
      if (!changed.ok) return changed;
      version++;
      if (changed.value.reloaded) reloads++;
      else runtimeChanges++;
    }
    if (rest.length === 0) return ok({ reloads, transactions: 0, runtimeChanges });
    const committed = await applyInTransaction(client, (id) => applyInOneTransaction(rest, id), options.reloadTimeoutMs, version, ledger);
    if (!committed.ok) return committed;
    return ok({ reloads: reloads + (committed.value.reloadId === undefined ? 0 : 1), transactions: 1, runtimeChanges });
  }

  async function applyInOneTransaction(operations: readonly Operation[], transactionId: string): Promise<Result<void>> {
    // Sequential on purpose: the API serialises writes to one transaction anyway, and the first
    // failure must stop the rest (the transaction is then deleted whole).
    for (const operation of operations) {
      if (operation.op === 'remove' || operation.op === 'replace') {
        const backend = operation.op === 'remove' ? operation.backend : operation.server.backend;
        const name = operation.op === 'remove' ? operation.name : operation.server.name;
        const removed = await client.deleteServer(backend, name, transactionId);
        if (!removed.ok) return removed;
      }
      if (operation.op === 'add' || operation.op === 'replace') {
        const added = await client.addServer(operation.server.backend, specOf(operation.server), transactionId);
        if (!added.ok) return added;
      }
    }
    return ok(undefined);
  }

  async function inspect(backends: readonly string[]): Promise<Result<DriverReport>> {
    const version = await client.haproxyVersion();
    if (!version.ok) return version;
    const limitations: string[] = [];
    before30 = Number(version.value.split('.')[0]) < 3;
    const probeBackend = backends[0];
    if (probeBackend !== undefined) {
      const probe = await client.listRuntimeServers(probeBackend);
      if (!probe.ok && probe.error.kind === 'not-found' && NO_RUNTIME_DATA.test(probe.error.message)) {
        apiRuntimeWorks = false;
        limitations.push(
          socket === undefined
            ? `the Data Plane API cannot read or set runtime server states with HAProxy ${version.value} (it answers "${probe.error.message}"), and no runtime socket is configured (haproxy.runtimeSocket): draining, drain resume and scale-down are off`
            : `the Data Plane API cannot read or set runtime server states with HAProxy ${version.value} (it answers "${probe.error.message}"): drain states go through the runtime socket instead`,
        );
      } else if (!probe.ok) {
        return probe;
      }
    }
    inspected = true;
    if (socket === undefined) {
      limitations.push(
        'no runtime socket is configured (haproxy.runtimeSocket): added servers go in through a transaction, one reload per batch, because the Data Plane API cannot turn on the health checks of a server it adds at run time',
      );
    }
    return ok({
      driver: 'dataplane',
      haproxyVersion: version.value.split('-')[0],
      limitations,
      runtimeReads: apiRuntimeWorks || socket !== undefined,
    });
  }

  return {
    kind: 'dataplane',
    inspect,
    readServers,
    apply,
    listRuntimeServers,
    setRuntimeWeight,
    setAdminState,
    enableChecks,
  };
}

const UNSUPPORTED_RUNTIME =
  'this HAProxy does not serve runtime server states through the Data Plane API (HAProxy older than 3.0), and no runtime socket is configured (haproxy.runtimeSocket)';
