// An in-memory model of the Data Plane API's configuration store, for the reconciler's unit
// tests: versions, transactions that stage changes and commit them atomically, and a 409 when
// the version moved since the transaction started (what the real API does). The tests that show
// the reconciler works against HAProxy use the real API (test/integration/reconcile.test.ts);
// this one lets unit tests count calls exactly and inject failures at precise points.
import type {
  AdminState,
  CommitOutcome,
  ConfiguredServer,
  DataplaneClient,
  DataplaneError,
  Result,
  ServerSpec,
  Transaction,
} from '../../sidecar/dataplane/client.js';

export interface MemoryDataplane extends DataplaneClient {
  /** Every call, in order, as "method arg…" strings. */
  readonly calls: string[];
  version: number;
  readonly backends: Map<string, ConfiguredServer[]>;
  readonly openTransactions: () => string[];
  /** Fails the next call of `method` with `error` (once). */
  failNext(method: keyof DataplaneClient, error: DataplaneError): void;
  /** Runs `hook` right before the next commit is checked: a concurrent writer. */
  beforeNextCommit(hook: () => void): void;
  /** Admin state per "backend/server" of the running HAProxy (ready when absent). */
  readonly adminStates: Map<string, AdminState>;
}

const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = (error: DataplaneError): Result<never> => ({ ok: false, error });

export function createMemoryDataplane(initial: Record<string, ConfiguredServer[]>, reloads = true): MemoryDataplane {
  const backends = new Map(Object.entries(initial).map(([name, servers]) => [name, [...servers]]));
  const transactions = new Map<string, { version: number; staged: Map<string, ConfiguredServer[]> }>();
  const failures = new Map<string, DataplaneError>();
  let commitHook: (() => void) | undefined;
  let nextId = 1;

  const injected = (method: string): DataplaneError | undefined => {
    const error = failures.get(method);
    failures.delete(method);
    return error;
  };
  const staged = (id: string, backend: string): ConfiguredServer[] | DataplaneError => {
    const tx = transactions.get(id);
    if (tx === undefined) return { kind: 'not-found', status: 404, message: `transaction ${id} not found`, operation: 'tx' };
    const servers = tx.staged.get(backend) ?? backends.get(backend);
    if (servers === undefined) return { kind: 'not-found', status: 404, message: `backend ${backend} not found`, operation: 'tx' };
    const copy = [...servers];
    tx.staged.set(backend, copy);
    return copy;
  };

  const model: MemoryDataplane = {
    calls: [],
    version: 1,
    backends,
    openTransactions: () => [...transactions.keys()],
    adminStates: new Map(),
    failNext(method, error) {
      failures.set(method, error);
    },
    beforeNextCommit(hook) {
      commitHook = hook;
    },
    configurationVersion() {
      model.calls.push('configurationVersion');
      const error = injected('configurationVersion');
      return Promise.resolve(error ? fail(error) : ok(model.version));
    },
    startTransaction(version) {
      model.calls.push(`startTransaction ${version}`);
      const error = injected('startTransaction');
      if (error) return Promise.resolve(fail(error));
      if (version !== model.version) {
        return Promise.resolve(
          fail({ kind: 'conflict', status: 409, message: `version mismatch: ${version} != ${model.version}`, operation: 'start' }),
        );
      }
      const id = `tx${nextId++}`;
      transactions.set(id, { version, staged: new Map() });
      return Promise.resolve(ok<Transaction>({ id, version }));
    },
    commitTransaction(id) {
      model.calls.push(`commitTransaction ${id}`);
      const hook = commitHook;
      commitHook = undefined;
      hook?.();
      const error = injected('commitTransaction');
      if (error) return Promise.resolve(fail(error));
      const tx = transactions.get(id);
      if (tx === undefined) return Promise.resolve(fail({ kind: 'not-found', status: 404, message: 'no such transaction', operation: 'commit' }));
      if (tx.version !== model.version) {
        // The real API answers 406 here: another commit made the transaction outdated.
        return Promise.resolve(fail({ kind: 'conflict', status: 406, message: 'transaction is outdated and cannot be committed', operation: 'commit' }));
      }
      for (const [backend, servers] of tx.staged) backends.set(backend, servers);
      transactions.delete(id);
      model.version++;
      return Promise.resolve(ok<CommitOutcome>({ reloadId: reloads ? `reload-${model.version}` : undefined }));
    },
    deleteTransaction(id) {
      model.calls.push(`deleteTransaction ${id}`);
      transactions.delete(id);
      return Promise.resolve(ok(undefined));
    },
    listTransactions() {
      const error = injected('listTransactions');
      if (error) return Promise.resolve(fail(error));
      return Promise.resolve(
        ok([...transactions.entries()].map(([id, tx]) => ({ id, version: tx.version, status: tx.version === model.version ? ('in_progress' as const) : ('outdated' as const) }))),
      );
    },
    listServers(backend) {
      model.calls.push(`listServers ${backend}`);
      const error = injected('listServers');
      if (error) return Promise.resolve(fail(error));
      const servers = backends.get(backend);
      if (servers === undefined) return Promise.resolve(fail({ kind: 'not-found', status: 404, message: `no backend ${backend}`, operation: 'list' }));
      return Promise.resolve(ok([...servers]));
    },
    addServer(backend, server: ServerSpec, transactionId) {
      model.calls.push(`addServer ${backend} ${server.name} ${server.address}:${server.port}`);
      const error = injected('addServer');
      if (error) return Promise.resolve(fail(error));
      const servers = staged(transactionId, backend);
      if (!Array.isArray(servers)) return Promise.resolve(fail(servers));
      if (servers.some((s) => s.name === server.name)) {
        return Promise.resolve(fail({ kind: 'exists', status: 409, message: `object already exists: server ${server.name}`, operation: 'add' }));
      }
      servers.push({
        name: server.name,
        address: server.address,
        port: server.port,
        weight: server.weight,
        cookie: server.cookie,
        checkEnabled: server.check !== undefined,
      });
      return Promise.resolve(ok(undefined));
    },
    addServerAtVersion(backend, server: ServerSpec, version) {
      model.calls.push(`addServerAtVersion ${backend} ${server.name} ${server.address}:${server.port} @${version}`);
      const error = injected('addServerAtVersion');
      if (error) return Promise.resolve(fail(error));
      if (version !== model.version) {
        return Promise.resolve(fail({ kind: 'conflict', status: 409, message: `version mismatch: ${version} != ${model.version}`, operation: 'add' }));
      }
      const servers = backends.get(backend);
      if (servers === undefined) return Promise.resolve(fail({ kind: 'not-found', status: 404, message: `no backend ${backend}`, operation: 'add' }));
      if (servers.some((s) => s.name === server.name)) {
        return Promise.resolve(fail({ kind: 'exists', status: 409, message: `object already exists: server ${server.name}`, operation: 'add' }));
      }
      servers.push({ name: server.name, address: server.address, port: server.port, weight: server.weight, cookie: server.cookie, checkEnabled: server.check !== undefined });
      model.version++;
      // Added to the running HAProxy too, where it starts in maintenance (as the real one does).
      model.adminStates.set(`${backend}/${server.name}`, 'maint');
      return Promise.resolve(ok({ atRuntime: true, reloadId: undefined }));
    },
    replaceServerAtVersion(backend, server: ServerSpec, version) {
      model.calls.push(`replaceServerAtVersion ${backend} ${server.name} ${server.address}:${server.port} @${version}`);
      const error = injected('replaceServerAtVersion');
      if (error) return Promise.resolve(fail(error));
      if (version !== model.version) {
        return Promise.resolve(fail({ kind: 'conflict', status: 409, message: `version mismatch: ${version} != ${model.version}`, operation: 'replace' }));
      }
      const servers = backends.get(backend);
      const at = servers?.findIndex((s) => s.name === server.name) ?? -1;
      if (servers === undefined || at < 0) return Promise.resolve(fail({ kind: 'not-found', status: 404, message: `missing object: server ${server.name} does not exist in ${backend}`, operation: 'replace' }));
      const before = servers[at];
      servers[at] = { name: server.name, address: server.address, port: server.port, weight: server.weight, cookie: server.cookie, checkEnabled: server.check !== undefined };
      model.version++;
      // Only the address, port or weight changed: set at run time, the admin state kept (as the real API does).
      const atRuntime = before !== undefined && before.cookie === server.cookie && before.checkEnabled === (server.check !== undefined);
      return Promise.resolve(ok({ atRuntime, reloadId: atRuntime ? undefined : `reload-${model.version}` }));
    },
    haproxyVersion() {
      model.calls.push('haproxyVersion');
      const error = injected('haproxyVersion');
      return Promise.resolve(error ? fail(error) : ok('3.0.11-1+deb13u4'));
    },
    deleteServer(backend, name, transactionId) {
      model.calls.push(`deleteServer ${backend} ${name}`);
      const error = injected('deleteServer');
      if (error) return Promise.resolve(fail(error));
      const servers = staged(transactionId, backend);
      if (!Array.isArray(servers)) return Promise.resolve(fail(servers));
      const index = servers.findIndex((s) => s.name === name);
      if (index < 0) return Promise.resolve(fail({ kind: 'not-found', status: 404, message: `no server ${name}`, operation: 'delete' }));
      servers.splice(index, 1);
      return Promise.resolve(ok(undefined));
    },
    listRuntimeServers(backend) {
      model.calls.push(`listRuntimeServers ${backend}`);
      const error = injected('listRuntimeServers');
      if (error) return Promise.resolve(fail(error));
      const servers = backends.get(backend) ?? [];
      return Promise.resolve(
        ok(servers.map((s) => ({ name: s.name, adminState: model.adminStates.get(`${backend}/${s.name}`) ?? 'ready', operationalState: 'up' as const }))),
      );
    },
    setAdminState(backend, name, state) {
      model.calls.push(`setAdminState ${backend}/${name} ${state}`);
      const error = injected('setAdminState');
      if (error) return Promise.resolve(fail(error));
      if (!(backends.get(backend) ?? []).some((s) => s.name === name)) {
        return Promise.resolve(fail({ kind: 'not-found', status: 404, message: `no server ${backend}/${name}`, operation: 'state' }));
      }
      model.adminStates.set(`${backend}/${name}`, state);
      return Promise.resolve(ok(undefined));
    },
    waitForReload(reloadId) {
      model.calls.push(`waitForReload ${reloadId}`);
      const error = injected('waitForReload');
      return Promise.resolve(error ? fail(error) : ok(undefined));
    },
  };
  return model;
}
