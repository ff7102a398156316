import { describe, expect, it } from 'vitest';
import { createDataplaneDriver } from '../../../sidecar/dataplane/driver.js';
import { createMemoryDataplane } from '../../support/memory-dataplane.js';

const check = { intervalMs: 1000, fall: 2, rise: 1 };

describe('the Data Plane API driver', () => {
  it('inspects again on the first pass when the start-up inspection failed (the API was not up yet)', async () => {
    const api = createMemoryDataplane({ be_app: [] });
    const driver = createDataplaneDriver({ client: api, healthCheck: check, reloadTimeoutMs: 1_000 });
    api.failNext('haproxyVersion', { kind: 'network', message: 'connect ECONNREFUSED', operation: 'read HAProxy process information' });
    expect((await driver.inspect(['be_app'])).ok).toBe(false);
    expect((await driver.readServers(['be_app'])).ok).toBe(true);
    expect(api.calls.filter((c) => c === 'haproxyVersion')).toHaveLength(2);
    // Once inspected, a pass reads only what it needs.
    await driver.readServers(['be_app']);
    expect(api.calls.filter((c) => c === 'haproxyVersion')).toHaveLength(2);
  });

  it('without the runtime socket, adds in the pass transaction; with it, outside any transaction and without a reload', async () => {
    const server = { backend: 'be_app', name: 'hsc-web-1', address: '10.0.0.5', port: 80, weight: 100, containerId: 'c1' };
    const plain = createMemoryDataplane({ be_app: [] });
    const withoutSocket = createDataplaneDriver({ client: plain, healthCheck: check, reloadTimeoutMs: 1_000 });
    const snapshot = await withoutSocket.readServers(['be_app']);
    if (!snapshot.ok) throw new Error(snapshot.error.message);
    expect(await withoutSocket.apply([{ op: 'add', server, reason: 'container ready' }], snapshot.value)).toEqual({
      ok: true,
      value: { reloads: 1, transactions: 1, runtimeChanges: 0 },
    });

    const api = createMemoryDataplane({ be_app: [] });
    const socketCalls: string[] = [];
    const ok = { ok: true as const, value: undefined };
    const withSocket = createDataplaneDriver({
      client: api,
      healthCheck: check,
      reloadTimeoutMs: 1_000,
      socket: {
        enableHealth: (b, s) => (socketCalls.push(`enable health ${b}/${s}`), Promise.resolve(ok)),
        enableDynamicCookies: (b) => (socketCalls.push(`enable dynamic-cookie backend ${b}`), Promise.resolve(ok)),
        listRuntimeServers: () => Promise.resolve({ ok: true, value: [] }),
        setAdminState: (b, s, state) => (socketCalls.push(`set server ${b}/${s} state ${state}`), Promise.resolve(ok)),
        setRuntimeWeight: (b, s, weight) => (socketCalls.push(`set weight ${b}/${s} ${weight}`), Promise.resolve(ok)),
      },
    });
    const fresh = await withSocket.readServers(['be_app']);
    if (!fresh.ok) throw new Error(fresh.error.message);
    expect(await withSocket.apply([{ op: 'add', server, reason: 'container ready' }], fresh.value)).toEqual({
      ok: true,
      value: { reloads: 0, transactions: 0, runtimeChanges: 1 },
    });
    // Checks on through the socket before the server is made ready, through the socket too: a
    // state change must not wait for the API's round trip (a stopping replica's drain races its
    // listeners' close).
    expect(socketCalls).toEqual(['enable health be_app/hsc-web-1', 'set server be_app/hsc-web-1 state ready']);
    expect(api.calls.filter((c) => c.startsWith('addServerAtVersion') || c.startsWith('setAdminState'))).toEqual(['addServerAtVersion be_app hsc-web-1 10.0.0.5:80 @1']);
  });

  it('with the runtime socket, a new address goes in place outside any transaction (no reload), after the adds and before the removals', async () => {
    const api = createMemoryDataplane({
      be_app: [
        { name: 'hsc-web-1', address: '10.0.0.5', port: 80, weight: 100, cookie: undefined, checkEnabled: true },
        { name: 'hsc-web-3', address: '10.0.0.7', port: 80, weight: 100, cookie: undefined, checkEnabled: true },
      ],
    });
    const ok = { ok: true as const, value: undefined };
    const driver = createDataplaneDriver({
      client: api,
      healthCheck: check,
      reloadTimeoutMs: 1_000,
      socket: {
        enableHealth: () => Promise.resolve(ok),
        enableDynamicCookies: () => Promise.resolve(ok),
        listRuntimeServers: () => Promise.resolve({ ok: true, value: [] }),
        setAdminState: () => Promise.resolve(ok),
        setRuntimeWeight: () => Promise.resolve(ok),
      },
    });
    const snapshot = await driver.readServers(['be_app']);
    if (!snapshot.ok) throw new Error(snapshot.error.message);
    const moved = { backend: 'be_app', name: 'hsc-web-1', address: '10.0.0.9', port: 80, weight: 100, containerId: 'c1' };
    const added = { backend: 'be_app', name: 'hsc-web-2', address: '10.0.0.6', port: 80, weight: 100, containerId: 'c2' };
    expect(
      await driver.apply(
        [
          { op: 'remove', backend: 'be_app', name: 'hsc-web-3', reason: 'no ready container' },
          { op: 'replace', server: moved, reason: 'address changed' },
          { op: 'add', server: added, reason: 'container ready' },
        ],
        snapshot.value,
      ),
    ).toEqual({ ok: true, value: { reloads: 1, transactions: 1, runtimeChanges: 2 } });
    expect(api.calls.filter((c) => /^(addServerAtVersion|replaceServerAtVersion|startTransaction|deleteServer|addServer )/.test(c))).toEqual([
      'addServerAtVersion be_app hsc-web-2 10.0.0.6:80 @1',
      'replaceServerAtVersion be_app hsc-web-1 10.0.0.9:80 @2',
      'startTransaction 3',
      'deleteServer be_app hsc-web-3',
    ]);
    expect(api.backends.get('be_app')?.map((s) => `${s.name} ${s.address}`)).toEqual(['hsc-web-1 10.0.0.9', 'hsc-web-2 10.0.0.6']);
  });

  it('fails the pass at once when the API does not answer its transaction listing, and reads on past any other failure of it', async () => {
    const api = createMemoryDataplane({ be_app: [] });
    const driver = createDataplaneDriver({ client: api, healthCheck: check, reloadTimeoutMs: 1_000 });
    expect((await driver.inspect(['be_app'])).ok).toBe(true);
    api.failNext('listTransactions', { kind: 'timeout', message: 'request timed out', operation: 'list transactions' });
    expect(await driver.readServers(['be_app'])).toMatchObject({ ok: false, error: { kind: 'timeout', operation: 'list transactions' } });
    // No second wait for a version read that would time out the same way.
    expect(api.calls.filter((c) => c.startsWith('configurationVersion') || c.startsWith('listServers'))).toEqual([]);

    api.failNext('listTransactions', { kind: 'malformed', message: 'expected a list', operation: 'list transactions' });
    expect((await driver.readServers(['be_app'])).ok).toBe(true);
  });
});
