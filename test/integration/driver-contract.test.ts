// The HAProxy driver contract: the same behaviours, asserted the same way, against both adapters
// of the driver port on a real HAProxy and real containers: the runtime-API driver always, the
// Data Plane API driver where its binary exists (reported as skipped otherwise). Whatever sits
// above the port (reconciler, drainer, autoscaler, admin API) relies on exactly this.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import type { HaproxyDriver } from '../../sidecar/driver/port.js';
import type { Result } from '../../sidecar/edge/result.js';
import type { DesiredServer } from '../../sidecar/reconcile/plan.js';
import { eventually, get } from '../support/http.js';
import { startLoad } from '../support/load.js';
import { driverFor } from '../support/runtime.js';

const binary = dataplaneApiBinary();

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.operation}: ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

describe.each<DriverChoice>(['runtime', 'dataplane'])('the HAProxy driver contract (%s)', (kind) => {
  const skip = kind === 'dataplane' && binary === undefined;
  let haproxy: LocalHaproxy;
  let driver: HaproxyDriver;
  let first: TestContainer;
  let second: TestContainer;
  const desired = (name: string, container: TestContainer): DesiredServer => ({
    backend: haproxy.backend,
    name,
    address: '127.0.0.1',
    port: container.hostPort,
    weight: 100,
    containerId: container.id,
  });
  const servers = async (): Promise<string[]> => value(await driver.readServers([haproxy.backend])).servers.map((s) => s.name).sort();
  const stateOf = async (name: string): Promise<string | undefined> =>
    value(await driver.listRuntimeServers(haproxy.backend)).find((s) => s.name === name)?.adminState;

  beforeAll(async () => {
    if (skip) return;
    [haproxy, first, second] = await Promise.all([startLocalHaproxy({ withDataplane: kind === 'dataplane' }), startNginx(), startNginx()]);
    driver = driverFor(haproxy, kind);
  });

  afterAll(async () => {
    if (skip) return;
    await haproxy?.stop();
    await Promise.all([first, second].map((c) => c?.remove()));
  });

  it.skipIf(skip)('inspects HAProxy: which driver, which version, runtime states readable', async () => {
    const report = value(await driver.inspect([haproxy.backend]));
    expect(report).toMatchObject({ driver: kind, haproxyVersion: haproxy.haproxyVersion, runtimeReads: true });
  });

  it.skipIf(skip)('adds a server that serves at once, with no reload and no failed request', async () => {
    const reloads = await haproxy.reloadCount();
    const outcome = value(await driver.apply([{ op: 'add', server: desired('hsc-contract-1', first), reason: 'container ready' }], value(await driver.readServers([haproxy.backend]))));
    expect(outcome.reloads).toBe(0);
    expect(await servers()).toEqual(['hsc-contract-1']);
    expect(await stateOf('hsc-contract-1')).toBe('ready');
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).servedBy === first.hostname, 10_000)).toBe(true);
    expect(await haproxy.reloadCount()).toBe(reloads);
  });

  it.skipIf(skip)('sets drain, maint and ready at run time and reads them back', async () => {
    for (const state of ['drain', 'maint', 'ready'] as const) {
      value(await driver.setAdminState(haproxy.backend, 'hsc-contract-1', state));
      expect(await stateOf('hsc-contract-1')).toBe(state);
    }
  });

  it.skipIf(skip)('calls a server someone else created meanwhile a reason to re-read and re-plan, never a half-applied plan', async () => {
    const stale = value(await driver.readServers([haproxy.backend]));
    value(await driver.apply([{ op: 'add', server: desired('hsc-contract-2', second), reason: 'container ready' }], stale));
    const again = await driver.apply([{ op: 'add', server: desired('hsc-contract-2', second), reason: 'container ready' }], stale);
    expect(again.ok).toBe(false);
    if (!again.ok) expect(['conflict', 'exists']).toContain(again.error.kind);
    expect(await servers()).toEqual(['hsc-contract-1', 'hsc-contract-2']);
  });

  it.skipIf(skip)('keeps its servers and their drain state across a seamless reload, serving all along', async () => {
    value(await driver.setAdminState(haproxy.backend, 'hsc-contract-2', 'drain'));
    const load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 4, maxDurationMs: 20_000, maxRequests: 100_000 });
    await new Promise((resolve) => setTimeout(resolve, 300));
    execFileSync(`${haproxy.dir}/reload`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const report = await load.stop();
    expect(report.failures).toEqual({});
    expect(await servers()).toEqual(['hsc-contract-1', 'hsc-contract-2']);
    expect(await stateOf('hsc-contract-2')).toBe('drain');
    value(await driver.setAdminState(haproxy.backend, 'hsc-contract-2', 'ready'));
  });

  it.skipIf(skip)('replaces a server whose address changed in place, without a reload, then removes servers with at most one reload', async () => {
    const before = await haproxy.reloadCount();
    value(await driver.setAdminState(haproxy.backend, 'hsc-contract-2', 'maint'));
    const replaced = value(await driver.apply([{ op: 'replace', server: desired('hsc-contract-1', second), reason: 'address changed' }], value(await driver.readServers([haproxy.backend]))));
    expect(replaced.reloads).toBe(0);
    expect(await haproxy.reloadCount()).toBe(before);
    const moved = value(await driver.readServers([haproxy.backend])).servers.find((s) => s.name === 'hsc-contract-1');
    expect(moved?.port).toBe(second.hostPort);
    // The same server, its state kept: it serves from the new address at once.
    expect(await stateOf('hsc-contract-1')).toBe('ready');
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).servedBy === second.hostname, 10_000)).toBe(true);
    const reloads = await haproxy.reloadCount();
    const outcome = value(
      await driver.apply(
        [
          { op: 'remove', backend: haproxy.backend, name: 'hsc-contract-1', reason: 'no ready container' },
          { op: 'remove', backend: haproxy.backend, name: 'hsc-contract-2', reason: 'no ready container' },
        ],
        value(await driver.readServers([haproxy.backend])),
      ),
    );
    expect(outcome.reloads).toBeLessThanOrEqual(1);
    expect(await haproxy.reloadCount()).toBeLessThanOrEqual(reloads + 1);
    expect(await servers()).toEqual([]);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).status === 503, 10_000)).toBe(true);
  });
});
