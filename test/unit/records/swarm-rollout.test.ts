import { describe, expect, it } from 'vitest';
import type { ServerFigures } from '../../../sidecar/haproxy-metrics/exporter.js';
import type { ReplicaView, Rollout } from '../../../sidecar/records/rollout.js';
import { advanceSwarmRollout, type SwarmRolloutObservation, type SwarmServiceView } from '../../../sidecar/records/swarm-rollout.js';

const SETTINGS = { batch: 1, canaryPercent: 100, bakeMs: 10_000, readyTimeoutMs: 60_000, maxErrorRatio: 0.01, maxLatencyRatio: 2, minAnswers: 50 };
const FROM = { image: 'hsc/nginx:local', env: ['MARK=1'] };
const TO = { image: 'hsc/nginx:local', env: ['MARK=2'] };

const rollout = (over: Partial<Rollout> = {}): Rollout => ({
  id: 'r-1',
  via: 'swarm',
  backend: 'be_app',
  service: 'web',
  project: '',
  from: FROM,
  to: TO,
  settings: SETTINGS,
  phase: 'starting',
  old: ['t1', 't2'],
  batch: 0,
  started: 0,
  startedAt: 0,
  phaseSince: 0,
  reason: 'started',
  ...over,
});

const task = (id: string, over: Partial<ReplicaView> = {}): ReplicaView => ({
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
const fresh = (id: string, over: Partial<ReplicaView> = {}): ReplicaView => task(id, { rollout: 'r-1', batch: 'swarm', ...over });
/** An old task Swarm told to stop: its server drains until its container is gone. */
const stopping = (id: string): ReplicaView => task(id, { retiring: true });

const OLD_SPEC: SwarmServiceView = { version: FROM, rollout: undefined, batch: undefined, update: undefined };
const NEW_SPEC: SwarmServiceView = { version: TO, rollout: 'r-1', batch: 'swarm', update: { state: 'updating', message: 'update in progress' } };
const withUpdate = (spec: SwarmServiceView, state: string, message = ''): SwarmServiceView => ({ ...spec, update: { state, message } });

const seen = (service: SwarmServiceView, replicas: ReplicaView[], figures?: Record<string, ServerFigures>): SwarmRolloutObservation => ({
  service,
  replicas,
  figures: figures === undefined ? undefined : new Map(Object.entries(figures)),
});
const fig = (answers: number, errors = 0, seconds = 0.005): ServerFigures => ({ answers, errors, responseTimeAverageSeconds: seconds });

describe('advanceSwarmRollout', () => {
  it('asks Swarm once, follows its update task by task, bakes, and succeeds once Swarm completed', () => {
    let r = rollout();
    // The spec is still the old one: the update is asked, and nothing else.
    let s = advanceSwarmRollout(r, seen(OLD_SPEC, [task('t1'), task('t2')]), 1_000);
    expect(s.effects).toEqual([{ kind: 'update-service', version: 'to' }]);
    expect(s.next.phase).toBe('starting');
    r = s.next;
    expect(r.progressAt).toBe(1_000);
    // Asked (the spec carries the rollout's labels): never asked again.
    s = advanceSwarmRollout(r, seen(NEW_SPEC, [task('t1'), task('t2')]), 2_000);
    expect(s.effects).toEqual([]);
    // One new task serving, its old one draining: progress.
    s = advanceSwarmRollout(r, seen(NEW_SPEC, [stopping('t1'), task('t2'), fresh('n1')], { 'hsc-t2': fig(10), 'hsc-n1': fig(5) }), 3_000);
    expect(s.next.phase).toBe('starting');
    expect(s.next.started).toBe(1);
    expect(s.next.progressAt).toBe(3_000);
    // The first of two batches done: the second in progress.
    expect(s.next.batch).toBe(1);
    r = s.next;
    // Both new and serving, the last old one gone: the bake begins, counts carried on.
    s = advanceSwarmRollout(r, seen(NEW_SPEC, [fresh('n1'), fresh('n2')], { 'hsc-n1': fig(25), 'hsc-n2': fig(5) }), 4_000);
    expect(s.next.phase).toBe('baking');
    expect(s.next.bake?.newAnswers).toBe(20);
    r = s.next;
    s = advanceSwarmRollout(r, seen(NEW_SPEC, [fresh('n1'), fresh('n2')], { 'hsc-n1': fig(100), 'hsc-n2': fig(80) }), 9_000);
    expect(s.next.phase).toBe('baking');
    r = s.next;
    // Baked, but Swarm still watches its last batch: wait for it.
    s = advanceSwarmRollout(r, seen(NEW_SPEC, [fresh('n1'), fresh('n2')], { 'hsc-n1': fig(150), 'hsc-n2': fig(130) }), 14_000);
    expect(s.next.phase).toBe('baking');
    expect(s.reason).toMatch(/waiting for Swarm/);
    r = s.next;
    s = advanceSwarmRollout(r, seen(withUpdate(NEW_SPEC, 'completed'), [fresh('n1'), fresh('n2')], { 'hsc-n1': fig(160), 'hsc-n2': fig(140) }), 15_000);
    expect(s.next.phase).toBe('succeeded');
    expect(s.next.endedAt).toBe(15_000);
    expect(s.effects).toEqual([]);
    // Over: nothing more.
    expect(advanceSwarmRollout(s.next, seen(OLD_SPEC, []), 16_000)).toMatchObject({ effects: [], next: s.next });
  });

  it('a sidecar restarted after asking (the record not saved yet) finds the spec asked and does not ask again', () => {
    // The record as stored before the update was asked: no progressAt, started 0.
    const s = advanceSwarmRollout(rollout({ phaseSince: 0 }), seen(NEW_SPEC, [task('t1'), fresh('n1', { serving: false })]), 5_000);
    expect(s.effects).toEqual([]);
    expect(s.next.phase).toBe('starting');
  });

  it('a sidecar restarted in the middle of a bake goes on from the record: the bake ends on time', () => {
    const baking = rollout({ phase: 'baking', phaseSince: 10_000, started: 2, bake: { newAnswers: 40, newErrors: 0, oldAnswers: 0, oldErrors: 0, last: { 'hsc-n1': { answers: 20, errors: 0 }, 'hsc-n2': { answers: 20, errors: 0 } } } });
    const s = advanceSwarmRollout(baking, seen(withUpdate(NEW_SPEC, 'completed'), [fresh('n1'), fresh('n2')], { 'hsc-n1': fig(30), 'hsc-n2': fig(30) }), 20_000);
    expect(s.next.phase).toBe('succeeded');
    expect(s.next.bake?.newAnswers).toBe(60);
  });

  it('a scale-up’s task not serving yet is no reason to fail the bake; one of the replaced ones leaving rotation is', () => {
    const baking = rollout({ phase: 'baking', phaseSince: 10_000, started: 2 });
    expect(advanceSwarmRollout(baking, seen(NEW_SPEC, [fresh('n1'), fresh('n2'), fresh('n3', { serving: false })]), 12_000).next.phase).toBe('baking');
    const s = advanceSwarmRollout(baking, seen(NEW_SPEC, [fresh('n1'), fresh('n2', { serving: false })]), 12_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.effects).toEqual([{ kind: 'update-service', version: 'from' }]);
  });

  it.each([
    ['paused (a new task failed)', withUpdate(NEW_SPEC, 'paused', 'update paused due to failure or early termination of task n1'), /Swarm's update is paused: update paused due to failure/],
    ['rolled back by someone else', withUpdate(NEW_SPEC, 'rollback_started'), /Swarm's update is rollback started/],
  ])('Swarm’s update %s: the rollout rolls back', (_name, spec, reason) => {
    const s = advanceSwarmRollout(rollout({ progressAt: 0 }), seen(spec, [task('t1'), fresh('n1', { serving: false })]), 2_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.reason).toMatch(reason);
  });

  it('new tasks answering errors roll it back before the bake ends, as in a Compose rollout', () => {
    const r = rollout({ progressAt: 0, bake: { newAnswers: 0, newErrors: 0, oldAnswers: 0, oldErrors: 0, last: { 'hsc-t2': { answers: 0, errors: 0 }, 'hsc-n1': { answers: 0, errors: 0 } } } });
    const s = advanceSwarmRollout(r, seen(NEW_SPEC, [stopping('t1'), task('t2'), fresh('n1')], { 'hsc-t2': fig(60), 'hsc-n1': fig(60, 60) }), 3_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.reason).toMatch(/the new replicas failed 60 of 60 answers/);
    expect(s.effects).toEqual([{ kind: 'update-service', version: 'from' }]);
  });

  it('no new task serving within the ready timeout and a bake (counted from the last progress) rolls it back', () => {
    const r = rollout({ progressAt: 10_000, started: 1 });
    const view = seen(NEW_SPEC, [fresh('n1'), task('t2'), fresh('n2', { serving: false })]);
    // Swarm waits a bake (10 s) between batches: 60 s + 10 s without progress.
    expect(advanceSwarmRollout(r, view, 79_000).next.phase).toBe('starting');
    const s = advanceSwarmRollout(r, view, 81_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.reason).toMatch(/no new task started serving for 60 s \(1 of 2 serving/);
  });

  it('rolls back: asks for the old spec once, waits for Swarm to replace the new tasks, ends when the old version serves every slot', () => {
    let r = rollout({ phase: 'rolling-back', phaseSince: 5_000, reason: 'asked by an operator' });
    let s = advanceSwarmRollout(r, seen(NEW_SPEC, [fresh('n1'), task('t2')]), 6_000);
    expect(s.effects).toEqual([{ kind: 'update-service', version: 'from' }]);
    expect(s.next).toBe(r);
    // Asked: the spec is the old one again; the new task still runs.
    s = advanceSwarmRollout(r, seen(withUpdate(OLD_SPEC, 'updating'), [fresh('n1'), task('t2'), task('t3', { serving: false })]), 7_000);
    expect(s.effects).toEqual([]);
    expect(s.next.phase).toBe('rolling-back');
    // The new task told to stop (draining), the old version in both slots, Swarm done.
    s = advanceSwarmRollout(r, seen(withUpdate(OLD_SPEC, 'completed'), [task('n1', { rollout: 'r-1', batch: 'swarm', retiring: true }), task('t2'), task('t3')]), 8_000);
    expect(s.next.phase).toBe('rolled-back');
    expect(s.next.reason).toBe('rolled back: asked by an operator');
    r = s.next;
    expect(r.endedAt).toBe(8_000);
  });

  it('an operator’s rollback before Swarm was asked: nothing to set back, it ends once the old tasks serve', () => {
    const s = advanceSwarmRollout(rollout({ phase: 'rolling-back', phaseSince: 1_000 }), seen(OLD_SPEC, [task('t1'), task('t2')]), 2_000);
    expect(s.effects).toEqual([]);
    expect(s.next.phase).toBe('rolled-back');
  });

  it('a rollback Swarm paused says so and waits for the operator', () => {
    const s = advanceSwarmRollout(rollout({ phase: 'rolling-back' }), seen(withUpdate(OLD_SPEC, 'paused', 'task t9 failed'), [fresh('n1'), task('t3', { serving: false })]), 2_000);
    expect(s.next.phase).toBe('rolling-back');
    expect(s.reason).toMatch(/Swarm paused it: task t9 failed/);
  });
});
