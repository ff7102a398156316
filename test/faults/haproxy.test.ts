// Faults of HAProxy and of whoever writes to it, with the sidecar (autoscaling off) keeping a
// pool of three replicas in HAProxy while the test changes the pool under a constant paced load:
//   2.  the writer unreachable for a while (runtime: the socket refuses connections; dataplane:
//       the Data Plane API process stopped), a replica replaced meanwhile, then back;
//   3.  a reload that fails (an operator's edit HAProxy refuses): HAProxy keeps serving, the
//       sidecar keeps converging without a loop of reloads, and reports what it cannot do;
//   6.  another writer changing the same backend while the sidecar reconciles;
//   8.  a transaction left open by a crashed writer (Data Plane API only);
//   10. HAProxy reloaded, then restarted, by an operator while the sidecar runs.
// The replica replaced during a fault is stopped with `docker stop`, behind the sidecar's back
// (world.replaceOne): requests that fail in the moment HAProxy still sends to it are counted as
// on that container, like a crash's; every other failure fails the fault.
import { spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricSum } from '../../bench/lib/sidecar-process.js';
import { runningChildren } from '../../devenv/children.js';
import { availableDrivers, type DriverChoice } from '../../devenv/sidecar-env.js';
import { applyInTransaction } from '../../sidecar/dataplane/client.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually } from '../support/http.js';
import { runtimeServerNames } from '../support/runtime.js';
import { createWorld, type World } from './world.js';

/** The pid of the process whose command line names `marker` (a file of the instance's directory). */
function pidOf(marker: string): number {
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ').includes(marker)) return Number(entry);
    } catch {
      // Gone meanwhile.
    }
  }
  throw new Error(`no process runs with ${marker}`);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe.each<DriverChoice>(['runtime', 'dataplane'])('faults: HAProxy and its writers (%s driver)', (driver) => {
  const skip = !availableDrivers().includes(driver);
  let world: World;
  /** HAProxy masters this file started itself (fault 10's restart), stopped at the end. */
  const restartedMasters: number[] = [];

  // A replica replaced by a graceful stop must fail no request: no window excuses any.
  const replaceOne = (): Promise<void> => world.replaceOne();
  const errors = async (): Promise<number> => metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_reconcile_runs_total', { result: 'error' });

  beforeAll(async () => {
    if (skip) return;
    world = await createWorld({ driver, replicas: 3 });
    for (let i = 0; i < 3; i++) await world.addReplica();
    await world.startSidecar(driver === 'dataplane' ? { HSC_DATAPLANE_TIMEOUT_MS: '2000', HSC_DATAPLANE_RETRIES: '1' } : {});
    const { ms, problems } = await world.converge(3, Date.now(), 30_000);
    if (ms === null) throw new Error(`the pool did not converge before the faults: ${problems.join('; ')}`);
  });

  afterAll(async () => {
    if (skip) return;
    await world?.close();
    for (const pid of restartedMasters) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Already gone.
      }
    }
  });

  it.skipIf(skip)('2. the writer unreachable while a replica is replaced, then back: converges, no request fails', async () => {
    const load = world.startLoad();
    const errorsBefore = await errors();
    let restore: () => Promise<void>;
    if (driver === 'runtime') {
      // The socket's file stays, nobody listens on it: every connection is refused.
      const socket = world.haproxy.runtimeSocket;
      await rename(socket, `${socket}.away`);
      const refusing = createServer();
      await new Promise<void>((resolve) => refusing.listen(socket, resolve));
      // Closing a Unix socket's server in Node leaves its file: a path that refuses.
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
      restore = async () => {
        await rm(socket, { force: true });
        await rename(`${socket}.away`, socket);
      };
    } else {
      const pid = pidOf(join(world.haproxy.dir, 'dataplaneapi.yml'));
      process.kill(pid, 'SIGSTOP');
      restore = () => Promise.resolve(void process.kill(pid, 'SIGCONT'));
    }
    const cut = Date.now();
    let back = cut;
    try {
      await replaceOne();
      await sleep(4_000);
    } finally {
      await restore();
      back = Date.now();
    }
    const errorsDuring = (await errors()) - errorsBefore;
    const { problems, failed, report } = await world.conclude({
      fault: driver === 'runtime' ? '2 runtime socket refusing' : '2 Data Plane API stopped (SIGSTOP)',
      expected: 3,
      since: back,
      load,
      notes: () => `outage ${((back - cut) / 1000).toFixed(1)} s with a replica replaced; ${errorsDuring} failed reconcile passes reported meanwhile`,
    });
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
    expect(errorsDuring).toBeGreaterThan(0);
  });

  it.skipIf(skip)('3. a reload HAProxy refuses: HAProxy keeps serving, the sidecar converges without a reload loop', async () => {
    const load = world.startLoad();
    const file = world.haproxy.configFile;
    const good = await readFile(file, 'utf8');
    // An operator's edit that the Data Plane API's parser takes but HAProxy refuses (no such file).
    const badLine = `    errorfile 503 ${world.dir}/no-such-errorfile.http`;
    const broken = good.replace(/^(defaults[^\n]*\n)/m, `$1${badLine}\n`);
    expect(broken).not.toBe(good);
    await writeFile(file, broken);
    const reloadsBefore = await world.haproxy.reloadCount();
    const failedReloadsBefore = metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_haproxy_reloads_total', { result: 'failed' });
    const errorsBefore = await errors();
    // The operator's reload: the master re-reads the file, refuses it and keeps the running worker.
    process.kill(Number((await readFile(join(world.haproxy.dir, 'haproxy.pid'), 'utf8')).trim()), 'SIGUSR2');
    await replaceOne();
    await sleep(6_000);
    const reloadsDuring = (await world.haproxy.reloadCount()) - reloadsBefore;
    const failedReloads = metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_haproxy_reloads_total', { result: 'failed' }) - failedReloadsBefore;
    const errorsDuring = (await errors()) - errorsBefore;
    // The operator fixes the file (keeping what the sidecar wrote into it meanwhile) and reloads;
    // with the Data Plane API, which keeps the file it read in memory, through its raw endpoint.
    const repaired = (await readFile(file, 'utf8')).split('\n').filter((line) => !line.includes('no-such-errorfile')).join('\n');
    const fixed = Date.now();
    const reloadsAtFix = await world.haproxy.reloadCount();
    if (driver === 'runtime') {
      await writeFile(file, repaired);
      process.kill(Number((await readFile(join(world.haproxy.dir, 'haproxy.pid'), 'utf8')).trim()), 'SIGUSR2');
    } else {
      const version = await dataplaneClientFor(world.haproxy).configurationVersion();
      if (!version.ok) throw new Error(version.error.message);
      const authorization = `Basic ${Buffer.from(`${world.haproxy.dataplaneUser}:${world.haproxy.dataplanePassword}`).toString('base64')}`;
      const posted = await fetch(`${world.haproxy.dataplaneUrl ?? ''}/v3/services/haproxy/configuration/raw?version=${version.value}`, {
        method: 'POST',
        headers: { authorization, 'content-type': 'text/plain' },
        body: repaired.replace(/^# _md5hash=.*\n/m, ''),
        signal: AbortSignal.timeout(30_000),
      });
      expect(posted.status, await posted.text()).toBeLessThan(300);
    }
    const { problems, failed, report } = await world.conclude({
      fault: '3 reload refused (bad config)',
      expected: 3,
      since: fixed,
      load,
      notes: async () =>
        `${reloadsDuring} reloads in 6 s with the bad file (the operator's refused one counted by the master), ` +
        `${failedReloads} failed reloads and ${errorsDuring} failed passes reported by the sidecar; ` +
        `${(await world.haproxy.reloadCount()) - reloadsAtFix} reload(s) after the fix`,
    });
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
    // Not a loop: a handful of attempts at most while the file stays broken.
    expect(reloadsDuring).toBeLessThanOrEqual(4);
  });

  it.skipIf(skip)('6. another writer changing the backend while the sidecar reconciles: converges, no request fails', async () => {
    const load = world.startLoad();
    const name = 'other-writer';
    const client = driver === 'dataplane' ? dataplaneClientFor(world.haproxy) : undefined;
    const has = async (): Promise<boolean> => (await runtimeServerNames(world.haproxy)).includes(name);
    let writes = 0;
    let stop = false;
    const toggle = async (): Promise<void> => {
      const present = await has();
      if (client !== undefined) {
        const c = client;
        await applyInTransaction(c, (id) => (present ? c.deleteServer(world.haproxy.backend, name, id) : c.addServer(world.haproxy.backend, { name, address: '127.0.0.1', port: 9 }, id)), 20_000);
      } else if (present) {
        await world.haproxy.runtime(`set server ${world.haproxy.backend}/${name} state maint`);
        await world.haproxy.runtime(`del server ${world.haproxy.backend}/${name}`);
      } else {
        // Weight 0 and in maintenance: the other writer's server never takes a request.
        await world.haproxy.runtime(`add server ${world.haproxy.backend}/${name} 127.0.0.1:9 weight 0`);
      }
      writes++;
    };
    const writer = (async () => {
      const deadline = Date.now() + 10_000;
      while (!stop && Date.now() < deadline) await toggle();
      if (await has()) await toggle();
    })();
    let ended = Date.now();
    try {
      await replaceOne();
      await sleep(3_000);
    } finally {
      stop = true;
      await writer;
      ended = Date.now();
    }
    const { problems, failed, report } = await world.conclude({
      fault: '6 concurrent writer',
      expected: 3,
      since: ended,
      load,
      check: { foreignServers: [name] },
      notes: async () =>
        `${writes} writes by the other writer while a replica was replaced; ` +
        `${metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_reconcile_conflicts_total')} conflicts re-planned by the sidecar so far`,
    });
    expect(writes).toBeGreaterThan(0);
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
  });

  it.skipIf(skip || driver !== 'dataplane')('8. a transaction left open by a crashed writer: the sidecar commits its own, the stale one changes nothing', async () => {
    const load = world.startLoad();
    const client = dataplaneClientFor(world.haproxy);
    const version = await client.configurationVersion();
    if (!version.ok) throw new Error(version.error.message);
    const opened = await client.startTransaction(version.value);
    if (!opened.ok) throw new Error(opened.error.message);
    const stale = opened.value.id;
    // The crashed writer got as far as a change inside its transaction, never to its commit.
    const change = await client.addServer(world.haproxy.backend, { name: 'crashed-writer', address: '127.0.0.1', port: 9 }, stale);
    expect(change.ok).toBe(true);
    const start = Date.now();
    await replaceOne();
    const { problems, failed, report } = await world.conclude({
      fault: '8 transaction left open by a crashed writer',
      expected: 3,
      since: start,
      load,
      check: { foreignTransactions: [stale] },
      notes: () => `a replica replaced after the stale transaction opened; converge counted from the replacement's start`,
    });
    const configured = await client.listServers(world.haproxy.backend);
    const names = configured.ok ? configured.value.map((s) => s.name) : [];
    await client.deleteTransaction(stale);
    expect(problems).toEqual([]);
    expect(names).not.toContain('crashed-writer');
    expect(failed, JSON.stringify(report.failures)).toBe(0);
  });

  it.skipIf(skip)('10. HAProxy reloaded, then restarted, by an operator while the sidecar runs', async () => {
    const load = world.startLoad();
    const dir = world.haproxy.dir;
    // A reload while a replica is replaced.
    const replacing = replaceOne();
    await sleep(500);
    const reloaded = Date.now();
    await new Promise<void>((resolve, reject) => {
      const child = spawn(join(dir, 'reload'), { stdio: 'ignore' });
      child.on('error', reject);
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`reload exited ${code}`))));
    });
    await replacing;
    const afterReload = await world.conclude({
      fault: '10a operator reload',
      expected: 3,
      since: reloaded,
      load,
      notes: () => 'seamless reload while a replica was replaced',
    });

    // A restart: the master stopped, then started again over the same file and sockets. The
    // requests sent while nothing listened are the restart's, not the sidecar's.
    const load2 = world.startLoad();
    await sleep(1_000);
    const master = Number((await readFile(join(dir, 'haproxy.pid'), 'utf8')).trim());
    const down = Date.now();
    process.kill(master, 'SIGTERM');
    const gone = (): boolean => {
      try {
        process.kill(master, 0);
        return false;
      } catch {
        return true;
      }
    };
    await eventually(() => Promise.resolve(gone()), 10_000, 50);
    const log = createWriteStream(join(dir, 'haproxy.log'), { flags: 'a' });
    const restarted = spawn(world.haproxy.haproxyBinary, ['-W', '-S', `${join(dir, 'master.sock')},mode,600`, '-f', world.haproxy.configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
    restarted.stdout.pipe(log);
    restarted.stderr.pipe(log);
    runningChildren().add(restarted);
    if (restarted.pid !== undefined) restartedMasters.push(restarted.pid);
    expect(await eventually(async () => (await world.haproxy.runtime('show info').catch(() => '')).includes('Version'), 10_000, 50)).toBe(true);
    const up = Date.now();
    const afterRestart = await world.conclude({
      fault: '10b operator restart',
      expected: 3,
      since: up,
      load: load2,
      window: { from: down - 100, to: up + 500 },
      notes: () => `HAProxy down ${up - down} ms (failures then counted as on the crashed component)`,
    });
    for (const { problems, failed, report } of [afterReload, afterRestart]) {
      expect(problems).toEqual([]);
      expect(failed, JSON.stringify(report.failures)).toBe(0);
    }
  });
});
