import { describe, expect, it } from 'vitest';
import { createDrainer, type DrainPorts, type ServerLoad } from '../../../sidecar/drain/drainer.js';
import type { AdminState, Result } from '../../../sidecar/dataplane/index.js';
import { silentLogger } from '../../../sidecar/telemetry/logger.js';

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
  const drainer = (deadlineMs = 10_000) =>
    createDrainer({
      ports,
      pollMs: 500,
      deadlineMs,
      now: () => clock,
      sleep: (ms) => {
        clock += ms;
        return Promise.resolve();
      },
      logger: silentLogger,
      recorder: {
        started: (b) => recorded.push(`started ${b}`),
        finished: (b, outcome, seconds) => recorded.push(`${outcome} ${b} ${seconds}`),
        inProgress: (b, n) => recorded.push(`in progress ${b} ${n}`),
      },
    });
  return { states, calls, recorded, drainer, tick: (ms: number) => (clock += ms) };
}

const load = (sessions: number, queue = 0): ServerLoad => ({ sessions, queue });

describe('drainer', () => {
  it('completes when sessions and queue read zero twice in a row, not before', async () => {
    const h = fakeHaproxy({ web1: [load(3, 1), load(1), load(0), load(2), load(0), load(0)] });
    const outcome = await h.drainer().drain('be_app', 'web1', { reason: 'scale-down' });
    expect(outcome).toEqual({ outcome: 'drained', durationMs: 2_500 });
    expect(h.calls).toEqual(['be_app/web1 drain']);
    expect(h.recorded).toEqual(['started be_app', 'in progress be_app 1', 'drained be_app 2.5', 'in progress be_app 0']);
  });

  it('forces maintenance at the deadline and reports the sessions it cuts', async () => {
    const h = fakeHaproxy({ web1: [load(4, 2)] });
    const d = h.drainer(3_000);
    const outcome = await d.drain('be_app', 'web1', { reason: 'scale-down' });
    expect(outcome).toEqual({ outcome: 'forced', durationMs: 3_000, sessionsCut: 4, queueCut: 2 });
    expect(h.calls).toEqual(['be_app/web1 drain', 'be_app/web1 maint']);
    expect(d.progress('be_app', 'web1')?.state).toBe('forced');
  });

  it('never calls a drain complete without figures: unknown load runs to the deadline', async () => {
    const h = fakeHaproxy({ web1: [undefined] });
    const outcome = await h.drainer(2_000).drain('be_app', 'web1', { reason: 'test' });
    expect(outcome).toMatchObject({ outcome: 'forced', sessionsCut: 0, queueCut: 0 });
  });

  it('a per-drain deadline overrides the default', async () => {
    const h = fakeHaproxy({ web1: [load(1)] });
    const outcome = await h.drainer(60_000).drain('be_app', 'web1', { reason: 'test', deadlineMs: 1_000 });
    expect(outcome).toMatchObject({ outcome: 'forced', durationMs: 1_000 });
  });

  it('joins a drain already in progress instead of starting another', async () => {
    const h = fakeHaproxy({ web1: [load(1), load(1), load(0), load(0)] });
    const d = h.drainer();
    const [a, b] = await Promise.all([d.drain('be_app', 'web1', { reason: 'a' }), d.drain('be_app', 'web1', { reason: 'b' })]);
    expect(a).toEqual(b);
    expect(h.calls.filter((c) => c.endsWith('drain'))).toHaveLength(1);
  });

  it('undrain cancels the drain in progress and puts the server back to ready', async () => {
    const h = fakeHaproxy({ web1: [load(5)] });
    const d = h.drainer(600_000);
    const draining = d.drain('be_app', 'web1', { reason: 'scale-down' });
    await Promise.resolve();
    expect((await d.undrain('be_app', 'web1')).ok).toBe(true);
    expect((await draining).outcome).toBe('cancelled');
    expect(h.states.get('be_app/web1')).toBe('ready');
  });

  it('reports a server HAProxy does not know as a failed drain with its message', async () => {
    const h = fakeHaproxy({});
    expect(await h.drainer().drain('be_app', 'missing', { reason: 'x' })).toEqual({
      outcome: 'failed',
      message: 'setting be_app/missing to drain: no such server',
    });
  });

  it('resumes, after a restart, the drains HAProxy still shows, only for owned servers', async () => {
    const h = fakeHaproxy({ 'hsc-web-1': [load(0)], manual: [load(0)] });
    h.states.set('be_app/hsc-web-1', 'drain');
    h.states.set('be_app/hsc-web-2', 'ready');
    h.states.set('be_app/manual', 'drain');
    const d = h.drainer();
    expect(await d.resume(['be_app'], (name) => name.startsWith('hsc-'))).toBe(1);
    expect(d.list().map((p) => [p.server, p.reason])).toEqual([['hsc-web-1', 'resumed after a sidecar restart']]);
    h.tick(1);
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(d.progress('be_app', 'hsc-web-1')?.state).toBe('drained');
  });
});
