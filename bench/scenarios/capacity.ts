// Capacity of the stack's real application, per pool size, against the original design's table
// (500 req/s at 2 instances with mean 45 ms / p99 120 ms; 2500 req/s at 10 with mean 52 ms /
// p99 145 ms). The application is stack/compose.yaml's `nginx` service (nginx + PHP-FPM running
// stack/images/app/src/index.php) on its `db1` (MariaDB), started by Compose under a project of
// the benchmark's own (bench/lib/capacity-stack.ts). The path is the product's: a local HAProxy
// 3.0 (the bench's haproxy.local.cfg) whose servers the sidecar, as its own process with the
// runtime driver, adds from Docker discovery of the Compose service on the project's `app`
// network; the load goes to HAProxy on 127.0.0.1.
//
// For each pool size a bounded search (capacity-search.ts nextProbe) looks for the highest rate the
// pool sustains: constant-rate probes (capacity-load.ts, wrk paced wrk2-style), each judged on p99
// within the design's figure for that size, ≥ 95 % of the rate answered, no failures and no sends
// held back for want of a free connection. The first probe of every size is the design's own rate.
//
// The series runs the replicas as stack/compose.yaml does, without a CPU limit: 2, 4, … replicas,
// the ratios to 2 from this one run. On a 2-core machine two such replicas can already use every
// core, so the series shows where the machine, not the pool, stops the curve. Once, at 2 replicas,
// each replica also gets a fixed CPU slice (a CFS quota, default 0.2 CPU: ten are the machine's two
// cores), which says what one instance of a fixed size carries, as a VM of the original design.
// CPU of every part (replicas and MariaDB from their cgroups, HAProxy, wrk and the sidecar from
// /proc, the machine from /proc/stat) is read over every probe, to say what limits each size.
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { readdirSync, readFileSync } from 'node:fs';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv } from '../../devenv/sidecar-env.js';
import { runPaced, type PacedRun } from '../lib/capacity-load.js';
import { enterPrivateTmp, sweepPrivateLeftovers } from '../lib/capacity-private.js';
import {
  bendAt,
  designFigure,
  judgeProbe,
  limitingResource,
  nextProbe,
  probeConnections,
  scalingRatios,
  type CpuShares,
  type ProbeVerdict,
  type SearchOptions,
  type SearchOutcome,
  type SearchPoint,
} from '../lib/capacity-search.js';
import {
  APP_SERVICE,
  containerCpuSeconds,
  dbStatus,
  limitCpu,
  machineCpu,
  missingImages,
  seedRows,
  startAppStack,
  sweepCapacityLeftovers,
  timeDbWork,
  type AppStack,
  type DbTiming,
} from '../lib/capacity-stack.js';
import { serverSnapshots, waitForServers } from '../lib/haproxy.js';
import { clockTicksPerSecond, sampleProcess } from '../lib/procfs.js';
import type { Figure, ScenarioResult } from '../lib/report.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../lib/sidecar-process.js';

export const CAPACITY_TITLE = "Capacity of the stack's application (nginx + PHP-FPM + MariaDB) per pool size, through HAProxy and the sidecar, against the original design's table";

export interface CapacityOptions {
  readonly build: SidecarBuild;
  /** Pool sizes of the series, ascending; the first is the design's 2. */
  readonly sizes: readonly number[];
  /** The CPU slice of one replica in the fixed-size search at the first size. */
  readonly cpusPerInstance: number;
  /** Seconds of each constant-rate probe. */
  readonly probeSeconds: number;
  /** Probes per search at most. */
  readonly maxProbes: number;
  /** Seconds the searches may take in all; a size that would not fit is left out and said so. */
  readonly budgetSeconds: number;
  /** Rows in the application's table (its query counts them). */
  readonly rows: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

interface Probe {
  readonly rate: number;
  readonly connections: number;
  readonly requests: number;
  readonly achievedPerSecond: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly errors: number;
  readonly lateSends: number;
  readonly maxLateMs: number;
  readonly verdict: ProbeVerdict;
  readonly cpu: CpuShares;
  /** CPU per request, ms: the replicas, MariaDB, HAProxy, wrk. */
  readonly perRequestMs: { readonly app: number | undefined; readonly db: number | undefined; readonly haproxy: number | undefined; readonly wrk: number | undefined };
}

interface Search {
  readonly instances: number;
  /** The replicas' CPU limit; undefined: none (as stack/compose.yaml runs them). */
  readonly cpusPerInstance: number | undefined;
  readonly p99LimitMs: number;
  readonly designRate: number;
  readonly probes: readonly Probe[];
  /** Requests of the warm-up before the first probe. */
  readonly warmupRequests: number;
  readonly outcome: SearchOutcome;
}

const THREADS = 2;
const SEARCH: Omit<SearchOptions, 'start'> = { floor: 20, ceiling: 6000, resolution: 1.12, growth: 1.6, maxProbes: 6, step: 10 };

/** HAProxy's master and worker: the processes whose command line names this instance's configuration. */
function haproxyPids(local: LocalHaproxy): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc').filter((e) => /^\d+$/.test(e))) {
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      if (cmdline.includes(local.configFile) && /haproxy/.test(cmdline)) pids.push(Number(entry));
    } catch {
      // Gone since the listing.
    }
  }
  return pids;
}

export async function capacityScenario(options: CapacityOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { log } = options;
  const startedAt = performance.now();
  const ticks = clockTicksPerSecond();
  const cores = cpus().length;
  const loadAtStart = loadavg()[0] ?? NaN;
  const missing = await missingImages();
  if (missing.length > 0) {
    return { id: 'capacity', title: CAPACITY_TITLE, status: 'not-measured', reason: `not measured here: no image ${missing.join(', ')} (devenv/setup.sh builds them)`, figures: [], notes: [] };
  }
  const swept = (await sweepCapacityLeftovers()) + (await sweepPrivateLeftovers());
  if (swept > 0) log(`capacity: removed ${swept} Compose project(s) and process(es) a crashed capacity run left`);

  let stack: AppStack | undefined;
  let local: LocalHaproxy | undefined;
  let sidecar: SidecarProcess | undefined;
  // Out of the reach of another bench run's sweep (capacity-private.ts).
  const privateTmp = await enterPrivateTmp();
  try {
    const build = await privateTmp.copyBuild(options.build);
    const smallest = options.sizes[0] ?? 2;
    log(`capacity: starting the application (Compose: db1 and ${smallest} × nginx) and HAProxy`);
    stack = await startAppStack(smallest);
    const app = stack;
    local = await startLocalHaproxy({ purpose: 'bench', withDataplane: false });
    const haproxy = local;
    const tag = randomBytes(3).toString('hex');
    sidecar = await startSidecarProcess(
      build,
      {
        ...haproxyEnv(haproxy, 'runtime'),
        // Discovery as in the stack: the Compose service `nginx` of this project, addressed on
        // its `app` network (which HAProxy on this host reaches through the bridge).
        HSC_DOCKER_ADDRESS_MODE: 'network',
        HSC_DOCKER_NETWORK: app.appNetwork,
        HSC_DOCKER_COMPOSE_SERVICE: APP_SERVICE,
        HSC_DOCKER_COMPOSE_PROJECT: app.project,
        // No container on this machine carries this prefix's opt-in label.
        HSC_DOCKER_LABEL_PREFIX: `hsccapacity${tag}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_AUTOSCALE_SERVICE: APP_SERVICE,
        HSC_AUTOSCALE_PROJECT: app.project,
        HSC_AUTOSCALE_STATE_FILE: join(haproxy.dir, 'autoscale-state.json'),
        HSC_ADMIN_TOKEN: randomBytes(24).toString('hex'),
        HSC_HTTP_PORT: String(await freePort()),
      },
      join(options.workDir, 'capacity-sidecar.log'),
    );
    const side = sidecar;
    const waitForPool = (n: number): Promise<void> =>
      waitForServers(haproxy, `the sidecar adding ${n} replicas`, (s) => s.filter((x) => x.name.startsWith('hsc-') && x.state === 'UP').length >= n, 90_000);
    await waitForPool(smallest);
    const url = `${haproxy.frontendUrl}/`;

    // The table the application's query counts: created by the application itself (its first
    // write), then filled in one statement.
    const created = await fetch(`${haproxy.frontendUrl}/api/write`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'key=capacity-first',
      signal: AbortSignal.timeout(10_000),
    });
    if (created.status !== 201) throw new Error(`the application's first write answered ${created.status}: ${await created.text()}`);
    const rows = await seedRows(app, options.rows - 1);
    const firstReplica = (await app.replicas())[0];
    if (firstReplica === undefined) throw new Error('no application replica');
    const dbTiming: DbTiming = await timeDbWork(app, firstReplica.id, 300);
    log(`capacity: ${rows} rows; the database work of one request inside a replica: mean ${dbTiming.meanMs.toFixed(2)} ms, p99 ${dbTiming.p99Ms.toFixed(2)} ms`);

    const dbId = await app.dbContainerId();
    /** One probe at `rate`, with the CPU of every part over it. */
    const probeAt = async (rate: number, instances: number, p99LimitMs: number): Promise<Probe> => {
      const replicaIds = (await app.replicas()).map((r) => r.id);
      const pids = haproxyPids(haproxy);
      const readAll = async () => ({
        at: performance.now(),
        app: replicaIds.map(containerCpuSeconds),
        db: containerCpuSeconds(dbId),
        haproxy: await Promise.all(pids.map((pid) => sampleProcess(pid).then((s) => s.cpuSeconds, () => undefined))),
        sidecar: await sampleProcess(side.pid).then((s) => s.cpuSeconds, () => undefined),
        machine: machineCpu(),
      });
      const before = await readAll();
      const connections = probeConnections(rate, THREADS);
      const run: PacedRun = await runPaced({ url, ratePerSecond: rate, threads: THREADS, connections, durationSeconds: options.probeSeconds, ticksPerSecond: ticks });
      const after = await readAll();
      const seconds = (after.at - before.at) / 1000;
      const sumDelta = (a: ReadonlyArray<number | undefined>, b: ReadonlyArray<number | undefined>): number | undefined =>
        a.length === 0 || a.some((v) => v === undefined) || b.some((v) => v === undefined) ? undefined : b.reduce<number>((s, v, i) => s + (v ?? 0) - (a[i] ?? 0), 0);
      const appCpu = sumDelta(before.app, after.app);
      const dbCpu = sumDelta([before.db], [after.db]);
      const haproxyCpu = sumDelta(before.haproxy, after.haproxy);
      const sidecarCpu = sumDelta([before.sidecar], [after.sidecar]);
      const machineBusy = (after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total);
      const share = (cpuSeconds: number | undefined): number | undefined => (cpuSeconds === undefined ? undefined : (cpuSeconds / seconds) * 100);
      const cpu: CpuShares = {
        app: share(appCpu),
        db: share(dbCpu),
        haproxy: share(haproxyCpu),
        wrk: run.wrkCpuSeconds === undefined ? undefined : (run.wrkCpuSeconds / options.probeSeconds) * 100,
        sidecar: share(sidecarCpu),
        machine: machineBusy * cores * 100,
        cores,
      };
      const perRequest = (cpuSeconds: number | undefined): number | undefined => (cpuSeconds === undefined || run.requests === 0 ? undefined : (cpuSeconds * 1000) / run.requests);
      const errors = run.non2xx3xx + run.socketErrors.connect + run.socketErrors.read + run.socketErrors.write + run.socketErrors.timeout;
      const measure = {
        targetPerSecond: rate,
        achievedPerSecond: run.requestsPerSecond,
        requests: run.requests,
        meanMs: run.latency.avg * 1000,
        p99Ms: run.latency.p99 * 1000,
        errors,
        lateSends: run.lateSends,
      };
      const probe: Probe = {
        rate,
        connections,
        requests: run.requests,
        achievedPerSecond: run.requestsPerSecond,
        meanMs: measure.meanMs,
        p50Ms: run.latency.p50 * 1000,
        p99Ms: measure.p99Ms,
        maxMs: run.latency.max * 1000,
        errors,
        lateSends: run.lateSends,
        maxLateMs: run.maxLateMs,
        verdict: judgeProbe(measure, { p99Ms: p99LimitMs }),
        cpu,
        perRequestMs: { app: perRequest(appCpu), db: perRequest(dbCpu), haproxy: perRequest(haproxyCpu), wrk: perRequest(run.wrkCpuSeconds) },
      };
      const pct = (v: number | undefined): string => (v === undefined ? '?' : v.toFixed(0));
      log(
        `capacity: ${instances} inst. ${rate} req/s → ${run.requestsPerSecond.toFixed(0)} answered, mean ${probe.meanMs.toFixed(1)} / p99 ${probe.p99Ms.toFixed(1)} ms, ` +
          `${errors} failed, ${run.lateSends} late: ${probe.verdict.sustained ? 'sustained' : `not sustained (${probe.verdict.why})`}; ` +
          `CPU % of a core: app ${pct(cpu.app)}, db ${pct(cpu.db)}, haproxy ${pct(cpu.haproxy)}, wrk ${pct(cpu.wrk)}, machine ${pct(cpu.machine)}/${cores * 100}`,
      );
      // Let the pool finish what queued up (HAProxy's sessions to the replicas back to none).
      const settleUntil = Date.now() + 10_000;
      while (Date.now() < settleUntil) {
        const sessions = (await serverSnapshots(haproxy).catch(() => [])).reduce((sum, s) => sum + s.currentSessions + s.currentQueue, 0);
        if (sessions === 0) break;
        await sleep(200);
      }
      await sleep(probe.verdict.sustained ? 500 : 1_500);
      return probe;
    };

    /**
     * One size's search. Its first probe is the design's rate for the size, or, when the size
     * before it in the same series sustained less than linear scaling from it would need, that
     * projection (so the probes are spent near the answer, not far above it).
     */
    const searchSize = async (instances: number, cpusPerInstance: number | undefined, before?: Search): Promise<Search> => {
      const design = designFigure(instances);
      const projected = before?.outcome.sustained === undefined ? Infinity : (before.outcome.sustained * instances) / before.instances;
      const start = Math.min(design.ratePerSecond, projected);
      // Warm-up (PHP-FPM starts workers on demand, opcache fills): 2 s at half the design's rate.
      const warmup = await runPaced({ url, ratePerSecond: Math.round(design.ratePerSecond / 2), threads: THREADS, connections: probeConnections(design.ratePerSecond / 2, THREADS), durationSeconds: 2, ticksPerSecond: ticks });
      await sleep(500);
      const history: SearchPoint[] = [];
      const probes: Probe[] = [];
      for (;;) {
        const next = nextProbe(history, { ...SEARCH, maxProbes: options.maxProbes, start });
        if ('done' in next) return { instances, cpusPerInstance, p99LimitMs: design.p99Ms, designRate: design.ratePerSecond, probes, warmupRequests: warmup.requests, outcome: next.done };
        const probe = await probeAt(next.rate, instances, design.p99Ms);
        probes.push(probe);
        history.push({ rate: probe.rate, sustained: probe.verdict.sustained, answered: probe.achievedPerSecond });
      }
    };

    const searches: Search[] = [];
    const skipped: string[] = [];
    const elapsed = (): number => (performance.now() - startedAt) / 1000;
    /** A search takes about this long: four probes and the warm-up. */
    const typicalSearchSeconds = 4 * (options.probeSeconds + 2) + 3;
    const fits = (what: string): boolean => {
      if (elapsed() + typicalSearchSeconds <= options.budgetSeconds) return true;
      skipped.push(what);
      log(`capacity: ${what} left out: the scenario's time budget (${options.budgetSeconds} s) would be exceeded`);
      return false;
    };
    const setLimits = async (cpusPerInstance: number | undefined): Promise<void> => {
      for (const replica of await app.replicas()) await limitCpu(replica.id, cpusPerInstance);
    };

    // The machine at rest (no load of ours): what the other users of this shared machine take.
    const restFrom = machineCpu();
    await sleep(2_000);
    const restTo = machineCpu();
    const restBusy = ((restTo.busy - restFrom.busy) / (restTo.total - restFrom.total)) * cores * 100;
    log(`capacity: the machine at rest, before any load of ours: ${restBusy.toFixed(0)} % of one core busy (of ${cores * 100})`);

    // 1. The application as stack/compose.yaml runs it (no CPU limit), at the design's 2 instances.
    log(`capacity: ${smallest} instances without a CPU limit`);
    const counters = ['Questions', 'Com_select', 'Com_admin_commands'];
    const statusBefore = await dbStatus(app, counters);
    const first = await searchSize(smallest, undefined);
    searches.push(first);
    const statusAfter = await dbStatus(app, counters);
    const answered = first.warmupRequests + first.probes.reduce((sum, p) => sum + p.requests, 0);
    const dbPerRequest = Object.fromEntries(counters.map((c) => [c, ((statusAfter[c] ?? NaN) - (statusBefore[c] ?? NaN)) / answered]));
    // 2. The same 2 replicas, each limited to a fixed CPU slice: what one instance of that size carries.
    if (fits(`${smallest} instances at ${options.cpusPerInstance} CPU each`)) {
      await setLimits(options.cpusPerInstance);
      log(`capacity: ${smallest} instances at ${options.cpusPerInstance} CPU each`);
      searches.push(await searchSize(smallest, options.cpusPerInstance));
      await setLimits(undefined);
    }
    // 3. The scaling series, the replicas as stack/compose.yaml runs them: 4, 6, … replicas.
    for (const size of options.sizes.filter((n) => n > smallest)) {
      if (!fits(`${size} instances`)) break;
      log(`capacity: scaling the application to ${size} replicas (Compose), the sidecar adding them`);
      await app.scaleTo(size);
      await setLimits(undefined);
      await waitForPool(size);
      log(`capacity: ${size} instances without a CPU limit`);
      searches.push(await searchSize(size, undefined, searches.filter((x) => x.cpusPerInstance === undefined).at(-1)));
    }
    const serversAtEnd = (await serverSnapshots(haproxy)).filter((s) => s.name.startsWith('hsc-') && s.state === 'UP').length;
    const sidecarErrors = (await side.logLines()).filter((line) => /"level":(50|60)/.test(line)).length;
    return report({ options, searches, skipped, dbTiming, rows, dbPerRequest, restBusy, cores, loadAtStart, serversAtEnd, sidecarErrors, haproxyVersion: haproxy.haproxyVersion });
  } finally {
    await sidecar?.stop().catch(() => undefined);
    await local?.stop().catch(() => undefined);
    await stack?.down().catch(() => undefined);
    await privateTmp.release().catch(() => undefined);
  }
}

interface ReportInput {
  readonly options: CapacityOptions;
  readonly searches: readonly Search[];
  readonly skipped: readonly string[];
  readonly dbTiming: DbTiming;
  readonly rows: number;
  /** MariaDB's counters per answered request over the first search. */
  readonly dbPerRequest: Record<string, number>;
  /** The machine's busy CPU (% of one core) over 2 s at rest, before any load of the scenario. */
  readonly restBusy: number;
  readonly cores: number;
  readonly loadAtStart: number;
  readonly serversAtEnd: number;
  readonly sidecarErrors: number;
  readonly haproxyVersion: string;
}

const fmt = (v: number | undefined, digits = 0): string => (v === undefined || Number.isNaN(v) ? '?' : v.toFixed(digits));

function sustainedProbe(s: Search): Probe | undefined {
  return s.outcome.sustained === undefined ? undefined : s.probes.find((p) => p.rate === s.outcome.sustained && p.verdict.sustained);
}

function failedProbe(s: Search): Probe | undefined {
  return s.outcome.failed === undefined ? undefined : s.probes.find((p) => p.rate === s.outcome.failed && !p.verdict.sustained);
}

/** The series: the searches without a CPU limit, by size. */
function seriesOf(searches: readonly Search[]): Search[] {
  return searches.filter((s) => s.cpusPerInstance === undefined);
}

/** A size's ratio to the first size of the series, as text: "< x" when it sustained nothing it was offered. */
function ratioText(s: Search, series: readonly Search[]): string {
  const base = series[0]?.outcome.sustained;
  if (s.cpusPerInstance !== undefined || base === undefined || base === 0) return '';
  if (s.outcome.sustained !== undefined) return (s.outcome.sustained / base).toFixed(2);
  return `< ${(Math.min(...s.probes.map((p) => p.rate)) / base).toFixed(2)}`;
}

/** The capacity table as text, one line per search. */
export function capacityTable(searches: readonly Search[], cores: number): string {
  const head = ['instances', 'CPU/inst.', 'p99 limit', 'design', 'sustained', '× 2 inst.', 'mean', 'p99', 'first failing rate', 'limited by (CPU, % of one core)'];
  const series = seriesOf(searches);
  const rows = searches.map((s) => {
    const ok = sustainedProbe(s);
    const bad = failedProbe(s);
    return [
      String(s.instances),
      s.cpusPerInstance === undefined ? 'no limit' : String(s.cpusPerInstance),
      `${fmt(s.p99LimitMs, 1)} ms`,
      `${fmt(s.designRate)} req/s`,
      s.outcome.sustained === undefined ? `< ${Math.min(...s.probes.map((p) => p.rate))} req/s` : `${s.outcome.sustained} req/s`,
      ratioText(s, series),
      ok === undefined ? '' : `${fmt(ok.meanMs, 1)} ms`,
      ok === undefined ? '' : `${fmt(ok.p99Ms, 1)} ms`,
      bad === undefined ? `none up to ${s.outcome.stop === 'ceiling' ? SEARCH.ceiling : 'the last probe'}` : `${bad.rate} req/s (${bad.verdict.why})`,
      bad === undefined ? '' : limitingResource(bad.cpu, s.instances, s.cpusPerInstance),
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), `(${cores} cores)`].join('\n');
}

function report(input: ReportInput): Omit<ScenarioResult, 'seconds'> {
  const { options, searches, dbTiming, cores } = input;
  const series = seriesOf(searches);
  const slice = searches.find((s) => s.cpusPerInstance !== undefined);
  const points = series.map((s) => ({ instances: s.instances, sustained: s.outcome.sustained }));
  const ratios = scalingRatios(points);
  const bend = bendAt(points);
  const design2 = designFigure(2);
  const first = series[0];
  const atDesign = (s: Search | undefined): Probe | undefined => s?.probes.find((p) => p.rate === design2.ratePerSecond);
  const workProbe = first === undefined ? undefined : (sustainedProbe(first) ?? first.probes[0]);
  const table = capacityTable(searches, cores);
  const chain = workProbe?.perRequestMs;
  const chainMs = chain === undefined ? NaN : (chain.app ?? NaN) + (chain.db ?? NaN) + (chain.haproxy ?? NaN) + (chain.wrk ?? NaN);
  options.log(`capacity table:\n${table}`);

  const label = (s: Search): string => `${s.instances} instances${s.cpusPerInstance === undefined ? '' : `, ${s.cpusPerInstance} CPU each`}`;
  const cpuLine = (p: Probe | undefined): string =>
    p === undefined
      ? ''
      : `CPU (% of one core, of ${cores * 100}): replicas ${fmt(p.cpu.app)}, MariaDB ${fmt(p.cpu.db)}, HAProxy ${fmt(p.cpu.haproxy)}, wrk ${fmt(p.cpu.wrk)}, sidecar ${fmt(p.cpu.sidecar)}, whole machine ${fmt(p.cpu.machine)}`;
  const figures: Figure[] = searches.map((s) => {
    const ok = sustainedProbe(s);
    const bad = failedProbe(s);
    const probes = s.probes.map((p) => `${p.rate}${p.verdict.sustained ? '✓' : '✗'}`).join(' ');
    return {
      key: `capacity-${s.instances}${s.cpusPerInstance === undefined ? '' : '-slice'}`,
      metric: `${label(s)}: highest rate with p99 ≤ ${fmt(s.p99LimitMs, 1)} ms`,
      unit: 'req/s',
      value: s.outcome.sustained ?? 0,
      note: [
        `design at this size ${fmt(s.designRate)} req/s (p99 ${fmt(s.p99LimitMs, 1)} ms${designFigure(s.instances).stated ? '' : ', interpolated'})`,
        ok === undefined ? `not sustained even at ${Math.min(...s.probes.map((p) => p.rate))} req/s` : `at ${ok.rate} req/s: mean ${fmt(ok.meanMs, 1)} ms, p50 ${fmt(ok.p50Ms, 1)} ms, p99 ${fmt(ok.p99Ms, 1)} ms, ${cpuLine(ok)}`,
        bad === undefined ? `no failing rate found (search stopped: ${s.outcome.stop})` : `first failing rate ${bad.rate} req/s: ${bad.verdict.why}; limited by ${limitingResource(bad.cpu, s.instances, s.cpusPerInstance)}`,
        `probes in order: ${probes}`,
      ].join('; '),
    };
  });
  for (const s of series.slice(1)) {
    const r = ratios.find((x) => x.instances === s.instances);
    figures.push({
      key: `capacity-ratio-${s.instances}`,
      metric: `scaling ${s.instances} / ${first?.instances ?? 2} instances, same run`,
      unit: 'ratio',
      value: r?.ratio ?? NaN,
      note: `linear would be ${(s.instances / (first?.instances ?? 2)).toFixed(2)}; ${r?.ratio === undefined ? `nothing sustained: ${ratioText(s, series)}` : `${fmt(r.perInstance)} req/s per instance`}`,
    });
  }
  const met = (s: Search | undefined): boolean => (s?.outcome.sustained ?? 0) >= design2.ratePerSecond;
  figures.push({
    key: 'capacity-design-2',
    metric: `design figure at 2 instances (${design2.ratePerSecond} req/s, p99 ≤ ${design2.p99Ms} ms) met: 1 yes / 0 no`,
    unit: 'met',
    value: met(first) ? 1 : 0,
    note: [
      `as stack/compose.yaml runs the replicas (no CPU limit): ${met(first) ? 'met' : 'not met'}${atDesign(first) === undefined ? '' : `, the ${design2.ratePerSecond} req/s probe had mean ${fmt(atDesign(first)?.meanMs, 1)} ms / p99 ${fmt(atDesign(first)?.p99Ms, 1)} ms (design: mean ${design2.meanMs} / p99 ${design2.p99Ms})`}`,
      slice === undefined ? '' : `with ${slice.cpusPerInstance} CPU per replica: ${met(slice) ? 'met' : 'not met'}${atDesign(slice) === undefined ? '' : ` (the ${design2.ratePerSecond} req/s probe: p99 ${fmt(atDesign(slice)?.p99Ms, 1)} ms${atDesign(slice)?.verdict.sustained === true ? '' : `, ${atDesign(slice)?.verdict.why ?? ''}`})`}`,
    ]
      .filter((x) => x !== '')
      .join('; '),
  });
  if (workProbe !== undefined) {
    const per = workProbe.perRequestMs;
    figures.push(
      { key: 'capacity-app-cpu', metric: 'CPU per request: nginx + PHP-FPM (replicas)', unit: 'ms', value: per.app ?? NaN, note: `at ${workProbe.rate} req/s, 2 instances without a CPU limit` },
      { key: 'capacity-db-cpu', metric: 'CPU per request: MariaDB', unit: 'ms', value: per.db ?? NaN },
      { key: 'capacity-haproxy-cpu', metric: 'CPU per request: HAProxy', unit: 'ms', value: per.haproxy ?? NaN },
      { key: 'capacity-wrk-cpu', metric: 'CPU per request: wrk (the load generator)', unit: 'ms', value: per.wrk ?? NaN },
      {
        key: 'capacity-chain-cpu',
        metric: 'CPU per request: the whole chain (replicas + MariaDB + HAProxy + wrk)',
        unit: 'ms',
        value: chainMs,
        note: `${cores} cores ÷ this = ${fmt((cores * 1000) / chainMs)} req/s with every core of the machine busy on this chain and nothing else: arithmetic, not a measurement (the p99 limit is reached below full use, and the machine is shared)`,
      },
    );
  }
  figures.push({
    key: 'capacity-db-time',
    metric: "the request's database work timed inside a replica (connection reuse + SELECT), mean",
    unit: 'ms',
    value: dbTiming.meanMs,
    note: `${dbTiming.iterations} rounds at rest with PHP in a replica: p50 ${fmt(dbTiming.p50Ms, 2)} ms, p99 ${fmt(dbTiming.p99Ms, 2)} ms`,
  });
  const q = input.dbPerRequest;
  const statusLine = `MariaDB's own counters over the first search, per answered request: ${fmt(q.Questions, 2)} statements (${fmt(q.Com_select, 2)} SELECT, ${fmt(q.Com_admin_commands, 2)} admin command: the connection reset).`;
  const sliceProbe = slice === undefined ? undefined : sustainedProbe(slice);
  const sizesDone = series.map((s) => s.instances);
  const complete = first !== undefined && series.length >= 2;
  const notes = [
    `What a request does (stack/images/app/src/index.php, GET /): reads the topology file (absent here: the writer and reader come from HSC_DB_WRITER_HOST / HSC_DB_READER_HOSTS = db1) and the database password file, takes the PHP-FPM worker's persistent mysqli connection to db1 (reused, and reset by mysqli with a COM_CHANGE_USER, which re-authenticates: one round trip), runs SELECT COUNT(*), COALESCE(MAX(id), 0) FROM items on a table of ${input.rows} rows (InnoDB, a scan of the primary key), and renders a small HTML page. No write, no sleep, no other I/O: its I/O wait is those two database round trips on the Docker network, ${fmt(dbTiming.meanMs, 2)} ms on average at rest (timed inside a replica with PHP doing the same calls), and FastCGI over nginx's unix socket. ${statusLine}`,
    `So the application's request is far lighter than the original design's (mean 45 ms): here a request costs about ${fmt(workProbe?.perRequestMs.app, 2)} ms of CPU in nginx + PHP-FPM and ${fmt(workProbe?.perRequestMs.db, 2)} ms in MariaDB (${fmt(chainMs, 2)} ms with HAProxy and wrk), and its latency at low load is a few ms. The p99 limit holds until the machine's CPU runs out, so each size's figure is close to the CPU the chain gets.`,
    `Path: wrk on 127.0.0.1 → HAProxy ${input.haproxyVersion} (haproxy.local.cfg, roundrobin, health checks on /healthz) → the replicas on the Compose project's app network, whose servers the sidecar (its own process, runtime driver) added from Docker discovery; HAProxy showed ${input.serversAtEnd} servers UP at the end; the sidecar logged ${input.sidecarErrors} error(s). The application's containers are stack/compose.yaml's db1 and nginx services (hsc/app:local, hsc/mariadb:local) under a Compose project of the benchmark's own, scaled with Compose (--scale nginx=N), as the stack runs them: no CPU limit.`,
    `Load: wrk paced to a constant rate (wrk2-style, a Lua schedule on a monotonic clock; ${THREADS} threads, connections = 0.3 s × rate), ${options.probeSeconds} s per probe, each bounded in time and count. A probe is sustained when p99 ≤ the limit, ≥ 95 % of the rate is answered, ≤ 0.1 % fail and ≤ 1 % of the sends leave more than 10 ms late (a late send means every connection was waiting: the pool was not keeping up). After each probe the pool drains (HAProxy shows no session) before the next.`,
    `Search per size (bounded): the first probe is the design's rate for that size, or the linear projection from the size before it when that is lower; then ×1.6 up after a sustained probe or ÷1.6 down after a failed one (down to 0.8 × what a saturated pool answered, when that is lower) until the rate is bracketed, then bisection (geometric) until the lowest failing rate is within 12 % of the highest sustained one; at most ${options.maxProbes} probes, rates between ${SEARCH.floor} and ${SEARCH.ceiling} req/s in steps of ${SEARCH.step}. The figure is the highest sustained rate: the true limit lies between it and the first failing rate.`,
    `p99 limits: 120 ms at 2 instances and 145 ms at 10, the design's own; between them linear in the pool size (120 + 3.125 ms per instance above 2: 126.25 at 4, 132.5 at 6, 138.75 at 8). The design's rate: 250 req/s per instance (500 at 2, 2500 at 10).`,
    ...(first === undefined
      ? []
      : [
          `Scaling from ${first.instances} instances, measured in this one run: ${series.map((s) => `${s.instances}: ×${ratioText(s, series) || '1.00'}`).join(', ')}. ${bend === undefined ? 'The curve did not bend within the sizes measured.' : `The curve bends at ${bend} instances (that step added less than half of what linear scaling would).`} A replica of stack/compose.yaml has no CPU limit, so on this ${cores}-core machine two replicas can already use every core: the pool's size does not add CPU, and what holds each size back at its first failing rate is the machine's CPU ("limited by" in the table, from the CPU of each part over that probe), not the number of instances.`,
        ]),
    ...(slice === undefined
      ? []
      : [
          `One instance as a fixed unit of capacity (a VM of the original design): the same 2 replicas, each limited to ${slice.cpusPerInstance} CPU (a CFS quota per 10 ms period, docker update; ${slice.cpusPerInstance} × 10 replicas = the machine's ${cores} cores), sustained ${slice.outcome.sustained ?? 0} req/s, ${fmt((slice.outcome.sustained ?? 0) / slice.instances)} per instance${sliceProbe === undefined ? '' : ` (replicas at ${fmt(sliceProbe.cpu.app)} % of one core of their ${fmt(slice.instances * (slice.cpusPerInstance ?? 0) * 100)} %)`}. Linear from there, 10 such instances would carry ${fmt(((slice.outcome.sustained ?? 0) / slice.instances) * 10)} req/s: arithmetic, which needs ${fmt(((slice.outcome.sustained ?? 0) / slice.instances) * 10 * chainMs / 10)} % of one core for the whole chain at this machine's cost per request, against the ${cores * 100} % this machine has and shares.`,
        ]),
    `${cores} cores shared with other sessions running tests (load average ${fmt(input.loadAtStart, 2)} at the start; ${fmt(input.restBusy)} % of one core busy at rest before the first probe, none of it this scenario's load): "the rest of the machine" in the CPU figures is them, dockerd and the kernel's own work (the bridge network's packets among it); absolute rates move from run to run; the ratios come from one run. 10 instances' worth of the design (2500 req/s) needs about ${fmt((chainMs * 2500) / 10, 0)} % of one core for the replicas, MariaDB, HAProxy and wrk together at this machine's cost per request, against ${cores * 100} % here.`,
    ...(input.skipped.length > 0 ? [`Left out for the time budget (${options.budgetSeconds} s): ${input.skipped.join(', ')}.`] : []),
    `Verdict: measured when the 2-instance search and at least one more size of the series completed (here: sizes ${sizesDone.join(', ') || 'none'}); the design figure at 2 instances is a figure of its own (1 met, 0 not), never the verdict.`,
  ];
  return {
    id: 'capacity',
    title: CAPACITY_TITLE,
    status: complete ? 'measured' : 'failed',
    ...(complete ? {} : { reason: `the scaling series did not complete (sizes measured: ${sizesDone.join(', ') || 'none'})` }),
    figures,
    notes,
    data: { table, searches, dbTiming, rows: input.rows },
  };
}
