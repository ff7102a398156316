// The environment the sidecar-process scenarios share: one HAProxy and a pool of labelled nginx
// containers that look like a Compose service (project, service, number), so the sidecar's
// discovery selects them, its autoscaler counts them as replicas and reads their CPU, and
// their servers carry the names the sidecar gives (hsc-nginx-<n>).
//
// Without the Data Plane API binary the servers are written into haproxy.cfg by hand under
// those names, which is the state a converged sidecar leaves; the sidecar then runs against a
// Data Plane API URL on the loopback where nothing listens, so every reconcile pass fails at its
// first read and writes nothing. With the binary, the sidecar adds the servers itself.
import { randomBytes } from 'node:crypto';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/scaling/docker.js';
import { waitForServers } from './haproxy.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from './sidecar-process.js';

export interface BenchPool {
  readonly haproxy: LocalHaproxy;
  readonly containers: TestContainer[];
  /** Compose project of the pool's containers. */
  readonly project: string;
  /** The discovery label prefix: `<prefix>.enable=true` opts a container in. */
  readonly labelPrefix: string;
  /** True when the sidecar writes to HAProxy through a real Data Plane API. */
  readonly withDataplane: boolean;
  /** Labels that make a container one more replica of the pool's service. */
  replicaLabels(number: number): Record<string, string>;
  /** The sidecar's environment for this pool (a new admin port each time). */
  sidecarEnv(extra?: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  startSidecar(logFile: string, extra?: Readonly<Record<string, string>>): Promise<SidecarProcess>;
  stop(): Promise<void>;
}

export async function startPool(build: SidecarBuild, replicas: number, withDataplane: boolean): Promise<BenchPool> {
  const tag = randomBytes(3).toString('hex');
  const project = `hsc-bench-${tag}`;
  const labelPrefix = `hscbench${tag}`;
  const replicaLabels = (number: number): Record<string, string> => ({
    [COMPOSE_PROJECT]: project,
    [COMPOSE_SERVICE]: 'nginx',
    [COMPOSE_NUMBER]: String(number),
    [`${labelPrefix}.enable`]: 'true',
  });
  const containers = await Promise.all(
    Array.from({ length: replicas }, (_, i) => startNginx({ owner: 'bench', name: `${project}-nginx-${i + 1}`, labels: replicaLabels(i + 1) })),
  );
  let haproxy: LocalHaproxy | undefined;
  try {
    haproxy = await startLocalHaproxy({
      purpose: 'bench',
      withDataplane,
      manualServers: withDataplane ? [] : containers.map((c, i) => ({ name: `hsc-nginx-${i + 1}`, address: '127.0.0.1', port: c.hostPort })),
    });
    const local = haproxy;
    const sidecarEnv = async (extra: Readonly<Record<string, string>> = {}): Promise<Record<string, string>> => ({
      ...(withDataplane && local.dataplaneUrl !== undefined
        ? { HSC_DATAPLANE_URL: local.dataplaneUrl, HSC_DATAPLANE_USERNAME: local.dataplaneUser, HSC_DATAPLANE_PASSWORD: local.dataplanePassword }
        : // Nothing listens there: connection refused at once, retried with backoff as in production.
          { HSC_DATAPLANE_URL: `http://127.0.0.1:${await freePort()}`, HSC_DATAPLANE_PASSWORD: randomBytes(12).toString('hex') }),
      HSC_DOCKER_ADDRESS_MODE: 'published',
      HSC_DOCKER_LABEL_PREFIX: labelPrefix,
      // Opt-in by label only: no other Compose "nginx" on this machine is selected.
      HSC_DOCKER_COMPOSE_SERVICE: `none-${labelPrefix}`,
      HSC_DEFAULT_BACKEND: local.backend,
      HSC_HAPROXY_METRICS_URL: local.metricsUrl,
      HSC_AUTOSCALE_SERVICE: 'nginx',
      HSC_AUTOSCALE_PROJECT: project,
      HSC_AUTOSCALE_INTERVAL_MS: '1000',
      // Decide every second, act never: the benchmark's load must not start or stop containers.
      HSC_AUTOSCALE_DRY_RUN: 'true',
      HSC_HTTP_PORT: String(await freePort()),
      ...extra,
    });
    const pool: BenchPool = {
      haproxy: local,
      containers,
      project,
      labelPrefix,
      withDataplane,
      replicaLabels,
      sidecarEnv,
      startSidecar: async (logFile, extra) => startSidecarProcess(build, await sidecarEnv(extra), logFile),
      stop: async () => {
        await local.stop();
        await Promise.all(containers.map((c) => c.remove()));
      },
    };
    if (withDataplane) {
      // Let the sidecar put the pool into HAProxy once; the servers stay when it stops.
      const sidecar = await pool.startSidecar('/dev/null');
      try {
        await waitForServers(local, 'the sidecar adding the pool', (s) => s.filter((x) => x.state === 'UP').length >= replicas, 60_000);
      } finally {
        await sidecar.stop();
      }
    } else {
      await waitForServers(local, 'the pool UP', (s) => s.filter((x) => x.state === 'UP').length >= replicas, 20_000);
    }
    return pool;
  } catch (error) {
    await haproxy?.stop();
    await Promise.all(containers.map((c) => c.remove()));
    throw error;
  }
}
