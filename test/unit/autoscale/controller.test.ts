import { describe, expect, it } from 'vitest';
import { world } from '../../support/autoscale-world.js';

describe('autoscaler', () => {
  it('starts the containers the load needs', async () => {
    const w = world(2);
    w.setRate(500);
    const a = w.autoscaler();
    const record = await a.evaluate();
    expect(record).toMatchObject({ current: 2, desired: 5, direction: 'up', applied: true, actions: [{ kind: 'start', count: 3 }] });
    expect(w.events).toEqual(['start c3,c4,c5']);
  });

  it('a breach check acts on a scale-up for a breach, and otherwise leaves no trace', async () => {
    const w = world(2);
    const a = w.autoscaler();
    // 115 req/s per instance: over the target, not a breach; the evaluation will see it.
    w.setRate(230);
    expect(await a.checkBreach()).toBeUndefined();
    expect(a.recent()).toEqual([]);
    expect(w.events).toEqual([]);
    // 250 req/s per instance: far over the target, a breach.
    w.setRate(500);
    const record = await a.checkBreach();
    expect(record).toMatchObject({ current: 2, desired: 5, direction: 'up', applied: true, actions: [{ kind: 'start', count: 3 }] });
    expect(record?.reason).toMatch(/^breach check: requestRate wins: 250 > target 100: 5/);
    expect(w.events).toEqual(['start c3,c4,c5']);
    expect(a.recent()).toHaveLength(1);
    // The next check still sees the breach, but the replicas it needs are already there.
    expect(await a.checkBreach()).toBeUndefined();
    expect(a.recent()).toHaveLength(1);
  });

  it('a breach check does nothing while paused, set by hand or in dry-run', async () => {
    for (const setup of ['paused', 'manual', 'dry-run'] as const) {
      const w = world(2);
      w.setRate(500);
      const a = w.autoscaler(setup === 'dry-run');
      if (setup === 'paused') await a.pause();
      if (setup === 'manual') await a.setReplicas(2);
      expect(await a.checkBreach()).toBeUndefined();
      expect(w.events).toEqual([]);
    }
  });

  it('with no replica of the service to copy: one warning, the gauge at 0, no action, and back when one runs', async () => {
    const w = world(0);
    w.setRate(500);
    const a = w.autoscaler();
    for (let i = 0; i < 3; i++) expect((await a.evaluate()).actions).toEqual([]);
    expect(w.warnings.filter((m) => m.includes('no running replica'))).toHaveLength(1);
    expect(w.presence).toEqual([false, false, false]);
    expect(w.events).toEqual([]);
    w.replicas.push({ id: 'c9', name: 'stack-nginx-9', number: 9, createdAt: 1 });
    await a.evaluate();
    expect(w.presence.at(-1)).toBe(true);
  });

  it('counts running replicas not serving yet as starting, whoever started them, and starts none twice', async () => {
    const w = world(2);
    w.runUnjoined('u91');
    w.runUnjoined('u92');
    w.setRate(400);
    const record = await w.autoscaler().evaluate();
    expect(record.desired).toBe(4);
    expect(record.actions).toEqual([]);
    expect(w.events).toEqual([]);
  });

  it('retires nothing where the driver cannot drain (it would only strand a server), and still scales up', async () => {
    const w = world(3);
    w.canDrain(false);
    w.setRate(40);
    const a = w.autoscaler();
    expect((await a.evaluate()).actions).toEqual([]);
    expect(w.retirements.list()).toEqual([]);
    w.setRate(600);
    expect((await a.evaluate()).actions).toEqual([{ kind: 'start', count: 3 }]);
  });

  it('scales down as one closed loop: drain, then the reconciler removes the server, then the container stops', async () => {
    const w = world(3);
    w.setRate(40);
    const a = w.autoscaler();
    const record = await a.evaluate();
    expect(record.actions).toEqual([{ kind: 'retire', containerId: 'c3', server: 'hsc-nginx-3' }]);
    // Each pass moves the record one stage on from what is observed; none waits inside.
    const stages: string[] = [];
    for (let pass = 0; pass < 10 && w.retirements.list().length > 0; pass++) {
      stages.push(w.retirements.list()[0]?.stage ?? 'done');
      await a.progress();
      w.elapse(500);
    }
    expect(stages).toEqual(['draining', 'draining', 'drained', 'removed']);
    expect(w.events).toEqual(['drain hsc-nginx-3', 'reconcile (scale-down: hsc-nginx-3 drained)', 'stop c3']);
    expect(w.replicas.map((r) => r.id)).toEqual(['c1', 'c2']);
    expect(w.retirements.list()).toEqual([]);
  });

  it('a restarted autoscaler finishes a scale-down from its record, and stops no other container', async () => {
    const w = world(3);
    w.setRate(40);
    await w.autoscaler().evaluate();
    expect(w.retirements.list()).toMatchObject([{ containerId: 'c3', stage: 'draining' }]);
    // A new controller over the same record, as after a restart of the sidecar.
    const restarted = w.autoscaler();
    for (let pass = 0; pass < 10 && w.retirements.list().length > 0; pass++) {
      await restarted.progress();
      w.elapse(500);
    }
    expect(w.events.filter((e) => e.startsWith('stop'))).toEqual(['stop c3']);
  });

  it('an operator putting the server back in service ends the scale-down; the container keeps running', async () => {
    const w = world(3);
    w.setRate(40);
    const a = w.autoscaler();
    await a.evaluate();
    w.holdSessions(3);
    await a.progress();
    await a.cancelRetirement('be_app', 'hsc-nginx-3');
    for (let pass = 0; pass < 5; pass++) await a.progress();
    expect(w.retirements.list()).toEqual([]);
    expect(w.events.filter((e) => e.startsWith('stop'))).toEqual([]);
  });

  it('puts a draining server back instead of starting a container when the load returns', async () => {
    const w = world(3);
    w.setRate(40);
    w.holdSessions(2); // the victim keeps sessions: its drain is still running
    const a = w.autoscaler();
    await a.evaluate();
    expect(w.events).toEqual(['drain hsc-nginx-3']);
    w.setRate(290);
    const up = await a.evaluate();
    expect(up.actions).toEqual([{ kind: 'undrain', containerId: 'c3', server: 'hsc-nginx-3' }]);
    await a.idle();
    expect(w.events).toEqual(['drain hsc-nginx-3', 'ready hsc-nginx-3']);
    expect(w.replicas).toHaveLength(3);
    expect(w.states.get('hsc-nginx-3')).toBe('ready');
  });

  it('records but does not act while paused, and acts again after resume', async () => {
    const w = world(2);
    w.setRate(500);
    const a = w.autoscaler();
    await a.pause();
    const paused = await a.evaluate();
    expect(paused).toMatchObject({ mode: 'paused', desired: 5, applied: false, actions: [{ kind: 'start', count: 3 }] });
    expect(w.events).toEqual([]);
    await a.resume();
    await a.evaluate();
    expect(w.events).toEqual(['start c3,c4,c5']);
    expect(a.recent().map((r) => r.mode)).toEqual(['paused', 'auto']);
  });

  it('dry run: returns the decision and actions and changes nothing', async () => {
    const w = world(2);
    w.setRate(500);
    const a = w.autoscaler();
    const dry = await a.dryRun();
    expect(dry).toMatchObject({ mode: 'dry-run', desired: 5, applied: false });
    expect(w.events).toEqual([]);
    expect(a.recent()).toEqual([]);
  });

  it('sets replicas by hand within min and max, pausing the policy', async () => {
    const w = world(2);
    w.setRate(0);
    const a = w.autoscaler();
    await expect(a.setReplicas(11)).rejects.toThrow(/from 2 to 10/);
    const record = await a.setReplicas(4);
    expect(record).toMatchObject({ mode: 'manual', desired: 4, reason: 'set by hand to 4', actions: [{ kind: 'start', count: 2 }] });
    expect(a.state()).toMatchObject({ mode: 'manual', manualReplicas: 4 });
  });
});

describe('autoscaler without HAProxy figures', () => {
  it('counts Docker’s running replicas as serving: it never restarts the pool when the metrics endpoint is down', async () => {
    const w = world(3);
    w.setRate(0);
    w.blind(true);
    const a = w.autoscaler();
    for (let i = 0; i < 3; i++) {
      const record = await a.evaluate();
      expect(record.actions).toEqual([]);
    }
    expect(w.events).toEqual([]);
    expect(w.replicas).toHaveLength(3);
  });
});
