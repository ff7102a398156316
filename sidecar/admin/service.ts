// What the admin API does, without HTTP: list backends and servers with their state, drain and
// undrain, drain progress. Every answer is a value with the HTTP status it maps to, so the route
// layer only translates, and tests can call this directly.
import type { Candidate } from '../discovery/discovery.js';
import type { AdminState, HaproxyDriver } from '../driver/port.js';
import type { Drainer, DrainOutcome, DrainProgress } from '../records/drains.js';
import type { BackendSnapshot } from '../haproxy-metrics/exporter.js';

export interface ServerView {
  readonly name: string;
  readonly address: string;
  readonly port: number | null;
  /** True for servers the sidecar created; false for servers written into haproxy.cfg by hand. */
  readonly managed: boolean;
  readonly adminState: AdminState | null;
  readonly operationalState: 'up' | 'down' | 'stopping' | null;
  /** From HAProxy's exporter; null when it could not be read. */
  readonly sessions: number | null;
  readonly queue: number | null;
  /** The container the server stands for, when it is one of the sidecar's. */
  readonly container: string | null;
  readonly drain: DrainProgress | null;
}

export interface BackendView {
  readonly name: string;
  readonly servers: readonly ServerView[];
}

export interface Failure {
  readonly status: 400 | 404 | 409 | 502;
  readonly body: ApiError;
}

export type Answer<T> = { readonly status: 200 | 202; readonly body: T } | Failure;

const isFailure = <T>(answer: Answer<T>): answer is Failure => answer.status >= 400;

export interface ApiError {
  readonly error: 'bad-request' | 'not-found' | 'conflict' | 'upstream';
  readonly message: string;
}

export interface DrainCommand {
  /** Answer only when the drain ended (200 with the outcome) instead of at once (202). */
  readonly wait: boolean;
  /** Drain even the last ready server of the backend. */
  readonly force: boolean;
  readonly deadlineMs?: number;
}

export interface AdminServiceOptions {
  readonly haproxy: Pick<HaproxyDriver, 'readServers' | 'listRuntimeServers'>;
  readonly drainer: Drainer;
  /** The backend's figures from HAProxy's exporter; undefined when unavailable. */
  readonly backendLoad: (backend: string) => Promise<BackendSnapshot | undefined>;
  /** The containers discovery sees now. */
  readonly candidates: () => Promise<readonly Candidate[]>;
  readonly managedBackends: readonly string[];
  readonly isOwned: (server: string) => boolean;
  /** Told when an operator puts a server back in service: a scale-down of it ends there. */
  readonly undrained?: (backend: string, server: string) => Promise<void>;
}

export interface AdminService {
  listBackends(): Promise<Answer<readonly BackendView[]>>;
  getServer(backend: string, server: string): Promise<Answer<ServerView>>;
  drain(backend: string, server: string, command: DrainCommand): Promise<Answer<{ readonly progress: DrainProgress | null; readonly outcome?: DrainOutcome }>>;
  undrain(backend: string, server: string): Promise<Answer<ServerView>>;
  drainProgress(backend: string, server: string): Answer<DrainProgress>;
}

const notFound = (message: string): Failure => ({ status: 404, body: { error: 'not-found', message } });
const upstream = (message: string): Failure => ({ status: 502, body: { error: 'upstream', message } });

export function createAdminService(options: AdminServiceOptions): AdminService {
  const { haproxy, drainer } = options;

  async function backendView(backend: string): Promise<Answer<BackendView>> {
    if (!options.managedBackends.includes(backend)) return notFound(`unknown backend ${backend} (managed: ${options.managedBackends.join(', ')})`);
    const [configured, runtime, load, candidates] = await Promise.all([
      haproxy.readServers([backend]),
      haproxy.listRuntimeServers(backend),
      options.backendLoad(backend),
      options.candidates().catch(() => [] as readonly Candidate[]),
    ]);
    if (!configured.ok) return upstream(`reading the servers of ${backend}: ${configured.error.message}`);
    const states = new Map(runtime.ok ? runtime.value.map((s) => [s.name, s]) : []);
    const figures = new Map(load?.servers.map((s) => [s.name, s]) ?? []);
    const servers = configured.value.servers.map((s): ServerView => {
      const state = states.get(s.name);
      const figure = figures.get(s.name);
      return {
        name: s.name,
        address: s.address,
        port: s.port ?? null,
        managed: options.isOwned(s.name),
        adminState: state?.adminState ?? null,
        operationalState: state?.operationalState ?? null,
        sessions: figure?.currentSessions ?? null,
        queue: figure?.currentQueue ?? null,
        container: candidates.find((c) => c.backend === backend && c.serverName === s.name)?.containerName ?? null,
        drain: drainer.progress(backend, s.name) ?? null,
      };
    });
    return { status: 200, body: { name: backend, servers } };
  }

  async function serverView(backend: string, server: string): Promise<Answer<ServerView>> {
    const view = await backendView(backend);
    if (isFailure(view)) return view;
    const found = view.body.servers.find((s) => s.name === server);
    return found === undefined ? notFound(`unknown server ${server} in backend ${backend}`) : { status: 200, body: found };
  }

  return {
    async listBackends() {
      const views: BackendView[] = [];
      for (const backend of options.managedBackends) {
        const view = await backendView(backend);
        if (isFailure(view)) return view;
        views.push(view.body);
      }
      return { status: 200, body: views };
    },

    getServer: serverView,

    async drain(backend, server, command) {
      const view = await backendView(backend);
      if (isFailure(view)) return view;
      const target = view.body.servers.find((s) => s.name === server);
      if (target === undefined) return notFound(`unknown server ${server} in backend ${backend}`);
      const otherReady = view.body.servers.filter((s) => s.name !== server && s.adminState === 'ready' && s.operationalState !== 'down');
      if (otherReady.length === 0 && !command.force && target.adminState === 'ready') {
        return {
          status: 409,
          body: { error: 'conflict', message: `${server} is the last ready server of ${backend}; draining it would leave the backend without capacity (use force to drain anyway)` },
        };
      }
      const request = { reason: 'admin API', ...(command.deadlineMs === undefined ? {} : { deadlineMs: command.deadlineMs }) };
      const started = await drainer.start(backend, server, request);
      if (!started.ok) return upstream(started.message);
      if (!command.wait) return { status: 202, body: { progress: drainer.progress(backend, server) ?? null } };
      const finished = await started.done;
      if (finished.outcome === 'failed') return upstream(finished.message);
      return { status: 200, body: { progress: drainer.progress(backend, server) ?? null, outcome: finished } };
    },

    async undrain(backend, server) {
      const view = await serverView(backend, server);
      if (isFailure(view)) return view;
      const result = await drainer.undrain(backend, server);
      if (!result.ok) return upstream(`setting ${backend}/${server} to ready: ${result.error.message}`);
      await options.undrained?.(backend, server);
      return serverView(backend, server);
    },

    drainProgress(backend, server) {
      if (!options.managedBackends.includes(backend)) return notFound(`unknown backend ${backend}`);
      const progress = drainer.progress(backend, server);
      return progress === undefined ? notFound(`no drain of ${backend}/${server} in progress or on record`) : { status: 200, body: progress };
    },
  };
}
