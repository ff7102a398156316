// The runtime driver: the HAProxy driver port over HAProxy's runtime API (its stats socket), for
// installations without the Data Plane API. It never reloads HAProxy. What it adds or removes
// at run time it first writes into the managed region of HAProxy's configuration file, so a
// reload or a restart at any moment starts from what is applied (or about to be).
import type {
  AdminState,
  ApplyOutcome,
  DriverReport,
  HaproxyDriver,
  HealthCheck,
  ServerSnapshot,
} from '../driver/port.js';
import { fail, ok, type EdgeError, type Result } from '../edge/result.js';
import type { DesiredServer, Operation } from '../driver/port.js';
import { serverArguments, writeManagedRegions, readConfigFile, replaceRegion, type RegionServer } from './config-file.js';
import { createRuntimeSocket, type RuntimeSocket, type RuntimeTransport } from './socket.js';
import {
  parseInfoVersion,
  parseServersState,
  toConfiguredServer,
  toRuntimeServer,
  versionAtLeast,
  type ServerState,
} from './state.js';

export interface RuntimeDriverOptions {
  /** The stats socket at admin level: `/path`, `unix:/path`, `tcp:host:port`, `host:port`. */
  readonly address: string;
  /** Longest wait for one command's answer. */
  readonly timeoutMs: number;
  /** The configuration file HAProxy loads, with a managed-servers region per managed backend. */
  readonly configFile: string;
  /** Health checks every added server gets. */
  readonly healthCheck: HealthCheck;
  /** True for the servers the sidecar created; only those are written into the managed regions. */
  readonly isOwned: (name: string) => boolean;
  /**
   * How long a removal waits for the server's last sessions to end before it cuts them
   * (default 2000 ms). The drainer normally ends them long before.
   */
  readonly removalWaitMs?: number;
  /**
   * The managed backends use `cookie … dynamic` with a `dynamic-cookie-key` (default true). On
   * HAProxy < 3.0 a server added at run time only gets its cookie when the backend's dynamic
   * cookies are enabled again; false skips that command for backends without persistence.
   */
  readonly dynamicCookies?: boolean;
  /** Sends one command; tests pass a fake, the default connects to `address`. */
  readonly transport?: RuntimeTransport;
  /** Clock and sleep of the removal's retries on HAProxy < 3.0. */
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** How often a removal on HAProxy < 3.0 asks again whether the server can be deleted. */
const REMOVAL_POLL_MS = 100;

/** What differs between the HAProxy versions this driver was verified on: 2.6, 3.0, 3.2 and 3.4. */
interface Dialect {
  /** `wait <ms> srv-removable <b>/<s>` exists (3.0). */
  readonly waitRemovable: boolean;
  /** A server added at run time gets its dynamic cookie by itself (3.0; not 2.6). */
  readonly cookieOnAdd: boolean;
  /** Entering maintenance purges a server's idle connection pool (3.0; see serverArguments). */
  readonly idlePool: boolean;
  /**
   * `del server` no longer closes idle connections itself and refuses while any remain (3.3's
   * change log: "do not remove idle conns in del server"); they close on their own shortly after
   * maintenance or `shutdown sessions`. The first `del server` already comes after a wait; after
   * cutting sessions the removal waits once more rather than race their closing (3.4.7 answered
   * "Done." at once in every case tried here, so this costs one round trip).
   */
  readonly idleCloseDeferred: boolean;
}

/** An unreadable version gets 2.6's sequences, which work on 3.0 too, only slower to remove. */
function dialectOf(version: string | undefined): Dialect {
  const v3 = versionAtLeast(version, 3, 0);
  return { waitRemovable: v3, cookieOnAdd: v3, idlePool: v3, idleCloseDeferred: versionAtLeast(version, 3, 3) };
}

const key = (backend: string, name: string): string => `${backend}/${name}`;

const ADDRESS_SET = /^(IP changed|port changed|no need to change|nothing changed)/;

const stillConnected = (error: EdgeError): boolean =>
  error.kind === 'unavailable' && error.message.startsWith('Server still has connections attached');

function backendOf(operation: Operation): string {
  return operation.op === 'remove' ? operation.backend : operation.server.backend;
}

/** The managed regions after the operations: the snapshot's owned servers, adds and replaces in, removes out. */
function targetRegions(
  operations: readonly Operation[],
  snapshot: ServerSnapshot,
  isOwned: (name: string) => boolean,
): Map<string, RegionServer[]> {
  // Every backend read, so a region that drifted from what HAProxy runs is rewritten too.
  const backends = new Set([...snapshot.backends, ...operations.map(backendOf)]);
  const regions = new Map<string, Map<string, RegionServer>>([...backends].map((b) => [b, new Map()]));
  for (const server of snapshot.servers) {
    if (isOwned(server.name)) regions.get(server.backend)?.set(server.name, server);
  }
  for (const operation of operations) {
    if (operation.op === 'remove') regions.get(operation.backend)?.delete(operation.name);
    else regions.get(operation.server.backend)?.set(operation.server.name, operation.server);
  }
  return new Map([...regions].map(([backend, servers]) => [backend, [...servers.values()]]));
}

export function createRuntimeDriver(options: RuntimeDriverOptions): HaproxyDriver {
  const socket: RuntimeSocket = createRuntimeSocket({
    address: options.address,
    timeoutMs: options.timeoutMs,
    ...(options.transport === undefined ? {} : { transport: options.transport }),
  });
  const removalWaitMs = options.removalWaitMs ?? 2_000;
  const dynamicCookies = options.dynamicCookies ?? true;
  const now = options.now ?? (() => Date.now());
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));

  // HAProxy's version decides the dialect; read once, on first need. An upgrade means a
  // restart of HAProxy, and a restart of the sidecar reads it again.
  let version: Result<string | undefined> | undefined;
  const haproxyVersion = async (): Promise<Result<string | undefined>> => {
    if (version?.ok === true) return version;
    const info = await socket.query('show info');
    version = info.ok ? ok(parseInfoVersion(info.value)) : info;
    return version;
  };

  const readBackend = async (backend: string): Promise<Result<readonly ServerState[]>> => {
    const command = `show servers state ${backend}`;
    const answer = await socket.query(command);
    return answer.ok ? parseServersState(answer.value, command) : answer;
  };

  const add = async (server: DesiredServer, dialect: Dialect): Promise<Result<void>> => {
    const id = key(server.backend, server.name);
    const added = await socket.execute(`add server ${id} ${serverArguments(server, options.healthCheck, dialect.idlePool)}`);
    if (!added.ok) return added;
    // HAProxy < 3.0 gives a server added at run time no dynamic cookie (it answers an empty
    // cookie that unsets the client's); enabling the backend's dynamic cookies again computes
    // the missing ones. Done before the server takes traffic, so no answer lacks it.
    if (dynamicCookies && !dialect.cookieOnAdd) {
      const cookies = await socket.execute(`enable dynamic-cookie backend ${server.backend}`);
      if (!cookies.ok) return cookies;
    }
    // A dynamic server starts in maintenance with its checks off.
    const health = await socket.execute(`enable health ${id}`);
    if (!health.ok) return health;
    return socket.execute(`enable server ${id}`);
  };

  /**
   * Maintenance first (no new traffic), then wait until the server holds no connection, then
   * delete it; sessions still left after removalWaitMs are cut, since the reconciler removes only
   * servers whose container is gone or whose drain completed.
   */
  const remove = async (backend: string, name: string, dialect: Dialect): Promise<Result<void>> => {
    const id = key(backend, name);
    const maint = await socket.execute(`set server ${id} state maint`);
    if (!maint.ok) return maint;
    let deleted: Result<void>;
    if (dialect.waitRemovable) {
      // HAProxy >= 3.0 waits itself: "Done." once removable, "Wait delay expired." or
      // "Failed." (not removable, or no such server) otherwise; 3.4 adds the reason on the same
      // line ("Failed. No such server."). Either way `del server` below gives the precise
      // refusal, so the answer only needs to be an answer. 3.3+ also waits here for the idle
      // connections that `del server` no longer closes.
      const waited = await socket.query(`wait ${removalWaitMs} srv-removable ${id}`, {
        timeoutMs: options.timeoutMs + removalWaitMs,
      });
      if (!waited.ok) return waited;
      deleted = await socket.execute(`del server ${id}`);
    } else {
      // HAProxy < 3.0 has no `wait`: ask `del server` again until it takes, for as long.
      const deadline = now() + removalWaitMs;
      for (;;) {
        deleted = await socket.execute(`del server ${id}`);
        if (deleted.ok || !stillConnected(deleted.error) || now() >= deadline) break;
        await sleep(REMOVAL_POLL_MS);
      }
    }
    if (deleted.ok || !stillConnected(deleted.error)) return deleted;
    const shutdown = await socket.execute(`shutdown sessions server ${id}`);
    if (!shutdown.ok) return shutdown;
    if (dialect.idleCloseDeferred) {
      const waited = await socket.query(`wait ${removalWaitMs} srv-removable ${id}`, { timeoutMs: options.timeoutMs + removalWaitMs });
      if (!waited.ok) return waited;
    }
    return socket.execute(`del server ${id}`);
  };

  /**
   * A new address is set in place (`set server addr`): the server keeps its state, its checks
   * and the requests HAProxy holds for it in its retries, which then reach the new address; a
   * replica replaced under the same name (a Compose recreate) serves again without the backend
   * losing a server. A new weight is a remove and an add: `set weight` would change only the
   * running weight, not the configured one this driver reads back.
   */
  const replace = async (server: DesiredServer, reason: 'address changed' | 'weight changed', dialect: Dialect): Promise<Result<void>> => {
    if (reason === 'address changed') {
      const command = `set server ${key(server.backend, server.name)} addr ${server.address} port ${server.port}`;
      const answered = await socket.query(command);
      if (!answered.ok) return answered;
      // "IP changed from … to …", "port changed …", "no need to change the addr …" (2.6) or
      // "nothing changed" (3.0+); anything else is a refusal.
      return ADDRESS_SET.test(answered.value) ? ok(undefined) : fail(command, 'invalid', answered.value.split('\n', 1)[0] ?? answered.value);
    }
    const removed = await remove(server.backend, server.name, dialect);
    if (!removed.ok) return removed;
    return add(server, dialect);
  };

  return {
    kind: 'runtime',

    async inspect(backends) {
      const read = await haproxyVersion();
      if (!read.ok) return read;
      const haproxyVersionText = read.value;
      // Every managed backend must exist and have its region in the file, or the first apply
      // would fail half-way: say so at start-up instead.
      for (const backend of backends) {
        const servers = await readBackend(backend);
        if (!servers.ok) return servers;
      }
      const file = await readConfigFile(options.configFile);
      if (!file.ok) return file;
      for (const backend of backends) {
        const region = replaceRegion(file.value, options.configFile, backend, []);
        if (!region.ok) return region;
      }
      const limitations: string[] = [];
      if (haproxyVersionText === undefined) {
        limitations.push('HAProxy did not report its version: the driver uses the command sequences of HAProxy 2.6.');
      } else if (!dialectOf(haproxyVersionText).waitRemovable) {
        limitations.push(
          `HAProxy ${haproxyVersionText} has no "wait srv-removable": a removal retries "del server" for up to ` +
            `${removalWaitMs} ms while the server still has connections, then cuts them (the drainer normally ends them first).`,
          `HAProxy ${haproxyVersionText} keeps no idle connections for servers added at run time, and the driver writes ` +
            '"pool-max-conn 0" on the servers of its file regions to match: otherwise, after a reload, "del server" ' +
            'refuses them for as long as their idle pool lasts.',
        );
      }
      const report: DriverReport = { driver: 'runtime', haproxyVersion: haproxyVersionText?.split('-')[0], limitations, runtimeReads: true };
      return ok(report);
    },

    async readServers(backends) {
      const servers: ReturnType<typeof toConfiguredServer>[] = [];
      for (const backend of backends) {
        const read = await readBackend(backend);
        if (!read.ok) return read;
        servers.push(...read.value.map(toConfiguredServer));
      }
      const snapshot: ServerSnapshot = { revision: undefined, backends, servers };
      return ok(snapshot);
    },

    async apply(operations, snapshot) {
      const outcome = (runtimeChanges: number): ApplyOutcome => ({ reloads: 0, transactions: 0, runtimeChanges });
      const read = await haproxyVersion();
      if (!read.ok) return read;
      const dialect = dialectOf(read.value);
      const regions = targetRegions(operations, snapshot, options.isOwned);
      const written = await writeManagedRegions(options.configFile, regions, options.healthCheck, dialect.idlePool);
      if (!written.ok) return written;

      // Sequential, stopping at the first failure: the file already holds the target, and the
      // next pass plans again from what HAProxy then shows. New servers first, then the
      // replaced and removed ones: a removal waits for its server's connections to end, and
      // a backend whose replicas were all replaced at once must not stand empty meanwhile.
      const order = { add: 0, replace: 1, remove: 2 } as const;
      let applied = 0;
      for (const operation of [...operations].sort((a, b) => order[a.op] - order[b.op])) {
        const result =
          operation.op === 'add'
            ? await add(operation.server, dialect)
            : operation.op === 'remove'
              ? await remove(operation.backend, operation.name, dialect)
              : await replace(operation.server, operation.reason, dialect);
        if (!result.ok) return result;
        applied++;
      }
      return ok(outcome(applied));
    },

    async listRuntimeServers(backend) {
      const read = await readBackend(backend);
      return read.ok ? ok(read.value.map(toRuntimeServer)) : read;
    },

    setRuntimeWeight(backend, server, weight) {
      return socket.execute(`set weight ${key(backend, server)} ${weight}`);
    },

    setAdminState(backend, server, state: AdminState) {
      return socket.execute(`set server ${key(backend, server)} state ${state}`);
    },

    enableChecks(backend, server) {
      return socket.execute(`enable health ${key(backend, server)}`);
    },
  };
}
