// The sidecar's core loop end to end, against the real HAProxy and Docker Engine, once per HAProxy
// driver: the runtime API driver always, the Data Plane API driver where its binary exists (the
// suite is reported as skipped, never passed, without it). Labelled containers become servers
// that serve traffic, a killed one leaves, a restarted sidecar converges from what Docker and
// HAProxy show, a hand-written server is never touched, a concurrent writer does not stop
// convergence, a broken label skips only its container, and a burst of 20 containers joins
// without a single reload.
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { labelledContainersEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { applyInTransaction, type DataplaneClient } from '../../sidecar/dataplane/client.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { silentLogger } from '../../sidecar/log/logger.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually, get } from '../support/http.js';
import { runtimeServerNames } from '../support/runtime.js';

const binary = dataplaneApiBinary();

describe.each<DriverChoice>(['runtime', 'dataplane'])('reconciliation through the %s driver against real HAProxy and Docker', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  let haproxy: LocalHaproxy;
  let manual: TestContainer;
  let client: DataplaneClient | undefined;
  let sidecar: RunningSidecar | undefined;
  const containers = new Map<string, TestContainer>();
  const server = (role: string): string => `hsc-${prefix}-${role}`;

  const config = () =>
    loadConfig({
      env: {
        ...labelledContainersEnv(haproxy, driver, prefix),
        HSC_RESYNC_INTERVAL_MS: '2000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_HTTP_PORT: '0',
      },
    });
  const start = async (): Promise<RunningSidecar> => (sidecar = await startSidecar(config(), { logger: silentLogger }));
  const labelled = async (role: string, extra: Record<string, string> = {}): Promise<TestContainer> => {
    const container = await startNginx({ name: `${prefix}-${role}`, labels: { [`${prefix}.enable`]: 'true', ...extra } });
    containers.set(role, container);
    return container;
  };
  const container = (role: string): TestContainer => {
    const found = containers.get(role);
    if (found === undefined) throw new Error(`no container ${role}`);
    return found;
  };
  /** The servers HAProxy runs now (and, for the Data Plane API, the ones in its configuration). */
  const serverNames = async (): Promise<string[]> => {
    if (client === undefined) return runtimeServerNames(haproxy);
    const servers = await client.listServers(haproxy.backend);
    if (!servers.ok) throw new Error(servers.error.message);
    return servers.value.map((s) => s.name).sort();
  };
  const converged = (expected: string[], timeoutMs = 30_000): Promise<boolean> =>
    eventually(async () => JSON.stringify(await serverNames()) === JSON.stringify([...expected].sort()), timeoutMs, 200);
  const servedBy = async (requests: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < requests; i++) {
      const answer = await get(`${haproxy.frontendUrl}/`);
      if (answer.status === 200 && answer.servedBy !== null) seen.add(answer.servedBy);
    }
    return seen;
  };

  beforeAll(async () => {
    if (skip) return;
    manual = await startNginx({ name: `${prefix}-manual` });
    haproxy = await startLocalHaproxy({
      manualServers: [{ name: 'manual-1', address: '127.0.0.1', port: manual.hostPort }],
      withDataplane: driver === 'dataplane',
    });
    client = driver === 'dataplane' ? dataplaneClientFor(haproxy) : undefined;
  });

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all([manual, ...containers.values()].map((c) => c?.remove()));
  });

  it.skipIf(skip)('turns 3 labelled containers into 3 servers that serve traffic, beside the manual one', async () => {
    await Promise.all(['a', 'b', 'c'].map((role) => labelled(role)));
    await start();
    expect(await converged(['manual-1', server('a'), server('b'), server('c')])).toBe(true);
    expect(await eventually(async () => (await servedBy(16)).size === 4, 20_000)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${sidecar?.port}/readyz`)).status).toBe(200);
  });

  it.skipIf(skip)('removes the server of a killed container', async () => {
    const victim = container('b');
    await docker.getContainer(victim.id).kill();
    expect(await converged(['manual-1', server('a'), server('c')])).toBe(true);
    expect([...(await servedBy(12))]).not.toContain(victim.hostname);
  });

  it.skipIf(skip)('converges after a restart from what Docker and HAProxy show, with no local state', async () => {
    await sidecar?.stop();
    sidecar = undefined;
    await container('a').remove();
    await labelled('d');
    await start();
    expect(await converged(['manual-1', server('c'), server('d')])).toBe(true);
  });

  it.skipIf(skip)('still converges while another writer changes the same backend', async () => {
    let writes = 0;
    let stop = false;
    const name = 'other-writer';
    // The other writer toggles its own server in the same backend as fast as it can, 15 s at most:
    // Data Plane API transactions, or runtime API commands, like the sidecar's own writes.
    const toggle = async (): Promise<void> => {
      const has = (await serverNames()).includes(name);
      if (client !== undefined) {
        const c = client;
        await applyInTransaction(
          c,
          (id) => (has ? c.deleteServer(haproxy.backend, name, id) : c.addServer(haproxy.backend, { name, address: '127.0.0.1', port: 9 }, id)),
          20_000,
        );
      } else if (has) {
        await haproxy.runtime(`set server ${haproxy.backend}/${name} state maint`);
        await haproxy.runtime(`del server ${haproxy.backend}/${name}`);
      } else {
        await haproxy.runtime(`add server ${haproxy.backend}/${name} 127.0.0.1:9`);
      }
      writes++;
    };
    const writer = (async () => {
      const deadline = Date.now() + 15_000;
      while (!stop && Date.now() < deadline) await toggle();
      if ((await serverNames()).includes(name)) await toggle();
    })();
    await Promise.all([labelled('e'), labelled('f')]);
    const ok = await eventually(async () => {
      const names = await serverNames();
      return [server('c'), server('d'), server('e'), server('f'), 'manual-1'].every((n) => names.includes(n));
    }, 40_000);
    stop = true;
    await writer;
    expect(ok).toBe(true);
    expect(writes).toBeGreaterThan(0);
    expect(await converged(['manual-1', ...['c', 'd', 'e', 'f'].map(server)])).toBe(true);
  });

  it.skipIf(skip)('skips a container with a broken label; the others keep serving', async () => {
    await labelled('broken', { [`${prefix}.port`]: 'eighty' });
    sidecar?.resync('test');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await serverNames()).toEqual(['manual-1', ...['c', 'd', 'e', 'f'].map(server)].sort());
    expect((await servedBy(10)).size).toBeGreaterThan(1);
  });

  it.skipIf(skip || driver !== 'runtime')('repairs the file HAProxy loads when its managed region drifted from what runs', async () => {
    const file = await readFile(haproxy.configFile, 'utf8');
    const stale = file
      .split('\n')
      .filter((line) => !line.includes(`server ${server('c')} `))
      .join('\n');
    expect(stale).not.toBe(file);
    await writeFile(haproxy.configFile, stale);
    sidecar?.resync('test');
    expect(await eventually(async () => (await readFile(haproxy.configFile, 'utf8')).includes(`server ${server('c')} `), 10_000)).toBe(true);
  });

  it.skipIf(skip)('adds 20 containers started at once without reloading HAProxy, and keeps them in the file it loads', async () => {
    const reloadsBefore = await haproxy.reloadCount();
    const roles = Array.from({ length: 20 }, (_, i) => `burst-${String(i).padStart(2, '0')}`);
    await Promise.all(roles.map((role) => labelled(role)));
    const expected = ['manual-1', ...['c', 'd', 'e', 'f'].map(server), ...roles.map(server)];
    expect(await converged(expected, 60_000)).toBe(true);
    expect(await haproxy.reloadCount()).toBe(reloadsBefore);
    // What HAProxy runs is also in the file it loads, so a reload or restart keeps it.
    const file = await readFile(haproxy.configFile, 'utf8');
    for (const name of expected) expect(file).toContain(`server ${name} `);
    expect(await eventually(async () => (await servedBy(30)).size >= 10, 20_000)).toBe(true);
  });
});
