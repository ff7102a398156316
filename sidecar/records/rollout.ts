// A rollout as durable, observable state: the record of `hsc rollout`, moved on by one pure step
// per pass of the control loop from what Docker and HAProxy show, like a retirement
// (retirement.ts). For each batch of the old replicas, oldest first:
//
//   starting ── the batch's new replicas all serve (in HAProxy, up) ──> baking
//   baking   ── bake time over, their errors and response time within bounds ──> retiring
//   retiring ── the batch's old replicas are gone (retired like a scale-down) ──> starting (next
//               batch) or succeeded
//
// and from starting or baking, on a new replica that does not serve in time, goes down, or
// answers worse than the old ones (or when the operator asks):
//
//   rolling-back ── old-version replicas started for those already replaced, then every new
//                   replica retired ──> rolled-back
//
// The new replicas are found by their labels (which rollout, which batch), never by ids held
// only in memory, so a sidecar killed at any stage finds them after its restart and goes on from
// what it observes: the step starts only what is missing and retires only what still runs.
import type { ServerFigures } from '../haproxy-metrics/exporter.js';

export type RolloutPhase = 'starting' | 'baking' | 'retiring' | 'rolling-back' | 'succeeded' | 'rolled-back';

/** The version a replica runs: its image and its whole environment. */
export interface Version {
  readonly image: string;
  readonly env: readonly string[];
}

export interface RolloutSettings {
  /** Old replicas replaced per batch; also how many new ones run beside the old ones at most (max surge). */
  readonly batch: number;
  /** The first batch's weight in percent of a full replica's while it bakes; 100: no canary. */
  readonly canaryPercent: number;
  /** How long each batch's new replicas serve before the old ones leave. */
  readonly bakeMs: number;
  /** How long a batch's new replicas have to be serving before the rollout rolls back. */
  readonly readyTimeoutMs: number;
  /** Errors (5xx answers, connection and response errors) per answer above which the new version fails. */
  readonly maxErrorRatio: number;
  /** The new replicas' mean response time above this many times the old ones' fails the new version. */
  readonly maxLatencyRatio: number;
  /** Answers a batch must give before its error ratio is judged before the bake ends. */
  readonly minAnswers: number;
}

/** Answers and errors counted over a bake, per version, from HAProxy's per-server counters. */
export interface BakeCounts {
  readonly newAnswers: number;
  readonly newErrors: number;
  readonly oldAnswers: number;
  readonly oldErrors: number;
  /** Each server's counters at the last read, to count what came since (a reload resets them). */
  readonly last: Readonly<Record<string, { readonly answers: number; readonly errors: number }>>;
}

export interface Rollout {
  readonly id: string;
  /**
   * `swarm`: Swarm's own rolling update replaces the tasks, asked and watched by
   * advanceSwarmRollout (swarm-rollout.ts); absent: the sidecar replaces Compose replicas itself,
   * batch by batch (advanceRollout).
   */
  readonly via?: 'swarm';
  readonly backend: string;
  readonly service: string;
  readonly project: string;
  readonly from: Version;
  readonly to: Version;
  readonly settings: RolloutSettings;
  readonly phase: RolloutPhase;
  /** The replicas of the old version when it began, oldest first: the ones it replaces, `batch` at a time. */
  readonly old: readonly string[];
  /** The batch in progress (0 first). */
  readonly batch: number;
  /** New replicas started for the batch in progress (or old-version ones for a rollback). */
  readonly started: number;
  readonly startedAt: number;
  /** When the current phase began. */
  readonly phaseSince: number;
  readonly endedAt?: number;
  /** Why it is in its phase: the last transition's reason (the cause of a rollback). */
  readonly reason: string;
  readonly bake?: BakeCounts;
  /**
   * Swarm: the rollout whose labels the service's spec carried when this one began (the one that
   * brought the version it replaces): a rollback sets them back with that version, so the tasks
   * that never changed equal the spec again and Swarm leaves them running.
   */
  readonly previous?: string;
  /** Swarm: when one more new task was last seen serving (or the update asked): its ready timeout counts from there. */
  readonly progressAt?: number;
}

/** One running replica of the rolled-out service, as Docker and HAProxy show it now. */
export interface ReplicaView {
  readonly id: string;
  /** Its rollout's label, and which batch (or `restore`) started it; undefined on other replicas. */
  readonly rollout: string | undefined;
  readonly batch: string | undefined;
  /** Its server in the backend; undefined until discovery names one. */
  readonly server: string | undefined;
  /** In HAProxy, health checks passing, admin state ready. */
  readonly serving: boolean;
  /** Docker's health check calls it unhealthy, or HAProxy's checks took it down after it served. */
  readonly failing: boolean;
  /** Its weight now in the running HAProxy, and the one configured for it; undefined when unread. */
  readonly weight: number | undefined;
  readonly configuredWeight: number | undefined;
  /** A retirement record exists for it. */
  readonly retiring: boolean;
}

export interface RolloutObservation {
  readonly replicas: readonly ReplicaView[];
  /** HAProxy's per-server figures now; undefined when the exporter cannot be read. */
  readonly figures: ReadonlyMap<string, ServerFigures> | undefined;
}

export type RolloutEffect =
  | { readonly kind: 'start'; readonly count: number; readonly version: 'to' | 'from'; readonly batch: string }
  | { readonly kind: 'retire'; readonly containerIds: readonly string[] }
  | { readonly kind: 'set-weight'; readonly server: string; readonly weight: number }
  /** Swarm: the service's task template set to that version, Swarm's rolling update does the rest. */
  | { readonly kind: 'update-service'; readonly version: 'to' | 'from' };

export interface RolloutStep {
  readonly next: Rollout;
  /** What the shell must do, in order; `next` is stored only once they all succeeded. */
  readonly effects: readonly RolloutEffect[];
  readonly reason: string;
}

/**
 * A rollout as the admin API shows it: the environment's values stay in the state file (they may
 * be secrets); the names of the variables it sets or changes are shown instead.
 */
/** A rollout as the admin API shows it. */
export type RolloutView = Omit<Rollout, 'from' | 'to'> & { readonly from: { readonly image: string }; readonly to: { readonly image: string }; readonly envChanged: readonly string[]; readonly batches: number };

export function rolloutView(r: Rollout): RolloutView {
  const before = new Set(r.from.env);
  const envChanged = r.to.env.filter((entry) => !before.has(entry)).map((entry) => entry.split('=', 1)[0] ?? entry);
  const { from, to, ...rest } = r;
  return { ...rest, from: { image: from.image }, to: { image: to.image }, envChanged, batches: batchCount(r) };
}

export const isFinished = (phase: RolloutPhase): boolean => phase === 'succeeded' || phase === 'rolled-back';

export const batchCount = (r: Pick<Rollout, 'old' | 'settings'>): number => Math.max(1, Math.ceil(r.old.length / r.settings.batch));

/** The old replicas batch `index` replaces. */
export const oldOfBatch = (r: Pick<Rollout, 'old' | 'settings'>, index: number): readonly string[] =>
  r.old.slice(index * r.settings.batch, (index + 1) * r.settings.batch);

export const emptyBake = (): BakeCounts => ({ newAnswers: 0, newErrors: 0, oldAnswers: 0, oldErrors: 0, last: {} });

/** The canary's weight: a share of a full replica's, at least 1 (0 would take it out of rotation). */
export const canaryWeight = (full: number, percent: number): number => Math.max(1, Math.round((full * percent) / 100));

/**
 * Adds what each server answered since the last read to its version's counts. A counter lower
 * than at the last read was reset (a reload starts a worker with fresh counters): what it shows
 * now all came since.
 */
export function countBake(bake: BakeCounts, newServers: ReadonlySet<string>, oldServers: ReadonlySet<string>, figures: ReadonlyMap<string, ServerFigures>): BakeCounts {
  let { newAnswers, newErrors, oldAnswers, oldErrors } = bake;
  const last: Record<string, { answers: number; errors: number }> = {};
  for (const [server, now] of figures) {
    const isNew = newServers.has(server);
    if (!isNew && !oldServers.has(server)) continue;
    const before = bake.last[server];
    const since = (current: number, previous: number | undefined): number => (previous === undefined ? 0 : current >= previous ? current - previous : current);
    // A server first seen now counts from here: what it answered before is not this bake's.
    const answers = since(now.answers, before?.answers);
    const errors = since(now.errors, before?.errors);
    if (isNew) {
      newAnswers += answers;
      newErrors += errors;
    } else {
      oldAnswers += answers;
      oldErrors += errors;
    }
    last[server] = { answers: now.answers, errors: now.errors };
  }
  return { newAnswers, newErrors, oldAnswers, oldErrors, last };
}

/** Why the new version's figures fail it, or undefined while they do not. `final`: the bake is over. */
export function bakeVerdict(r: Rollout, bake: BakeCounts, latency: { newSeconds: number | undefined; oldSeconds: number | undefined }, final: boolean): string | undefined {
  const s = r.settings;
  const ratio = bake.newAnswers === 0 ? 0 : bake.newErrors / bake.newAnswers;
  if ((final || bake.newAnswers >= s.minAnswers) && bake.newErrors > 0 && ratio > s.maxErrorRatio) {
    const oldRatio = bake.oldAnswers === 0 ? 0 : bake.oldErrors / bake.oldAnswers;
    // The old replicas failing as much says the trouble is not the new version's.
    if (!(oldRatio > 0 && ratio <= oldRatio * 1.5)) {
      return `the new replicas failed ${bake.newErrors} of ${bake.newAnswers} answers (${percent(ratio)}, above ${percent(s.maxErrorRatio)}; the old ones ${percent(oldRatio)})`;
    }
  }
  const { newSeconds, oldSeconds } = latency;
  // A small absolute floor: 2 ms against 1 ms is twice as slow and says nothing.
  if (final && newSeconds !== undefined && oldSeconds !== undefined && newSeconds > oldSeconds * s.maxLatencyRatio && newSeconds - oldSeconds > 0.02) {
    return `the new replicas answer in ${ms(newSeconds)} on average, over ${s.maxLatencyRatio}× the old ones' ${ms(oldSeconds)}`;
  }
  return undefined;
}

const percent = (ratio: number): string => `${(ratio * 100).toFixed(ratio < 0.01 ? 2 : 1)} %`;
const ms = (seconds: number): string => `${Math.round(seconds * 1000)} ms`;

export const mean = (values: readonly number[]): number | undefined => (values.length === 0 ? undefined : values.reduce((a, b) => a + b, 0) / values.length);

/** One pure step of a rollout from what is observed now. */
export function advanceRollout(r: Rollout, view: RolloutObservation, now: number): RolloutStep {
  const stay = (reason: string, effects: readonly RolloutEffect[] = [], next: Rollout = r): RolloutStep => ({ next, effects, reason });
  const to = (phase: RolloutPhase, reason: string, fields: Partial<Rollout> = {}, effects: readonly RolloutEffect[] = []): RolloutStep => {
    const { bake: _bake, ...rest } = r;
    const finished = isFinished(phase) ? { endedAt: now } : {};
    return { next: { ...rest, ...fields, ...finished, phase, phaseSince: now, reason }, effects, reason };
  };
  const rollBack = (reason: string): RolloutStep => to('rolling-back', reason, { started: 0 });

  const mine = view.replicas.filter((x) => x.rollout === r.id);
  const newReplicas = mine.filter((x) => x.batch !== 'restore');
  const ofBatch = newReplicas.filter((x) => x.batch === String(r.batch));
  const oldSet = new Set(r.old);
  const oldRunning = view.replicas.filter((x) => oldSet.has(x.id));
  const canary = r.batch === 0 && r.settings.canaryPercent < 100;

  switch (r.phase) {
    case 'succeeded':
    case 'rolled-back':
      return stay(r.reason);

    case 'starting': {
      const wanted = oldOfBatch(r, r.batch).length;
      const failing = ofBatch.find((x) => x.failing);
      if (failing !== undefined) return rollBack(`new replica ${failing.server ?? failing.id.slice(0, 12)} is failing its health checks`);
      // Every one started is counted: one that stopped on its own is not started again (a crash loop).
      if (r.started >= wanted && ofBatch.length < r.started) return rollBack(`a new replica of batch ${r.batch + 1} stopped before it served`);
      if (ofBatch.length < wanted) {
        const count = wanted - ofBatch.length;
        return stay(`batch ${r.batch + 1} of ${batchCount(r)}: starting ${count} new replica(s)`, [{ kind: 'start', count, version: 'to', batch: String(r.batch) }], { ...r, started: r.started + count });
      }
      const serving = ofBatch.filter((x) => x.serving).length;
      if (serving >= ofBatch.length) {
        return to('baking', `batch ${r.batch + 1} of ${batchCount(r)}: ${ofBatch.length} new replica(s) serving${canary ? ` as a canary at ${r.settings.canaryPercent} % weight` : ''}; baking ${Math.round(r.settings.bakeMs / 1000)} s`, { bake: emptyBake() }, canaryWeights(r, ofBatch));
      }
      if (now - r.phaseSince > r.settings.readyTimeoutMs) {
        return rollBack(`batch ${r.batch + 1}'s new replicas were not serving after ${Math.round(r.settings.readyTimeoutMs / 1000)} s (${serving} of ${ofBatch.length})`);
      }
      return stay(`batch ${r.batch + 1} of ${batchCount(r)}: ${serving} of ${ofBatch.length} new replica(s) serving`);
    }

    case 'baking': {
      const gone = ofBatch.length < oldOfBatch(r, r.batch).length;
      const failing = ofBatch.find((x) => x.failing || !x.serving);
      if (gone) return rollBack(`a new replica of batch ${r.batch + 1} stopped during its bake`);
      if (failing !== undefined) return rollBack(`new replica ${failing.server ?? failing.id.slice(0, 12)} left rotation during its bake`);
      const newServers = new Set(newReplicas.flatMap((x) => (x.server === undefined ? [] : [x.server])));
      const oldServers = new Set(oldRunning.flatMap((x) => (x.server === undefined || x.retiring ? [] : [x.server])));
      const bake = view.figures === undefined ? (r.bake ?? emptyBake()) : countBake(r.bake ?? emptyBake(), newServers, oldServers, view.figures);
      const latency = {
        newSeconds: mean([...newServers].flatMap((s) => figureOf(view, s))),
        oldSeconds: mean([...oldServers].flatMap((s) => figureOf(view, s))),
      };
      const over = now - r.phaseSince >= r.settings.bakeMs;
      const verdict = bakeVerdict(r, bake, latency, over && view.figures !== undefined);
      if (verdict !== undefined) return rollBack(verdict);
      const counted = { ...r, bake };
      // A reload gives the canary its configured weight back: set it again.
      const weights = canaryWeights(r, ofBatch);
      // The reason stays the same through the bake (it is what the log and the CLI print when it
      // changes); the counts are in the record.
      if (!over || view.figures === undefined) return stay(`batch ${r.batch + 1} of ${batchCount(r)}: baking`, weights, counted);
      const full = canary ? ofBatch.flatMap((x): RolloutEffect[] => (x.server !== undefined && x.configuredWeight !== undefined ? [{ kind: 'set-weight', server: x.server, weight: x.configuredWeight }] : [])) : [];
      const leaving = oldOfBatch(r, r.batch).filter((id) => oldSet.has(id) && view.replicas.some((x) => x.id === id));
      return to(
        'retiring',
        `batch ${r.batch + 1} of ${batchCount(r)} baked: ${bake.newErrors} errors in ${bake.newAnswers} answers; retiring ${leaving.length} old replica(s)`,
        { bake },
        [...full, { kind: 'retire', containerIds: leaving }],
      );
    }

    case 'retiring': {
      const leaving = oldOfBatch(r, r.batch).filter((id) => oldRunning.some((x) => x.id === id));
      if (leaving.length > 0) {
        const unrecorded = leaving.filter((id) => oldRunning.some((x) => x.id === id && !x.retiring));
        return stay(`batch ${r.batch + 1}: ${leaving.length} old replica(s) draining`, unrecorded.length === 0 ? [] : [{ kind: 'retire', containerIds: unrecorded }]);
      }
      if (r.batch + 1 >= batchCount(r)) return to('succeeded', `all ${r.old.length} replica(s) replaced by ${r.to.image}`);
      return to('starting', `batch ${r.batch + 2} of ${batchCount(r)}: starting`, { batch: r.batch + 1, started: 0 });
    }

    case 'rolling-back': {
      const restored = mine.filter((x) => x.batch === 'restore');
      // Old replicas already replaced (earlier batches) come back first, so capacity never drops.
      const oldStaying = oldRunning.filter((x) => !x.retiring).length;
      const missing = r.old.length - oldStaying - restored.length;
      if (missing > 0 && r.started < r.old.length) {
        const count = Math.min(missing, r.old.length - r.started);
        return stay(`rolling back: starting ${count} replica(s) of ${r.from.image}`, [{ kind: 'start', count, version: 'from', batch: 'restore' }], { ...r, started: r.started + count });
      }
      const restoring = restored.filter((x) => !x.serving);
      if (restoring.length > 0 && now - r.phaseSince <= r.settings.readyTimeoutMs) return stay(`rolling back: ${restoring.length} replica(s) of ${r.from.image} not serving yet`);
      if (newReplicas.length > 0) {
        const unrecorded = newReplicas.filter((x) => !x.retiring).map((x) => x.id);
        return stay(`rolling back: ${newReplicas.length} new replica(s) draining`, unrecorded.length === 0 ? [] : [{ kind: 'retire', containerIds: unrecorded }]);
      }
      return to('rolled-back', `rolled back: ${r.reason}`);
    }
  }
}

export function figureOf(view: RolloutObservation, server: string): number[] {
  const figures = view.figures?.get(server);
  // HAProxy's average is 0 until a server answered: no figure, not a fast one.
  return figures === undefined || figures.answers === 0 ? [] : [figures.responseTimeAverageSeconds];
}

/** The canary's weight on the first batch's new servers where HAProxy shows another. */
function canaryWeights(r: Rollout, batch: readonly ReplicaView[]): RolloutEffect[] {
  if (r.batch !== 0 || r.settings.canaryPercent >= 100) return [];
  return batch.flatMap((x): RolloutEffect[] => {
    if (x.server === undefined || x.configuredWeight === undefined) return [];
    const weight = canaryWeight(x.configuredWeight, r.settings.canaryPercent);
    return x.weight === weight ? [] : [{ kind: 'set-weight', server: x.server, weight }];
  });
}
