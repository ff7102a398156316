// A deterministic discrete-time simulation (1 s steps) of a pool of instances behind HAProxy,
// driven by a traffic trace and scaled by the sidecar's own decide(): the policies compared are
// configurations of that one function, imported from sidecar/, never copies of it.
import { decide, EMPTY_HISTORY, type History, type Samples, type ScalingPolicy } from '../../sidecar/autoscale/policy.js';
import { BREACH_WINDOW_CHECKS } from '../../sidecar/autoscale/sampler.js';
import { seededRandom } from './random.js';
import { stationFigures, type Station } from './queueing.js';
import type { Trace } from './traces.js';

/** The decision function the simulator runs: exported so a test can prove it is the sidecar's. */
export const decisionFunction = decide;

export interface ModelSettings {
  readonly seed: number;
  readonly station: Station;
  /** Seconds from "start a container" to "serving" (start-up plus health checks). */
  readonly startupSeconds: number;
  /** Seconds a drained instance keeps running after it stopped taking new requests. */
  readonly drainSeconds: number;
  /** HAProxy's `timeout queue`: a request queued longer than this fails with 503. */
  readonly queueTimeoutSeconds: number;
  /** CPU of one instance at full utilisation, as a fraction of one core. */
  readonly cpuAtFullLoad: number;
  readonly initialReplicas: number;
  /** A second violates the SLO when its p99 exceeds this or a request failed. */
  readonly sloP99Seconds: number;
  /** Chart resolution: one point per this many seconds. */
  readonly seriesStepSeconds: number;
}

export const DEFAULT_MODEL: ModelSettings = {
  seed: 42,
  // 4 workers, 28 ms per request: 143 req/s per instance at saturation, 70 % busy at 100 req/s,
  // so that the original design's two scale-up thresholds (70 % CPU, 100 req/s) are one load.
  station: { workers: 4, serviceTime: 0.028 },
  startupSeconds: 20,
  drainSeconds: 5,
  queueTimeoutSeconds: 30,
  cpuAtFullLoad: 1,
  initialReplicas: 2,
  sloP99Seconds: 0.5,
  seriesStepSeconds: 30,
};

export interface PolicyUnderTest {
  readonly name: string;
  readonly description: string;
  readonly policy: ScalingPolicy;
  readonly intervalSeconds: number;
  /**
   * Between evaluations, a breach check every this many seconds (0: none): HAProxy's figures over
   * the time since the last read, decided on by the same decide(), acted on only when it scales up,
   * as the sidecar's control loop does (autoscale.breachCheckMs).
   */
  readonly breachCheckSeconds: number;
}

export interface SeriesPoint {
  readonly t: number;
  readonly offered: number;
  readonly replicas: number;
  readonly p99: number;
  readonly predicted: number | null;
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
  /** When the last of them serves. */
  readonly servingAt: number;
}

export interface RunResult {
  readonly trace: string;
  readonly policy: string;
  readonly summary: Summary;
  readonly series: readonly SeriesPoint[];
  readonly scaleUps: readonly ScaleUp[];
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
export function stepTimings(run: RunResult, stepAt: number, endAt: number): StepTimings {
  const ups = run.scaleUps.filter((u) => u.decidedAt >= stepAt && u.decidedAt < endAt);
  const first = ups[0];
  const last = ups.at(-1);
  return {
    decisionSeconds: first === undefined ? undefined : first.decidedAt - stepAt,
    firstCapacitySeconds: first === undefined ? undefined : first.servingAt - stepAt,
    fullCapacitySeconds: last === undefined ? undefined : Math.max(...ups.map((u) => u.servingAt)) - stepAt,
  };
}

interface Instance {
  readonly readyAt: number;
  drainingUntil: number | undefined;
}

/** As the sampler's peek: the read at least this window ago, else the oldest kept. */
function readAtLeastAgo<T extends { readonly at: number }>(reads: readonly T[], notAfter: number): T {
  const old = reads.filter((r) => r.at <= notAfter).at(-1) ?? reads[0];
  if (old === undefined) throw new Error('readAtLeastAgo: no read kept');
  return old;
}

const round = (n: number, digits: number): number => (Number.isFinite(n) ? Number(n.toFixed(digits)) : n);

export function simulate(trace: Trace, candidate: PolicyUnderTest, model: ModelSettings = DEFAULT_MODEL): RunResult {
  const random = seededRandom(model.seed);
  const capacityPerInstance = model.station.workers / model.station.serviceTime;
  let instances: Instance[] = Array.from({ length: model.initialReplicas }, () => ({ readyAt: 0, drainingUntil: undefined }));
  let history: History = EMPTY_HISTORY;
  let backlog = 0;
  let violationSeconds = 0;
  let instanceSeconds = 0;
  let scalingActions = 0;
  let failed = 0;
  let requests = 0;
  let maxReplicas = instances.length;
  let p99Worst = 0;
  let lastPredicted: number | null = null;
  const window = { arrivals: 0, utilisation: 0, response: 0, seconds: 0 };
  // A breach check looks at the last BREACH_WINDOW_CHECKS checks' worth of seconds, as the
  // sampler's peek does: the reads and the per-second response times that window needs.
  const breachWindowSeconds = candidate.breachCheckSeconds * BREACH_WINDOW_CHECKS;
  const recentResponse: number[] = [];
  let completedTotal = 0;
  let lastSample = { at: 0, completed: 0, inFlight: 0 };
  const reads: Array<typeof lastSample> = [lastSample];
  const series: SeriesPoint[] = [];
  const scaleUps: ScaleUp[] = [];
  const bucket = { offered: 0, replicas: 0, p99: 0, seconds: 0 };

  for (let t = 0; t < trace.rates.length; t++) {
    instances = instances.filter((i) => i.drainingUntil === undefined || i.drainingUntil > t);
    const serving = instances.filter((i) => i.readyAt <= t && i.drainingUntil === undefined).length;
    instanceSeconds += instances.length;
    maxReplicas = Math.max(maxReplicas, serving);

    const arrivals = random.poisson(trace.rates[t] ?? 0);
    requests += arrivals;
    const capacity = serving * capacityPerInstance;
    let served = 0;
    let p99: number;
    let utilisation: number;
    let meanResponse: number;
    let dropped = 0;
    if (serving === 0) {
      // HAProxy answers 503 at once when no server is up.
      dropped = arrivals + backlog;
      backlog = 0;
      p99 = Infinity;
      utilisation = 0;
      meanResponse = Infinity;
    } else {
      const available = backlog + arrivals;
      served = Math.min(available, capacity);
      backlog = available - served;
      // Requests that would wait past the queue timeout fail.
      const maxBacklog = capacity * model.queueTimeoutSeconds;
      if (backlog > maxBacklog) {
        dropped = backlog - maxBacklog;
        backlog = maxBacklog;
      }
      if (backlog > 0) {
        const wait = backlog / capacity;
        utilisation = 1;
        meanResponse = wait + model.station.serviceTime;
        p99 = wait + model.station.serviceTime * Math.log(100);
      } else {
        const figures = stationFigures(model.station, arrivals / serving);
        utilisation = figures.utilisation;
        meanResponse = figures.meanResponse;
        p99 = figures.p99Response;
      }
    }
    failed += dropped;
    if (p99 > model.sloP99Seconds || dropped > 0) violationSeconds++;
    p99Worst = Math.max(p99Worst, Number.isFinite(p99) ? p99 : p99Worst);

    window.arrivals += arrivals;
    window.utilisation += utilisation;
    window.response += Number.isFinite(meanResponse) ? meanResponse : model.queueTimeoutSeconds;
    window.seconds++;
    if (breachWindowSeconds > 0) {
      recentResponse.push(Number.isFinite(meanResponse) ? meanResponse : model.queueTimeoutSeconds);
      if (recentResponse.length > breachWindowSeconds) recentResponse.shift();
    }

    // HAProxy counts a request in its backend's counter when it ends (served, or failed with a
    // 503); the requests still queued or at a server are its current sessions.
    completedTotal += served + dropped;
    const inFlight = backlog + served * model.station.serviceTime;

    const nowMs = (t + 1) * 1000;
    const evaluation = (t + 1) % candidate.intervalSeconds === 0;
    const breachCheck = !evaluation && candidate.breachCheckSeconds > 0 && (t + 1) % candidate.breachCheckSeconds === 0;
    if (evaluation || breachCheck) {
      const since = breachCheck ? readAtLeastAgo(reads, nowMs - breachWindowSeconds * 1000) : lastSample;
      const seconds = (nowMs - since.at) / 1000;
      const reading = (value: number) => ({ value, at: nowMs });
      const samples: Samples = {
        replicas: serving,
        sourceUp: true,
        // A breach check reads HAProxy only: Docker's CPU takes seconds to read.
        cpu: evaluation ? reading((window.utilisation / window.seconds) * model.cpuAtFullLoad) : undefined,
        requestRate: reading((completedTotal - since.completed) / seconds),
        queue: reading(backlog),
        responseTime: reading(breachCheck ? recentResponse.reduce((a, b) => a + b, 0) / Math.max(1, recentResponse.length) : window.response / window.seconds),
        inFlight: reading(inFlight),
        inFlightGrowth: reading((inFlight - since.inFlight) / seconds),
      };
      const decision = decisionFunction(samples, history, candidate.policy, nowMs);
      // A breach check that does not scale up on saturation is dropped, as the control loop drops it.
      if (evaluation || (decision.direction === 'up' && decision.breach)) {
        lastPredicted = decision.predictedRequestRate ?? lastPredicted;
        const starting = instances.filter((i) => i.readyAt > t).length;
        const draining = instances.filter((i) => i.drainingUntil !== undefined).length;
        const planned = serving + starting;
        let acted = false;
        if (decision.replicas > planned) {
          acted = true;
          scalingActions++;
          let needed = decision.replicas - planned;
          let undrained = 0;
          // Undrain before starting anything new.
          for (const instance of instances) {
            if (needed === 0) break;
            if (instance.drainingUntil !== undefined) {
              instance.drainingUntil = undefined;
              needed--;
              undrained++;
            }
          }
          for (let k = 0; k < needed; k++) instances.push({ readyAt: t + 1 + model.startupSeconds, drainingUntil: undefined });
          scaleUps.push({ decidedAt: t + 1, undrained, started: needed, servingAt: t + 1 + (needed > 0 ? model.startupSeconds : 0) });
        } else if (decision.replicas < serving && starting === 0 && draining === 0) {
          // As the sidecar's planActions: nothing retired while replicas start or others drain.
          acted = true;
          scalingActions++;
          // The newest serving instances are drained first (with equal load, "fewest sessions" ties).
          const victims = instances.filter((i) => i.readyAt <= t && i.drainingUntil === undefined).slice(-(serving - decision.replicas));
          for (const victim of victims) victim.drainingUntil = t + 1 + model.drainSeconds;
        }
        // As the controller keeps it: only a change that acted counts against the rate limits.
        history = acted ? decision.history : { ...decision.history, changes: history.changes };
      }
      const read = { at: nowMs, completed: completedTotal, inFlight };
      reads.push(read);
      if (reads.length > BREACH_WINDOW_CHECKS + 2) reads.shift();
      if (evaluation) {
        lastSample = read;
        window.arrivals = 0;
        window.utilisation = 0;
        window.response = 0;
        window.seconds = 0;
      }
    }

    bucket.offered += trace.rates[t] ?? 0;
    bucket.replicas = Math.max(bucket.replicas, serving);
    bucket.p99 = Math.max(bucket.p99, Number.isFinite(p99) ? p99 : model.queueTimeoutSeconds);
    bucket.seconds++;
    if (bucket.seconds === model.seriesStepSeconds || t === trace.rates.length - 1) {
      series.push({
        t: t + 1 - bucket.seconds,
        offered: round(bucket.offered / bucket.seconds, 1),
        replicas: bucket.replicas,
        p99: round(bucket.p99, 4),
        predicted: lastPredicted === null ? null : round(lastPredicted, 1),
      });
      bucket.offered = 0;
      bucket.replicas = 0;
      bucket.p99 = 0;
      bucket.seconds = 0;
    }
  }

  return {
    trace: trace.name,
    policy: candidate.name,
    summary: {
      sloViolationMinutes: round(violationSeconds / 60, 2),
      instanceHours: round(instanceSeconds / 3600, 2),
      scalingActions,
      failedRequests: Math.round(failed),
      requests,
      maxReplicas,
      p99Worst: round(p99Worst, 3),
    },
    series,
    scaleUps,
  };
}
