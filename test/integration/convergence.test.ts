// Every state converges, not only which servers exist. The sidecar runs as its own process beside
// a real HAProxy and real containers, is killed with SIGKILL and restarted as an operator would,
// and HAProxy is reloaded by hand. Four states that did not converge before:
//   1. a managed server left in maintenance with its checks off (a start cut between add and
//      enable) is put back in service with its checks on;
//   2. an operator's drain survives a reload of HAProxy by anyone, and a restart of the sidecar;
//   3. the count set through the admin API (and a pause) survives a restart of the sidecar;
//   4. a Data Plane API transaction the sidecar opened and never closed is deleted at start-up,
//      another writer's is left alone.
// Once per HAProxy driver (the Data Plane API one where its binary exists, skipped otherwise).
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../../bench/lib/sidecar-process.js';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import { applyInTransaction } from '../../sidecar/dataplane/client.js';
import { parseState } from '../../sidecar/records/store.js';
import { LOAD_BLIND_AUTOSCALER } from '../support/autoscale-env.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually } from '../support/http.js';
import { runtimeServerStates } from '../support/runtime.js';

const binary = dataplaneApiBinary();

describe.each<DriverChoice>(['runtime', 'dataplane'])('every state converges (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const run = randomBytes(3).toString('hex');
  const token = randomBytes(16).toString('hex');
  const service = `web${run}`;
  const project = `hsc-test-${run}`;
  let build: SidecarBuild;
  let haproxy: LocalHaproxy;
  let dir: string;
  let stateFile: string;
  let sidecar: SidecarProcess | undefined;
  const replicas: TestContainer[] = [];

  const startSidecar = async (extra: Record<string, string> = {}): Promise<SidecarProcess> => {
    sidecar = await startSidecarProcess(
      build,
      {
        ...haproxyEnv(haproxy, driver),
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_COMPOSE_SERVICE: service,
        HSC_DOCKER_LABEL_PREFIX: `hsc-none-${run}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_AUTOSCALE_SERVICE: service,
        HSC_AUTOSCALE_PROJECT: project,
        HSC_AUTOSCALE_STATE_FILE: stateFile,
        HSC_DRAIN_POLL_MS: '200',
        HSC_DRAIN_DEADLINE_MS: '30000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        // Long on purpose: what converges here must not wait for a periodic resync.
        HSC_RESYNC_INTERVAL_MS: '60000',
        HSC_HTTP_PORT: String(await freePort()),
        HSC_ADMIN_TOKEN: token,
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
  const managed = async () => (await runtimeServerStates(haproxy)).filter((s) => isOwnedServerName(s.name));
  const stateOf = async (server: string) => (await managed()).find((s) => s.name === server);
  /** srv_check_state's enabled bit, read off the socket without the sidecar's parser. */
  const checksOn = async (server: string): Promise<boolean> => {
    const lines = (await haproxy.runtime(`show servers state ${haproxy.backend}`)).split('\n');
    const header = lines.find((l) => l.startsWith('# '))?.slice(2).trim().split(/\s+/) ?? [];
    const row = lines.find((l) => l.trim().split(/\s+/)[header.indexOf('srv_name')] === server)?.trim().split(/\s+/);
    return (Number(row?.[header.indexOf('srv_check_state')]) & 0x04) !== 0;
  };
  const allReady = async (): Promise<boolean> => {
    const servers = await managed();
    return servers.length === replicas.length && servers.every((s) => s.admin === 'ready');
  };
  const saved = async () => {
    const parsed = parseState(await readFile(stateFile, 'utf8').catch(() => '{}'));
    if (!parsed.ok) throw new Error(parsed.error.message);
    return parsed.value;
  };
  /** An operator's reload: the master CLI's `reload`, what `systemctl reload` does. */
  const operatorReload = async (): Promise<void> => {
    const before = await haproxy.reloadCount();
    const { createConnection } = await import('node:net');
    await new Promise<void>((resolve, reject) => {
      const socket = createConnection(haproxy.masterSocket, () => socket.end('reload\n'));
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.resume();
    });
    // The master re-executes itself on a reload (2.6): its socket refuses connections meanwhile.
    expect(await eventually(async () => (await haproxy.reloadCount().catch(() => before)) > before, 15_000)).toBe(true);
  };
  /** The state holds for `ms` (read every 200 ms): not set once and undone by the next pass. */
  const holds = async (check: () => Promise<boolean>, ms: number): Promise<boolean> => {
    for (const end = Date.now() + ms; Date.now() < end; ) {
      if (!(await check())) return false;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    return true;
  };

  beforeAll(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), 'hsc-test-converge-'));
    stateFile = join(dir, 'state.json');
    [build, haproxy] = await Promise.all([buildSidecar('test'), startLocalHaproxy({ withDataplane: driver === 'dataplane' })]);
    for (let number = 1; number <= 3; number++) {
      replicas.push(
        await startNginx({
          name: `${project}-${service}-${number}`,
          labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service, 'com.docker.compose.container-number': String(number) },
        }),
      );
    }
  });

  afterEach(async () => {
    if (skip) return;
    await kill();
  });

  afterAll(async () => {
    if (skip) return;
    await kill();
    await Promise.all(replicas.map((r) => r.remove()));
    await haproxy?.stop();
    await build?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(skip)('puts back in service, checks on, a managed server a killed sidecar left in maintenance with its checks off', async () => {
    await startSidecar();
    expect(await eventually(allReady, 30_000)).toBe(true);
    await kill();
    // What a sidecar killed between adding a server and enabling it leaves.
    const server = `hsc-${service}-2`;
    await haproxy.runtime(`set server ${haproxy.backend}/${server} state maint`);
    await haproxy.runtime(`disable health ${haproxy.backend}/${server}`);
    expect(await stateOf(server)).toMatchObject({ admin: 'maint' });
    expect(await checksOn(server)).toBe(false);
    await startSidecar();
    expect(await eventually(async () => (await stateOf(server))?.admin === 'ready' && (await checksOn(server)), 15_000)).toBe(true);
    const logs = (await sidecar?.logLines()) ?? [];
    expect(logs.some((l) => l.includes('drift repaired') && l.includes(server))).toBe(true);
  });

  it.skipIf(skip)("keeps an operator's drain across reloads of HAProxy by hand and across a SIGKILL of the sidecar", async () => {
    const sc = await startSidecar();
    expect(await eventually(allReady, 30_000)).toBe(true);
    const server = `hsc-${service}-1`;
    const drained = await sc.admin('POST', `/v1/backends/${haproxy.backend}/servers/${server}/drain`, { wait: true });
    expect(drained.status).toBe(200);
    expect((await saved()).drains).toMatchObject([{ server, stage: 'drained' }]);

    await operatorReload();
    expect(await eventually(async () => (await stateOf(server))?.admin === 'drain', 5_000)).toBe(true);
    expect(await holds(async () => (await stateOf(server))?.admin === 'drain', 3_000)).toBe(true);

    if (driver === 'dataplane') {
      // A reload the Data Plane API makes for someone else's commit (a server of the operator's own).
      const client = dataplaneClientFor(haproxy);
      const before = await haproxy.reloadCount();
      const spec = { name: `static-${run}`, address: '127.0.0.1', port: 9, weight: 1, check: { intervalMs: 1000, fall: 2, rise: 1 } };
      const committed = await applyInTransaction(client, (id) => client.addServer(haproxy.backend, spec, id), 30_000);
      expect(committed.ok).toBe(true);
      expect(await eventually(async () => (await haproxy.reloadCount()) > before, 15_000)).toBe(true);
      expect(await eventually(async () => (await stateOf(server))?.admin === 'drain', 5_000)).toBe(true);
      expect(await holds(async () => (await stateOf(server))?.admin === 'drain', 3_000)).toBe(true);
      const removed = await applyInTransaction(client, (id) => client.deleteServer(haproxy.backend, spec.name, id), 30_000);
      expect(removed.ok).toBe(true);
    }

    // Killed, then HAProxy reloaded while no sidecar runs: the restarted one sets it again.
    await kill();
    await operatorReload();
    await startSidecar();
    expect(await eventually(async () => (await stateOf(server))?.admin === 'drain', 10_000)).toBe(true);
    expect((await sidecar?.admin('GET', `/v1/backends/${haproxy.backend}/servers/${server}/drain`))?.body).toMatchObject({ state: 'drained' });

    // Undrained: the record goes, the server serves, and a reload keeps it ready.
    expect((await sidecar?.admin('POST', `/v1/backends/${haproxy.backend}/servers/${server}/undrain`, {}))?.status).toBe(200);
    expect((await saved()).drains).toEqual([]);
    await operatorReload();
    expect(await eventually(allReady, 10_000)).toBe(true);
  });

  it.skipIf(skip)('keeps the count set through the admin API, and a pause, across a SIGKILL of the sidecar', async () => {
    const extra = { ...LOAD_BLIND_AUTOSCALER, HSC_AUTOSCALE_ENABLED: 'true', HSC_AUTOSCALE_MIN: '2', HSC_AUTOSCALE_MAX: '6', HSC_AUTOSCALE_DRY_RUN: 'true' };
    const sc = await startSidecar(extra);
    expect((await sc.admin('PUT', '/v1/autoscaler/replicas', { replicas: 3 })).status).toBe(200);
    expect((await saved()).autoscaler).toMatchObject({ mode: 'manual', replicas: 3 });
    await kill();
    const again = await startSidecar(extra);
    expect((await again.admin('GET', '/v1/autoscaler')).body).toMatchObject({ mode: 'manual', manualReplicas: 3 });
    expect((await again.admin('POST', '/v1/autoscaler/pause', {})).status).toBe(200);
    await kill();
    const third = await startSidecar(extra);
    expect((await third.admin('GET', '/v1/autoscaler')).body).toMatchObject({ mode: 'paused' });
    expect((await third.admin('POST', '/v1/autoscaler/resume', {})).status).toBe(200);
    expect((await saved()).autoscaler).toBeUndefined();
    await kill();
    const fourth = await startSidecar(extra);
    expect((await fourth.admin('GET', '/v1/autoscaler')).body).toMatchObject({ mode: 'auto' });
  });

  it.skipIf(skip || driver !== 'dataplane')('deletes the transactions it opened and never closed, and leaves another writer\'s alone', async () => {
    const client = dataplaneClientFor(haproxy);
    const version = await client.configurationVersion();
    if (!version.ok) throw new Error(version.error.message);
    const ours = await client.startTransaction(version.value);
    const foreign = await client.startTransaction(version.value);
    if (!ours.ok || !foreign.ok) throw new Error('cannot open transactions');
    // What a sidecar killed mid-transaction leaves: the id in its state file, the transaction open.
    const state = await saved();
    await writeFile(stateFile, JSON.stringify({ format: 2, ...state, transactions: [ours.value.id] }));
    await startSidecar();
    const listed = async () => {
      const answer = await client.listTransactions();
      return answer.ok ? answer.value.map((t) => t.id) : [];
    };
    expect(await eventually(async () => !(await listed()).includes(ours.value.id), 15_000)).toBe(true);
    expect(await listed()).toContain(foreign.value.id);
    expect(await eventually(async () => (await saved()).transactions.length === 0, 5_000)).toBe(true);
    const logs = (await sidecar?.logLines()) ?? [];
    expect(logs.some((l) => l.includes(foreign.value.id) && l.includes('another writer'))).toBe(true);
    await client.deleteTransaction(foreign.value.id);
  });
});
