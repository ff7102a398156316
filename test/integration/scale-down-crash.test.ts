// A scale-down survives the sidecar dying at any stage. The sidecar runs as its own process
// (compiled as `npm run build` does) beside a real HAProxy and real containers, under constant
// bounded load: killed with SIGKILL while its victim drains, and restarted over the state a crash
// leaves once the drain is over and once the server is gone, it finishes the retirement every
// time: that container stopped, no other, not one failed request. Once per HAProxy driver (the
// Data Plane API one where its binary exists, reported as skipped otherwise).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../../bench/lib/sidecar-process.js';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import type { Retirement } from '../../sidecar/records/retirement.js';
import type { HaproxyDriver } from '../../sidecar/driver/port.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import { LOAD_BLIND_AUTOSCALER } from '../support/autoscale-env.js';
import { eventually, get } from '../support/http.js';
import { startLoad, type RunningLoad } from '../support/load.js';
import { driverFor, runtimeServerNames } from '../support/runtime.js';

const binary = dataplaneApiBinary();
const check = { intervalMs: 1000, fall: 2, rise: 1 };

describe.each<DriverChoice>(['runtime', 'dataplane'])('a scale-down survives SIGKILL of the sidecar at each stage (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const run = randomBytes(3).toString('hex');
  const service = `web${run}`;
  const project = `hsc-test-${run}`;
  let build: SidecarBuild;
  let haproxy: LocalHaproxy;
  let dir: string;
  let stateFile: string;
  let sidecar: SidecarProcess | undefined;
  let load: RunningLoad;
  let writer: HaproxyDriver;
  let nextNumber = 1;
  const replicas = new Map<string, TestContainer>();

  const serverOf = new Map<string, string>();
  const addReplica = async (): Promise<TestContainer> => {
    const number = nextNumber++;
    const container = await startNginx({
      name: `${project}-${service}-${number}`,
      labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service, 'com.docker.compose.container-number': String(number) },
    });
    replicas.set(container.id, container);
    serverOf.set(container.id, `hsc-${service}-${number}`);
    return container;
  };
  const running = async (id: string): Promise<boolean> =>
    docker
      .getContainer(id)
      .inspect()
      .then((info) => info.State.Running, () => false);
  const records = async (): Promise<Retirement[]> =>
    ((JSON.parse(await readFile(stateFile, 'utf8').catch(() => '{"retirements":[]}')) as { retirements: Retirement[] }).retirements);
  const owned = async (): Promise<string[]> => (await runtimeServerNames(haproxy)).filter(isOwnedServerName);

  const startSidecar = async (extra: Record<string, string> = {}): Promise<SidecarProcess> => {
    sidecar = await startSidecarProcess(
      build,
      {
        ...haproxyEnv(haproxy, driver),
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_COMPOSE_SERVICE: service,
        HSC_DOCKER_LABEL_PREFIX: `hsc-none-${run}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_SERVICE: service,
        HSC_AUTOSCALE_PROJECT: project,
        HSC_AUTOSCALE_STATE_FILE: stateFile,
        // The test's own load must never look like a reason to scale up.
        ...LOAD_BLIND_AUTOSCALER,
        HSC_AUTOSCALE_MIN: '2',
        HSC_DRAIN_POLL_MS: '200',
        HSC_DRAIN_DEADLINE_MS: '30000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_RESYNC_INTERVAL_MS: '2000',
        HSC_HTTP_PORT: String(await freePort()),
        HSC_LOG_LEVEL: 'debug',
        ...extra,
      },
      join(dir, 'sidecar.log'),
    );
    return sidecar;
  };
  const kill = async (): Promise<void> => {
    if (sidecar === undefined) return;
    process.kill(sidecar.pid, 'SIGKILL');
    await sidecar.stop();
    sidecar = undefined;
  };
  /** After a restart: only `victim` stops, the record empties, the others keep serving. */
  const expectFinished = async (victim: string, others: readonly string[]): Promise<void> => {
    expect(await eventually(async () => !(await running(victim)) && (await records()).length === 0, 60_000, 250)).toBe(true);
    for (const id of others) expect(await running(id)).toBe(true);
    const servers = others.map((id) => replicas.get(id)).filter((c) => c !== undefined);
    expect(await eventually(async () => (await owned()).length === servers.length, 20_000)).toBe(true);
    const seen = new Set<string>();
    for (let i = 0; i < 20; i++) seen.add((await get(`${haproxy.frontendUrl}/`)).servedBy ?? '');
    expect([...seen].sort()).toEqual(servers.map((c) => c.hostname).sort());
  };
  const pool = (): string[] => [...replicas.keys()];
  /**
   * A fresh replica joins through a sidecar whose autoscaler is off (so no retirement of its own
   * is under way), the sidecar is killed, and `stage` leaves HAProxy and the record as a sidecar
   * killed at that stage would have; the restarted sidecar must then finish it.
   */
  const restartOverStagedCrash = async (stage: (server: string) => Promise<void>, recorded: Retirement['stage']): Promise<void> => {
    const added = await addReplica();
    await startSidecar({ HSC_AUTOSCALE_ENABLED: 'false' });
    expect(await eventually(async () => (await owned()).length === 3, 30_000)).toBe(true);
    await kill();
    const server = serverOf.get(added.id) ?? '';
    await stage(server);
    const now = Date.now();
    const record: Retirement = { containerId: added.id, backend: haproxy.backend, server, stage: recorded, startedAt: now, deadlineAt: now + 30_000, quietReads: 2 };
    await writeFile(stateFile, JSON.stringify({ format: 1, retirements: [record] }));
    await startSidecar();
    await expectFinished(added.id, pool().filter((id) => id !== added.id));
    replicas.delete(added.id);
    await sidecar?.stop();
    sidecar = undefined;
  };

  beforeAll(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), 'hsc-test-crash-'));
    stateFile = join(dir, 'retirements.json');
    [build, haproxy] = await Promise.all([buildSidecar('test'), startLocalHaproxy({ withDataplane: driver === 'dataplane' })]);
    writer = driverFor(haproxy, driver, check);
    await writer.inspect([haproxy.backend]);
    for (let i = 0; i < 3; i++) await addReplica();
  });

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all([...replicas.values()].map((c) => c.remove()));
    await build?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(skip)('killed while its victim drains: the restarted sidecar finishes that retirement', async () => {
    await startSidecar();
    expect(await eventually(async () => (await owned()).length === 3, 30_000)).toBe(true);
    // From here on, until the last crash is behind, every request must succeed.
    load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 3, maxDurationMs: 240_000, maxRequests: 2_000_000 });
    // One slow request on each replica holds every drain open for a few seconds.
    const slow = Array.from({ length: 3 }, () => get(`${haproxy.frontendUrl}/slow?s=6`, { signal: AbortSignal.timeout(30_000) }));
    expect(await eventually(async () => (await records()).some((r) => r.stage === 'draining'), 30_000, 50)).toBe(true);
    await kill();
    const [record] = await records();
    if (record === undefined) throw new Error('no retirement on record');
    expect((await haproxy.runtime(`show servers state ${haproxy.backend}`)).includes(record.server)).toBe(true);
    await startSidecar();
    await expectFinished(record.containerId, pool().filter((id) => id !== record.containerId));
    for (const answer of await Promise.all(slow)) expect(answer.status).toBe(200);
    replicas.delete(record.containerId);
    await sidecar?.stop();
    sidecar = undefined;
  });

  it.skipIf(skip)('restarted over the state a crash leaves once the drain is over: removes the server, then stops that container', async () => {
    // Killed right after recording "drained": the victim in maintenance, still a server, still running.
    await restartOverStagedCrash(async (server) => {
      expect((await haproxy.runtime(`set server ${haproxy.backend}/${server} state maint`)).trim()).toBe('');
    }, 'drained');
  });

  it.skipIf(skip)('restarted over the state a crash leaves once the server is gone: stops that container only', async () => {
    // Killed right after the reconciler removed the victim's server: the container still runs.
    await restartOverStagedCrash(async (server) => {
      await haproxy.runtime(`set server ${haproxy.backend}/${server} state drain`);
      const snapshot = await writer.readServers([haproxy.backend]);
      if (!snapshot.ok) throw new Error(snapshot.error.message);
      const removed = await writer.apply([{ op: 'remove', backend: haproxy.backend, name: server, reason: 'no ready container' }], snapshot.value);
      expect(removed.ok).toBe(true);
    }, 'removed');
  });

  it.skipIf(skip)('not one request failed across the three crashes', async () => {
    const report = await load.stop();
    expect(report.sent).toBeGreaterThan(100);
    expect(report.failures).toEqual({});
  });
});
