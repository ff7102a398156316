// The runtime driver with a fake transport that answers like HAProxy 2.6 or 3.0 and records
// every command: the exact command sequence per operation, the managed regions written before
// any of them, the stop at the first failure, and the reads.
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ServerSnapshot } from '../../../sidecar/driver/port.js';
import { ok, type Result } from '../../../sidecar/edge/result.js';
import type { DesiredServer, Operation } from '../../../sidecar/reconcile/plan.js';
import { createRuntimeDriver, type RuntimeDriverOptions } from '../../../sidecar/runtime/driver.js';

const HEADER =
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ' +
  'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state ' +
  'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl ' +
  'srv_check_port srv_check_addr srv_agent_addr srv_agent_port';

const config = `backend be_app
    balance roundrobin
    server manual-1 127.0.0.1:8080 check
    # hsc:managed-servers begin be_app
    # hsc:managed-servers end be_app

backend be_api
    balance roundrobin
    # hsc:managed-servers begin be_api
    # hsc:managed-servers end be_api
`;

const VERSION_30 = '3.0.11-1+deb13u4';
const VERSION_26 = '2.6.12-1+deb12u4';
const VERSION_34 = '3.4.7-1';

interface Sent {
  readonly command: string;
  readonly timeoutMs: number;
}

/**
 * A transport that answers like HAProxy: `answer` may give a text for a command (without the
 * trailing blank line); otherwise reads and writes get HAProxy's usual successful answers.
 */
function fakeHaproxy(version: string, answer: (command: string) => string | undefined = () => undefined) {
  const sent: Sent[] = [];
  const transport = (command: string, timeoutMs: number): Promise<Result<string>> => {
    sent.push({ command, timeoutMs });
    const text =
      answer(command) ??
      (command === 'show info'
        ? `Name: HAProxy\nVersion: ${version}\nRelease_date: 2026/10/15`
        : command.startsWith('show servers state ')
          ? `1\n${HEADER}`
          : command.startsWith('add server ')
            ? 'New server registered.'
            : command.startsWith('del server ')
              ? 'Server deleted.'
              : command.startsWith('wait ')
                ? 'Done.'
                : / addr /.test(command)
                  ? "IP changed from '10.0.0.1' to '10.0.0.9' by 'stats socket command'"
                  : '');
    return Promise.resolve(ok(text === '' ? '\n' : `${text}\n\n`));
  };
  return { sent, commands: () => sent.map((s) => s.command), transport };
}

const desired = (name: string, address: string, weight = 100, backend = 'be_app'): DesiredServer => ({
  backend,
  name,
  address,
  port: 80,
  weight,
  containerId: `c-${name}`,
});

const add = (server: DesiredServer): Operation => ({ op: 'add', server, reason: 'container ready' });
const remove = (name: string, backend = 'be_app'): Operation => ({ op: 'remove', backend, name, reason: 'no ready container' });

const snapshot: ServerSnapshot = {
  revision: undefined,
  backends: ['be_app', 'be_api'],
  servers: [
    { backend: 'be_app', name: 'manual-1', address: '127.0.0.1', port: 8080, weight: 1 },
    { backend: 'be_app', name: 'hsc-old', address: '10.0.0.1', port: 80, weight: 100 },
    { backend: 'be_api', name: 'hsc-api-1', address: '10.0.1.1', port: 80, weight: 100 },
  ],
};

describe('runtime driver', () => {
  let dir: string;
  let configFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'hsc-unit-runtime-driver-'));
    configFile = join(dir, 'haproxy.cfg');
    await writeFile(configFile, config);
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const driverFor = (fake: ReturnType<typeof fakeHaproxy>, extra: Partial<RuntimeDriverOptions> = {}) =>
    createRuntimeDriver({
      address: '/run/haproxy/admin.sock',
      timeoutMs: 5_000,
      configFile,
      healthCheck: { intervalMs: 1000, fall: 2, rise: 1 },
      isOwned: (name) => name.startsWith('hsc-'),
      transport: fake.transport,
      ...extra,
    });

  const region = async (backend: string): Promise<string[]> => {
    const lines = (await readFile(configFile, 'utf8')).split('\n');
    const begin = lines.indexOf(`    # hsc:managed-servers begin ${backend}`);
    const end = lines.indexOf(`    # hsc:managed-servers end ${backend}`);
    return lines.slice(begin + 1, end).filter((line) => !line.trim().startsWith('#'));
  };

  describe('apply on HAProxy 3.0', () => {
    it('adds: writes the region first, then add server, enable health, enable server', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const result = await driverFor(fake).apply([add(desired('hsc-new', '10.0.0.5'))], snapshot);
      expect(result).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 1 } });
      expect(fake.commands()).toEqual([
        'show info',
        'add server be_app/hsc-new 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100',
        'enable health be_app/hsc-new',
        'enable server be_app/hsc-new',
      ]);
      // The snapshot's own servers stay, the hand-written one is never written, and be_api's
      // region is brought in line with what HAProxy runs there (level-triggered, not per operation).
      expect(await region('be_app')).toEqual([
        '    server hsc-new 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100',
        '    server hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 100',
      ]);
      expect(await region('be_api')).toEqual(['    server hsc-api-1 10.0.1.1:80 check inter 1000 fall 2 rise 1 weight 100']);
    });

    it('removes: maint, wait srv-removable (the command timeout grows by the wait), del server', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const result = await driverFor(fake).apply([remove('hsc-old')], snapshot);
      expect(result).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 1 } });
      expect(fake.sent.slice(1)).toEqual([
        { command: 'set server be_app/hsc-old state maint', timeoutMs: 5_000 },
        { command: 'wait 2000 srv-removable be_app/hsc-old', timeoutMs: 7_000 },
        { command: 'del server be_app/hsc-old', timeoutMs: 5_000 },
      ]);
      expect(await region('be_app')).toEqual([]);
    });

    it.each(['Wait delay expired.', 'Failed.'])('cuts the sessions left after the wait answered %j, then deletes', async (waitAnswer) => {
      let deletes = 0;
      const fake = fakeHaproxy(VERSION_30, (command) => {
        if (command.startsWith('wait ')) return waitAnswer;
        if (command.startsWith('del server ') && deletes++ === 0) return 'Server still has connections attached to it, cannot remove it.';
        return undefined;
      });
      const result = await driverFor(fake, { removalWaitMs: 500 }).apply([remove('hsc-old')], snapshot);
      expect(result.ok).toBe(true);
      expect(fake.commands().slice(1)).toEqual([
        'set server be_app/hsc-old state maint',
        'wait 500 srv-removable be_app/hsc-old',
        'del server be_app/hsc-old',
        'shutdown sessions server be_app/hsc-old',
        'del server be_app/hsc-old',
      ]);
    });

    // 3.4's texts (measured on 3.4.7): the reason follows on the same line.
    it.each(['Wait delay expired. Server still has connections attached to it, cannot remove it.', 'Failed. No such server.'])(
      'on 3.3+ (del server leaves idle connections to close later), waits once more after cutting the sessions; wait answered %j',
      async (waitAnswer) => {
        let deletes = 0;
        const fake = fakeHaproxy(VERSION_34, (command) => {
          if (command.startsWith('wait ') && !fake.commands().some((c) => c.startsWith('shutdown'))) return waitAnswer;
          if (command.startsWith('del server ') && deletes++ === 0) return 'Server still has connections attached to it, cannot remove it.';
          return undefined;
        });
        const result = await driverFor(fake, { removalWaitMs: 500 }).apply([remove('hsc-old')], snapshot);
        expect(result.ok).toBe(true);
        expect(fake.sent.slice(1)).toEqual([
          { command: 'set server be_app/hsc-old state maint', timeoutMs: 5_000 },
          { command: 'wait 500 srv-removable be_app/hsc-old', timeoutMs: 5_500 },
          { command: 'del server be_app/hsc-old', timeoutMs: 5_000 },
          { command: 'shutdown sessions server be_app/hsc-old', timeoutMs: 5_000 },
          { command: 'wait 500 srv-removable be_app/hsc-old', timeoutMs: 5_500 },
          { command: 'del server be_app/hsc-old', timeoutMs: 5_000 },
        ]);
      },
    );

    it('replaces an address in place: the server keeps its state and the requests held for it', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const operation: Operation = { op: 'replace', server: desired('hsc-old', '10.0.0.9', 100), reason: 'address changed' };
      const result = await driverFor(fake).apply([operation], snapshot);
      expect(result).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 1 } });
      expect(fake.commands().slice(1)).toEqual(['set server be_app/hsc-old addr 10.0.0.9 port 80']);
      expect(await region('be_app')).toEqual(['    server hsc-old 10.0.0.9:80 check inter 1000 fall 2 rise 1 weight 100']);
    });

    it('reports a refused address change with HAProxy\'s words, and stops there', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) => (/ addr /.test(command) ? 'Invalid addr: bad' : undefined));
      const operation: Operation = { op: 'replace', server: desired('hsc-old', 'bad', 100), reason: 'address changed' };
      const result = await driverFor(fake).apply([operation, add(desired('hsc-web-2', '10.0.0.2'))], snapshot);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.message).toContain('Invalid addr: bad');
      expect(fake.commands().filter((c) => c.startsWith('add server'))).toEqual(['add server be_app/hsc-web-2 10.0.0.2:80 check inter 1000 fall 2 rise 1 weight 100']);
    });

    it('replaces a weight: removes, then adds with the new weight', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const operation: Operation = { op: 'replace', server: desired('hsc-old', '10.0.0.1', 50), reason: 'weight changed' };
      const result = await driverFor(fake).apply([operation], snapshot);
      expect(result).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 1 } });
      expect(fake.commands().slice(1)).toEqual([
        'set server be_app/hsc-old state maint',
        'wait 2000 srv-removable be_app/hsc-old',
        'del server be_app/hsc-old',
        'add server be_app/hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 50',
        'enable health be_app/hsc-old',
        'enable server be_app/hsc-old',
      ]);
      expect(await region('be_app')).toEqual(['    server hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 50']);
    });

    it('applies a plan across backends, new servers before removals, and writes both regions in one go', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const plan = [remove('hsc-api-1', 'be_api'), add(desired('hsc-web-2', '10.0.0.2')), add(desired('hsc-api-2', '10.0.1.2', 100, 'be_api'))];
      expect(await driverFor(fake).apply(plan, snapshot)).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 3 } });
      // Capacity first: a removal waits for its connections, and must not leave a backend empty meanwhile.
      expect(fake.commands().filter((c) => /^(add|del) server/.test(c))).toEqual([
        'add server be_app/hsc-web-2 10.0.0.2:80 check inter 1000 fall 2 rise 1 weight 100',
        'add server be_api/hsc-api-2 10.0.1.2:80 check inter 1000 fall 2 rise 1 weight 100',
        'del server be_api/hsc-api-1',
      ]);
      expect(await region('be_api')).toEqual(['    server hsc-api-2 10.0.1.2:80 check inter 1000 fall 2 rise 1 weight 100']);
      expect(await region('be_app')).toEqual([
        '    server hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 100',
        '    server hsc-web-2 10.0.0.2:80 check inter 1000 fall 2 rise 1 weight 100',
      ]);
    });

    it('stops at the first failure and returns it; the file already holds the whole target', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) =>
        command.startsWith('add server be_app/hsc-a ') ? 'Already exists a server with the same name in backend.' : undefined,
      );
      const plan = [add(desired('hsc-a', '10.0.0.5')), add(desired('hsc-b', '10.0.0.6'))];
      const result = await driverFor(fake).apply(plan, snapshot);
      expect(result).toEqual({
        ok: false,
        error: {
          kind: 'exists',
          message: 'Already exists a server with the same name in backend.',
          operation: 'add server be_app/hsc-a 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100',
        },
      });
      expect(fake.commands().some((c) => c.includes('hsc-b'))).toBe(false);
      expect((await region('be_app')).map((line) => line.split(' ')[5])).toEqual(['hsc-a', 'hsc-b', 'hsc-old']);
    });

    it('does not cut sessions when del refuses for another reason', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) =>
        command.startsWith('del server ') ? 'Only servers in maintenance mode can be deleted.' : undefined,
      );
      const result = await driverFor(fake).apply([remove('hsc-old')], snapshot);
      expect(result).toMatchObject({ ok: false, error: { kind: 'unavailable', operation: 'del server be_app/hsc-old' } });
      expect(fake.commands().some((c) => c.startsWith('shutdown'))).toBe(false);
    });

    it('reads the version once for all passes', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const driver = driverFor(fake);
      await driver.apply([add(desired('hsc-a', '10.0.0.5'))], snapshot);
      await driver.apply([add(desired('hsc-b', '10.0.0.6'))], snapshot);
      expect(fake.commands().filter((c) => c === 'show info')).toHaveLength(1);
    });
  });

  describe('apply on HAProxy 2.6', () => {
    it('adds with the backend dynamic cookies enabled again before the server takes traffic', async () => {
      const fake = fakeHaproxy(VERSION_26);
      expect((await driverFor(fake).apply([add(desired('hsc-new', '10.0.0.5'))], snapshot)).ok).toBe(true);
      expect(fake.commands()).toEqual([
        'show info',
        'add server be_app/hsc-new 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100 pool-max-conn 0',
        'enable dynamic-cookie backend be_app',
        'enable health be_app/hsc-new',
        'enable server be_app/hsc-new',
      ]);
      // The file's servers go without an idle pool too, so a reload does not make them undeletable.
      expect(await region('be_app')).toEqual([
        '    server hsc-new 10.0.0.5:80 check inter 1000 fall 2 rise 1 weight 100 pool-max-conn 0',
        '    server hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 100 pool-max-conn 0',
      ]);
    });

    it('skips the dynamic cookies when told the backends use none', async () => {
      const fake = fakeHaproxy(VERSION_26);
      await driverFor(fake, { dynamicCookies: false }).apply([add(desired('hsc-new', '10.0.0.5'))], snapshot);
      expect(fake.commands().some((c) => c.includes('dynamic-cookie'))).toBe(false);
    });

    it('removes without wait: asks del server again while sessions remain, then succeeds', async () => {
      let clock = 0;
      const sleeps: number[] = [];
      let deletes = 0;
      const fake = fakeHaproxy(VERSION_26, (command) =>
        command.startsWith('del server ') && deletes++ < 2 ? 'Server still has connections attached to it, cannot remove it.' : undefined,
      );
      const driver = driverFor(fake, {
        now: () => clock,
        sleep: (ms) => {
          sleeps.push(ms);
          clock += ms;
          return Promise.resolve();
        },
      });
      expect((await driver.apply([remove('hsc-old')], snapshot)).ok).toBe(true);
      expect(fake.commands().slice(1)).toEqual([
        'set server be_app/hsc-old state maint',
        'del server be_app/hsc-old',
        'del server be_app/hsc-old',
        'del server be_app/hsc-old',
      ]);
      expect(sleeps).toEqual([100, 100]);
    });

    it('cuts the sessions still there after the wait, and deletes once more', async () => {
      let clock = 0;
      const fake = fakeHaproxy(VERSION_26, (command) =>
        command.startsWith('del server ') && !fake.commands().some((c) => c.startsWith('shutdown'))
          ? 'Server still has connections attached to it, cannot remove it.'
          : undefined,
      );
      const driver = driverFor(fake, {
        removalWaitMs: 300,
        now: () => clock,
        sleep: (ms) => {
          clock += ms;
          return Promise.resolve();
        },
      });
      expect((await driver.apply([remove('hsc-old')], snapshot)).ok).toBe(true);
      expect(fake.commands().slice(1)).toEqual([
        'set server be_app/hsc-old state maint',
        'del server be_app/hsc-old',
        'del server be_app/hsc-old',
        'del server be_app/hsc-old',
        'del server be_app/hsc-old',
        'shutdown sessions server be_app/hsc-old',
        'del server be_app/hsc-old',
      ]);
    });
  });

  describe('the file comes first', () => {
    it('an empty plan changes nothing at run time, repairs a file that drifted, and then leaves it alone', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const driver = driverFor(fake);
      expect(await driver.apply([], snapshot)).toEqual({ ok: true, value: { reloads: 0, transactions: 0, runtimeChanges: 0 } });
      // Only the version read, which decides how the file's lines are written.
      expect(fake.commands()).toEqual(['show info']);
      expect(await region('be_app')).toEqual(['    server hsc-old 10.0.0.1:80 check inter 1000 fall 2 rise 1 weight 100']);
      const before = await stat(configFile);
      expect((await driver.apply([], snapshot)).ok).toBe(true);
      expect(fake.commands()).toEqual(['show info']);
      expect((await stat(configFile)).mtimeMs).toBe(before.mtimeMs);
    });

    it('a backend without a region fails before any runtime change', async () => {
      const fake = fakeHaproxy(VERSION_30);
      const result = await driverFor(fake).apply([add(desired('hsc-a', '10.0.0.5', 100, 'be_web'))], snapshot);
      expect(result).toMatchObject({ ok: false, error: { kind: 'invalid', message: expect.stringContaining('backend be_web') as string } });
      // Only the version read, which decides what the file gets.
      expect(fake.commands()).toEqual(['show info']);
      expect(await readFile(configFile, 'utf8')).toBe(config);
    });
  });

  describe('reads and states', () => {
    const rows = (backend: string): string =>
      `1\n${HEADER}\n` +
      (backend === 'be_app'
        ? '3 be_app 1 manual-1 127.0.0.1 2 0 1 1 4 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0\n3 be_app 2 hsc-a 10.0.0.5 2 8 100 100 4 15 3 2 6 0 0 0 - 80 - 0 0 - - 0'
        : '4 be_api 1 hsc-api-1 10.0.1.1 0 1 100 100 4 15 3 2 6 0 0 0 - 80 - 0 0 - - 0');

    it('readServers lists every server of the backends, without a revision', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) => (command.startsWith('show servers state ') ? rows(command.split(' ')[3] ?? '') : undefined));
      expect(await driverFor(fake).readServers(['be_app', 'be_api'])).toEqual({
        ok: true,
        value: {
          revision: undefined,
          backends: ['be_app', 'be_api'],
          servers: [
            { backend: 'be_app', name: 'manual-1', address: '127.0.0.1', port: 8080, weight: 1 },
            { backend: 'be_app', name: 'hsc-a', address: '10.0.0.5', port: 80, weight: 100 },
            { backend: 'be_api', name: 'hsc-api-1', address: '10.0.1.1', port: 80, weight: 100 },
          ],
        },
      });
      expect(fake.commands()).toEqual(['show servers state be_app', 'show servers state be_api']);
    });

    it('readServers reports a backend HAProxy does not have', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) => (command === 'show servers state be_web' ? "Can't find backend." : undefined));
      expect(await driverFor(fake).readServers(['be_app', 'be_web'])).toEqual({
        ok: false,
        error: { kind: 'not-found', message: "Can't find backend.", operation: 'show servers state be_web' },
      });
    });

    it('listRuntimeServers and setAdminState', async () => {
      const fake = fakeHaproxy(VERSION_30, (command) => (command.startsWith('show servers state ') ? rows('be_app') : undefined));
      const driver = driverFor(fake);
      expect(await driver.listRuntimeServers('be_app')).toEqual({
        ok: true,
        value: [
          { name: 'manual-1', adminState: 'ready', operationalState: 'up', checks: 'on', weight: 1 },
          { name: 'hsc-a', adminState: 'drain', operationalState: 'up', checks: 'on', weight: 100 },
        ],
      });
      expect(await driver.setAdminState('be_app', 'hsc-a', 'ready')).toEqual({ ok: true, value: undefined });
      expect(fake.commands()).toEqual(['show servers state be_app', 'set server be_app/hsc-a state ready']);
    });
  });

  describe('inspect', () => {
    it('on HAProxy 3.0: the version, runtime reads, no limitation', async () => {
      const fake = fakeHaproxy(VERSION_30);
      expect(await driverFor(fake).inspect(['be_app', 'be_api'])).toEqual({
        ok: true,
        value: { driver: 'runtime', haproxyVersion: '3.0.11', limitations: [], runtimeReads: true },
      });
      expect(fake.commands()).toEqual(['show info', 'show servers state be_app', 'show servers state be_api']);
    });

    it('on HAProxy 2.6: says how removals wait without `wait srv-removable`', async () => {
      const report = await driverFor(fakeHaproxy(VERSION_26)).inspect(['be_app']);
      expect(report.ok && report.value.haproxyVersion).toBe('2.6.12');
      expect(report.ok && report.value.limitations).toEqual([
        expect.stringContaining('has no "wait srv-removable"'),
        expect.stringContaining('"pool-max-conn 0"'),
      ]);
    });

    it('refuses a managed backend without a region in the file, or missing from HAProxy', async () => {
      expect(await driverFor(fakeHaproxy(VERSION_30)).inspect(['be_app', 'be_web'])).toMatchObject({ ok: false, error: { kind: 'invalid' } });
      const missing = fakeHaproxy(VERSION_30, (command) => (command === 'show servers state be_web' ? "Can't find backend." : undefined));
      expect(await driverFor(missing).inspect(['be_web'])).toMatchObject({ ok: false, error: { kind: 'not-found' } });
    });

    it('reports an unreachable socket', async () => {
      const driver = driverFor(fakeHaproxy(VERSION_30), {
        transport: () => Promise.resolve({ ok: false, error: { kind: 'network', message: 'connect ENOENT', operation: 'show info' } }),
      });
      expect(await driver.inspect(['be_app'])).toMatchObject({ ok: false, error: { kind: 'network' } });
    });
  });
});
