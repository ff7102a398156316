import { describe, expect, it } from 'vitest';
import {
  advanceRollout,
  bakeVerdict,
  canaryWeight,
  countBake,
  rolloutView,
  type ReplicaView,
  type Rollout,
  type RolloutObservation,
  type RolloutStep,
} from '../../../sidecar/records/rollout.js';
import type { ServerFigures } from '../../../sidecar/haproxy-metrics/exporter.js';

const SETTINGS = { batch: 1, canaryPercent: 100, bakeMs: 10_000, readyTimeoutMs: 60_000, maxErrorRatio: 0.01, maxLatencyRatio: 2, minAnswers: 50 };

const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  id: 'r-1',
  backend: 'be_app',
  service: 'web',
  project: '',
  from: { image: 'hsc/nginx:1', env: ['A=1', 'SECRET=s3cr3t-before'] },
  to: { image: 'hsc/nginx:2', env: ['A=1', 'SECRET=s3cr3t-after'] },
  settings: SETTINGS,
  phase: 'starting',
  old: ['o1', 'o2'],
  batch: 0,
  started: 0,
  startedAt: 0,
  phaseSince: 0,
  reason: 'started',
  ...over,
});

const old = (id: string, over: Partial<ReplicaView> = {}): ReplicaView => ({
  id,
  rollout: undefined,
  batch: undefined,
  server: `hsc-${id}`,
  serving: true,
  failing: false,
  weight: 100,
  configuredWeight: 100,
  retiring: false,
  ...over,
});
const fresh = (id: string, batch: string, over: Partial<ReplicaView> = {}): ReplicaView => old(id, { rollout: 'r-1', batch, ...over });

const seen = (replicas: ReplicaView[], figures?: Record<string, ServerFigures>): RolloutObservation => ({
  replicas,
  figures: figures === undefined ? undefined : new Map(Object.entries(figures)),
});
const figures = (answers: number, errors: number, seconds = 0.005): ServerFigures => ({ answers, errors, responseTimeAverageSeconds: seconds });

/** Runs the step and applies its `next`, as the shell does once the effects succeeded. */
const step = (r: Rollout, view: RolloutObservation, now: number): RolloutStep => advanceRollout(r, view, now);

describe('advanceRollout', () => {
  it('replaces two replicas one batch at a time: start, serve, bake, retire, then the next batch, then succeeded', () => {
    let r = rollout();
    // Batch 1: one new replica started.
    let s = step(r, seen([old('o1'), old('o2')]), 1_000);
    expect(s.effects).toEqual([{ kind: 'start', count: 1, version: 'to', batch: '0' }]);
    r = s.next;
    expect(r.started).toBe(1);
    // Running, not serving yet: it waits.
    s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0', { serving: false })]), 2_000);
    expect(s.effects).toEqual([]);
    expect(s.next.phase).toBe('starting');
    // Serving: the bake begins.
    s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0')]), 3_000);
    expect(s.next.phase).toBe('baking');
    expect(s.next.phaseSince).toBe(3_000);
    r = s.next;
    // Baking with clean figures, not over yet.
    const clean = { 'hsc-o1': figures(100, 0), 'hsc-o2': figures(100, 0), 'hsc-n1': figures(0, 0) };
    s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0')], clean), 4_000);
    expect(s.next.phase).toBe('baking');
    r = s.next;
    s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0')], { 'hsc-o1': figures(200, 0), 'hsc-o2': figures(200, 0), 'hsc-n1': figures(100, 0) }), 13_000);
    expect(s.next.phase).toBe('retiring');
    expect(s.effects).toEqual([{ kind: 'retire', containerIds: ['o1'] }]);
    expect(s.next.bake).toMatchObject({ newAnswers: 100, newErrors: 0, oldAnswers: 200 });
    r = s.next;
    // o1 draining (its retirement recorded): nothing more to ask.
    s = step(r, seen([old('o1', { retiring: true }), old('o2'), fresh('n1', '0')]), 14_000);
    expect(s.effects).toEqual([]);
    // o1 gone: batch 2.
    s = step(r, seen([old('o2'), fresh('n1', '0')]), 15_000);
    expect(s.next).toMatchObject({ phase: 'starting', batch: 1, started: 0 });
    r = s.next;
    s = step(r, seen([old('o2'), fresh('n1', '0')]), 15_500);
    expect(s.effects).toEqual([{ kind: 'start', count: 1, version: 'to', batch: '1' }]);
    r = s.next;
    r = step(r, seen([old('o2'), fresh('n1', '0'), fresh('n2', '1')]), 16_000).next;
    expect(r.phase).toBe('baking');
    s = step(r, seen([old('o2'), fresh('n1', '0'), fresh('n2', '1')], { 'hsc-o2': figures(10, 0), 'hsc-n1': figures(10, 0), 'hsc-n2': figures(10, 0) }), 26_000);
    expect(s.effects).toEqual([{ kind: 'retire', containerIds: ['o2'] }]);
    r = s.next;
    s = step(r, seen([fresh('n1', '0'), fresh('n2', '1')]), 27_000);
    expect(s.next).toMatchObject({ phase: 'succeeded', endedAt: 27_000 });
    // Ended: nothing more, ever.
    expect(step(s.next, seen([]), 28_000).effects).toEqual([]);
  });

  it('starts only what is missing after a restart: a replica started before a crash is counted by its labels', () => {
    // The record was stored before the start (started 0), the container runs: nothing more starts.
    const s = step(rollout(), seen([old('o1'), old('o2'), fresh('n1', '0', { serving: false })]), 1_000);
    expect(s.effects).toEqual([]);
  });

  it('rolls back when a new replica is not serving in time, or stops before it served', () => {
    const waiting = rollout({ started: 1 });
    expect(step(waiting, seen([old('o1'), old('o2'), fresh('n1', '0', { serving: false })]), 61_000).next.phase).toBe('rolling-back');
    const stopped = step(waiting, seen([old('o1'), old('o2')]), 2_000);
    expect(stopped.next.phase).toBe('rolling-back');
    expect(stopped.next.reason).toMatch(/stopped before it served/);
    expect(step(waiting, seen([old('o1'), old('o2'), fresh('n1', '0', { failing: true, serving: false })]), 2_000).next.reason).toMatch(/failing its health checks/);
  });

  it('rolls back during the bake on errors over the ratio once enough answers came, and the rollback restores then retires', () => {
    let r = rollout({ phase: 'baking', started: 1, bake: { newAnswers: 0, newErrors: 0, oldAnswers: 0, oldErrors: 0, last: { 'hsc-n1': { answers: 0, errors: 0 }, 'hsc-o1': { answers: 0, errors: 0 }, 'hsc-o2': { answers: 0, errors: 0 } } } });
    const replicas = [old('o1'), old('o2'), fresh('n1', '0')];
    // 40 answers, 40 errors: under minAnswers, the bake goes on.
    let s = step(r, seen(replicas, { 'hsc-o1': figures(40, 0), 'hsc-o2': figures(40, 0), 'hsc-n1': figures(40, 40) }), 2_000);
    expect(s.next.phase).toBe('baking');
    r = s.next;
    s = step(r, seen(replicas, { 'hsc-o1': figures(80, 0), 'hsc-o2': figures(80, 0), 'hsc-n1': figures(80, 80) }), 3_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.next.reason).toMatch(/failed 80 of 80 answers/);
    r = s.next;
    // No old replica was retired yet: nothing to restore; the new one is retired.
    s = step(r, seen(replicas), 3_500);
    expect(s.effects).toEqual([{ kind: 'retire', containerIds: ['n1'] }]);
    s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0', { retiring: true })]), 4_000);
    expect(s.effects).toEqual([]);
    s = step(r, seen([old('o1'), old('o2')]), 5_000);
    expect(s.next).toMatchObject({ phase: 'rolled-back', endedAt: 5_000 });
    expect(s.next.reason).toMatch(/^rolled back: the new replicas failed/);
  });

  it('in a later batch, a rollback first starts old-version replicas for those already replaced', () => {
    const r = rollout({ phase: 'rolling-back', batch: 1, started: 0, old: ['o1', 'o2'] });
    // o1 was replaced in batch 1 (gone); n1 and n2 run.
    let s = step(r, seen([old('o2'), fresh('n1', '0'), fresh('n2', '1')]), 1_000);
    expect(s.effects).toEqual([{ kind: 'start', count: 1, version: 'from', batch: 'restore' }]);
    const next = s.next;
    // Restored one not serving yet: the new ones stay.
    s = step(next, seen([old('o2'), fresh('n1', '0'), fresh('n2', '1'), fresh('x1', 'restore', { serving: false })]), 2_000);
    expect(s.effects).toEqual([]);
    // Serving: every new one is retired; the restored one is not.
    s = step(next, seen([old('o2'), fresh('n1', '0'), fresh('n2', '1'), fresh('x1', 'restore')]), 3_000);
    expect(s.effects).toEqual([{ kind: 'retire', containerIds: ['n1', 'n2'] }]);
    // A restore that stopped is started again at most as many times as there were old replicas.
    const spent = { ...next, started: 2 };
    expect(step(spent, seen([old('o2'), fresh('n1', '0')]), 4_000).effects).toEqual([{ kind: 'retire', containerIds: ['n1'] }]);
  });

  it('gives a canary its weight on the first batch, again after a reload, and its full weight when it baked', () => {
    const r = rollout({ settings: { ...SETTINGS, canaryPercent: 10 }, started: 1 });
    let s = step(r, seen([old('o1'), old('o2'), fresh('n1', '0')]), 1_000);
    expect(s.next.phase).toBe('baking');
    expect(s.effects).toEqual([{ kind: 'set-weight', server: 'hsc-n1', weight: 10 }]);
    const baking = s.next;
    // A reload gave it back 100: set again.
    s = step(baking, seen([old('o1'), old('o2'), fresh('n1', '0')], { 'hsc-n1': figures(1, 0) }), 2_000);
    expect(s.effects).toEqual([{ kind: 'set-weight', server: 'hsc-n1', weight: 10 }]);
    s = step(baking, seen([old('o1'), old('o2'), fresh('n1', '0', { weight: 10 })], { 'hsc-n1': figures(1, 0) }), 12_000);
    expect(s.effects).toEqual([
      { kind: 'set-weight', server: 'hsc-n1', weight: 100 },
      { kind: 'retire', containerIds: ['o1'] },
    ]);
    expect(canaryWeight(100, 10)).toBe(10);
    expect(canaryWeight(1, 10)).toBe(1);
  });

  it('rolls back a new replica that leaves rotation during its bake', () => {
    const r = rollout({ phase: 'baking', started: 1 });
    expect(step(r, seen([old('o1'), old('o2'), fresh('n1', '0', { serving: false })]), 1_000).next.reason).toMatch(/left rotation during its bake/);
    expect(step(r, seen([old('o1'), old('o2')]), 1_000).next.reason).toMatch(/stopped during its bake/);
  });

  it('does not judge a bake it cannot read: the bake ends only with figures', () => {
    const r = rollout({ phase: 'baking', started: 1 });
    expect(step(r, seen([old('o1'), old('o2'), fresh('n1', '0')]), 20_000).next.phase).toBe('baking');
  });
});

describe('countBake and bakeVerdict', () => {
  it('counts what each server answered since the last read, a reset counter from zero, a new server from its first read', () => {
    const start = { newAnswers: 0, newErrors: 0, oldAnswers: 0, oldErrors: 0, last: {} };
    const one = countBake(start, new Set(['n']), new Set(['o']), new Map([['n', figures(10, 1)], ['o', figures(500, 0)], ['other', figures(9, 9)]]));
    expect(one).toMatchObject({ newAnswers: 0, oldAnswers: 0 });
    const two = countBake(one, new Set(['n']), new Set(['o']), new Map([['n', figures(30, 2)], ['o', figures(600, 1)]]));
    expect(two).toMatchObject({ newAnswers: 20, newErrors: 1, oldAnswers: 100, oldErrors: 1 });
    // A reload: counters start again.
    const three = countBake(two, new Set(['n']), new Set(['o']), new Map([['n', figures(5, 0)], ['o', figures(7, 0)]]));
    expect(three).toMatchObject({ newAnswers: 25, newErrors: 1, oldAnswers: 107, oldErrors: 1 });
  });

  it('fails the new version on errors over the ratio unless the old ones fail as much, and on latency at the end only', () => {
    const r = rollout();
    const latency = { newSeconds: undefined, oldSeconds: undefined };
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 5, oldAnswers: 100, oldErrors: 0, last: {} }, latency, false)).toMatch(/failed 5 of 100/);
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 5, oldAnswers: 100, oldErrors: 5, last: {} }, latency, true)).toBeUndefined();
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 1, oldAnswers: 100, oldErrors: 0, last: {} }, latency, true)).toBeUndefined();
    const slow = { newSeconds: 0.2, oldSeconds: 0.01 };
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 0, oldAnswers: 100, oldErrors: 0, last: {} }, slow, false)).toBeUndefined();
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 0, oldAnswers: 100, oldErrors: 0, last: {} }, slow, true)).toMatch(/200 ms on average/);
    expect(bakeVerdict(r, { newAnswers: 100, newErrors: 0, oldAnswers: 100, oldErrors: 0, last: {} }, { newSeconds: 0.004, oldSeconds: 0.001 }, true)).toBeUndefined();
  });
});

describe('rolloutView', () => {
  it('shows the names of the variables a rollout changes, never their values', () => {
    const view = rolloutView(rollout());
    expect(view.envChanged).toEqual(['SECRET']);
    expect(JSON.stringify(view)).not.toMatch(/s3cr3t/);
    expect(view.batches).toBe(2);
  });
});
