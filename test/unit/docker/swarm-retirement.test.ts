// The autoscaler's side of a Swarm scale-down whose prediction went stale: the edge answers the
// stop with `conflict` (Swarm would stop another task), and the retirement is given up instead of
// being retried for ever: its record goes, so the reconciler puts the drained replica's server
// back, and a later evaluation plans again. Any other failure keeps the record for the next pass.
import { describe, expect, it } from 'vitest';
import { createAutoscaler, isRemovableRetiree, type ReplicaActions } from '../../../sidecar/autoscale/controller.js';
import { DEFAULT_POLICY } from '../../../sidecar/autoscale/policy.js';
import { retirementStore, type Retirement } from '../../../sidecar/records/retirement.js';
import { fail, ok, type EdgeErrorKind } from '../../../sidecar/edge/result.js';
import { silentLogger } from '../../../sidecar/log/logger.js';

function setup(kind: EdgeErrorKind | undefined) {
  const record: Retirement = { containerId: 't2', backend: 'be_app', server: 'hsc-web.2.node-A', stage: 'drained', startedAt: 0, deadlineAt: 60_000, quietReads: 2 };
  const store = retirementStore([record]);
  const warnings: string[] = [];
  const reconciles: string[] = [];
  const stops: string[] = [];
  const scaler: ReplicaActions = {
    startLike: () => Promise.resolve(ok([])),
    stopAndRemove: (id) => {
      stops.push(id);
      return Promise.resolve(kind === undefined ? ok(undefined) : fail('scale down', kind, 'Swarm would now stop t1, not this task'));
    },
  };
  const autoscaler = createAutoscaler({
    backend: 'be_app',
    policy: DEFAULT_POLICY,
    sampler: { sample: () => Promise.reject(new Error('not used')), peek: () => Promise.reject(new Error('not used')) },
    // Both tasks still run (Swarm stopped neither); the drained one's server is gone from HAProxy.
    pool: () =>
      Promise.resolve(
        ok({
          replicas: ['t1', 't2'].map((id, i) => ({ id, name: `web.${i + 1}.node-A`, number: 0, createdAt: 1 })),
          serverOf: new Map([['t1', 'hsc-web.1.node-A']]),
        }),
      ),
    scaler,
    drainer: { undrain: () => Promise.resolve(ok(undefined)) },
    haproxy: {
      readServers: () => Promise.resolve(ok({ revision: undefined, backends: ['be_app'], servers: [{ backend: 'be_app', name: 'hsc-web.1.node-A', address: '10.0.1.1', port: 80, weight: 100 }] })),
      listRuntimeServers: () => Promise.resolve(ok([])),
      setAdminState: () => Promise.resolve(ok(undefined)),
    },
    readLoad: () => Promise.resolve({ sessions: 0, queue: 0 }),
    store,
    drainDeadlineMs: 60_000,
    requestReconcile: (reason) => reconciles.push(reason),
    dryRun: false,
    stopTimeoutSeconds: 30,
    logger: { ...silentLogger, warn: (_fields: unknown, message: string) => warnings.push(message) },
    now: () => 1_000,
  });
  return { autoscaler, store, warnings, reconciles, stops };
}

describe('a Swarm scale-down whose task is no longer Swarm’s pick', () => {
  it('is given up: the record goes (the reconciler may put the server back), with one warning and a reconcile', async () => {
    const s = setup('conflict');
    expect(isRemovableRetiree(s.store, 't2')).toBe(true);
    // drained → removed (the server is gone) asks for the stop, which answers conflict.
    await s.autoscaler.progress();
    expect(s.stops).toEqual(['t2']);
    expect(s.store.list()).toEqual([]);
    expect(isRemovableRetiree(s.store, 't2')).toBe(false);
    expect(s.warnings).toEqual(['scale-down of hsc-web.2.node-A given up: Swarm would now stop t1, not this task; it serves again']);
    expect(s.reconciles).toEqual(['scale-down of hsc-web.2.node-A given up']);
    // Nothing left to retry.
    await s.autoscaler.progress();
    expect(s.stops).toEqual(['t2']);
  });

  it('any other failure keeps the record, retried at the next pass', async () => {
    const s = setup('unavailable');
    await s.autoscaler.progress();
    await s.autoscaler.progress();
    expect(s.stops).toEqual(['t2', 't2']);
    expect(s.store.list()).toMatchObject([{ containerId: 't2', stage: 'drained' }]);
  });

  it('a stop that worked ends the retirement once the task no longer runs', async () => {
    const s = setup(undefined);
    await s.autoscaler.progress();
    expect(s.stops).toEqual(['t2']);
    expect(s.store.list()).toMatchObject([{ containerId: 't2', stage: 'removed' }]);
    expect(s.warnings).toEqual([]);
  });
});
