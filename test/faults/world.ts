// The stage every fault plays on: a real HAProxy (with the Data Plane API for the dataplane
// driver), a Compose-style pool of nginx replicas, the sidecar as its own process (the build the
// faults' global setup made), a constant paced load through HAProxy from 127.0.0.1, and the
// checks that tell whether HAProxy, Docker and the sidecar agree: the same servers as running
// replicas, every one ready and UP, no stray container, no scale-down left on record, the file
// HAProxy loads (runtime) or the Data Plane API's configuration (dataplane) holding the same
// servers, and no transaction left open.
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import { copyFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { metricSum, startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../../bench/lib/sidecar-process.js';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import type { Retirement } from '../../sidecar/records/retirement.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { parsePrometheusText } from '../../sidecar/haproxy-metrics/exporter.js';
import { beginMarker, endMarker } from '../../sidecar/runtime/config-file.js';
import { LOAD_BLIND_AUTOSCALER } from '../support/autoscale-env.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import type { LoadReport } from '../support/load.js';
import { startPacedLoad } from '../support/paced-load.js';
import { runtimeServerStates } from '../support/runtime.js';
import { recordVerdict, type Verdict } from './verdicts.js';

export const SERVICE = 'web';
/** The paced load every fault runs under: requests per second, and its bounds. */
const LOAD_RATE = 20;
const LOAD_MAX_MS = 240_000;

export interface WorldOptions {
  readonly driver: DriverChoice;
  /** Replicas started before the sidecar. */
  readonly replicas: number;
  /** The autoscaler's minimum and maximum; undefined runs the sidecar without autoscaling. */
  readonly autoscale?: { readonly min: number; readonly max: number };
  /** Reload delay of the Data Plane API (ms). */
  readonly reloadDelayMs?: number;
  /**
   * Another Docker Engine for the replicas and the sidecar (its client and socket), whose
   * containers HAProxy reaches on its default bridge network (address mode "network").
   */
  readonly engine?: { readonly client: Docker; readonly socket: string };
}

export interface FaultLoad {
  stop(): Promise<LoadReport>;
  /** Send times of the requests that failed, to tell those on a crashed container from the rest. */
  failureTimes(): readonly number[];
}

export interface ProjectContainer {
  readonly id: string;
  readonly number: number;
  readonly state: string;
  readonly healthy: boolean;
  readonly hostPort: number;
  /** Its address on the default bridge network. */
  readonly ip: string;
}

export interface World {
  readonly driver: DriverChoice;
  readonly haproxy: LocalHaproxy;
  readonly project: string;
  readonly dir: string;
  readonly stateFile: string;
  readonly sidecar: SidecarProcess | undefined;
  /** Starts the sidecar process with the world's settings, `extra` on top. */
  startSidecar(extra?: Readonly<Record<string, string>>): Promise<SidecarProcess>;
  /** SIGKILL: nothing of the sidecar's own shutdown runs. */
  killSidecar(): Promise<void>;
  /** SIGTERM, as an operator's restart does. */
  stopSidecar(): Promise<void>;
  addReplica(): Promise<TestContainer>;
  /**
   * One replica stopped (`docker stop`, behind the sidecar's back: no drain asked first) and
   * removed, one started: the pool keeps its size. A graceful stop: no request may fail on it
   * (the sidecar drains it at Docker's `kill` event, HAProxy retries a refused connection), so
   * no window excuses any, unlike a crash (crashWindow).
   */
  replaceOne(): Promise<void>;
  /**
   * For a replica that just died (`at`): the window in which requests may have been on it, until
   * HAProxy's exporter shows its server not UP or gone (its checks: every 500 ms, two to fail;
   * longer on a loaded machine), plus the requests already sent by then.
   */
  crashWindow(number: number, at: number): Promise<{ readonly from: number; readonly to: number }>;
  containers(): Promise<ProjectContainer[]>;
  retirements(): Promise<Retirement[]>;
  startLoad(): FaultLoad;
  /** Everything that disagrees now between HAProxy, Docker and the sidecar; empty when they agree. */
  disagreements(expected: number, options?: CheckOptions): Promise<string[]>;
  /** Polls disagreements() from `since` until empty: how long after `since` they agreed, or null. */
  converge(expected: number, since: number, timeoutMs: number, options?: CheckOptions): Promise<{ ms: number | null; problems: string[] }>;
  /** After convergence and one resync: disagreements plus the sidecar's own account (drift, readiness, states). */
  finalCheck(expected: number, options?: CheckOptions): Promise<string[]>;
  record(verdict: Omit<Verdict, 'driver' | 'haproxy'>): void;
  /**
   * Ends a fault: converge(), finalCheck(), the load stopped, its failures split by `window`
   * (those on a dead or stopped replica), and the verdict recorded; the test asserts on the result.
   */
  conclude(fault: Conclude): Promise<Conclusion>;
  close(): Promise<void>;
}

export interface Conclude {
  readonly fault: string;
  readonly expected: number;
  /** When the fault ended: convergence is timed from here. */
  readonly since: number;
  readonly load: FaultLoad;
  /** Failures sent in this window were on a replica that died or was stopped (counted apart). */
  readonly window?: { readonly from: number; readonly to: number };
  readonly check?: CheckOptions;
  /** Requests of the test's own beside the load (slow ones), and how many of them failed. */
  readonly extra?: { readonly requests: number; readonly failed: number; readonly onCrashed: number };
  readonly notes: (conclusion: Conclusion) => string | Promise<string>;
}

export interface Conclusion {
  readonly convergeMs: number | null;
  readonly problems: string[];
  readonly report: LoadReport;
  /** Failed requests, not counting those in the window. */
  readonly failed: number;
  readonly failedOnCrashed: number;
}

export interface CheckOptions {
  /** Transactions another writer left open, which the sidecar has no business closing. */
  readonly foreignTransactions?: readonly string[];
  /** Server names someone other than the sidecar owns in the backend. */
  readonly foreignServers?: readonly string[];
}

export function sidecarBuild(): SidecarBuild {
  const dir = inject('faultsSidecarBuild');
  return { dir, entry: join(dir, 'sidecar', 'main.js'), remove: () => Promise.resolve() };
}

/** The managed region's server names in the file HAProxy loads. */
export async function regionServers(configFile: string, backend: string): Promise<string[]> {
  const lines = (await readFile(configFile, 'utf8')).split('\n').map((l) => l.trim());
  const begin = lines.indexOf(beginMarker(backend));
  const end = lines.indexOf(endMarker(backend));
  if (begin === -1 || end < begin) return ['(no managed region)'];
  return lines
    .slice(begin + 1, end)
    .filter((l) => l.startsWith('server '))
    .map((l) => l.split(/\s+/)[1] ?? '')
    .sort();
}

export async function createWorld(options: WorldOptions): Promise<World> {
  const run = randomBytes(3).toString('hex');
  const project = `hsc-test-${run}`;
  const dir = await mkdtemp(join(tmpdir(), 'hsc-test-fault-'));
  const stateFile = join(dir, 'retirements.json');
  const logFile = join(dir, 'sidecar.log');
  const build = sidecarBuild();
  const token = randomBytes(16).toString('hex');
  const haproxy = await startLocalHaproxy({ withDataplane: options.driver === 'dataplane', ...(options.reloadDelayMs === undefined ? {} : { reloadDelayMs: options.reloadDelayMs }) });
  const client = options.driver === 'dataplane' ? dataplaneClientFor(haproxy) : undefined;
  let sidecar: SidecarProcess | undefined;
  let port: number | undefined;
  let nextNumber = 1;
  const engine = options.engine?.client ?? docker;

  const addReplica = async (): Promise<TestContainer> => {
    const used = new Set((await containers()).map((c) => c.number));
    while (used.has(nextNumber)) nextNumber++;
    const number = nextNumber++;
    return startNginx({
      ...(options.engine === undefined ? {} : { client: options.engine.client }),
      name: `${project}-${SERVICE}-${number}`,
      labels: { [COMPOSE_PROJECT]: project, [COMPOSE_SERVICE]: SERVICE, [COMPOSE_NUMBER]: String(number) },
    });
  };

  const containers = async (): Promise<ProjectContainer[]> => {
    const listed = await engine.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    return listed.map((c) => ({
      ip: c.NetworkSettings.Networks.bridge?.IPAddress ?? '',
      id: c.Id,
      number: Number(c.Labels[COMPOSE_NUMBER]),
      state: c.State,
      healthy: c.Status.includes('(healthy)'),
      hostPort: c.Ports.find((p) => p.PrivatePort === 80 && p.PublicPort !== undefined)?.PublicPort ?? 0,
    }));
  };

  const retirements = async (): Promise<Retirement[]> => {
    const text = await readFile(stateFile, 'utf8').catch(() => '');
    return text === '' ? [] : (JSON.parse(text) as { retirements: Retirement[] }).retirements;
  };

  const env = async (extra: Readonly<Record<string, string>>): Promise<Record<string, string>> => {
    port ??= await freePort();
    const autoscale: Record<string, string> =
      options.autoscale === undefined
        ? { HSC_AUTOSCALE_ENABLED: 'false' }
        : {
            HSC_AUTOSCALE_ENABLED: 'true',
            HSC_AUTOSCALE_SERVICE: SERVICE,
            HSC_AUTOSCALE_PROJECT: project,
            HSC_AUTOSCALE_STATE_FILE: stateFile,
            // The fault's own load is never a reason to scale: the count is min/max's to set.
            ...LOAD_BLIND_AUTOSCALER,
            HSC_AUTOSCALE_MIN: String(options.autoscale.min),
            HSC_AUTOSCALE_MAX: String(options.autoscale.max),
            HSC_AUTOSCALE_STARTUP_MS: '5000',
            HSC_AUTOSCALE_CPU_TARGET: '64',
            HSC_AUTOSCALE_CPU_DOWN: '64',
          };
    return {
      ...haproxyEnv(haproxy, options.driver),
      ...(options.engine === undefined
        ? { HSC_DOCKER_ADDRESS_MODE: 'published' }
        : { HSC_DOCKER_ADDRESS_MODE: 'network', HSC_DOCKER_NETWORK: 'bridge', HSC_DOCKER_SOCKET: options.engine.socket }),
      HSC_DOCKER_COMPOSE_SERVICE: SERVICE,
      HSC_DOCKER_COMPOSE_PROJECT: project,
      HSC_DOCKER_LABEL_PREFIX: `hsc-none-${run}`,
      HSC_DEFAULT_BACKEND: haproxy.backend,
      HSC_HAPROXY_CHECK_INTERVAL_MS: '500',
      HSC_DRAIN_POLL_MS: '200',
      HSC_DRAIN_DEADLINE_MS: '30000',
      HSC_RECONCILE_DEBOUNCE_MS: '100',
      HSC_RECONCILE_READINESS_RETRY_MS: '500',
      HSC_RECONCILE_FAILURE_BACKOFF_MS: '250',
      HSC_RESYNC_INTERVAL_MS: '2000',
      HSC_DOCKER_EVENTS_MIN_BACKOFF_MS: '100',
      HSC_DOCKER_EVENTS_MAX_BACKOFF_MS: '2000',
      HSC_HTTP_PORT: String(port),
      HSC_ADMIN_TOKEN: token,
      HSC_LOG_LEVEL: 'debug',
      ...autoscale,
      ...extra,
    };
  };

  const openTransactions = async (): Promise<string[]> => {
    if (haproxy.dataplaneUrl === undefined) return [];
    const authorization = `Basic ${Buffer.from(`${haproxy.dataplaneUser}:${haproxy.dataplanePassword}`).toString('base64')}`;
    const answer = await fetch(`${haproxy.dataplaneUrl}/v3/services/haproxy/transactions`, { headers: { authorization }, signal: AbortSignal.timeout(5_000) });
    const list = (await answer.json()) as Array<{ id: string; status: string }>;
    return list.filter((t) => t.status === 'in_progress').map((t) => t.id);
  };

  const disagreements = async (expected: number, check: CheckOptions = {}): Promise<string[]> => {
    const problems: string[] = [];
    const all = await containers();
    const running = all.filter((c) => c.state === 'running');
    const stray = all.filter((c) => c.state !== 'running');
    if (stray.length > 0) problems.push(`containers not running: ${stray.map((c) => `#${c.number} ${c.state}`).join(', ')}`);
    if (running.length !== expected) problems.push(`${running.length} replicas running, expected ${expected}`);
    // Published ports on the loopback, or the container's own address on the bridge network.
    const wanted = new Map(running.map((c) => [`hsc-${SERVICE}-${c.number}`, options.engine === undefined ? `127.0.0.1:${c.hostPort}` : `${c.ip}:80`]));
    const foreign = new Set(check.foreignServers ?? []);
    const states = (await runtimeServerStates(haproxy)).filter((s) => !foreign.has(s.name));
    const strangers = states.filter((s) => !isOwnedServerName(s.name));
    if (strangers.length > 0) problems.push(`servers nobody owns: ${strangers.map((s) => s.name).join(', ')}`);
    const owned = states.filter((s) => isOwnedServerName(s.name));
    for (const s of owned) {
      const target = wanted.get(s.name);
      if (target === undefined) problems.push(`${s.name} is a server without a running replica`);
      else if (`${s.address}:${s.port}` !== target) problems.push(`${s.name} points at ${s.address}:${s.port}, its replica is at ${target}`);
      if (s.admin !== 'ready') problems.push(`${s.name} left in ${s.admin}`);
      else if (s.operational !== 2) problems.push(`${s.name} not UP (${s.operational})`);
    }
    for (const name of wanted.keys()) if (!owned.some((s) => s.name === name)) problems.push(`replica ${name} is not a server`);
    const names = owned.map((s) => s.name).sort();
    if (options.driver === 'runtime') {
      const region = await regionServers(haproxy.configFile, haproxy.backend);
      if (JSON.stringify(region) !== JSON.stringify(names)) problems.push(`file region ${JSON.stringify(region)} ≠ running ${JSON.stringify(names)}`);
    } else if (client !== undefined) {
      const configured = await client.listServers(haproxy.backend);
      if (!configured.ok) problems.push(`Data Plane API: ${configured.error.message}`);
      else {
        const listed = configured.value.map((s) => s.name).filter((n) => !foreign.has(n)).sort();
        if (JSON.stringify(listed) !== JSON.stringify(names)) problems.push(`configuration ${JSON.stringify(listed)} ≠ running ${JSON.stringify(names)}`);
      }
      const open = (await openTransactions()).filter((id) => !(check.foreignTransactions ?? []).includes(id));
      if (open.length > 0) problems.push(`open transactions: ${open.join(', ')}`);
    }
    if (options.autoscale !== undefined) {
      const records = await retirements();
      if (records.length > 0) problems.push(`retirements on record: ${records.map((r) => `${r.server} ${r.stage}`).join(', ')}`);
    }
    return problems;
  };

  /** Whether HAProxy's exporter shows the server UP; undefined when it cannot be read. */
  const serving = async (server: string): Promise<boolean | undefined> => {
    const text = await fetch(haproxy.metricsUrl, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text(), () => undefined);
    if (text === undefined) return undefined;
    return parsePrometheusText(text).some(
      (m) => m.name === 'haproxy_server_status' && m.labels.proxy === haproxy.backend && m.labels.server === server && m.labels.state === 'UP' && m.value === 1,
    );
  };
  const crashWindow = async (number: number, at: number): Promise<{ from: number; to: number }> => {
    const server = `hsc-${SERVICE}-${number}`;
    const deadline = at + 20_000;
    while (Date.now() < deadline && (await serving(server)) !== false) await new Promise((resolve) => setTimeout(resolve, 50));
    // Requests sent just before are still answered (or not) after.
    return { from: at - 100, to: Date.now() + 300 };
  };

  const world: World = {
    driver: options.driver,
    haproxy,
    project,
    dir,
    stateFile,
    get sidecar() {
      return sidecar;
    },
    async startSidecar(extra = {}) {
      sidecar = await startSidecarProcess(build, await env(extra), logFile);
      return sidecar;
    },
    async killSidecar() {
      if (sidecar === undefined) return;
      process.kill(sidecar.pid, 'SIGKILL');
      await sidecar.stop();
      sidecar = undefined;
    },
    async stopSidecar() {
      await sidecar?.stop();
      sidecar = undefined;
    },
    addReplica,
    async replaceOne() {
      const [oldest] = (await containers()).filter((c) => c.state === 'running').sort((a, b) => a.number - b.number);
      if (oldest === undefined) throw new Error('no replica to replace');
      await addReplica();
      await engine.getContainer(oldest.id).stop({ t: 10 });
      await engine.getContainer(oldest.id).remove({ force: true });
    },
    crashWindow,
    containers,
    retirements,
    startLoad() {
      const failures: number[] = [];
      const load = startPacedLoad(`${haproxy.frontendUrl}/`, {
        ratePerSecond: LOAD_RATE,
        maxDurationMs: LOAD_MAX_MS,
        maxRequests: (LOAD_RATE * LOAD_MAX_MS) / 1000,
        onAnswer: (status, sentAt) => {
          if (status < 200 || status >= 300) failures.push(sentAt);
        },
      });
      return { stop: () => load.stop(), failureTimes: () => [...failures] };
    },
    disagreements,
    async converge(expected, since, timeoutMs, check) {
      let problems: string[] = [];
      const deadline = since + timeoutMs;
      for (;;) {
        problems = await disagreements(expected, check).catch((error: unknown) => [`check failed: ${String(error)}`]);
        if (problems.length === 0) return { ms: Date.now() - since, problems };
        if (Date.now() > deadline) return { ms: null, problems };
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    },
    async finalCheck(expected, check) {
      // One resync later (2 s), the sidecar's own gauges describe the converged pass.
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const problems = await disagreements(expected, check);
      if (sidecar !== undefined) {
        const samples = await sidecar.metrics();
        const drift = metricSum(samples, 'hsc_drift_servers', { backend: haproxy.backend });
        if (drift !== 0) problems.push(`the sidecar reports a drift of ${drift}`);
        for (const state of ['drain', 'maint']) {
          const n = metricSum(samples, 'hsc_servers', { backend: haproxy.backend, state });
          if (n !== 0) problems.push(`the sidecar reports ${n} server(s) in ${state}`);
        }
        const ready = await fetch(`${sidecar.adminUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.status, () => 0);
        if (ready !== 200) problems.push(`the sidecar's /readyz answers ${ready}`);
        if (options.autoscale !== undefined) {
          const state = (await sidecar.admin('GET', '/v1/autoscaler')).body as { inFlight?: string[] };
          if ((state.inFlight ?? []).length > 0) problems.push(`the sidecar shows scale-downs in flight: ${JSON.stringify(state.inFlight)}`);
        }
      }
      return problems;
    },
    record(verdict) {
      recordVerdict(inject('faultsVerdictFile'), { ...verdict, driver: options.driver, haproxy: haproxy.haproxyVersion });
    },
    async conclude(fault) {
      const { ms } = await world.converge(fault.expected, fault.since, 60_000, fault.check);
      const problems = await world.finalCheck(fault.expected, fault.check);
      const report = await fault.load.stop();
      const window = fault.window ?? { from: 0, to: 0 };
      const { inside, outside } = splitFailures(fault.load.failureTimes(), window.from, window.to);
      const conclusion: Conclusion = {
        convergeMs: ms,
        problems,
        report,
        failed: outside + (fault.extra?.failed ?? 0),
        failedOnCrashed: inside + (fault.extra?.onCrashed ?? 0),
      };
      world.record({
        fault: fault.fault,
        requests: report.sent + (fault.extra?.requests ?? 0),
        failed: conclusion.failed,
        failedOnCrashed: conclusion.failedOnCrashed,
        convergeMs: ms,
        problems,
        notes: await fault.notes(conclusion),
      });
      return conclusion;
    },
    async close() {
      await sidecar?.stop();
      sidecar = undefined;
      const logDir = process.env.HSC_TEST_SIDECAR_LOG_DIR;
      if (logDir !== undefined && logDir !== '') {
        await mkdir(logDir, { recursive: true });
        await copyFile(logFile, join(logDir, `fault-${options.driver}-${run}.log`)).catch(() => undefined);
        await copyFile(join(haproxy.dir, 'haproxy.log'), join(logDir, `fault-${options.driver}-${run}-haproxy.log`)).catch(() => undefined);
        await copyFile(join(haproxy.dir, 'dataplaneapi.log'), join(logDir, `fault-${options.driver}-${run}-dataplaneapi.log`)).catch(() => undefined);
      }
      await haproxy.stop();
      const all = await engine.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
      await Promise.all(all.map((c) => engine.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
      await rm(dir, { recursive: true, force: true });
    },
  };
  return world;
}

/** Failures sent in [from, to) and the rest. */
function splitFailures(times: readonly number[], from: number, to: number): { inside: number; outside: number } {
  const inside = times.filter((t) => t >= from && t < to).length;
  return { inside, outside: times.length - inside };
}
