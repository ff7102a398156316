// The environment the sidecar-process scenarios share: one HAProxy (3.0 unless HSC_HAPROXY_SERIES
// or HSC_HAPROXY_BIN says otherwise; with the Data Plane API beside it for the dataplane driver)
// and a pool of nginx containers labelled like a Compose service (project, service, number), so
// the sidecar's discovery selects them, its autoscaler counts them as replicas, copies them to
// scale up and reads their CPU, and their servers carry the names the sidecar gives (hsc-nginx-<n>).
//
// Every server in HAProxy is the sidecar's doing: a first sidecar process adds the pool through
// the chosen driver (the runtime driver writes its managed region, the Data Plane API driver its
// API), and the servers stay when it stops.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { waitForServers } from './haproxy.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from './sidecar-process.js';

/** The Compose service name of every pool. */
export const POOL_SERVICE = 'nginx';

export interface BenchPool {
  readonly haproxy: LocalHaproxy;
  readonly driver: DriverChoice;
  /** The replicas the pool started with (the sidecar may start more: see replicasNow). */
  readonly containers: TestContainer[];
  /** Compose project of the pool's containers. */
  readonly project: string;
  /** The discovery label prefix: `<prefix>.enable=true` opts a container in. */
  readonly labelPrefix: string;
  /** The bearer token of the sidecars' admin API. */
  readonly adminToken: string;
  /** Labels that make a container one more replica of the pool's service. */
  replicaLabels(number: number): Record<string, string>;
  /** Running containers of the pool's project (the sidecar's copies included): id → hostname. */
  replicasNow(): Promise<Map<string, string>>;
  /** The sidecar's environment for this pool (a new admin port each time). */
  sidecarEnv(extra?: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  startSidecar(logFile: string, extra?: Readonly<Record<string, string>>): Promise<SidecarProcess>;
  stop(): Promise<void>;
}

export interface PoolOptions {
  /** The Data Plane API's delay before a reload (localenv's default is 200 ms). */
  readonly reloadDelayMs?: number;
}

export async function startPool(build: SidecarBuild, replicas: number, driver: DriverChoice, options: PoolOptions = {}): Promise<BenchPool> {
  const tag = randomBytes(3).toString('hex');
  const project = `hsc-bench-${tag}`;
  const labelPrefix = `hscbench${tag}`;
  const adminToken = randomBytes(24).toString('hex');
  const replicaLabels = (number: number): Record<string, string> => ({
    [COMPOSE_PROJECT]: project,
    [COMPOSE_SERVICE]: POOL_SERVICE,
    [COMPOSE_NUMBER]: String(number),
    [`${labelPrefix}.enable`]: 'true',
  });
  const removeProject = async (): Promise<void> => {
    const list = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  };
  const containers: TestContainer[] = [];
  let haproxy: LocalHaproxy | undefined;
  try {
    // One after the other: their creation times differ, as in a Compose project scaled up over time.
    for (let i = 1; i <= replicas; i++) {
      containers.push(await startNginx({ owner: 'bench', name: `${project}-${POOL_SERVICE}-${i}`, labels: replicaLabels(i) }));
    }
    haproxy = await startLocalHaproxy({
      purpose: 'bench',
      withDataplane: driver === 'dataplane',
      ...(options.reloadDelayMs === undefined ? {} : { reloadDelayMs: options.reloadDelayMs }),
    });
    const local = haproxy;
    const sidecarEnv = async (extra: Readonly<Record<string, string>> = {}): Promise<Record<string, string>> => ({
      ...haproxyEnv(local, driver),
      HSC_DOCKER_ADDRESS_MODE: 'published',
      HSC_DOCKER_LABEL_PREFIX: labelPrefix,
      // Opt-in by label only: no other Compose "nginx" on this machine is selected.
      HSC_DOCKER_COMPOSE_SERVICE: `none-${labelPrefix}`,
      HSC_DEFAULT_BACKEND: local.backend,
      HSC_AUTOSCALE_SERVICE: POOL_SERVICE,
      HSC_AUTOSCALE_PROJECT: project,
      HSC_AUTOSCALE_STATE_FILE: join(local.dir, 'autoscale-state.json'),
      HSC_AUTOSCALE_INTERVAL_MS: '1000',
      // Decide every second, act never, unless a scenario says otherwise.
      HSC_AUTOSCALE_DRY_RUN: 'true',
      HSC_ADMIN_TOKEN: adminToken,
      HSC_HTTP_PORT: String(await freePort()),
      ...extra,
    });
    const pool: BenchPool = {
      haproxy: local,
      driver,
      containers,
      project,
      labelPrefix,
      adminToken,
      replicaLabels,
      async replicasNow() {
        const list = await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
        const infos = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
        return new Map(infos.map((i) => [i.Id, i.Config.Hostname]));
      },
      sidecarEnv,
      startSidecar: async (logFile, extra) => startSidecarProcess(build, await sidecarEnv(extra), logFile),
      stop: async () => {
        await local.stop();
        await removeProject();
      },
    };
    // The sidecar puts the pool into HAProxy once; the servers stay when it stops.
    const sidecar = await pool.startSidecar('/dev/null', { HSC_AUTOSCALE_ENABLED: 'false' });
    try {
      await waitForServers(local, 'the sidecar adding the pool', (s) => s.filter((x) => x.state === 'UP').length >= replicas, 60_000);
    } finally {
      await sidecar.stop();
    }
    return pool;
  } catch (error) {
    await haproxy?.stop();
    await removeProject();
    throw error;
  }
}
