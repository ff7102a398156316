import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createDrainer, type DrainOutcome, type DrainPorts, type ServerLoad } from '../../../sidecar/records/drains.js';
import type { AdminState, Result } from '../../../sidecar/dataplane/client.js';
import { memoryStateStore, openStateStore, type StateStore } from '../../../sidecar/records/store.js';
import { silentLogger } from '../../../sidecar/log/logger.js';

const POLL_MS = 500;

/** HAProxy as the drainer sees it: admin states, and a script of load readings per server. */
function fakeHaproxy(loads: Record<string, Array<ServerLoad | undefined>>) {
  const states = new Map<string, AdminState>();
  const calls: string[] = [];
  let clock = 0;
  const ports: DrainPorts = {
    setAdminState(backend, server, state): Promise<Result<void>> {
      calls.push(`${backend}/${server} ${state}`);
      if (server === 'missing') return Promise.resolve({ ok: false, error: { kind: 'not-found', status: 404, message: 'no such server', operation: 'state' } });
      states.set(`${backend}/${server}`, state);
      return Promise.resolve({ ok: true, value: undefined });
    },
    listRuntimeServers(backend) {
      return Promise.resolve({
        ok: true,
        value: [...states.entries()].filter(([k]) => k.startsWith(`${backend}/`)).map(([k, adminState]) => ({ name: k.split('/')[1] ?? '', adminState, operationalState: 'up' as const })),
      });
    },
    readLoad(_backend, server) {
      const script = loads[server] ?? [];
      // The last reading repeats once the script is used up.
      return Promise.resolve(script.length > 1 ? script.shift() : script[0]);
    },
  };
  const recorded: string[] = [];
  const drainer = (deadlineMs = 10_000, store: StateStore = memoryStateStore()) =>
    createDrainer({
      ports,
      store,
      deadlineMs,
      now: () => clock,
      logger: silentLogger,
      recorder: {
        started: (b) => recorded.push(`started ${b}`),
        finished: (b, outcome, seconds) => recorded.push(`${outcome} ${b} ${seconds}`),
        inProgress: (b, n) => recorded.push(`in progress ${b} ${n}`),
      },
    });
  /** Runs control-loop passes, one poll period apart, until `until` settles (or 1,000 passes). */
  async function passes<T>(d: ReturnType<typeof drainer>, until: Promise<T>): Promise<T> {
    let settled = false;
    void until.then(() => (settled = true));
    for (let i = 0; i < 1_000 && !settled; i++) {
      await d.tick();
      await Promise.resolve();
      if (!settled) clock += POLL_MS;
    }
    return until;
  }
  return { states, calls, recorded, drainer, passes, tick: (ms: number) => (clock += ms) };
}

const load = (sessions: number, queue = 0): ServerLoad => ({ sessions, queue });

describe('drainer (records advanced by the control loop)', () => {
  it('completes when sessions and queue read zero twice in a row, not before', async () => {
    const h = fakeHaproxy({ web1: [load(3, 1), load(1), load(0), load(2), load(0), load(0)] });
    const d = h.drainer();
    const outcome = await h.passes(d, d.drain('be_app', 'web1', { reason: 'maintenance' }));
    expect(outcome).toEqual({ outcome: 'drained', durationMs: 2_500 });
    expect(h.calls).toEqual(['be_app/web1 drain']);
    expect(h.recorded).toEqual(['started be_app', 'in progress be_app 1', 'drained be_app 2.5', 'in progress be_app 0']);
    // Drained is not the end: the server stays out of rotation until it is undrained.
    expect(d.progress('be_app', 'web1')?.state).toBe('drained');
    expect(h.states.get('be_app/web1')).toBe('drain');
  });

  it('forces maintenance at the deadline and reports the sessions it cuts', async () => {
    const h = fakeHaproxy({ web1: [load(4, 2)] });
    const d = h.drainer(3_000);
    const outcome = await h.passes(d, d.drain('be_app', 'web1', { reason: 'maintenance' }));
    expect(outcome).toEqual({ outcome: 'forced', durationMs: 3_000, sessionsCut: 4, queueCut: 2 });
    expect(h.calls).toEqual(['be_app/web1 drain', 'be_app/web1 maint']);
    expect(d.progress('be_app', 'web1')?.state).toBe('forced');
  });

  it('never calls a drain complete without figures: unknown load runs to the deadline', async () => {
    const h = fakeHaproxy({ web1: [undefined] });
    const d = h.drainer(2_000);
    const outcome = await h.passes(d, d.drain('be_app', 'web1', { reason: 'test' }));
    expect(outcome).toMatchObject({ outcome: 'forced', sessionsCut: 0, queueCut: 0 });
  });

  it('a per-drain deadline overrides the default', async () => {
    const h = fakeHaproxy({ web1: [load(1)] });
    const d = h.drainer(60_000);
    const outcome = await h.passes(d, d.drain('be_app', 'web1', { reason: 'test', deadlineMs: 1_000 }));
    expect(outcome).toMatchObject({ outcome: 'forced', durationMs: 1_000 });
  });

  it('joins a drain already in progress instead of starting another', async () => {
    const h = fakeHaproxy({ web1: [load(1), load(1), load(0), load(0)] });
    const d = h.drainer();
    const both = Promise.all([d.drain('be_app', 'web1', { reason: 'a' }), d.drain('be_app', 'web1', { reason: 'b' })]);
    const [a, b] = await h.passes(d, both);
    expect(a).toEqual(b);
    expect(h.calls.filter((c) => c.endsWith('drain'))).toHaveLength(1);
  });

  it('undrain deletes the record, cancels the drain in progress and puts the server back to ready', async () => {
    const h = fakeHaproxy({ web1: [load(5)] });
    const store = memoryStateStore();
    const d = h.drainer(600_000, store);
    const draining = d.drain('be_app', 'web1', { reason: 'maintenance' });
    await d.tick();
    expect(store.read().drains).toHaveLength(1);
    expect((await d.undrain('be_app', 'web1')).ok).toBe(true);
    expect((await draining).outcome).toBe('cancelled');
    expect(h.states.get('be_app/web1')).toBe('ready');
    expect(store.read().drains).toEqual([]);
    expect(d.progress('be_app', 'web1')?.state).toBe('cancelled');
  });

  it('reports a server HAProxy does not know as a failed drain with its message, and keeps no record', async () => {
    const h = fakeHaproxy({});
    const store = memoryStateStore();
    expect(await h.drainer(10_000, store).drain('be_app', 'missing', { reason: 'x' })).toEqual({
      outcome: 'failed',
      message: 'setting be_app/missing to drain: no such server',
    });
    expect(store.read().drains).toEqual([]);
  });

  it('two quiet reads end a drain only when they are a poll period apart, not two passes in a row', async () => {
    const h = fakeHaproxy({ web1: [load(0)] });
    const d = h.drainer();
    const done = d.drain('be_app', 'web1', { reason: 'maintenance' });
    await d.tick();
    await d.tick();
    expect(d.progress('be_app', 'web1')?.state).toBe('draining');
    h.tick(POLL_MS);
    await d.tick();
    expect(await done).toMatchObject({ outcome: 'drained' });
  });

  it('sets the drain again when HAProxy lost it (a reload by anyone), during and after the drain', async () => {
    const h = fakeHaproxy({ web1: [load(1), load(1), load(1), load(0), load(0)] });
    const d = h.drainer();
    const done = d.drain('be_app', 'web1', { reason: 'maintenance' });
    await d.tick();
    h.states.set('be_app/web1', 'ready'); // a reload without server state
    await d.tick();
    expect(h.states.get('be_app/web1')).toBe('drain');
    expect(await h.passes(d, done)).toMatchObject({ outcome: 'drained' });
    h.states.set('be_app/web1', 'ready');
    await d.tick();
    expect(h.states.get('be_app/web1')).toBe('drain');
  });

  it('keeps a forced drain in maintenance across a reload', async () => {
    const h = fakeHaproxy({ web1: [load(3)] });
    const d = h.drainer(1_000);
    await h.passes(d, d.drain('be_app', 'web1', { reason: 'maintenance' }));
    h.states.set('be_app/web1', 'ready');
    await d.tick();
    expect(h.states.get('be_app/web1')).toBe('maint');
  });

  it('ends the record when its server leaves HAProxy', async () => {
    const h = fakeHaproxy({ web1: [load(3)] });
    const store = memoryStateStore();
    const d = h.drainer(60_000, store);
    const done = d.drain('be_app', 'web1', { reason: 'maintenance' });
    await d.tick();
    h.states.delete('be_app/web1');
    await d.tick();
    expect(((await done) as Extract<DrainOutcome, { outcome: 'failed' }>).message).toMatch(/left HAProxy/);
    expect(store.read().drains).toEqual([]);
  });

  it('a drain outlives the sidecar: a new drainer over the same state file carries it on', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-unit-'));
    try {
      const file = join(dir, 'state.json');
      const h = fakeHaproxy({ web1: [load(2), load(2), load(0), load(0)] });
      const first = await openStateStore(file);
      if (!first.ok) throw new Error(first.error.message);
      const before = h.drainer(60_000, first.value);
      expect((await before.start('be_app', 'web1', { reason: 'maintenance' })).ok).toBe(true);
      await before.tick();
      const reopened = await openStateStore(file);
      if (!reopened.ok) throw new Error(reopened.error.message);
      expect(reopened.value.read().drains).toMatchObject([{ backend: 'be_app', server: 'web1', stage: 'draining', reason: 'maintenance' }]);
      const again = h.drainer(60_000, reopened.value);
      for (let i = 0; i < 4; i++) {
        await again.tick();
        h.tick(POLL_MS);
      }
      expect(again.progress('be_app', 'web1')?.state).toBe('drained');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('adopts, at start-up, the drains HAProxy shows without a record, only for owned servers', async () => {
    const h = fakeHaproxy({ 'hsc-web-1': [load(0)], manual: [load(0)] });
    h.states.set('be_app/hsc-web-1', 'drain');
    h.states.set('be_app/hsc-web-2', 'ready');
    h.states.set('be_app/manual', 'drain');
    const d = h.drainer();
    expect(await d.adopt(['be_app'], (name) => name.startsWith('hsc-'))).toBe(1);
    expect(d.list().map((p) => [p.server, p.reason])).toEqual([['hsc-web-1', 'found in drain at start-up']]);
    h.tick(1);
    await d.tick();
    h.tick(POLL_MS);
    await d.tick();
    expect(d.progress('be_app', 'hsc-web-1')?.state).toBe('drained');
  });
});
