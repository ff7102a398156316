// A plain Compose recreate under the sidecar: `docker-compose up -d --force-recreate` stops every
// replica of the service at once and only then starts the new ones, so for a moment no replica
// runs. The sidecar must not make that worse than HAProxy with static servers would: the last
// replica to stop stays in rotation and its server is held until a replacement serves, so HAProxy
// holds requests in its retries instead of answering 503 "no server" at once, and the new replicas
// take the same server names. The sidecar runs as its own process beside a real HAProxy, a real
// docker-compose project reached at its containers' addresses, under bounded load. Once per driver
// (the Data Plane API one where its binary exists, reported as skipped otherwise). What it costs
// in failed requests against static servers is the `deploy` and `deploy-static` benchmarks'.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../../bench/lib/sidecar-process.js';
import { docker, OWNER_LABEL } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary, readPinnedVersions } from '../../devenv/versions.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import { eventually } from '../support/http.js';
import { startLoad } from '../support/load.js';

const binary = dataplaneApiBinary();
const REPLICAS = 3;
const run = promisify(execFile);

interface ServerRow {
  readonly name: string;
  readonly address: string;
  /** srv_admin_state: 0 is ready (in rotation); drain and maintenance set bits. */
  readonly adminState: number;
}

describe.each<DriverChoice>(['runtime', 'dataplane'])('a Compose recreate of every replica (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const project = `hsc-test-recreate-${randomBytes(3).toString('hex')}`;
  const network = `${project}_default`;
  let dir: string;
  let composeFile: string;
  let build: SidecarBuild;
  let haproxy: LocalHaproxy;
  let sidecar: SidecarProcess | undefined;

  const compose = (...args: string[]): Promise<unknown> => run('docker-compose', ['-p', project, '-f', composeFile, ...args], { timeout: 120_000 });
  const servers = async (): Promise<ServerRow[]> =>
    (await haproxy.runtime(`show servers state ${haproxy.backend}`))
      .split('\n')
      .slice(2)
      .map((line) => line.split(' '))
      .filter((f) => isOwnedServerName(f[3] ?? ''))
      .map((f) => ({ name: f[3] ?? '', address: f[4] ?? '', adminState: Number(f[6]) }));
  /**
   * The same, tried again for up to 2 s when HAProxy refuses the connection: the sampler below
   * opens one every 20 ms beside the sidecar's own, and HAProxy 2.6 refused one now and then
   * (its stats socket's default `maxconn` is 10).
   */
  const serversSoon = async (): Promise<ServerRow[]> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await servers();
      } catch (error) {
        if (attempt >= 20) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  };
  const replicas = async (): Promise<Array<{ id: string; address: string }>> =>
    (await docker.listContainers({ filters: { label: [`com.docker.compose.project=${project}`] } })).map((c) => ({
      id: c.Id,
      address: c.NetworkSettings?.Networks?.[network]?.IPAddress ?? '',
    }));

  beforeAll(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), 'hsc-test-recreate-'));
    composeFile = join(dir, 'compose.yaml');
    await writeFile(
      composeFile,
      ["version: '2.4'", 'services:', '  web:', `    image: ${readPinnedVersions().NGINX_IMAGE}`, `    labels: { ${OWNER_LABEL}: test }`, ''].join('\n'),
    );
    [build, haproxy] = await Promise.all([buildSidecar('test'), startLocalHaproxy({ withDataplane: driver === 'dataplane' })]);
    await compose('up', '-d', '--scale', `web=${REPLICAS}`);
    sidecar = await startSidecarProcess(
      build,
      {
        ...haproxyEnv(haproxy, driver),
        HSC_DOCKER_ADDRESS_MODE: 'network',
        HSC_DOCKER_NETWORK: network,
        HSC_DOCKER_COMPOSE_SERVICE: 'web',
        HSC_DOCKER_COMPOSE_PROJECT: project,
        HSC_DOCKER_LABEL_PREFIX: `hsc-none-${project}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_AUTOSCALE_STATE_FILE: join(dir, 'state.json'),
        HSC_ADMIN_TOKEN: randomBytes(16).toString('hex'),
        HSC_HTTP_PORT: String(await freePort()),
        HSC_LOG_LEVEL: 'debug',
      },
      join(dir, 'sidecar.log'),
    );
    expect(await eventually(async () => (await serversSoon()).filter((s) => s.adminState === 0).length === REPLICAS, 60_000)).toBe(true);
  }, 240_000);

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await compose('down', '--timeout', '5').catch(() => undefined);
    await haproxy?.stop();
    await build?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(skip)(
    'keeps a server in rotation all along, and the new replicas serve under the same names',
    async () => {
      const before = (await serversSoon()).map((s) => s.name).sort();
      const oldIds = new Set((await replicas()).map((r) => r.id));
      const load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 3, maxDurationMs: 120_000, maxRequests: 2_000_000 });
      // HAProxy's servers every 20 ms: how many were in rotation (admin state ready), at the least.
      let sampling = true;
      let samples = 0;
      let fewestInRotation = Number.POSITIVE_INFINITY;
      const sampler = (async () => {
        while (sampling) {
          // A reload (the Data Plane API's) may refuse one read: that sample is skipped.
          const now = await servers().catch(() => undefined);
          if (now !== undefined) {
            samples++;
            fewestInRotation = Math.min(fewestInRotation, now.filter((s) => s.adminState === 0).length);
          }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      try {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await compose('up', '-d', '--force-recreate', '--scale', `web=${REPLICAS}`);
        // The new replicas, every one a server at its own address, in rotation; no old one left.
        const settled = await eventually(
          async () => {
            const [running, now] = await Promise.all([replicas(), serversSoon()]);
            const addresses = new Set(running.map((r) => r.address));
            return (
              running.length === REPLICAS &&
              running.every((r) => !oldIds.has(r.id)) &&
              now.length === REPLICAS &&
              now.every((s) => s.adminState === 0 && addresses.has(s.address))
            );
          },
          60_000,
          100,
        );
        expect(settled, JSON.stringify({ replicas: await replicas(), servers: await serversSoon() })).toBe(true);
      } finally {
        sampling = false;
        await sampler;
      }
      const report = await load.stop();
      expect(samples).toBeGreaterThan(20);
      expect(fewestInRotation).toBeGreaterThanOrEqual(1);
      const log = await readFile(join(dir, 'sidecar.log'), 'utf8');
      expect((await serversSoon()).map((s) => s.name).sort(), log.split('\n').slice(-60).join('\n')).toEqual(before);
      expect(log).toContain('stays in rotation although its container is stopping');
      // Requests met the gap between the old replicas and the new (HAProxy retried them while
      // it lasted): most answered, and the load went on through the new replicas.
      expect(report.ok).toBeGreaterThan(0);
      console.info(`recreate (${driver}): ${report.sent} requests, failures ${JSON.stringify(report.failures)}`);
    },
    180_000,
  );
});
