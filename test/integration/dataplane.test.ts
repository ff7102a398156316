// The proof that the environment is real, through the Data Plane API: a server added
// in a transaction serves traffic through HAProxy's frontend, and removed in another one it
// no longer does. Needs the pinned Data Plane API binary (devenv/versions.env); where the Go
// module proxy does not serve it, the suite is reported as skipped, never as passed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { applyInTransaction, type DataplaneClient, type Result } from '../../sidecar/dataplane/client.js';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { createDataplaneDriver } from '../../sidecar/dataplane/driver.js';
import { createRuntimeSocketOps } from '../../sidecar/runtime/ops.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually, get } from '../support/http.js';

const binary = dataplaneApiBinary();

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.operation}: ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

describe.skipIf(binary === undefined)('Data Plane API transactions against real HAProxy and Docker', () => {
  let haproxy: LocalHaproxy;
  let nginx: TestContainer;
  let client: DataplaneClient;

  beforeAll(async () => {
    [haproxy, nginx] = await Promise.all([startLocalHaproxy(), startNginx()]);
    client = dataplaneClientFor(haproxy);
  });

  afterAll(async () => {
    await haproxy?.stop();
    await nginx?.remove();
  });

  async function inTransaction(change: (transactionId: string) => Promise<Result<void>>): Promise<void> {
    value(await applyInTransaction(client, change, 20_000));
  }

  it('adds a container as a server in a transaction and serves a request through the frontend', async () => {
    expect((await get(`${haproxy.frontendUrl}/`)).status).toBe(503);
    await inTransaction((id) =>
      client.addServer(haproxy.backend, { name: 'nginx-1', address: '127.0.0.1', port: nginx.hostPort, check: { intervalMs: 500, fall: 2, rise: 1 } }, id),
    );
    expect(value(await client.listServers(haproxy.backend)).map((s) => s.name)).toEqual(['nginx-1']);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).servedBy === nginx.hostname, 20_000)).toBe(true);
  });

  it('removes it in a transaction and the frontend no longer routes to it', async () => {
    await inTransaction((id) => client.deleteServer(haproxy.backend, 'nginx-1', id));
    expect(value(await client.listServers(haproxy.backend))).toEqual([]);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).status === 503, 20_000)).toBe(true);
  });

  it('reports a conflict when a transaction starts from an outdated version', async () => {
    const version = value(await client.configurationVersion());
    const result = await client.startTransaction(version - 1);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.kind).toBe('conflict');
  });

  it('answers a commit of a transaction another commit made outdated with 406, which the adapter calls a conflict', async () => {
    const version = value(await client.configurationVersion());
    const first = value(await client.startTransaction(version));
    const second = value(await client.startTransaction(version));
    value(await client.addServer(haproxy.backend, { name: 'first', address: '127.0.0.1', port: 9 }, first.id));
    value(await client.addServer(haproxy.backend, { name: 'second', address: '127.0.0.1', port: 10 }, second.id));
    const committed = value(await client.commitTransaction(first.id));
    if (committed.reloadId !== undefined) value(await client.waitForReload(committed.reloadId, 20_000));
    const outdated = await client.commitTransaction(second.id);
    expect(outdated.ok).toBe(false);
    if (!outdated.ok) expect(outdated.error).toMatchObject({ kind: 'conflict' });
    if (!outdated.ok) expect([406, 409]).toContain(outdated.error.status);
    await client.deleteTransaction(second.id);
    await inTransaction((id) => client.deleteServer(haproxy.backend, 'first', id));
  });

  it('tells "already exists" apart from "version changed"', async () => {
    const version = value(await client.configurationVersion());
    const spec = { name: 'twice', address: '127.0.0.1', port: 9 };
    const reloadsBefore = await haproxy.reloadCount();
    value(await client.addServerAtVersion(haproxy.backend, spec, version));
    const stale = await client.addServerAtVersion(haproxy.backend, { ...spec, name: 'other' }, version);
    expect(!stale.ok && stale.error.kind).toBe('conflict');
    const again = await client.addServerAtVersion(haproxy.backend, spec, version + 1);
    expect(!again.ok && again.error.kind).toBe('exists');
    expect(await haproxy.reloadCount()).toBe(reloadsBefore);
    await inTransaction((id) => client.deleteServer(haproxy.backend, 'twice', id));
  });

  it('adds a server without a reload through the driver, its checks on, and drains and undrains it', async () => {
    const driver = createDataplaneDriver({
      client,
      healthCheck: { intervalMs: 500, fall: 2, rise: 1 },
      reloadTimeoutMs: 20_000,
      socket: createRuntimeSocketOps({ address: haproxy.runtimeSocket, timeoutMs: 5_000 }),
    });
    const report = value(await driver.inspect([haproxy.backend]));
    expect(report.haproxyVersion).toBe(haproxy.haproxyVersion);
    // The API reaches the runtime through the worker's stats socket (no master_runtime in its
    // configuration): its runtime reads answer on 2.6 too, and no limitation is reported.
    expect(report.limitations.some((l) => l.includes('cannot read or set runtime server states'))).toBe(false);
    expect(report.runtimeReads).toBe(true);

    const reloadsBefore = await haproxy.reloadCount();
    const snapshot = value(await driver.readServers([haproxy.backend]));
    const server = { backend: haproxy.backend, name: 'hsc-runtime-1', address: '127.0.0.1', port: nginx.hostPort, weight: 100, containerId: 'x' };
    const outcome = value(await driver.apply([{ op: 'add', server, reason: 'container ready' }], snapshot));
    expect(outcome).toEqual({ reloads: 0, transactions: 0, runtimeChanges: 1 });
    expect(await haproxy.reloadCount()).toBe(reloadsBefore);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).servedBy === nginx.hostname, 10_000)).toBe(true);
    // Checks on (srv_check_state has its ENABLED bit, 0x04), as after a reload.
    const row = (await haproxy.runtime(`show servers state ${haproxy.backend}`)).split('\n').find((l) => l.split(' ')[3] === 'hsc-runtime-1');
    expect(Number(row?.split(' ')[13]) & 0x04).toBe(0x04);

    value(await driver.setAdminState(haproxy.backend, 'hsc-runtime-1', 'drain'));
    expect(value(await driver.listRuntimeServers(haproxy.backend)).find((s) => s.name === 'hsc-runtime-1')?.adminState).toBe('drain');
    value(await driver.setAdminState(haproxy.backend, 'hsc-runtime-1', 'ready'));
    expect(value(await driver.listRuntimeServers(haproxy.backend)).find((s) => s.name === 'hsc-runtime-1')?.adminState).toBe('ready');

    // Removal: one transaction, one reload.
    const removed = value(await driver.apply([{ op: 'remove', backend: haproxy.backend, name: 'hsc-runtime-1', reason: 'no ready container' }], value(await driver.readServers([haproxy.backend]))));
    expect(removed).toMatchObject({ transactions: 1, reloads: 1 });
  });

  it('keeps a drained server drained across a reload the API makes (the reload command saves the server state)', async () => {
    const driver = createDataplaneDriver({
      client,
      healthCheck: { intervalMs: 500, fall: 2, rise: 1 },
      reloadTimeoutMs: 20_000,
      socket: createRuntimeSocketOps({ address: haproxy.runtimeSocket, timeoutMs: 5_000 }),
    });
    value(await driver.inspect([haproxy.backend]));
    const server = (name: string, port: number) => ({ backend: haproxy.backend, name, address: '127.0.0.1', port, weight: 100, containerId: name });
    value(
      await driver.apply(
        [
          { op: 'add', server: server('hsc-keep-1', nginx.hostPort), reason: 'container ready' },
          { op: 'add', server: server('hsc-keep-2', 9), reason: 'container ready' },
        ],
        value(await driver.readServers([haproxy.backend])),
      ),
    );
    value(await driver.setAdminState(haproxy.backend, 'hsc-keep-1', 'drain'));
    const reloads = await haproxy.reloadCount();
    const removed = value(await driver.apply([{ op: 'remove', backend: haproxy.backend, name: 'hsc-keep-2', reason: 'no ready container' }], value(await driver.readServers([haproxy.backend]))));
    expect(removed.reloads).toBe(1);
    expect(await haproxy.reloadCount()).toBeGreaterThan(reloads);
    expect(value(await driver.listRuntimeServers(haproxy.backend)).find((s) => s.name === 'hsc-keep-1')?.adminState).toBe('drain');
    value(await driver.apply([{ op: 'remove', backend: haproxy.backend, name: 'hsc-keep-1', reason: 'no ready container' }], value(await driver.readServers([haproxy.backend]))));
  });

  it('without the runtime socket, says what it cannot do, and adds in a transaction', async () => {
    const driver = createDataplaneDriver({ client, healthCheck: { intervalMs: 500, fall: 2, rise: 1 }, reloadTimeoutMs: 20_000 });
    const report = value(await driver.inspect([haproxy.backend]));
    expect(report.limitations.some((l) => l.includes('no runtime socket is configured'))).toBe(true);
    // The API's runtime endpoints answer on every version here (through the stats socket).
    expect(report.runtimeReads).toBe(true);
    const server = { backend: haproxy.backend, name: 'hsc-tx-1', address: '127.0.0.1', port: nginx.hostPort, weight: 100, containerId: 'x' };
    const outcome = value(await driver.apply([{ op: 'add', server, reason: 'container ready' }], value(await driver.readServers([haproxy.backend]))));
    expect(outcome).toMatchObject({ transactions: 1, reloads: 1, runtimeChanges: 0 });
    await inTransaction((id) => client.deleteServer(haproxy.backend, 'hsc-tx-1', id));
  });
});
