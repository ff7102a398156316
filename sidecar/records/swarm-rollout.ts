// A rollout of a Swarm service: Swarm's own rolling update replaces the tasks (it creates and
// stops them; the sidecar cannot start a task of its own), and the rollout record asks for it,
// watches it on HAProxy's per-server figures with the same verdict as a Compose rollout's
// (rollout.ts), and rolls it back. One pure step per pass, like advanceRollout:
//
//   starting ── the service's spec asked once (new version, the rollout's labels on its task
//               containers, start-first, `batch` at a time, a bake apart); every running task
//               new and serving
//               ──> baking
//   baking   ── bake time over and Swarm's update no longer running ──> succeeded
//
// and from starting or baking, on worse figures, on Swarm pausing its update (a new task failed),
// on no new task serving for the ready timeout, or when the operator asks:
//
//   rolling-back ── the spec set back to the old version (the old labels: the tasks that never
//                   changed stay), Swarm replaces the new tasks; every running task old and
//                   serving ──> rolled-back
//
// Which spec the service has, and which tasks are new (their own container labels carry the
// rollout's id), are read from Swarm at every pass: a sidecar killed at any point asks for
// nothing twice and goes on from what it sees. The old tasks Swarm stops are drained by the
// reconciler (a task told to stop keeps its server, drained, until its container is gone).
import { bakeVerdict, batchCount, type BakeCounts, countBake, emptyBake, figureOf, isFinished, mean, type ReplicaView, type Rollout, type RolloutEffect, type RolloutObservation, type RolloutPhase, type RolloutStep, type Version } from './rollout.js';

/** The batch label of a Swarm rollout's new tasks (Swarm numbers no batches). */
export const SWARM_BATCH = 'swarm';

export interface SwarmServiceView {
  /** The version of the service's task template now. */
  readonly version: Version;
  /** The rollout labels of its task template: which rollout's spec it is, if any. */
  readonly rollout: string | undefined;
  readonly batch: string | undefined;
  /** Swarm's rolling update: updating, paused, completed, rollback_started, …; undefined before any. */
  readonly update: { readonly state: string; readonly message: string } | undefined;
}

export interface SwarmRolloutObservation extends RolloutObservation {
  readonly service: SwarmServiceView;
}

/** Swarm's update states that say it stopped short of the new version. */
const GAVE_UP = new Set(['paused', 'rollback_started', 'rollback_paused', 'rollback_completed']);

const sameVersion = (a: Version, b: Version): boolean => a.image === b.image && a.env.length === b.env.length && a.env.every((e, i) => e === b.env[i]);

export function advanceSwarmRollout(r: Rollout, view: SwarmRolloutObservation, now: number): RolloutStep {
  const stay = (reason: string, effects: readonly RolloutEffect[] = [], next: Rollout = r): RolloutStep => ({ next, effects, reason });
  const to = (phase: RolloutPhase, reason: string, fields: Partial<Rollout> = {}, effects: readonly RolloutEffect[] = []): RolloutStep => {
    const finished = isFinished(phase) ? { endedAt: now } : {};
    return { next: { ...r, ...fields, ...finished, phase, phaseSince: now, reason }, effects, reason };
  };
  const { service } = view;
  const asked = service.rollout === r.id && service.batch === SWARM_BATCH;
  // Its spec back at the old version: asked already (or the forward update never was).
  const restored = service.rollout !== r.id && sameVersion(service.version, r.from);
  const rollBack = (reason: string): RolloutStep => to('rolling-back', reason, { started: 0 }, restored ? [] : [{ kind: 'update-service', version: 'from' }]);

  // A task told to stop is no replica any more (it drains until its container is gone).
  const live = view.replicas.filter((x) => !x.retiring);
  const isNew = (x: ReplicaView): boolean => x.rollout === r.id && x.batch === SWARM_BATCH;
  const fresh = live.filter(isNew);
  const old = live.filter((x) => !isNew(x));
  const newServing = fresh.filter((x) => x.serving).length;
  const update = service.update;
  const updating = update?.state === 'updating';
  const wanted = r.old.length;

  /** The bake's counts and, when failing, why. */
  const judge = (final: boolean): { bake: BakeCounts; verdict: string | undefined } => {
    const newServers = new Set(fresh.flatMap((x) => (x.server === undefined ? [] : [x.server])));
    const oldServers = new Set(old.flatMap((x) => (x.server === undefined ? [] : [x.server])));
    const bake = view.figures === undefined ? (r.bake ?? emptyBake()) : countBake(r.bake ?? emptyBake(), newServers, oldServers, view.figures);
    // By the bake's end no old task is left to compare response times with: they are compared
    // while both run, and only errors are judged once the old ones are gone.
    const latency = { newSeconds: mean([...newServers].flatMap((s) => figureOf(view, s))), oldSeconds: mean([...oldServers].flatMap((s) => figureOf(view, s))) };
    return { bake, verdict: bakeVerdict(r, bake, latency, final && view.figures !== undefined) };
  };

  switch (r.phase) {
    case 'succeeded':
    case 'rolled-back':
      return stay(r.reason);

    case 'starting': {
      if (!asked) {
        return stay(
          `asking Swarm to replace ${wanted} task(s) with ${r.to.image}, ${r.settings.batch} at a time, each new one started before its old one stops`,
          [{ kind: 'update-service', version: 'to' }],
          { ...r, progressAt: now },
        );
      }
      if (update !== undefined && GAVE_UP.has(update.state)) return rollBack(`Swarm's update is ${update.state.replace('_', ' ')}${update.message === '' ? '' : `: ${update.message}`}`);
      const { bake, verdict } = judge(false);
      if (verdict !== undefined) return rollBack(verdict);
      const progressed = newServing > r.started;
      // Swarm numbers no batches: the one in progress is told from the new tasks serving, for
      // the progress lines of hsc rollout and GET /v1/rollouts.
      const batch = Math.min(batchCount(r) - 1, Math.floor(newServing / r.settings.batch));
      const counted: Rollout = { ...r, bake, ...(progressed ? { started: newServing, progressAt: now, batch } : {}) };
      if (old.length === 0 && newServing >= wanted) {
        return to('baking', `all ${newServing} task(s) new and serving; baking ${Math.round(r.settings.bakeMs / 1000)} s`, { bake, started: newServing, progressAt: now, batch });
      }
      // Swarm waits a bake between batches: that wait is no lack of progress.
      if (!progressed && now - (r.progressAt ?? r.phaseSince) > r.settings.readyTimeoutMs + r.settings.bakeMs) {
        return rollBack(`no new task started serving for ${Math.round(r.settings.readyTimeoutMs / 1000)} s (${newServing} of ${wanted} serving; Swarm's update ${update?.state ?? 'not started'})`);
      }
      // The reason changes only with progress (the log and the CLI print it when it changes); the
      // bake's counts are in the record.
      return stay(`Swarm's update: ${newServing} of ${wanted} task(s) new and serving, ${old.length} old`, [], counted);
    }

    case 'baking': {
      if (update !== undefined && GAVE_UP.has(update.state)) return rollBack(`Swarm's update is ${update.state.replace('_', ' ')}${update.message === '' ? '' : `: ${update.message}`}`);
      // A scale-up's task serves a little later: only fewer serving than replaced fails the bake.
      if (newServing < wanted) return rollBack(`a new task left rotation during the bake (${newServing} of ${wanted} serving)`);
      const over = now - r.phaseSince >= r.settings.bakeMs;
      const { bake, verdict } = judge(over);
      if (verdict !== undefined) return rollBack(verdict);
      const counted: Rollout = { ...r, bake };
      if (!over || view.figures === undefined) return stay('baking', [], counted);
      // Swarm watches the last batch for its monitor period before it calls the update complete.
      if (updating || old.length > 0) return stay(`baked; waiting for Swarm to complete its update (${update?.state ?? 'no update state'}, ${old.length} old task(s))`, [], counted);
      return to('succeeded', `all ${newServing} task(s) replaced by ${r.to.image}: ${bake.newErrors} errors in ${bake.newAnswers} answers`, { bake });
    }

    case 'retiring':
      // Not a phase of a Swarm rollout (Swarm stops the old tasks itself): a record found so
      // was written by something else; going on means baking what runs now.
      return to('baking', 'baking what runs now');

    case 'rolling-back': {
      if (!restored) return stay(`rolling back: asking Swarm to set ${r.from.image} back`, [{ kind: 'update-service', version: 'from' }]);
      const oldServing = old.filter((x) => x.serving).length;
      if (fresh.length > 0 || updating || oldServing < wanted) {
        const paused = update?.state === 'paused' ? `; Swarm paused it: ${update.message} (resume with docker service update)` : '';
        return stay(`rolling back: ${fresh.length} new task(s) left, ${oldServing} of ${wanted} old serving${paused}`);
      }
      return to('rolled-back', `rolled back: ${r.reason}`);
    }
  }
}
