// The chaos soak's world, once per HAProxy driver: a real HAProxy (startLocalHaproxy; with the
// Data Plane API for the dataplane driver), a Compose-style pool of nginx replicas labelled the
// way the fault suite labels them (project, service `web`, container number), the sidecar as its
// own process with the autoscaler on, and the raw reads the invariant checker compares: Docker's
// containers, HAProxy's `show servers state`, the sidecar's records, the file region or the Data
// Plane API's configuration, and open transactions. Nothing here goes through the code under
// test except the sidecar process itself and its admin API.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { docker, OWNER_LABEL, startNginx } from '../../devenv/containers.js';
import { parseServerStates } from '../../test/support/runtime.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { createDataplaneClient, type DataplaneClient } from '../../sidecar/dataplane/client.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { beginMarker, endMarker } from '../../sidecar/runtime/config-file.js';
import { startDockerProxy, type DockerProxy } from '../../test/faults/docker-proxy.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from './sidecar-process.js';

/** The Compose service every soak pool belongs to; its servers are named hsc-web-<number>. */
export const SOAK_SERVICE = 'web';
/** Project names start with this and the soak's pid, so a later soak can tell a dead one's leftovers. */
const PROJECT_PREFIX = 'hsc-soak-';

export const serverNameOf = (number: number): string => `hsc-${SOAK_SERVICE}-${number}`;

export interface SoakContainer {
  readonly id: string;
  readonly name: string;
  readonly number: number;
  /** Docker's state: running, exited, created, restarting, … */
  readonly state: string;
  readonly health: 'healthy' | 'starting' | 'unhealthy' | 'none';
  /** The port it publishes on 127.0.0.1 (0 while it has none). */
  readonly hostPort: number;
}

/** One server as `show servers state` shows it, read off the socket without the sidecar's parser. */
export interface SoakServer {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** srv_op_state: 0 stopped, 1 starting, 2 running, 3 stopping. */
  readonly operational: number;
  readonly admin: 'ready' | 'drain' | 'maint';
}

/** One record of the sidecar's: a scale-down in progress or an operator's drain. */
export interface SidecarRecord {
  readonly kind: 'retirement' | 'drain';
  readonly backend: string;
  readonly server: string;
  readonly containerId?: string;
  readonly stage: string;
}

export interface SidecarView {
  readonly records: readonly SidecarRecord[];
  /** The autoscaler's mode (auto, manual, paused), when it said. */
  readonly mode: string | undefined;
  /** Where the records came from: GET /v1/records, or the older /v1/autoscaler + /v1/backends. */
  readonly source: 'records' | 'fallback';
}

export interface SoakSettings {
  readonly driver: DriverChoice;
  readonly replicas: number;
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** The paced load's rate: the autoscaler's request-rate thresholds are derived from it. */
  readonly ratePerSecond: number;
  readonly drainDeadlineMs: number;
  readonly pollMs: number;
}

export interface SoakWorld {
  readonly driver: DriverChoice;
  readonly haproxy: LocalHaproxy;
  readonly project: string;
  readonly dir: string;
  readonly sidecarLog: string;
  readonly adminUrl: string;
  /** The sidecar reaches Docker only through this socket of the soak's, which a fault cuts. */
  readonly dockerProxy: DockerProxy;
  readonly sidecar: SidecarProcess | undefined;
  /** The runtime socket the checker reads (moved aside while the writer-unreachable fault runs). */
  socketPath: string;
  startSidecar(): Promise<SidecarProcess>;
  /** SIGKILL: nothing of the sidecar's own shutdown runs. */
  killSidecar(): Promise<void>;
  /** SIGTERM, as an operator's restart does. */
  stopSidecar(): Promise<void>;
  admin(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<{ status: number; body: unknown }>;
  /** The operator CLI (the build's hsc) against this sidecar; its exit code and output. */
  hsc(args: readonly string[]): Promise<{ code: number; output: string }>;
  containers(): Promise<SoakContainer[]>;
  servers(): Promise<SoakServer[]>;
  sidecarView(): Promise<SidecarView | undefined>;
  /** Server names in the file HAProxy loads (runtime) or the Data Plane API's configuration. */
  configuredServers(): Promise<string[]>;
  /** Ids of the Data Plane API transactions in progress; [] for the runtime driver. */
  openTransactions(): Promise<string[]>;
  dataplane(): DataplaneClient | undefined;
  masterPid(): Promise<number>;
  masterCommand(command: string): Promise<string>;
  close(): Promise<void>;
}

/** A command on a Unix socket (runtime API or master CLI) and its whole answer. */
export function socketCommand(path: string, command: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = createConnection(path, () => socket.end(`${command}\n`));
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`socket command timed out: ${command}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', (hadError) => {
      if (!hadError) resolve(Buffer.concat(chunks).toString('utf8'));
    });
  });
}

/** Parses `show servers state <backend>` with the tests' own reader (not the sidecar's parser). */
export const parseServersState = (answer: string): SoakServer[] => parseServerStates(answer);

function healthOf(status: string): SoakContainer['health'] {
  if (status.includes('(healthy)')) return 'healthy';
  if (status.includes('(unhealthy)')) return 'unhealthy';
  if (status.includes('health: starting')) return 'starting';
  return 'none';
}

const isRecord = (value: unknown): value is Record<string, unknown> => value !== null && typeof value === 'object' && !Array.isArray(value);
const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

/** GET /v1/records' body, as the records endpoint describes it; undefined for anything else. */
export function parseRecordsBody(body: unknown): { records: SidecarRecord[]; mode: string | undefined } | undefined {
  if (!isRecord(body) || !Array.isArray(body.records)) return undefined;
  const records: SidecarRecord[] = [];
  for (const entry of body.records as unknown[]) {
    if (!isRecord(entry)) continue;
    const kind = entry.kind;
    const backend = text(entry.backend);
    const server = text(entry.server);
    const stage = text(entry.stage);
    if ((kind !== 'retirement' && kind !== 'drain') || backend === undefined || server === undefined || stage === undefined) continue;
    const containerId = text(entry.containerId);
    records.push({ kind, backend, server, stage, ...(containerId === undefined ? {} : { containerId }) });
  }
  const mode = isRecord(body.autoscaler) ? text(body.autoscaler.mode) : undefined;
  return { records, mode };
}

/**
 * The same records from the admin API before GET /v1/records: the scale-downs in flight from
 * GET /v1/autoscaler ("<server> <stage>") and the operator drains in progress from GET
 * /v1/backends. A finished operator drain has no record there: the drain the soak asked for
 * (its own ledger) is what says that server may stay out of rotation.
 */
export function fallbackRecords(autoscaler: unknown, backends: unknown, backend: string): { records: SidecarRecord[]; mode: string | undefined } {
  const records: SidecarRecord[] = [];
  const inFlight = isRecord(autoscaler) && Array.isArray(autoscaler.inFlight) ? (autoscaler.inFlight as unknown[]) : [];
  for (const entry of inFlight) {
    const [server, stage] = (text(entry) ?? '').split(' ');
    if (server !== undefined && server !== '' && stage !== undefined) records.push({ kind: 'retirement', backend, server, stage });
  }
  const views = Array.isArray(backends) ? (backends as unknown[]) : [];
  for (const view of views) {
    if (!isRecord(view) || !Array.isArray(view.servers)) continue;
    const name = text(view.name) ?? backend;
    for (const server of view.servers as unknown[]) {
      if (!isRecord(server) || !isRecord(server.drain)) continue;
      const state = text(server.drain.state);
      const serverName = text(server.name);
      // Only a drain in progress: this API keeps the outcome of finished drains (drained,
      // forced) after an undrain too, so those say nothing about the server now.
      if (serverName === undefined || state !== 'draining') continue;
      // A scale-down's own drain is its retirement, already listed.
      if (records.some((r) => r.kind === 'retirement' && r.server === serverName)) continue;
      records.push({ kind: 'drain', backend: name, server: serverName, stage: state });
    }
  }
  return { records, mode: isRecord(autoscaler) ? text(autoscaler.mode) : undefined };
}

/** Project names of soaks whose process is gone: their containers are leftovers. */
async function removeDeadSoakProjects(): Promise<number> {
  const listed = await docker.listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=soak`] } });
  const dead = listed.filter((c) => {
    const project = c.Labels[COMPOSE_PROJECT] ?? '';
    if (!project.startsWith(PROJECT_PREFIX)) return false;
    const pid = Number(project.slice(PROJECT_PREFIX.length).split('-')[0]);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    try {
      process.kill(pid, 0);
      return false;
    } catch {
      return true;
    }
  });
  await Promise.all(dead.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  return dead.length;
}

/**
 * Adds `option log-separate-errors` to HAProxy's defaults: requests that end in an error, a
 * retry or a redispatch are then logged at `err`, which passes the instance's `notice` filter
 * and lands in haproxy.log, while the normal traffic stays unlogged. The soak reads those lines
 * to tell which failed request was on which server (soak-load.ts); it changes nothing else.
 */
async function enableErrorLog(haproxy: LocalHaproxy, driver: DriverChoice): Promise<void> {
  const current = await readFile(haproxy.configFile, 'utf8');
  if (current.includes('option log-separate-errors')) return;
  const edited = current.replace(/^(\s*option httplog\s*)$/m, '$1\n    option log-separate-errors');
  if (edited === current) throw new Error('haproxy.cfg has no "option httplog" line to put log-separate-errors after');
  if (driver === 'runtime' || haproxy.dataplaneUrl === undefined) {
    await writeFile(haproxy.configFile, edited);
    // The instance's own reload script: checks the file, saves the server state, SIGUSR2.
    await promisify(execFile)(join(haproxy.dir, 'reload'), [], { timeout: 20_000 });
    return;
  }
  // The Data Plane API keeps the configuration it read in memory: change it through the API's
  // raw endpoint, which writes the file and reloads.
  const authorization = `Basic ${Buffer.from(`${haproxy.dataplaneUser}:${haproxy.dataplanePassword}`).toString('base64')}`;
  const client = dataplaneClientOf(haproxy);
  const version = await client.configurationVersion();
  if (!version.ok) throw new Error(`Data Plane API version: ${version.error.message}`);
  const posted = await fetch(`${haproxy.dataplaneUrl}/v3/services/haproxy/configuration/raw?version=${version.value}`, {
    method: 'POST',
    headers: { authorization, 'content-type': 'text/plain' },
    body: edited.replace(/^# _md5hash=.*\n/m, ''),
    signal: AbortSignal.timeout(30_000),
  });
  if (posted.status >= 300) throw new Error(`Data Plane API raw configuration: ${posted.status} ${await posted.text()}`);
}

function dataplaneClientOf(haproxy: LocalHaproxy): DataplaneClient {
  if (haproxy.dataplaneUrl === undefined) throw new Error('this HAProxy instance runs without the Data Plane API');
  return createDataplaneClient({ url: haproxy.dataplaneUrl, username: haproxy.dataplaneUser, password: haproxy.dataplanePassword, timeoutMs: 5_000, retries: 1 });
}

export async function createSoakWorld(build: SidecarBuild, settings: SoakSettings): Promise<SoakWorld> {
  await removeDeadSoakProjects();
  const project = `${PROJECT_PREFIX}${process.pid}-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'hsc-soakrun-'));
  const sidecarLog = join(dir, 'sidecar.log');
  const stateFile = join(dir, 'autoscale-state.json');
  const adminToken = randomBytes(24).toString('hex');
  const port = await freePort();
  const adminUrl = `http://127.0.0.1:${port}`;
  const labels = (number: number): Record<string, string> => ({
    [COMPOSE_PROJECT]: project,
    [COMPOSE_SERVICE]: SOAK_SERVICE,
    [COMPOSE_NUMBER]: String(number),
  });
  const removeProject = async (): Promise<void> => {
    const list = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  };

  let haproxy: LocalHaproxy | undefined;
  let dockerProxy: DockerProxy | undefined;
  try {
    dockerProxy = await startDockerProxy(join(dir, 'docker.sock'), process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock');
    // One after the other: their creation times differ, as in a Compose project scaled over time.
    for (let i = 1; i <= settings.replicas; i++) {
      await startNginx({ owner: 'soak', name: `${project}-${SOAK_SERVICE}-${i}`, labels: labels(i) });
    }
    haproxy = await startLocalHaproxy({ purpose: 'soak', withDataplane: settings.driver === 'dataplane' });
    await enableErrorLog(haproxy, settings.driver);
  } catch (error) {
    await haproxy?.stop().catch(() => undefined);
    await dockerProxy?.close();
    await removeProject();
    throw error;
  }
  const local = haproxy;
  const proxy = dockerProxy;
  const client = settings.driver === 'dataplane' ? dataplaneClientOf(local) : undefined;
  const rate = settings.ratePerSecond;
  // The autoscaler is on and acts on the soak's own load. The request-rate thresholds put its
  // resting point at the pool's starting size: proportional sizing gives ceil(rate / target) =
  // ceil(3.6) = 4 for any pool size, for a measured rate within -17 %..+11 % of the paced one,
  // and the scale-down threshold (rate / 4.5 per instance) lies between what 4 and 5 replicas
  // see. So the autoscaler replaces a lost replica, retires a surplus one (through a drain), and
  // otherwise holds, while the chaos moves the pool away from 4.
  const perInstance = (share: number): string => (rate / share).toFixed(2);
  const env: Record<string, string> = {
    ...haproxyEnv(local, settings.driver),
    HSC_DOCKER_ADDRESS_MODE: 'published',
    HSC_DOCKER_SOCKET: proxy.path,
    HSC_DOCKER_COMPOSE_SERVICE: SOAK_SERVICE,
    HSC_DOCKER_COMPOSE_PROJECT: project,
    // Opt-in by the Compose rule only: no label prefix any container here carries.
    HSC_DOCKER_LABEL_PREFIX: `hsc-none-${project}`,
    HSC_DEFAULT_BACKEND: local.backend,
    HSC_HAPROXY_CHECK_INTERVAL_MS: '500',
    HSC_DRAIN_POLL_MS: String(settings.pollMs),
    HSC_DRAIN_DEADLINE_MS: String(settings.drainDeadlineMs),
    HSC_RESYNC_INTERVAL_MS: '5000',
    HSC_RECONCILE_FAILURE_BACKOFF_MS: '500',
    HSC_DOCKER_EVENTS_MIN_BACKOFF_MS: '100',
    HSC_DOCKER_EVENTS_MAX_BACKOFF_MS: '2000',
    HSC_AUTOSCALE_ENABLED: 'true',
    HSC_AUTOSCALE_DRY_RUN: 'false',
    HSC_AUTOSCALE_SERVICE: SOAK_SERVICE,
    HSC_AUTOSCALE_PROJECT: project,
    HSC_AUTOSCALE_STATE_FILE: stateFile,
    HSC_AUTOSCALE_MIN: String(settings.minReplicas),
    HSC_AUTOSCALE_MAX: String(settings.maxReplicas),
    HSC_AUTOSCALE_INTERVAL_MS: '2000',
    HSC_AUTOSCALE_DOWN_WINDOW_MS: '10000',
    HSC_AUTOSCALE_STARTUP_MS: '5000',
    // The forecast would chase the rate's wobble under chaos; recorded, not acted on.
    HSC_AUTOSCALE_FORECAST: 'shadow',
    HSC_AUTOSCALE_RPS_TARGET: perInstance(3.6),
    HSC_AUTOSCALE_RPS_DOWN: perInstance(4.5),
    HSC_AUTOSCALE_STOP_TIMEOUT_S: '10',
    HSC_HTTP_PORT: String(port),
    HSC_ADMIN_TOKEN: adminToken,
    HSC_LOG_LEVEL: 'debug',
  };

  let sidecar: SidecarProcess | undefined;
  const hscEntry = join(build.dir, 'sidecar', 'cli', 'hsc.js');

  const world: SoakWorld = {
    driver: settings.driver,
    haproxy: local,
    project,
    dir,
    sidecarLog,
    adminUrl,
    dockerProxy: proxy,
    get sidecar() {
      return sidecar;
    },
    socketPath: local.runtimeSocket,
    async startSidecar() {
      sidecar = await startSidecarProcess(build, env, sidecarLog);
      return sidecar;
    },
    async killSidecar() {
      if (sidecar === undefined) return;
      try {
        process.kill(sidecar.pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
      await sidecar.stop();
      sidecar = undefined;
    },
    async stopSidecar() {
      await sidecar?.stop();
      sidecar = undefined;
    },
    async admin(method, path, body) {
      if (sidecar === undefined) return { status: 0, body: 'the sidecar is not running' };
      return sidecar.admin(method, path, body, 10_000).catch((error: unknown) => ({ status: 0, body: String(error) }));
    },
    hsc(args) {
      return new Promise((resolve) => {
        // The token goes in the environment, never on a command line others can read.
        execFile(
          process.execPath,
          [hscEntry, '--url', adminUrl, ...args],
          { env: { ...process.env, HSC_ADMIN_TOKEN: adminToken }, timeout: 30_000 },
          (error, stdout, stderr) => {
            const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
            resolve({ code, output: `${stdout}${stderr}`.trim() });
          },
        );
      });
    },
    async containers() {
      const listed = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
      return listed
        .map((c) => ({
          id: c.Id,
          name: (c.Names[0] ?? '').replace(/^\//, ''),
          number: Number(c.Labels[COMPOSE_NUMBER]),
          state: c.State,
          health: healthOf(c.Status),
          hostPort: c.Ports.find((p) => p.PrivatePort === 80 && p.PublicPort !== undefined)?.PublicPort ?? 0,
        }))
        .sort((a, b) => a.number - b.number);
    },
    async servers() {
      return parseServersState(await socketCommand(world.socketPath, `show servers state ${local.backend}`));
    },
    async sidecarView() {
      if (sidecar === undefined) return undefined;
      const records = await world.admin('GET', '/v1/records');
      if (records.status === 200) {
        const parsed = parseRecordsBody(records.body);
        if (parsed === undefined) throw new Error(`GET /v1/records answered a body without a records list: ${JSON.stringify(records.body).slice(0, 200)}`);
        return { ...parsed, source: 'records' };
      }
      // Before the records endpoint existed: the same from the older routes.
      if (records.status !== 404) return undefined;
      const [autoscaler, backends] = await Promise.all([world.admin('GET', '/v1/autoscaler'), world.admin('GET', '/v1/backends')]);
      if (autoscaler.status !== 200 || backends.status !== 200) return undefined;
      return { ...fallbackRecords(autoscaler.body, backends.body, local.backend), source: 'fallback' };
    },
    async configuredServers() {
      if (client !== undefined) {
        const configured = await client.listServers(local.backend);
        if (!configured.ok) throw new Error(`Data Plane API: ${configured.error.message}`);
        return configured.value.map((s) => s.name).sort();
      }
      const lines = (await readFile(local.configFile, 'utf8')).split('\n').map((l) => l.trim());
      const begin = lines.indexOf(beginMarker(local.backend));
      const end = lines.indexOf(endMarker(local.backend));
      if (begin === -1 || end < begin) throw new Error('the managed region is missing from haproxy.cfg');
      return lines
        .slice(begin + 1, end)
        .filter((l) => l.startsWith('server '))
        .map((l) => l.split(/\s+/)[1] ?? '')
        .sort();
    },
    async openTransactions() {
      if (local.dataplaneUrl === undefined) return [];
      const authorization = `Basic ${Buffer.from(`${local.dataplaneUser}:${local.dataplanePassword}`).toString('base64')}`;
      const answer = await fetch(`${local.dataplaneUrl}/v3/services/haproxy/transactions`, { headers: { authorization }, signal: AbortSignal.timeout(5_000) });
      if (!answer.ok) throw new Error(`Data Plane API transactions: ${answer.status}`);
      const list: unknown = await answer.json();
      if (!Array.isArray(list)) throw new Error('Data Plane API transactions: not a list');
      return (list as unknown[]).filter((t): t is { id: string; status: string } => isRecord(t) && typeof t.id === 'string' && t.status === 'in_progress').map((t) => t.id);
    },
    dataplane: () => client,
    async masterPid() {
      return Number((await readFile(join(local.dir, 'haproxy.pid'), 'utf8')).trim());
    },
    masterCommand: (command) => socketCommand(local.masterSocket, command, 30_000),
    async close() {
      await sidecar?.stop().catch(() => undefined);
      sidecar = undefined;
      // stop() removes the instance's directory: keep its logs beside the sidecar's.
      for (const file of ['haproxy.log', 'dataplaneapi.log']) await copyFile(join(local.dir, file), join(dir, file)).catch(() => undefined);
      await local.stop().catch(() => undefined);
      await proxy.close();
      await removeProject();
    },
  };
  return world;
}
