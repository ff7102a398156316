// A deterministic simulation (1 s steps of traffic) of a pool behind HAProxy, scaled by the
// sidecar itself: its work queue (sidecar/queue/queue.ts) on a simulated clock runs its
// autoscaler's schedule (autoscale/work.ts: evaluations and breach checks) and the records' pass
// (retirements and drains moved on every drain poll period), and the autoscaler itself
// (controller.ts: sampler, decide(), planActions, retirements, undrain through the drainer),
// wired as sidecar/wiring.ts wires them. Only Docker, HAProxy (with the reconciler's part in
// it) and time are simulated (world.ts). The policies compared are configurations of that one
// product, never copies of it.
import { createAutoscaler, isRemovableRetiree, type DecisionRecord } from '../autoscale/controller.js';
import { BREACH_WINDOW_CHECKS, createSampler } from '../autoscale/sampler.js';
import type { ScalingPolicy } from '../autoscale/policy.js';
import { autoscalerWork } from '../autoscale/work.js';
import { ok } from '../edge/result.js';
import { silentLogger } from '../log/logger.js';
import { createWorkQueue, type Timers } from '../queue/queue.js';
import { createDrainer } from '../records/drains.js';
import { memoryStateStore, retirementsOf } from '../records/store.js';
import { seededRandom } from './random.js';
import type { Trace } from './trace.js';
import { BACKEND, createWorld, type WorldSettings } from './world.js';

/** The product's pieces the simulator runs: exported so a test can prove they are the sidecar's own. */
export const product = { createAutoscaler, createSampler, createWorkQueue, autoscalerWork, createDrainer } as const;

/** The key of the records' pass on the work queue (sidecar/wiring.ts registers it as RECORDS). */
const RECORDS = 'records';

export interface ModelSettings extends WorldSettings {
  readonly seed: number;
  /** The sidecar's drain.pollMs: how often retirements in progress move on. */
  readonly drainPollMs: number;
  readonly drainDeadlineMs: number;
  /** The reconciler's debounce: a drained retiree's server leaves HAProxy this long after it is asked. */
  readonly reconcileDelayMs: number;
  /** Chart resolution: one point per this many seconds. */
  readonly seriesStepSeconds: number;
  /**
   * How long Docker takes to answer the sidecar's actions, while its autoscaler waits: starting
   * containers (one after the other: per container), stopping one.
   */
  readonly dockerLatency: { readonly startPerContainerMs: number; readonly stopMs: number };
}

export const DEFAULT_MODEL: ModelSettings = {
  seed: 42,
  // 4 workers, 28 ms per request: 143 req/s per instance at saturation, 70 % busy at 100 req/s,
  // so that the original design's two scale-up thresholds (70 % CPU, 100 req/s) are one load.
  station: { kind: 'mmc', workers: 4, serviceTime: 0.028 },
  startupSeconds: 20,
  queueTimeoutSeconds: 30,
  cpuAtFullLoad: 1,
  initialReplicas: 2,
  sloP99Seconds: 0.5,
  drainPollMs: 500,
  drainDeadlineMs: 60_000,
  reconcileDelayMs: 250,
  seriesStepSeconds: 30,
  // As the local environment's runs show them (bench/results/fidelity): a container created and
  // started about a second after the one before it.
  startupStaggerSeconds: 1,
  dockerLatency: { startPerContainerMs: 1000, stopMs: 500 },
};

export interface PolicyUnderTest {
  readonly name: string;
  readonly description: string;
  readonly policy: ScalingPolicy;
  readonly intervalSeconds: number;
  /** Between evaluations, a breach check every this many seconds (0: none), as autoscale.breachCheckMs. */
  readonly breachCheckSeconds: number;
  /**
   * The CPU figure the policy reads: Docker's stats cover the last second and every running
   * replica (the sidecar's), and answer a second after they are asked (they wait for a second
   * reading); Kubernetes' metrics cover a longer window of ready pods only, at once.
   */
  readonly cpu: { readonly windowSeconds: number; readonly readyOnly: boolean; readonly latencyMs: number };
}

export interface SeriesPoint {
  readonly t: number;
  readonly offered: number;
  readonly replicas: number;
  readonly p99: number;
  readonly predicted: number | null;
  /** Seconds of this point's span that violated the SLO. */
  readonly violations: number;
}

export interface Summary {
  readonly sloViolationMinutes: number;
  readonly instanceHours: number;
  readonly scalingActions: number;
  readonly failedRequests: number;
  readonly requests: number;
  readonly maxReplicas: number;
  readonly p99Worst: number;
}

/** One scale-up as the simulated sidecar acted on it (seconds from the trace's start). */
export interface ScaleUp {
  readonly decidedAt: number;
  /** Draining instances put back (they serve at once) and containers started. */
  readonly undrained: number;
  readonly started: number;
  /** When the first of them serves, and the last (Docker starts them one after the other). */
  readonly firstServingAt: number;
  readonly servingAt: number;
}

export interface RunResult {
  readonly trace: string;
  readonly policy: string;
  readonly summary: Summary;
  readonly series: readonly SeriesPoint[];
  readonly scaleUps: readonly ScaleUp[];
  /** The sidecar's decisions that acted (evaluations and breach checks), as its controller recorded them. */
  readonly acted: readonly DecisionRecord[];
  /** Per second, when asked for: servers in rotation, and whether the second violated the SLO. */
  readonly perSecond?: { readonly serving: readonly number[]; readonly violated: readonly boolean[] };
}

export interface StepTimings {
  /** Seconds from the step to the first scale-up decision after it; undefined without one. */
  readonly decisionSeconds: number | undefined;
  /** …to the first new capacity serving. */
  readonly firstCapacitySeconds: number | undefined;
  /** …to the last instance of the scale-ups decided while the step lasted serving. */
  readonly fullCapacitySeconds: number | undefined;
}

/** How fast a run answered a load step from `stepAt` to `endAt` (seconds from the trace's start). */
export function stepTimings(run: Pick<RunResult, 'scaleUps'>, stepAt: number, endAt: number): StepTimings {
  const ups = run.scaleUps.filter((u) => u.decidedAt >= stepAt && u.decidedAt < endAt);
  const first = ups[0];
  return {
    decisionSeconds: first === undefined ? undefined : first.decidedAt - stepAt,
    firstCapacitySeconds: first === undefined ? undefined : Math.min(...ups.map((u) => u.firstServingAt)) - stepAt,
    fullCapacitySeconds: ups.length === 0 ? undefined : Math.max(...ups.map((u) => u.servingAt)) - stepAt,
  };
}

/** The simulated clock starts at midnight UTC, so a trace's second 0 is 00:00 (the daily profile's buckets). */
const EPOCH = Date.UTC(2026, 0, 1);

/**
 * Timers on a simulated clock: callbacks run in time order as the simulation advances it. Every
 * port of the simulated world answers with a settled promise, so a callback's whole pass (the
 * queue's run: progress, evaluation, actions) is over once the microtasks have run, unless it
 * waits on one of these timers (Docker's latency), which the clock then reaches.
 */
function simulatedTimers(start: number) {
  let clock = start;
  let sequence = 0;
  const pending: Array<{ at: number; seq: number; run: () => void; cancelled: boolean }> = [];
  const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  const timers: Timers = {
    now: () => clock,
    schedule(run, ms) {
      const entry = { at: clock + Math.max(0, ms), seq: sequence++, run, cancelled: false };
      pending.push(entry);
      return () => {
        entry.cancelled = true;
      };
    },
  };
  return {
    timers,
    /** Runs every callback due up to `until`, in order, each to its end; the clock is then `until`. */
    async advanceTo(until: number): Promise<void> {
      for (;;) {
        let next: (typeof pending)[number] | undefined;
        for (const entry of pending) if (!entry.cancelled && entry.at <= until && (next === undefined || entry.at < next.at || (entry.at === next.at && entry.seq < next.seq))) next = entry;
        for (let i = pending.length - 1; i >= 0; i--) if (pending[i]?.cancelled === true) pending.splice(i, 1);
        if (next === undefined) break;
        pending.splice(pending.indexOf(next), 1);
        clock = next.at;
        next.run();
        await settle();
      }
      clock = until;
    },
  };
}

export interface SimulateOptions {
  /** Keep the per-second series (fidelity comparisons). */
  readonly perSecond?: boolean;
  /** Closed-loop clients per second, on top of the trace's open-loop rates. */
  readonly clients?: readonly number[];
  /**
   * When the sidecar's work queue starts, in ms from the trace's start (default 0): its
   * evaluations come an interval after, so a replay can put them where the recorded run had them.
   */
  readonly controlStartMs?: number;
}

export async function simulate(trace: Trace, candidate: PolicyUnderTest, model: ModelSettings = DEFAULT_MODEL, options: SimulateOptions = {}): Promise<RunResult> {
  const random = seededRandom(model.seed);
  const clock = simulatedTimers(EPOCH);
  const { timers } = clock;
  const now = (): number => timers.now();
  /** A value the simulated clock hands over `ms` later (at once for 0). */
  const later = <T>(ms: number, value: T): Promise<T> => (ms <= 0 ? Promise.resolve(value) : new Promise((resolve) => timers.schedule(() => resolve(value), ms)));
  const world = createWorld(model, now);
  // One state for the drains and the retirements, as the sidecar keeps them in one state file.
  const state = memoryStateStore();
  const retirements = retirementsOf(state);
  const drainer = product.createDrainer({
    ports: {
      setAdminState: (_backend, server, state) => Promise.resolve(ok(world.setAdminState(server, state))),
      listRuntimeServers: () => Promise.resolve(ok(world.runtimeServers())),
      readLoad: (_backend, server) => Promise.resolve(world.serverLoad(server)),
    },
    store: state,
    deadlineMs: model.drainDeadlineMs,
    now,
    logger: silentLogger,
  });
  let reconcilePending = false;
  const breachCheckMs = candidate.breachCheckSeconds * 1000;
  // As sidecar/main.ts wires the autoscaler, with the simulated world behind every port.
  const autoscaler = product.createAutoscaler({
    backend: BACKEND,
    policy: candidate.policy,
    sampler: product.createSampler({
      backend: BACKEND,
      scrape: () => Promise.resolve(world.scrape()),
      // Docker's answer comes a latency later, with the CPU as it was when asked.
      cpu: (ids) => later(candidate.cpu.latencyMs, world.cpu(ids, candidate.cpu.windowSeconds, candidate.cpu.readyOnly)),
      now,
      peekWindowMs: breachCheckMs * BREACH_WINDOW_CHECKS,
    }),
    pool: () => Promise.resolve(ok(world.replicas())),
    scaler: {
      startLike: (_template, count) => later(model.dockerLatency.startPerContainerMs * count, ok(world.startLike(count))),
      stopAndRemove: async (id) => {
        await later(model.dockerLatency.stopMs, undefined);
        return ok(world.stop(id));
      },
    },
    drainer,
    haproxy: {
      readServers: () => Promise.resolve(ok({ revision: undefined, backends: [BACKEND], servers: world.configuredServers() })),
      listRuntimeServers: () => Promise.resolve(ok(world.runtimeServers())),
      setAdminState: (_backend, server, state) => Promise.resolve(ok(world.setAdminState(server, state))),
    },
    readLoad: (_backend, server) => Promise.resolve(world.serverLoad(server)),
    store: retirements,
    drainDeadlineMs: model.drainDeadlineMs,
    // The reconciler's pass, after its debounce: a drained retiree's server leaves HAProxy.
    requestReconcile: () => {
      if (reconcilePending) return;
      reconcilePending = true;
      timers.schedule(() => {
        reconcilePending = false;
        world.reconcile((id) => isRemovableRetiree(retirements, id));
      }, model.reconcileDelayMs);
    },
    dryRun: false,
    stopTimeoutSeconds: 30,
    logger: silentLogger,
    now,
  });

  const seconds = (ms: number): number => Math.round((ms - EPOCH) / 1000);
  const acted: DecisionRecord[] = [];
  let lastPredicted: number | null = null;
  const note = (record: DecisionRecord | undefined): void => {
    if (record === undefined) return;
    lastPredicted = record.predictedRequestRate ?? lastPredicted;
    if (record.applied && record.actions.length > 0) acted.push(record);
  };
  // The work queue as sidecar/wiring.ts's registerWork() fills it: the records' pass every drain
  // poll period (moving retirements on; the simulated pool has no operator drains), and the
  // autoscaler's evaluations and breach checks.
  const queue = product.createWorkQueue({ timers, logger: silentLogger });
  queue.register(RECORDS, {
    async run() {
      await drainer.tick();
      await autoscaler.progress();
      return { requeueAfterMs: model.drainPollMs };
    },
  });
  const evaluations = {
    evaluate: async () => note(await autoscaler.evaluate()),
    checkBreach: async () => note(await autoscaler.checkBreach()),
  };
  for (const [key, spec] of Object.entries(product.autoscalerWork(evaluations, queue, { intervalMs: candidate.intervalSeconds * 1000, breachCheckMs, logger: silentLogger, recordsKey: RECORDS }))) {
    queue.register(key, spec);
  }

  let violationSeconds = 0;
  let instanceSeconds = 0;
  let failed = 0;
  let requests = 0;
  let maxReplicas = 0;
  let p99Worst = 0;
  const series: SeriesPoint[] = [];
  const bucket = { offered: 0, replicas: 0, p99: 0, seconds: 0, violations: 0 };
  const servingPerSecond: number[] = [];
  const violatedPerSecond: boolean[] = [];

  const controlStartMs = options.controlStartMs ?? 0;
  if (controlStartMs > 0) timers.schedule(() => queue.start(), controlStartMs);
  else queue.start();
  for (let t = 0; t < trace.rates.length; t++) {
    const offered = { rate: trace.rates[t] ?? 0, clients: options.clients?.[t] ?? 0 };
    const outcome = world.step(offered, random);
    requests += outcome.arrivals;
    failed += outcome.failed;
    instanceSeconds += outcome.running;
    maxReplicas = Math.max(maxReplicas, outcome.serving);
    if (outcome.violated) violationSeconds++;
    if (Number.isFinite(outcome.p99)) p99Worst = Math.max(p99Worst, outcome.p99);
    if (options.perSecond === true) {
      servingPerSecond.push(outcome.serving);
      violatedPerSecond.push(outcome.violated);
    }
    await clock.advanceTo(EPOCH + (t + 1) * 1000);

    bucket.offered += offered.rate;
    bucket.replicas = Math.max(bucket.replicas, outcome.serving);
    bucket.p99 = Math.max(bucket.p99, Number.isFinite(outcome.p99) ? outcome.p99 : model.queueTimeoutSeconds);
    bucket.violations += outcome.violated ? 1 : 0;
    bucket.seconds++;
    if (bucket.seconds === model.seriesStepSeconds || t === trace.rates.length - 1) {
      series.push({
        t: t + 1 - bucket.seconds,
        offered: round(bucket.offered / bucket.seconds, 1),
        replicas: bucket.replicas,
        p99: round(bucket.p99, 4),
        predicted: lastPredicted === null ? null : round(lastPredicted, 1),
        violations: bucket.violations,
      });
      Object.assign(bucket, { offered: 0, replicas: 0, p99: 0, seconds: 0, violations: 0 });
    }
  }
  // A run in progress may wait on Docker: the clock goes on until it is over.
  let stopped = false;
  const stopping = queue.stop().then(() => {
    stopped = true;
  });
  for (let extra = 1; !stopped && extra <= 600; extra++) await clock.advanceTo(EPOCH + (trace.rates.length + extra) * 1000);
  await stopping;

  const scaleUps: ScaleUp[] = acted
    .filter((r) => r.actions.some((a) => a.kind === 'start' || a.kind === 'undrain'))
    .map((r) => {
      const started = r.actions.reduce((sum, a) => sum + (a.kind === 'start' ? a.count : 0), 0);
      return {
        decidedAt: seconds(r.at),
        undrained: r.actions.filter((a) => a.kind === 'undrain').length,
        started,
        firstServingAt: seconds(r.at) + (started > 0 ? model.startupSeconds : 0),
        servingAt: seconds(r.at) + (started > 0 ? model.startupSeconds + (started - 1) * (model.startupStaggerSeconds ?? 0) : 0),
      };
    });

  return {
    trace: trace.name,
    policy: candidate.name,
    summary: {
      sloViolationMinutes: round(violationSeconds / 60, 2),
      instanceHours: round(instanceSeconds / 3600, 2),
      scalingActions: acted.length,
      failedRequests: Math.round(failed),
      requests: Math.round(requests),
      maxReplicas,
      p99Worst: round(p99Worst, 3),
    },
    series,
    scaleUps,
    acted,
    ...(options.perSecond === true ? { perSecond: { serving: servingPerSecond, violated: violatedPerSecond } } : {}),
  };
}

function round(n: number, digits: number): number {
  return Number(n.toFixed(digits));
}
