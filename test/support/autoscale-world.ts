// A pool of containers behind HAProxy, modelled in memory, as the autoscaler controller sees it
// through its ports (sampler, Docker replicas, drainer, reconciler): for the controller and the
// admin API tests. The drainer in it is the real one.
import { createAutoscaler, isRemovableRetiree } from '../../sidecar/autoscale/controller.js';
import { retirementStore } from '../../sidecar/records/retirement.js';
import { DEFAULT_POLICY, type ScalingPolicy } from '../../sidecar/autoscale/policy.js';
import type { Sampler, SampleSet } from '../../sidecar/autoscale/sampler.js';
import type { AdminState } from '../../sidecar/dataplane/client.js';
import { createDrainer } from '../../sidecar/records/drains.js';
import { memoryStateStore } from '../../sidecar/records/store.js';
import type { ReplicaActions } from '../../sidecar/autoscale/controller.js';
import type { Replica } from '../../sidecar/scaling/replicas.js';
import { silentLogger } from '../../sidecar/log/logger.js';

export const policy: ScalingPolicy = {
  ...DEFAULT_POLICY,
  signals: { requestRate: { target: 100, scaleDownBelow: 50 } },
  scaleDownStabilisationMs: 0,
  forecast: { ...DEFAULT_POLICY.forecast, mode: 'off' },
};

/** A pool of containers behind HAProxy as the controller sees it through its ports. */
export function world(initial: number) {
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
  /** True: HAProxy's exporter cannot be read (no snapshot, no HAProxy signals). */
  let blind = false;
  // A peek (a breach check) sees what a sample sees, 2 s on instead of an interval.
  const read = (advanceMs: number): Promise<SampleSet> => {
    clock += advanceMs;
    const servers = replicas.map((r) => ({ name: serverOf(r.id), currentSessions: 0, currentQueue: 0, state: states.get(serverOf(r.id)) === 'ready' ? ('UP' as const) : ('DRAIN' as const) }));
    const up = servers.filter((s) => s.state === 'UP').length;
    if (blind) {
      return Promise.resolve({
        samples: { replicas: replicas.length, sourceUp: false },
        snapshot: undefined,
        sources: { haproxy: false, docker: true },
        problems: ['http://haproxy:8404/metrics: connect ECONNREFUSED'],
      });
    }
    return Promise.resolve({
      samples: { replicas: up, sourceUp: true, requestRate: { value: requestRate, at: clock } },
      snapshot: { backend: 'be_app', at: clock, httpRequestsTotal: 0, currentSessions: 0, currentQueue: 0, responseTimeAverageSeconds: 0, queueTimeAverageSeconds: 0, activeServers: up, servers },
      sources: { haproxy: true, docker: true },
      problems: [],
    });
  };
  const sampler: Sampler = { sample: () => read(30_000), peek: () => read(2_000) };
  const docker: ReplicaActions = {
    startLike: (_template, count) => {
      const ids = Array.from({ length: count }, () => add());
      events.push(`start ${ids.join(',')}`);
      return Promise.resolve({ ok: true, value: ids });
    },
    stopAndRemove: (id) => {
      events.push(`stop ${id}`);
      replicas.splice(replicas.findIndex((r) => r.id === id), 1);
      return Promise.resolve({ ok: true, value: undefined });
    },
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
    store: memoryStateStore(),
    deadlineMs: 60_000,
    now: () => Date.now(),
    logger: silentLogger,
  });
  const retirements = retirementStore();
  const warnings: string[] = [];
  const presence: boolean[] = [];
  let drainable = true;
  const autoscaler = (dryRun = false) =>
    createAutoscaler({
      backend: 'be_app',
      policy,
      sampler,
      pool: () => Promise.resolve({ ok: true, value: { replicas: [...replicas], serverOf: new Map(replicas.map((r) => [r.id, serverOf(r.id)])) } }),
      scaler: docker,
      drainer,
      haproxy: {
        readServers: () =>
          Promise.resolve({ ok: true, value: { revision: undefined, backends: ['be_app'], servers: [...configured].map((name) => ({ backend: 'be_app', name, address: '127.0.0.1', port: 80, weight: 100 })) } }),
        listRuntimeServers: () => Promise.resolve({ ok: true, value: [...configured].map((name) => ({ name, adminState: states.get(name), operationalState: 'up' as const })) }),
        setAdminState: (_b, server, state) => {
          events.push(`${state} ${server}`);
          states.set(server, state);
          return Promise.resolve({ ok: true, value: undefined });
        },
      },
      readLoad: () => Promise.resolve({ sessions: sessionsWhileDraining, queue: 0 }),
      store: retirements,
      drainDeadlineMs: 60_000,
      requestReconcile: (reason) => {
        events.push(`reconcile (${reason})`);
        // The reconciler removes the servers of replicas whose drain is over.
        for (const r of retirements.list()) if (isRemovableRetiree(retirements, r.containerId)) configured.delete(r.server);
      },
      dryRun,
      canDrain: () => drainable,
      stopTimeoutSeconds: 30,
      logger: { ...silentLogger, warn: (_fields, message) => warnings.push(message) },
      recorder: { decided: () => undefined, acted: () => undefined, servicePresent: (present) => presence.push(present) },
      now: () => clock,
    });
  return {
    /** Time passing between two passes of the control loop (its drain poll period). */
    elapse: (ms: number) => (clock += ms),
    /** Whether the driver can set server states (false: the Data Plane API on HAProxy 2.6 without the socket). */
    canDrain: (on: boolean) => (drainable = on),
    /** A replica Docker runs that HAProxy does not show in service yet (started by someone else, or before a restart). */
    runUnjoined: (id: string) => replicas.push({ id, name: `stack-nginx-${id}`, number: 90, createdAt: clock / 1000 }),
    events,
    warnings,
    presence,
    replicas,
    states,
    retirements,
    autoscaler,
    setRate: (r: number) => (requestRate = r),
    holdSessions: (n: number) => (sessionsWhileDraining = n),
    blind: (on: boolean) => (blind = on),
  };
}

