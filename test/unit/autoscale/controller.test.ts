import { describe, expect, it } from 'vitest';
import { createAutoscaler, createRetirements } from '../../../sidecar/autoscale/controller.js';
import { DEFAULT_POLICY, type ScalingPolicy } from '../../../sidecar/autoscale/policy.js';
import type { Sampler, SampleSet } from '../../../sidecar/autoscale/sampler.js';
import type { AdminState } from '../../../sidecar/dataplane/index.js';
import { createDrainer } from '../../../sidecar/drain/drainer.js';
import type { Replica, Replicas } from '../../../sidecar/scaling/docker.js';
import { silentLogger } from '../../../sidecar/telemetry/logger.js';

const policy: ScalingPolicy = {
  ...DEFAULT_POLICY,
  signals: { requestRate: { target: 100, scaleDownBelow: 50 } },
  scaleDownStabilisationMs: 0,
  forecast: { ...DEFAULT_POLICY.forecast, mode: 'off' },
};

/** A pool of containers behind HAProxy as the controller sees it through its ports. */
function world(initial: number) {
  let clock = 1_700_000_000_000;
  let nextNumber = 1;
  const replicas: Replica[] = [];
  const states = new Map<string, AdminState>();
  const configured = new Set<string>();
  const events: string[] = [];
  const serverOf = (id: string) => `hsc-nginx-${id.slice(1)}`;
  const add = (): string => {
    const id = `c${nextNumber++}`;
    replicas.push({ id, name: `stack-nginx-${id.slice(1)}`, number: Number(id.slice(1)), createdAt: clock / 1000 + nextNumber });
    configured.add(serverOf(id));
    states.set(serverOf(id), 'ready');
    return id;
  };
  for (let i = 0; i < initial; i++) add();
  let requestRate = 0;
  const sampler: Sampler = {
    sample(): Promise<SampleSet> {
      clock += 30_000;
      const servers = replicas.map((r) => ({ name: serverOf(r.id), currentSessions: 0, currentQueue: 0, state: states.get(serverOf(r.id)) === 'ready' ? ('UP' as const) : ('DRAIN' as const) }));
      const up = servers.filter((s) => s.state === 'UP').length;
      return Promise.resolve({
        samples: { replicas: up, sourceUp: true, requestRate: { value: requestRate, at: clock } },
        snapshot: { backend: 'be_app', at: clock, httpRequestsTotal: 0, currentSessions: 0, currentQueue: 0, responseTimeAverageSeconds: 0, queueTimeAverageSeconds: 0, activeServers: up, servers },
        sources: { haproxy: true, docker: true },
        problems: [],
      });
    },
  };
  const docker: Replicas = {
    list: () => Promise.resolve([...replicas]),
    startLike: (count) => {
      const ids = Array.from({ length: count }, () => add());
      events.push(`start ${ids.join(',')}`);
      return Promise.resolve(ids);
    },
    stopAndRemove: (id) => {
      events.push(`stop ${id}`);
      replicas.splice(replicas.findIndex((r) => r.id === id), 1);
      return Promise.resolve();
    },
    cpu: () => Promise.resolve(undefined),
  };
  let sessionsWhileDraining = 0;
  const drainer = createDrainer({
    ports: {
      setAdminState: (_b, server, state) => {
        events.push(`${state} ${server}`);
        states.set(server, state);
        return Promise.resolve({ ok: true, value: undefined });
      },
      listRuntimeServers: () => Promise.resolve({ ok: true, value: [] }),
      readLoad: () => Promise.resolve({ sessions: sessionsWhileDraining, queue: 0 }),
    },
    pollMs: 1,
    deadlineMs: 60_000,
    now: () => Date.now(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    logger: silentLogger,
  });
  const retirements = createRetirements();
  const autoscaler = (dryRun = false) =>
    createAutoscaler({
      backend: 'be_app',
      policy,
      sampler,
      replicas: docker,
      drainer,
      retirements,
      serverOfContainer: () => Promise.resolve(new Map(replicas.map((r) => [r.id, serverOf(r.id)]))),
      requestReconcile: (reason) => {
        events.push(`reconcile (${reason})`);
        // The reconciler removes the servers of replicas whose drain is over.
        for (const [id, entry] of retirements.entries) if (retirements.isRemovable(id)) configured.delete(entry.server);
      },
      serverRemoved: (server) => Promise.resolve(!configured.has(server)),
      dryRun,
      stopTimeoutSeconds: 30,
      logger: silentLogger,
      now: () => clock,
      sleep: () => Promise.resolve(),
    });
  return {
    events,
    replicas,
    states,
    retirements,
    autoscaler,
    setRate: (r: number) => (requestRate = r),
    holdSessions: (n: number) => (sessionsWhileDraining = n),
  };
}

describe('autoscaler', () => {
  it('starts the containers the load needs', async () => {
    const w = world(2);
    w.setRate(500);
    const a = w.autoscaler();
    const record = await a.evaluate();
    expect(record).toMatchObject({ current: 2, desired: 5, direction: 'up', applied: true, actions: [{ kind: 'start', count: 3 }] });
    expect(w.events).toEqual(['start c3,c4,c5']);
  });

  it('scales down as one closed loop: drain, then the reconciler removes the server, then the container stops', async () => {
    const w = world(3);
    w.setRate(40);
    const a = w.autoscaler();
    const record = await a.evaluate();
    expect(record.actions).toEqual([{ kind: 'retire', containerId: 'c3', server: 'hsc-nginx-3' }]);
    await a.idle();
    expect(w.events).toEqual(['drain hsc-nginx-3', 'reconcile (scale-down: hsc-nginx-3 drained)', 'stop c3']);
    expect(w.replicas.map((r) => r.id)).toEqual(['c1', 'c2']);
    expect(w.retirements.entries.size).toBe(0);
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
    a.pause();
    const paused = await a.evaluate();
    expect(paused).toMatchObject({ mode: 'paused', desired: 5, applied: false, actions: [{ kind: 'start', count: 3 }] });
    expect(w.events).toEqual([]);
    a.resume();
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
