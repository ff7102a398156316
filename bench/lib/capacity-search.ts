// The pure parts of the capacity scenario (bench/scenarios/capacity.ts): the original design's
// figures per pool size, the verdict on one constant-rate probe, and the bounded search for the
// highest rate a pool sustains. No I/O here, so each rule is unit-tested on its own
// (test/unit/bench/capacity-search.test.ts).

/** The original design's capacity table: two points, at 2 and at 10 instances. */
export const DESIGN_POINTS = [
  { instances: 2, ratePerSecond: 500, meanMs: 45, p99Ms: 120 },
  { instances: 10, ratePerSecond: 2500, meanMs: 52, p99Ms: 145 },
] as const;

export interface DesignFigure {
  readonly instances: number;
  /** The rate the design promises at this size (req/s). */
  readonly ratePerSecond: number;
  readonly meanMs: number;
  /** The p99 a probe at this size must stay within (ms). */
  readonly p99Ms: number;
  /** False when the figure is interpolated (or extrapolated) between the design's two points. */
  readonly stated: boolean;
}

/**
 * The design's figure for `instances`: its own at 2 and 10, linear between them (and along the
 * same line outside them: 250 req/s per instance, p99 +3.125 ms per instance from 120 ms).
 */
export function designFigure(instances: number): DesignFigure {
  if (!(Number.isInteger(instances) && instances >= 1)) throw new RangeError(`a pool size is a whole number from 1, not ${instances}`);
  const [a, b] = DESIGN_POINTS;
  const along = (from: number, to: number): number => from + ((to - from) * (instances - a.instances)) / (b.instances - a.instances);
  return {
    instances,
    ratePerSecond: along(a.ratePerSecond, b.ratePerSecond),
    meanMs: along(a.meanMs, b.meanMs),
    p99Ms: along(a.p99Ms, b.p99Ms),
    stated: instances === a.instances || instances === b.instances,
  };
}

/** What one constant-rate probe measured (wrk's report and the pacing script's count of late sends). */
export interface ProbeMeasure {
  /** The rate the generator was asked to offer (req/s). */
  readonly targetPerSecond: number;
  /** Answers per second over the probe. */
  readonly achievedPerSecond: number;
  readonly requests: number;
  readonly meanMs: number;
  readonly p99Ms: number;
  /** Non-2xx/3xx answers and socket errors (connect, read, write, timeout). */
  readonly errors: number;
  /** Requests the generator sent later than their slot by more than its lateness bound. */
  readonly lateSends: number;
}

export interface ProbeRules {
  /** The p99 the probe must stay within (ms). */
  readonly p99Ms: number;
  /** The share of the target rate that must be answered (default 0.95). */
  readonly minAchievedShare?: number;
  /** The share of requests that may fail (default 0.001). */
  readonly maxErrorShare?: number;
  /**
   * The share of requests that may leave late (default 0.01). A late send means every connection
   * of the generator was waiting for an answer: the pool was not keeping up, and the latency of
   * the requests that waited at the client is not in wrk's figures (coordinated omission).
   */
  readonly maxLateShare?: number;
}

export interface ProbeVerdict {
  readonly sustained: boolean;
  /** Every rule the probe broke ("" when it held). */
  readonly why: string;
}

export function judgeProbe(probe: ProbeMeasure, rules: ProbeRules): ProbeVerdict {
  const broken: string[] = [];
  const minShare = rules.minAchievedShare ?? 0.95;
  if (probe.p99Ms > rules.p99Ms) broken.push(`p99 ${probe.p99Ms.toFixed(1)} ms > ${rules.p99Ms.toFixed(1)} ms`);
  if (!(probe.achievedPerSecond >= probe.targetPerSecond * minShare)) {
    broken.push(`answered ${probe.achievedPerSecond.toFixed(0)} req/s < ${(minShare * 100).toFixed(0)} % of ${probe.targetPerSecond}`);
  }
  const total = Math.max(1, probe.requests);
  if (probe.errors > total * (rules.maxErrorShare ?? 0.001)) broken.push(`${probe.errors} failed requests`);
  if (probe.lateSends > total * (rules.maxLateShare ?? 0.01)) broken.push(`${probe.lateSends} requests sent late (generator out of free connections)`);
  return { sustained: broken.length === 0, why: broken.join('; ') };
}

export interface SearchOptions {
  /** The first rate to probe (req/s). */
  readonly start: number;
  /** No probe below this; when it fails there, the pool sustains less (reported as below it). */
  readonly floor: number;
  /** No probe above this. */
  readonly ceiling: number;
  /** Stop when the lowest failing rate is within this factor of the highest sustained one (1.12 = 12 %). */
  readonly resolution: number;
  /** Factor of each step up from a sustained rate, or down from a failed one, before a bracket exists. */
  readonly growth: number;
  readonly maxProbes: number;
  /** Probe rates are multiples of this (req/s). */
  readonly step: number;
}

export interface SearchPoint {
  readonly rate: number;
  readonly sustained: boolean;
  /** Answers per second the pool managed at that rate; a failed probe's tells how far down to look. */
  readonly answered?: number;
}

export interface SearchOutcome {
  /** The highest rate that was sustained (undefined: not even the lowest one probed). */
  readonly sustained: number | undefined;
  /** The lowest rate above it that was not (undefined: none failed up to the ceiling or the budget). */
  readonly failed: number | undefined;
  /** Why the search stopped. */
  readonly stop: 'resolution' | 'ceiling' | 'floor' | 'probes';
}

function bracket(history: readonly SearchPoint[]): { lo: number | undefined; hi: number | undefined } {
  const passed = history.filter((p) => p.sustained).map((p) => p.rate);
  const lo = passed.length === 0 ? undefined : Math.max(...passed);
  // A failure at or below a sustained rate is noise of a shared machine: the bracket keeps the
  // sustained one and looks for the lowest failure above it.
  const failedAbove = history.filter((p) => !p.sustained && (lo === undefined || p.rate > lo)).map((p) => p.rate);
  const hi = failedAbove.length === 0 ? undefined : Math.min(...failedAbove);
  return { lo, hi };
}

/**
 * The next rate to probe after `history`, or the outcome when the search is over. Bounded: at
 * most `maxProbes` probes, never outside [floor, ceiling], never the same rate twice.
 */
export function nextProbe(history: readonly SearchPoint[], options: SearchOptions): { readonly rate: number } | { readonly done: SearchOutcome } {
  if (!(options.floor > 0 && options.ceiling >= options.floor && options.growth > 1 && options.resolution > 1 && options.step > 0)) {
    throw new RangeError('capacity search: need 0 < floor ≤ ceiling, growth > 1, resolution > 1, step > 0');
  }
  const { lo, hi } = bracket(history);
  const done = (stop: SearchOutcome['stop']): { done: SearchOutcome } => ({ done: { sustained: lo, failed: hi, stop } });
  const snap = (rate: number): number => Math.max(options.floor, Math.min(options.ceiling, Math.round(rate / options.step) * options.step));
  if (history.length === 0) return { rate: snap(options.start) };
  if (history.length >= options.maxProbes) return done('probes');
  const tried = new Set(history.map((p) => p.rate));
  if (lo === undefined) {
    const lowest = Math.min(...history.map((p) => p.rate));
    // A pool that answered far less than it was offered is saturated there: its sustainable rate
    // is below what it answered, so the next probe goes at least that far down.
    const answered = history.find((p) => p.rate === lowest)?.answered;
    const saturated = answered !== undefined && answered < lowest / options.growth ? answered * 0.8 : Infinity;
    const next = snap(Math.min(lowest / options.growth, saturated));
    return next >= lowest || tried.has(next) ? done('floor') : { rate: next };
  }
  if (hi === undefined) {
    const next = snap(lo * options.growth);
    return next <= lo || tried.has(next) ? done('ceiling') : { rate: next };
  }
  if (hi / lo <= options.resolution) return done('resolution');
  const next = snap(Math.sqrt(lo * hi));
  // Rounding to the step can land on an end of the bracket when it is narrow: then it is as
  // narrow as the step allows.
  return next <= lo || next >= hi || tried.has(next) ? done('resolution') : { rate: next };
}

/**
 * Connections for a constant-rate probe: enough that every one of them is busy only when the
 * requests in flight exceed `rate × holdSeconds` (by Little's law, a mean latency above
 * holdSeconds), so a free connection is there for every slot of a pool that keeps up.
 */
export function probeConnections(rate: number, threads: number, holdSeconds = 0.3, max = 1200): number {
  const wanted = Math.ceil(rate * holdSeconds);
  return Math.max(threads * 4, Math.min(max, wanted));
}

/** Ratios of each size's sustained rate to the first size's, from one run. */
export function scalingRatios(points: ReadonlyArray<{ readonly instances: number; readonly sustained: number | undefined }>): Array<{ instances: number; ratio: number | undefined; perInstance: number | undefined }> {
  const base = points[0];
  return points.map((p) => ({
    instances: p.instances,
    ratio: base?.sustained === undefined || base.sustained === 0 || p.sustained === undefined ? undefined : p.sustained / base.sustained,
    perInstance: p.sustained === undefined ? undefined : p.sustained / p.instances,
  }));
}

/**
 * Where the curve bends: the first size whose step from the size before it added less than
 * `share` (default half) of what linear scaling from that size would add (a size that sustained
 * nothing counts as 0). Undefined: it did not bend.
 */
export function bendAt(points: ReadonlyArray<{ readonly instances: number; readonly sustained: number | undefined }>, share = 0.5): number | undefined {
  for (let i = 1; i < points.length; i++) {
    const [before, here] = [points[i - 1], points[i]];
    if (before === undefined || here === undefined) continue;
    const [from, to] = [before.sustained ?? 0, here.sustained ?? 0];
    if (from === 0) continue;
    const linear = (from * here.instances) / before.instances;
    if (to - from < share * (linear - from)) return here.instances;
  }
  return undefined;
}

/** CPU over one probe, each as % of one core (the machine's busy time: of all its cores). */
export interface CpuShares {
  /** Every replica of the application (nginx, PHP-FPM, the nginx exporter), from their cgroups. */
  readonly app: number | undefined;
  readonly db: number | undefined;
  readonly haproxy: number | undefined;
  readonly wrk: number | undefined;
  readonly sidecar: number | undefined;
  /** The whole machine, every process of every user (/proc/stat). */
  readonly machine: number;
  readonly cores: number;
}

/**
 * What held a pool back at a rate it did not sustain, from the CPU over that probe: the replicas'
 * own CPU limit when they used nearly all of it (≥ `near` of instances × cpusPerInstance), else the
 * machine when it was nearly all busy, naming the biggest users; else neither (latency without
 * saturation: queueing in bursts, or the machine's other users between samples).
 */
export function limitingResource(cpu: CpuShares, instances: number, cpusPerInstance: number | undefined, near = 0.85): string {
  const machineShare = cpu.machine / (cpu.cores * 100);
  const users: Array<[string, number | undefined]> = [
    ['PHP-FPM + nginx', cpu.app],
    ['MariaDB', cpu.db],
    ['HAProxy', cpu.haproxy],
    ['wrk', cpu.wrk],
    ['sidecar', cpu.sidecar],
  ];
  const known = users.reduce((sum, [, v]) => sum + (v ?? 0), 0);
  const ranked = [...users, ['the rest of the machine', Math.max(0, cpu.machine - known)] as [string, number]]
    .filter((u): u is [string, number] => u[1] !== undefined)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([name, v]) => `${name} ${v.toFixed(0)} %`)
    .join(', ');
  if (cpusPerInstance !== undefined && cpu.app !== undefined && cpu.app >= near * instances * cpusPerInstance * 100) {
    return `the replicas' CPU limit (${cpu.app.toFixed(0)} % of one core used of ${(instances * cpusPerInstance * 100).toFixed(0)} %)`;
  }
  if (machineShare >= near) return `the machine's CPU (${(machineShare * 100).toFixed(0)} % busy: ${ranked})`;
  return `no CPU saturation seen (machine ${(machineShare * 100).toFixed(0)} % busy: ${ranked})`;
}
