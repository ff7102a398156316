// The Data Plane API adapter: the only module that imports generated/. It turns the API's
// types into the small internal ones below, and every non-2xx answer into a value
// (DataplaneError) the caller handles; it throws only on its own misuse.
import createClient from 'openapi-fetch';
import type { components, paths } from '../../generated/dataplane-api.js';
import type { AdminState, RuntimeServer } from '../driver/port.js';
import { fail, type EdgeError, type EdgeErrorKind, type Result } from '../edge/result.js';
import { createTransport, TransportError, type TransportOptions } from './transport.js';

/** The Data Plane API's failures are edge errors like every other adapter's. */
export type DataplaneError = EdgeError;
export type { Result };

export interface ServerSpec {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly weight?: number;
  /** Value of the persistence cookie that pins a client to this server. */
  readonly cookie?: string;
  /** Health checks on this server (interval in ms); absent means no checks. */
  readonly check?: { readonly intervalMs: number; readonly fall: number; readonly rise: number };
}

/** A server as the configuration holds it. */
export interface ConfiguredServer {
  readonly name: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly weight: number | undefined;
  readonly cookie: string | undefined;
  readonly checkEnabled: boolean;
}

export type { AdminState, RuntimeServer };

export interface Transaction {
  readonly id: string;
  readonly version: number;
}

export interface ListedTransaction extends Transaction {
  readonly status: 'failed' | 'outdated' | 'in_progress' | 'success' | undefined;
}

/**
 * Where the ids of the transactions the sidecar opened are kept until they are committed or
 * deleted (the state file), so that one a crash left behind is deleted after the restart and
 * never mistaken for another writer's.
 */
export interface TransactionLedger {
  opened(id: string): Promise<void>;
  closed(id: string): Promise<void>;
  list(): readonly string[];
}

export interface CommitOutcome {
  /** Set when the commit scheduled a reload; absent when HAProxy took it without one. */
  readonly reloadId: string | undefined;
}

export interface AddedServer {
  /** True when the API added it to the running HAProxy (201): it starts in maintenance there. */
  readonly atRuntime: boolean;
  /** Set when the API scheduled a reload instead (202). */
  readonly reloadId: string | undefined;
}

export interface DataplaneClientOptions extends Omit<TransportOptions, 'fetch'> {
  /** The Data Plane API root, e.g. http://127.0.0.1:5555 (the /v3 prefix is added). */
  readonly url: string;
  readonly fetch?: typeof fetch;
  /** How often waitForReload polls. */
  readonly reloadPollMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly now?: () => number;
}

export interface DataplaneClient {
  configurationVersion(): Promise<Result<number>>;
  startTransaction(version: number): Promise<Result<Transaction>>;
  commitTransaction(id: string): Promise<Result<CommitOutcome>>;
  deleteTransaction(id: string): Promise<Result<void>>;
  /** The transactions the API holds, whoever opened them. */
  listTransactions(): Promise<Result<readonly ListedTransaction[]>>;
  listServers(backend: string, transactionId?: string): Promise<Result<readonly ConfiguredServer[]>>;
  addServer(backend: string, server: ServerSpec, transactionId: string): Promise<Result<void>>;
  /**
   * Adds a server outside any transaction, refused with a conflict unless the configuration is
   * still at `version`. The API writes it to the file and, where it can (a backend without a
   * default-server line), also adds it to the running HAProxy without a reload; otherwise it
   * schedules a reload, whose id comes back.
   */
  addServerAtVersion(backend: string, server: ServerSpec, version: number): Promise<Result<AddedServer>>;
  /**
   * Replaces a server outside any transaction, refused with a conflict unless the configuration
   * is still at `version`. Where only its address, port or weight changed, the API sets them in
   * the running HAProxy (`set server addr`) without a reload; otherwise it schedules a reload.
   */
  replaceServerAtVersion(backend: string, server: ServerSpec, version: number): Promise<Result<AddedServer>>;
  /** The running HAProxy's version string, e.g. "3.0.11-1+deb13u4". */
  haproxyVersion(): Promise<Result<string>>;
  deleteServer(backend: string, name: string, transactionId: string): Promise<Result<void>>;
  /** Polls a reload until it succeeded (ok), failed (reload-failed) or timeoutMs passed (timeout). */
  waitForReload(reloadId: string, timeoutMs: number): Promise<Result<void>>;
  /** The backend's servers in the running HAProxy, with their admin and operational states. */
  listRuntimeServers(backend: string): Promise<Result<readonly RuntimeServer[]>>;
  /** Sets a server's admin state at run time (drain, maint, ready); no reload. */
  setAdminState(backend: string, name: string, state: AdminState): Promise<Result<void>>;
}

type ApiServer = components['schemas']['server'];

/**
 * What a status means to the caller. Two answers say "the configuration moved under you":
 * 409 with a version mismatch, and 406 for a transaction another commit made outdated; both
 * mean re-read and re-plan. A 409 for an object that already exists is told apart, so logs
 * and metrics say which it was.
 *
 * The HTTP status decides, never the error body's `code`: v3.2 and v3.3 (go-swagger) put their
 * own validation codes there (601 for a parameter of the wrong type, 602 for a missing field,
 * 605 for a pattern, all with HTTP 422), v3.4 puts the HTTP status (its UPGRADE.md).
 */
export function kindOf(status: number, message: string): EdgeErrorKind {
  if (status === 409) return /already exists/i.test(message) ? 'exists' : 'conflict';
  if (status === 406 && /outdated/i.test(message)) return 'conflict';
  // A path or a method the API does not route is another API version (or a wrong
  // dataplane.url), not a missing object: retrying or re-planning will not help.
  if ((status === 404 && UNROUTED.test(message)) || status === 405) return 'unsupported';
  if (status === 404) return 'not-found';
  if (status === 401 || status === 403) return 'unauthorized';
  if (status === 501) return 'unsupported';
  if (status === 429 || status >= 500) return 'unavailable';
  return 'invalid';
}

/**
 * The router's answer for a path it has no route for, the same in every v3 release (measured on
 * v3.2.5 and v3.3.0; v3.4's chi router keeps the go-swagger text, respond.NotFound); a handler's
 * 404 names the missing object instead ("missing object: server x does not exist in be_app
 * backend", "no data for be_app: not found").
 */
const UNROUTED = /^path \S+ was not found$/;

/**
 * The error body of the specification's `error` schema, `{code, message}`, both nullable. A 401
 * gets a hint: v3.4 checks the credentials before it routes, so it answers 401 even for a path it
 * does not have (v3.2 and v3.3 answered 404 there), and a wrong password must not be taken for a
 * missing endpoint, nor the other way round.
 */
function apiMessage(status: number, body: unknown): string {
  let message = `HTTP ${status}`;
  if (body !== null && typeof body === 'object' && 'message' in body && typeof body.message === 'string' && body.message.trim() !== '') {
    message = body.message.trim();
  } else if (typeof body === 'string' && body.trim() !== '') {
    message = body.trim();
  }
  if (status === 401) return `${message} (the Data Plane API refused dataplane.username / dataplane.password)`;
  return message;
}

/** Runs one openapi-fetch call and converts its outcome into a Result. */
async function call<T, R>(
  operation: string,
  request: () => Promise<{ data?: T; error?: unknown; response: Response }>,
  convert: (data: T | undefined, response: Response) => Result<R>,
): Promise<Result<R>> {
  let outcome: { data?: T; error?: unknown; response: Response };
  try {
    outcome = await request();
  } catch (error) {
    if (error instanceof TransportError) return fail(operation, error.kind, error.message);
    if (error instanceof SyntaxError) return fail(operation, 'malformed', `answer is not valid JSON: ${error.message}`);
    throw error;
  }
  const { response } = outcome;
  if (!response.ok) {
    const status = response.status;
    const message = apiMessage(status, outcome.error);
    return fail(operation, kindOf(status, message), message, status);
  }
  return convert(outcome.data, response);
}

function toConfiguredServer(server: ApiServer): ConfiguredServer | undefined {
  if (typeof server.name !== 'string' || typeof server.address !== 'string') return undefined;
  return {
    name: server.name,
    address: server.address,
    port: server.port ?? undefined,
    weight: server.weight ?? undefined,
    cookie: server.cookie ?? undefined,
    checkEnabled: server.check === 'enabled',
  };
}

function toApiServer(server: ServerSpec): ApiServer {
  return {
    name: server.name,
    address: server.address,
    port: server.port,
    ...(server.weight === undefined ? {} : { weight: server.weight }),
    ...(server.cookie === undefined ? {} : { cookie: server.cookie }),
    ...(server.check === undefined
      ? { check: 'disabled' as const }
      : { check: 'enabled' as const, inter: server.check.intervalMs, fall: server.check.fall, rise: server.check.rise }),
  };
}

export function createDataplaneClient(options: DataplaneClientOptions): DataplaneClient {
  const transport = createTransport({ ...options, ...(options.fetch === undefined ? {} : { fetch: options.fetch }) });
  const api = createClient<paths>({ baseUrl: `${options.url.replace(/\/+$/, '')}/v3`, fetch: transport });
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  const now = options.now ?? Date.now;
  const pollMs = options.reloadPollMs ?? 100;

  return {
    configurationVersion: () =>
      call(
        'read configuration version',
        () => api.GET('/services/haproxy/configuration/version'),
        (data) =>
          typeof data === 'number' && Number.isInteger(data)
            ? { ok: true, value: data }
            : fail('read configuration version', 'malformed', `expected a version number, got ${JSON.stringify(data)}`),
      ),

    startTransaction: (version) =>
      call(
        `start transaction at version ${version}`,
        () => api.POST('/services/haproxy/transactions', { params: { query: { version } } }),
        (data) =>
          typeof data?.id === 'string' && typeof data._version === 'number'
            ? { ok: true, value: { id: data.id, version: data._version } }
            : fail('start transaction', 'malformed', `answer has no transaction id: ${JSON.stringify(data)}`),
      ),

    commitTransaction: (id) =>
      call(
        `commit transaction ${id}`,
        () => api.PUT('/services/haproxy/transactions/{id}', { params: { path: { id } } }),
        (_data, response) => ({
          ok: true,
          value: { reloadId: response.status === 202 ? (response.headers.get('reload-id') ?? undefined) : undefined },
        }),
      ),

    deleteTransaction: (id) =>
      call(
        `delete transaction ${id}`,
        () => api.DELETE('/services/haproxy/transactions/{id}', { params: { path: { id } } }),
        () => ({ ok: true, value: undefined }),
      ),

    listTransactions: () =>
      call(
        'list transactions',
        () => api.GET('/services/haproxy/transactions'),
        (data) =>
          Array.isArray(data) && data.every((t) => typeof t.id === 'string')
            ? { ok: true, value: data.map((t) => ({ id: t.id ?? '', version: t._version ?? 0, status: t.status })) }
            : fail('list transactions', 'malformed', `expected a list of transactions, got ${JSON.stringify(data)}`),
      ),

    listServers: (backend, transactionId) =>
      call(
        `list servers of backend ${backend}`,
        () =>
          api.GET('/services/haproxy/configuration/backends/{parent_name}/servers', {
            params: { path: { parent_name: backend }, query: transactionId === undefined ? {} : { transaction_id: transactionId } },
          }),
        (data) => {
          if (!Array.isArray(data)) {
            return fail(`list servers of backend ${backend}`, 'malformed', `expected a list of servers, got ${JSON.stringify(data)}`);
          }
          const servers: ConfiguredServer[] = [];
          for (const item of data) {
            const server = toConfiguredServer(item);
            if (server === undefined) {
              return fail(`list servers of backend ${backend}`, 'malformed', `server without name or address: ${JSON.stringify(item)}`);
            }
            servers.push(server);
          }
          return { ok: true, value: servers };
        },
      ),

    addServer: (backend, server, transactionId) =>
      call(
        `add server ${server.name} to backend ${backend}`,
        () =>
          api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
            params: { path: { parent_name: backend }, query: { transaction_id: transactionId } },
            body: toApiServer(server),
          }),
        () => ({ ok: true, value: undefined }),
      ),

    addServerAtVersion: (backend, server, version) =>
      call(
        `add server ${server.name} to backend ${backend} at version ${version}`,
        () =>
          api.POST('/services/haproxy/configuration/backends/{parent_name}/servers', {
            params: { path: { parent_name: backend }, query: { version } },
            body: toApiServer(server),
          }),
        (_data, response) => ({
          ok: true,
          value: {
            atRuntime: response.status === 201,
            reloadId: response.status === 202 ? (response.headers.get('reload-id') ?? undefined) : undefined,
          },
        }),
      ),

    replaceServerAtVersion: (backend, server, version) =>
      call(
        `replace server ${server.name} in backend ${backend} at version ${version}`,
        () =>
          api.PUT('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
            params: { path: { parent_name: backend, name: server.name }, query: { version } },
            body: toApiServer(server),
          }),
        (_data, response) => ({
          ok: true,
          value: {
            atRuntime: response.status === 200,
            reloadId: response.status === 202 ? (response.headers.get('reload-id') ?? undefined) : undefined,
          },
        }),
      ),

    haproxyVersion: () =>
      call(
        'read HAProxy process information',
        () => api.GET('/services/haproxy/runtime/info'),
        (data) =>
          typeof data?.info?.version === 'string' && data.info.version !== ''
            ? { ok: true, value: data.info.version }
            : fail('read HAProxy process information', 'malformed', `no HAProxy version in ${JSON.stringify(data).slice(0, 200)}`),
      ),

    deleteServer: (backend, name, transactionId) =>
      call(
        `delete server ${name} from backend ${backend}`,
        () =>
          api.DELETE('/services/haproxy/configuration/backends/{parent_name}/servers/{name}', {
            params: { path: { parent_name: backend, name }, query: { transaction_id: transactionId } },
          }),
        () => ({ ok: true, value: undefined }),
      ),

    listRuntimeServers: (backend) =>
      call(
        `list runtime servers of backend ${backend}`,
        () => api.GET('/services/haproxy/runtime/backends/{parent_name}/servers', { params: { path: { parent_name: backend } } }),
        (data) => {
          if (!Array.isArray(data)) {
            return fail(`list runtime servers of backend ${backend}`, 'malformed', `expected a list of servers, got ${JSON.stringify(data)}`);
          }
          const servers: RuntimeServer[] = [];
          for (const item of data) {
            if (typeof item.name !== 'string') {
              return fail(`list runtime servers of backend ${backend}`, 'malformed', `runtime server without a name: ${JSON.stringify(item)}`);
            }
            servers.push({ name: item.name, adminState: item.admin_state, operationalState: item.operational_state, checks: undefined });
          }
          return { ok: true, value: servers };
        },
      ),

    setAdminState: (backend, name, state) =>
      call(
        `set server ${backend}/${name} to ${state}`,
        () =>
          api.PUT('/services/haproxy/runtime/backends/{parent_name}/servers/{name}', {
            params: { path: { parent_name: backend, name } },
            body: { admin_state: state },
          }),
        () => ({ ok: true, value: undefined }),
      ),

    waitForReload: async (reloadId, timeoutMs) => {
      const operation = `wait for reload ${reloadId}`;
      const deadline = now() + timeoutMs;
      for (;;) {
        const result = await call(
          operation,
          () => api.GET('/services/haproxy/reloads/{id}', { params: { path: { id: reloadId } } }),
          (data): Result<'succeeded' | 'failed' | 'in_progress'> =>
            data?.status === 'succeeded' || data?.status === 'failed' || data?.status === 'in_progress'
              ? data.status === 'failed'
                ? fail(operation, 'reload-failed', data.response?.trim() || 'HAProxy reported the reload as failed')
                : { ok: true, value: data.status }
              : fail(operation, 'malformed', `unknown reload status in ${JSON.stringify(data)}`),
        );
        if (!result.ok) return result;
        if (result.value === 'succeeded') return { ok: true, value: undefined };
        if (now() >= deadline) return fail(operation, 'timeout', `reload still in progress after ${timeoutMs} ms`);
        await sleep(pollMs);
      }
    },
  };
}

/**
 * Applies `change` in one transaction: reads the version, opens a transaction, runs the
 * change, commits and waits for the reload the commit scheduled. A failure anywhere after the
 * transaction opened deletes it, so no transaction is ever left open; the first error is the
 * one returned (a 409 from a concurrent writer comes back as `conflict`, for the caller to
 * re-read and re-plan).
 */
export async function applyInTransaction(
  client: DataplaneClient,
  change: (transactionId: string) => Promise<Result<void>>,
  reloadTimeoutMs: number,
  /**
   * The configuration version the change was planned from. Starting the transaction at that
   * version makes the commit fail with a conflict when anyone wrote in between, instead of
   * applying a plan made from stale state. Without it, the current version is read.
   */
  plannedAtVersion?: number,
  /** Keeps the id while the transaction is open, so a crash in between leaves a deletable trace. */
  ledger?: TransactionLedger,
): Promise<Result<CommitOutcome>> {
  let version = plannedAtVersion;
  if (version === undefined) {
    const current = await client.configurationVersion();
    if (!current.ok) return current;
    version = current.value;
  }
  const transaction = await client.startTransaction(version);
  if (!transaction.ok) return transaction;
  const id = transaction.value.id;
  await ledger?.opened(id);
  const close = async (): Promise<void> => {
    await client.deleteTransaction(id);
    await ledger?.closed(id);
  };
  const changed = await change(id);
  if (!changed.ok) {
    await close();
    return changed;
  }
  const commit = await client.commitTransaction(id);
  if (!commit.ok) {
    // A commit that failed leaves the transaction in the API's store; a successful one does not.
    await close();
    return commit;
  }
  await ledger?.closed(id);
  if (commit.value.reloadId !== undefined) {
    const reload = await client.waitForReload(commit.value.reloadId, reloadTimeoutMs);
    if (!reload.ok) return reload;
  }
  return commit;
}
