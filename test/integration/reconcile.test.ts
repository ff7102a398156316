// The sidecar's core loop end to end, against the real HAProxy, Data Plane API and Docker Engine:
// labelled containers become servers that serve traffic, a killed one leaves, a restarted sidecar
// converges from what Docker and HAProxy show, a hand-written server is never touched, a
// concurrent writer does not stop convergence, a broken label skips only its container, and a
// burst of 20 containers converges in at most two transactions. Needs the pinned Data Plane API
// binary (devenv/versions.env); without it the file is reported as skipped, never as passed.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { applyInTransaction, type DataplaneClient } from '../../sidecar/dataplane/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { silentLogger } from '../../sidecar/telemetry/logger.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually, get } from '../support/http.js';

const binary = dataplaneApiBinary();
const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;

describe.skipIf(binary === undefined)('reconciliation against real HAProxy, Data Plane API and Docker', () => {
  let haproxy: LocalHaproxy;
  let manual: TestContainer;
  let client: DataplaneClient;
  let sidecar: RunningSidecar | undefined;
  const containers: TestContainer[] = [];

  const config = () =>
    loadConfig({
      env: {
        HSC_DATAPLANE_URL: haproxy.dataplaneUrl,
        HSC_DATAPLANE_USERNAME: haproxy.dataplaneUser,
        HSC_DATAPLANE_PASSWORD: haproxy.dataplanePassword,
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_LABEL_PREFIX: prefix,
        HSC_DOCKER_COMPOSE_SERVICE: `none-${prefix}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_RESYNC_INTERVAL_MS: '2000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_HTTP_PORT: '0',
      },
    });
  const start = async (): Promise<RunningSidecar> => (sidecar = await startSidecar(config(), { logger: silentLogger }));
  const labelled = async (role: string, extra: Record<string, string> = {}): Promise<TestContainer> => {
    const container = await startNginx({ name: `${prefix}-${role}`, labels: { [`${prefix}.enable`]: 'true', ...extra } });
    containers.push(container);
    return container;
  };
  const serverNames = async (): Promise<string[]> => {
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
  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${sidecar?.port}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .reduce((sum, line) => sum + Number(line.split(' ').pop()), 0);
  };

  beforeAll(async () => {
    manual = await startNginx({ name: `${prefix}-manual` });
    haproxy = await startLocalHaproxy({ manualServers: [{ name: 'manual-1', address: '127.0.0.1', port: manual.hostPort }] });
    client = dataplaneClientFor(haproxy);
  });

  afterAll(async () => {
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all([manual, ...containers].map((c) => c?.remove()));
  });

  it('turns 3 labelled containers into 3 servers that serve traffic, beside the manual one', async () => {
    const pool = await Promise.all(['a', 'b', 'c'].map((role) => labelled(role)));
    await start();
    expect(await converged(['manual-1', ...pool.map((_, i) => `hsc-${prefix}-${'abc'[i]}`)])).toBe(true);
    const hosts = await eventually(async () => (await servedBy(16)).size === 4, 20_000);
    expect(hosts).toBe(true);
    expect((await fetch(`http://127.0.0.1:${sidecar?.port}/readyz`)).status).toBe(200);
  });

  it('removes the server of a killed container', async () => {
    const victim = containers.find((c) => c.hostname !== '' && containers.indexOf(c) === 1);
    if (victim === undefined) throw new Error('no container to kill');
    await docker.getContainer(victim.id).kill();
    expect(await converged(['manual-1', `hsc-${prefix}-a`, `hsc-${prefix}-c`])).toBe(true);
    expect([...(await servedBy(12))]).not.toContain(victim.hostname);
  });

  it('converges after a restart from what Docker and HAProxy show, with no local state', async () => {
    await sidecar?.stop();
    sidecar = undefined;
    const a = containers[0];
    if (a === undefined) throw new Error('missing container a');
    await a.remove();
    await labelled('d');
    await start();
    expect(await converged(['manual-1', `hsc-${prefix}-c`, `hsc-${prefix}-d`])).toBe(true);
  });

  it('still converges while another writer commits to the configuration', async () => {
    let writes = 0;
    let stop = false;
    // The concurrent writer toggles a server in the same backend as fast as it can, for 15 s at most.
    const writer = (async () => {
      const deadline = Date.now() + 15_000;
      while (!stop && Date.now() < deadline) {
        const name = 'other-writer';
        const has = (await serverNames()).includes(name);
        await applyInTransaction(
          client,
          (id) => (has ? client.deleteServer(haproxy.backend, name, id) : client.addServer(haproxy.backend, { name, address: '127.0.0.1', port: 9 }, id)),
          20_000,
        );
        writes++;
      }
    })();
    await Promise.all([labelled('e'), labelled('f')]);
    const ok = await eventually(async () => {
      const names = await serverNames();
      return [`hsc-${prefix}-c`, `hsc-${prefix}-d`, `hsc-${prefix}-e`, `hsc-${prefix}-f`, 'manual-1'].every((n) => names.includes(n));
    }, 40_000);
    stop = true;
    await writer;
    expect(ok).toBe(true);
    expect(writes).toBeGreaterThan(0);
    expect(await converged(['manual-1', ...['c', 'd', 'e', 'f'].map((r) => `hsc-${prefix}-${r}`)])).toBe(true);
  });

  it('skips a container with a broken label; the others keep serving', async () => {
    await labelled('broken', { [`${prefix}.port`]: 'eighty' });
    sidecar?.resync('test');
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    expect(await serverNames()).toEqual(['manual-1', ...['c', 'd', 'e', 'f'].map((r) => `hsc-${prefix}-${r}`)].sort());
    expect((await servedBy(10)).size).toBeGreaterThan(1);
  });

  it('converges 20 containers started at once in at most 2 transactions', async () => {
    const before = await metric('hsc_dataplane_transactions_total');
    const burst = await Promise.all(Array.from({ length: 20 }, (_, i) => labelled(`burst-${String(i).padStart(2, '0')}`)));
    const expected = ['manual-1', ...['c', 'd', 'e', 'f'].map((r) => `hsc-${prefix}-${r}`), ...burst.map((_, i) => `hsc-${prefix}-burst-${String(i).padStart(2, '0')}`)];
    expect(await converged(expected, 60_000)).toBe(true);
    expect((await metric('hsc_dataplane_transactions_total')) - before).toBeLessThanOrEqual(2);
    expect(await serverNames()).toContain('manual-1');
  });
});
