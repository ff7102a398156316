// The runtime driver against a real HAProxy (the version devenv/localenv.ts runs: 3.0 by
// default, 2.6 with HSC_HAPROXY_BIN=/usr/sbin/haproxy) and real nginx containers, with plans
// made by the reconciler's own plan(): servers added at run time serve traffic, stick with
// their persistence cookie, are in the configuration file's managed region (which `haproxy -c`
// accepts), keep their drain state across a seamless reload, come back from the file alone
// after a full restart, and leave runtime and file when removed; no request fails while
// servers are added, replaced and removed under a bounded request loop.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { readFile, readlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import type { HaproxyDriver, RuntimeServer, ServerSnapshot } from '../../sidecar/driver/port.js';
import { plan, type DesiredServer } from '../../sidecar/reconcile/plan.js';
import { createRuntimeDriver } from '../../sidecar/runtime/driver.js';
import { eventually } from '../support/http.js';
import { startLoad, type RunningLoad } from '../support/load.js';

const run = promisify(execFile);
const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
const isOwned = (name: string): boolean => name.startsWith('hsc-');
const healthCheck = { intervalMs: 500, fall: 2, rise: 1 };

describe('runtime driver against a real HAProxy and nginx', () => {
  let haproxy: LocalHaproxy;
  let driver: HaproxyDriver;
  let manual: TestContainer;
  let web: TestContainer[] = [];
  /** The master started by restart(), which localenv's stop() does not know about. */
  let restarted: ChildProcess | undefined;
  /** HAProxy 3.0 or later, as the driver's inspect() read it. */
  let v3 = false;
  let stickyCookie = '';

  const desired = (index: number, weight = 100): DesiredServer => {
    const container = web[index];
    if (container === undefined) throw new Error(`no container ${index}`);
    return { backend: haproxy.backend, name: `hsc-web-${index + 1}`, address: '127.0.0.1', port: container.hostPort, weight, containerId: container.id };
  };

  const snapshot = async (): Promise<ServerSnapshot> => {
    const read = await driver.readServers([haproxy.backend]);
    if (!read.ok) throw new Error(`${read.error.operation}: ${read.error.message}`);
    return read.value;
  };

  /** Plans like the reconciler and applies through the driver. */
  const converge = async (servers: readonly DesiredServer[]): Promise<number> => {
    const current = await snapshot();
    const operations = plan({ desired: servers, actual: current.servers, managedBackends: [haproxy.backend], isOwned });
    const applied = await driver.apply(operations, current);
    if (!applied.ok) throw new Error(`${applied.error.operation}: ${applied.error.kind}: ${applied.error.message}`);
    expect(applied.value).toEqual({ reloads: 0, transactions: 0, runtimeChanges: operations.length });
    return operations.length;
  };

  const runtimeServers = async (): Promise<readonly RuntimeServer[]> => {
    const read = await driver.listRuntimeServers(haproxy.backend);
    if (!read.ok) throw new Error(read.error.message);
    return read.value;
  };

  const ownedRuntime = async (): Promise<string[]> =>
    (await runtimeServers()).filter((s) => isOwned(s.name)).map((s) => `${s.name} ${s.adminState} ${s.operationalState}`);

  const allUp = (names: readonly string[]): Promise<boolean> =>
    eventually(async () => {
      const servers = await runtimeServers();
      return names.every((name) => servers.some((s) => s.name === name && s.adminState === 'ready' && s.operationalState === 'up'));
    }, 20_000, 100);

  /** The server lines of the managed region, as the file holds them. */
  const region = async (): Promise<string[]> => {
    const lines = (await readFile(haproxy.configFile, 'utf8')).split('\n');
    const begin = lines.findIndex((l) => l.trim() === `# hsc:managed-servers begin ${haproxy.backend}`);
    const end = lines.findIndex((l) => l.trim() === `# hsc:managed-servers end ${haproxy.backend}`);
    return lines.slice(begin + 1, end).filter((l) => l.trim().startsWith('server '));
  };
  // On 2.6 without an idle connection pool, which would make a reloaded server undeletable (config-file.ts).
  const regionLine = (server: DesiredServer): string =>
    `    server ${server.name} 127.0.0.1:${server.port} check inter 500 fall 2 rise 1 weight ${server.weight}${v3 ? '' : ' pool-max-conn 0'}`;

  const masterPid = async (): Promise<number> => Number((await readFile(join(haproxy.dir, 'haproxy.pid'), 'utf8')).trim());
  /** The binary the running master executes, whichever localenv chose. */
  const haproxyBinary = async (): Promise<string> => readlink(`/proc/${await masterPid()}/exe`);
  const configCheck = async (): Promise<void> => {
    await run(await haproxyBinary(), ['-c', '-q', '-f', haproxy.configFile], { timeout: 10_000 });
  };

  /** One GET through the frontend: status, the nginx that answered, and the cookie it set. */
  const request = async (cookie?: string): Promise<{ status: number; servedBy: string | null; setCookie: string | null }> => {
    try {
      const response = await fetch(`${haproxy.frontendUrl}/`, {
        headers: cookie === undefined ? {} : { cookie },
        signal: AbortSignal.timeout(10_000),
      });
      await response.arrayBuffer();
      return { status: response.status, servedBy: response.headers.get('x-served-by'), setCookie: response.headers.get('set-cookie') };
    } catch {
      return { status: 0, servedBy: null, setCookie: null };
    }
  };
  const servedBy = async (requests: number): Promise<Set<string>> => {
    const seen = new Set<string>();
    for (let i = 0; i < requests; i++) {
      const answer = await request();
      if (answer.status === 200 && answer.servedBy !== null) seen.add(answer.servedBy);
    }
    return seen;
  };
  const hostnames = (...indexes: number[]): string[] => indexes.map((i) => web[i]?.hostname ?? '');
  // manual-1 has HAProxy's default weight 1 against the managed servers' 100: it is rarely picked.
  const reachesBoth = (): Promise<boolean> =>
    eventually(async () => {
      const seen = await servedBy(8);
      return hostnames(0, 1).every((h) => seen.has(h));
    }, 10_000, 100);

  const withLoad = async (work: () => Promise<void>): Promise<void> => {
    const load: RunningLoad = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 4, maxDurationMs: 45_000, maxRequests: 20_000 });
    try {
      await new Promise((resolve) => setTimeout(resolve, 300));
      await work();
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      const report = await load.stop();
      expect(report.failures).toEqual({});
      expect(report.ok).toBeGreaterThan(50);
    }
  };

  /**
   * A full restart from the file alone: the server-state file is emptied first, so every server
   * HAProxy runs afterwards comes from the configuration file, none from saved state.
   */
  const restart = async (): Promise<void> => {
    const [binary, pid] = [await haproxyBinary(), await masterPid()];
    await writeFile(join(haproxy.dir, 'server-state'), '');
    process.kill(pid, 'SIGTERM');
    const gone = await eventually(async () => {
      try {
        process.kill(pid, 0);
        return Promise.resolve(false);
      } catch {
        return Promise.resolve(true);
      }
    }, 10_000, 50);
    if (!gone) throw new Error(`HAProxy master ${pid} did not stop`);
    // The same arguments devenv/localenv.ts starts HAProxy with.
    const log = createWriteStream(join(haproxy.dir, 'haproxy-restarted.log'), { flags: 'a' });
    restarted = spawn(binary, ['-W', '-S', `${haproxy.masterSocket},mode,600`, '-f', haproxy.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    restarted.stdout?.pipe(log);
    restarted.stderr?.pipe(log);
    const answering = await eventually(async () => (await haproxy.runtime('show info').catch(() => '')).includes('Version:'), 10_000, 100);
    if (!answering) throw new Error('restarted HAProxy does not answer on its runtime socket');
  };

  beforeAll(async () => {
    [manual, ...web] = await Promise.all([
      startNginx({ name: `${prefix}-manual` }),
      startNginx({ name: `${prefix}-web-1` }),
      startNginx({ name: `${prefix}-web-2` }),
    ]);
    // A hand-written server keeps the frontend answering while the managed ones come and go,
    // and must never be touched.
    haproxy = await startLocalHaproxy({
      withDataplane: false,
      manualServers: [{ name: 'manual-1', address: '127.0.0.1', port: manual.hostPort }],
    });
    driver = createRuntimeDriver({ address: haproxy.runtimeSocket, timeoutMs: 5_000, configFile: haproxy.configFile, healthCheck, isOwned });
    expect(await allUp(['manual-1'])).toBe(true);
  });

  afterAll(async () => {
    if (restarted !== undefined && restarted.exitCode === null && restarted.signalCode === null) {
      const exited = new Promise((resolve) => restarted?.once('exit', resolve));
      restarted.kill('SIGTERM');
      await exited;
    }
    await haproxy?.stop();
    await Promise.all([manual, ...web].map((c) => c?.remove()));
  });

  it('inspects: the runtime driver, the HAProxy version, and what this version lacks', async () => {
    const report = await driver.inspect([haproxy.backend]);
    expect(report.ok).toBe(true);
    if (!report.ok) return;
    const version = report.value.haproxyVersion ?? '';
    // Reported without the distribution's suffix ("3.0.11", from "3.0.11-1+deb13u4").
    expect(version).toBe(haproxy.haproxyVersion);
    expect((await haproxy.runtime('show info')).includes(`Version: ${version}`)).toBe(true);
    expect(report.value).toMatchObject({ driver: 'runtime', runtimeReads: true });
    v3 = /^(?:[3-9]|\d{2,})\./.test(version);
    // 2.6: no `wait srv-removable`, and the file's servers go without an idle connection pool.
    expect(report.value.limitations).toHaveLength(v3 ? 0 : 2);
    console.info(`[runtime-driver] HAProxy ${version}; limitations: ${JSON.stringify(report.value.limitations)}`);
  });

  it('adds two servers without a failed request; traffic reaches both', async () => {
    await withLoad(async () => {
      expect(await converge([desired(0), desired(1)])).toBe(2);
      expect(await allUp(['hsc-web-1', 'hsc-web-2'])).toBe(true);
      expect(await reachesBoth()).toBe(true);
    });

    // Converged: the same plan again is empty, and nothing is written.
    expect(await converge([desired(0), desired(1)])).toBe(0);
  });

  it('the managed region lists them, the hand-written server stays where it was, and haproxy -c accepts the file', async () => {
    expect(await region()).toEqual([regionLine(desired(0)), regionLine(desired(1))]);
    const text = await readFile(haproxy.configFile, 'utf8');
    expect(text).toContain(`    server manual-1 127.0.0.1:${manual.hostPort} check inter 1s fall 2 rise 1\n`);
    await configCheck();
  });

  it('a client holding the persistence cookie of a server added at run time sticks to it', async () => {
    const target = hostnames(0)[0];
    let cookie: string | undefined;
    for (let i = 0; i < 30 && cookie === undefined; i++) {
      const answer = await request();
      if (answer.servedBy === target && answer.setCookie !== null) cookie = /SRVID=([^;]+)/.exec(answer.setCookie)?.[1];
    }
    // HAProxy 2.6 answers an empty SRVID= (unset) for a runtime-added server without a dynamic cookie.
    expect(cookie).toMatch(/^[0-9a-f]{16}$/);
    stickyCookie = `SRVID=${cookie ?? ''}`;
    const answers = await Promise.all(Array.from({ length: 12 }, () => request(stickyCookie)));
    expect(answers.map((a) => a.servedBy)).toEqual(new Array<string | undefined>(12).fill(target));
  });

  it('reads drain and ready back from the running HAProxy', async () => {
    expect(await driver.setAdminState(haproxy.backend, 'hsc-web-2', 'drain')).toEqual({ ok: true, value: undefined });
    expect(await ownedRuntime()).toEqual(['hsc-web-1 ready up', 'hsc-web-2 drain up']);
    expect(await driver.setAdminState(haproxy.backend, 'hsc-web-2', 'ready')).toEqual({ ok: true, value: undefined });
    expect(await ownedRuntime()).toEqual(['hsc-web-1 ready up', 'hsc-web-2 ready up']);
    expect(await driver.setAdminState(haproxy.backend, 'hsc-nope', 'drain')).toMatchObject({ ok: false, error: { kind: 'not-found' } });
  });

  it('a seamless reload keeps both servers, the drain state and the persistence cookie', async () => {
    expect((await driver.setAdminState(haproxy.backend, 'hsc-web-2', 'drain')).ok).toBe(true);
    const reloadsBefore = await haproxy.reloadCount();
    // haproxy/reload.sh via the instance's script: check, save server state, SIGUSR2, wait for the new worker.
    await run(join(haproxy.dir, 'reload'), [], { timeout: 20_000 });
    expect(await eventually(async () => (await haproxy.reloadCount()) === reloadsBefore + 1, 10_000, 100)).toBe(true);
    expect((await snapshot()).servers.filter((s) => isOwned(s.name))).toEqual([
      { backend: haproxy.backend, name: 'hsc-web-1', address: '127.0.0.1', port: desired(0).port, weight: 100 },
      { backend: haproxy.backend, name: 'hsc-web-2', address: '127.0.0.1', port: desired(1).port, weight: 100 },
    ]);
    expect(await eventually(async () => (await ownedRuntime()).join() === 'hsc-web-1 ready up,hsc-web-2 drain up', 10_000, 100)).toBe(true);
    // The dynamic cookie derives from key, address and port: the same after the reload.
    const answers = await Promise.all(Array.from({ length: 6 }, () => request(stickyCookie)));
    expect(answers.map((a) => a.servedBy)).toEqual(new Array<string | undefined>(6).fill(hostnames(0)[0]));
    expect((await driver.setAdminState(haproxy.backend, 'hsc-web-2', 'ready')).ok).toBe(true);
  });

  it('a full restart from the configuration file alone keeps the servers', async () => {
    await restart();
    expect((await snapshot()).servers.map((s) => s.name).sort()).toEqual(['hsc-web-1', 'hsc-web-2', 'manual-1']);
    expect(await allUp(['manual-1', 'hsc-web-1', 'hsc-web-2'])).toBe(true);
    expect(await reachesBoth()).toBe(true);
  });

  it('replaces a server whose weight changed, without a failed request', async () => {
    await withLoad(async () => {
      expect(await converge([desired(0), desired(1, 50)])).toBe(1);
      expect(await allUp(['hsc-web-1', 'hsc-web-2'])).toBe(true);
    });
    expect((await snapshot()).servers.find((s) => s.name === 'hsc-web-2')?.weight).toBe(50);
    expect(await region()).toEqual([regionLine(desired(0)), regionLine(desired(1, 50))]);
  });

  it('an add of a server HAProxy already has is refused as exists', async () => {
    const current = await snapshot();
    const stale: ServerSnapshot = { revision: undefined, backends: current.backends, servers: current.servers.filter((s) => s.name !== 'hsc-web-1') };
    const result = await driver.apply([{ op: 'add', server: desired(0), reason: 'container ready' }], stale);
    expect(result).toMatchObject({ ok: false, error: { kind: 'exists', message: 'Already exists a server with the same name in backend.' } });
    // The file still holds what HAProxy runs.
    expect(await region()).toEqual([regionLine(desired(0)), regionLine(desired(1, 50))]);
  });

  it('removes a server without a failed request: gone from the running HAProxy and from the file', async () => {
    await withLoad(async () => {
      expect(await converge([desired(0)])).toBe(1);
    });
    expect((await runtimeServers()).map((s) => s.name).sort()).toEqual(['hsc-web-1', 'manual-1']);
    expect(await region()).toEqual([regionLine(desired(0))]);
    await configCheck();
    expect(await servedBy(12)).not.toContain(hostnames(1)[0]);
    // And the last one: the region is empty, the hand-written server still serves.
    await withLoad(async () => {
      expect(await converge([])).toBe(1);
    });
    expect((await runtimeServers()).map((s) => s.name)).toEqual(['manual-1']);
    expect(await region()).toEqual([]);
    await configCheck();
  });
});
