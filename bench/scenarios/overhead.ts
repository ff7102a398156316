// Scenario 1, data-path overhead: the same HAProxy and nginx pool under the same wrk load,
// without the sidecar (A) and with the sidecar process running beside it (B), alternated over
// several rounds (A B, B A, A B, ...) so the machine's drift falls on both sides. The sidecar is
// not in the data path; what it can cost is CPU taken from HAProxy, nginx and wrk on a small
// machine (scrapes, Docker reads, reconcile passes, logs), so the ratio should be ~1.
import { cpus } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchPool } from '../lib/pool.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { cpuShare, findProcessByName, sampleProcess, type ProcessSample } from '../lib/procfs.js';
import { metricSum, type SidecarProcess } from '../lib/sidecar-process.js';
import { pairedRatios, summarise } from '../lib/stats.js';
import { runWrk, type WrkRun } from '../lib/wrk.js';

export interface OverheadOptions {
  readonly rounds: number;
  readonly seconds: number;
  readonly connections: number;
  readonly threads: number;
  /** Time the sidecar runs before a B measurement starts (A waits as long). */
  readonly settleSeconds: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

interface Run {
  readonly round: number;
  readonly side: 'A' | 'B';
  readonly wrk: WrkRun;
  /** B only: what the sidecar did during the run, from its own /metrics. */
  readonly sidecar?: {
    readonly evaluations: number;
    readonly reconcileOk: number;
    readonly reconcileError: number;
    /** Time spent in the passes that ended during the run. */
    readonly reconcileSeconds: number;
    readonly haproxySourceUp: number;
  };
  /** CPU during the wrk run, % of one core: dockerd (answers the sidecar's Docker reads) and, in B, the sidecar. */
  readonly cpu: { readonly dockerd: number | undefined; readonly sidecar: number | undefined };
}

export async function overheadScenario(pool: BenchPool, options: OverheadOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const url = `${pool.haproxy.frontendUrl}/`;
  const wrk = (): Promise<WrkRun> =>
    runWrk({
      url,
      threads: options.threads,
      connections: options.connections,
      durationSeconds: options.seconds,
      // A cap far above what this machine serves: it only bounds a runaway.
      maxRequests: options.seconds * 200_000,
    });
  options.log('overhead: warm-up');
  await runWrk({ url, threads: options.threads, connections: options.connections, durationSeconds: 2, maxRequests: 400_000 });

  const dockerd = findProcessByName('dockerd');
  /** Runs wrk while reading the CPU time of dockerd and of `sidecarPid`, if given. */
  const measured = async (sidecarPid?: number): Promise<{ wrk: WrkRun; cpu: Run['cpu'] }> => {
    const read = (pid: number | undefined): Promise<ProcessSample | undefined> => (pid === undefined ? Promise.resolve(undefined) : sampleProcess(pid).catch(() => undefined));
    const before = await Promise.all([read(dockerd), read(sidecarPid)]);
    const result = await wrk();
    const after = await Promise.all([read(dockerd), read(sidecarPid)]);
    const share = (i: 0 | 1): number | undefined => {
      const [from, to] = [before[i], after[i]];
      return from === undefined || to === undefined ? undefined : cpuShare(from, to) * 100;
    };
    return { wrk: result, cpu: { dockerd: share(0), sidecar: share(1) } };
  };

  const runs: Run[] = [];
  let sidecarLog: string[] = [];
  for (let round = 0; round < options.rounds; round++) {
    const order: Array<'A' | 'B'> = round % 2 === 0 ? ['A', 'B'] : ['B', 'A'];
    for (const side of order) {
      if (side === 'A') {
        await sleep(options.settleSeconds * 1000);
        runs.push({ round, side, ...(await measured()) });
      } else {
        const sidecar: SidecarProcess = await pool.startSidecar(join(options.workDir, `overhead-sidecar-${round}.log`));
        try {
          await sleep(options.settleSeconds * 1000);
          const before = await sidecar.metrics();
          const result = await measured(sidecar.pid);
          const after = await sidecar.metrics();
          const delta = (name: string, labels: Record<string, string> = {}): number => metricSum(after, name, labels) - metricSum(before, name, labels);
          runs.push({
            round,
            side,
            ...result,
            sidecar: {
              evaluations: delta('hsc_autoscaler_decisions_total'),
              reconcileOk: delta('hsc_reconcile_runs_total', { result: 'ok' }),
              reconcileError: delta('hsc_reconcile_runs_total', { result: 'error' }),
              reconcileSeconds: delta('hsc_reconcile_duration_seconds_sum'),
              haproxySourceUp: metricSum(after, 'hsc_autoscaler_metrics_source_up', { source: 'haproxy' }),
            },
          });
          if (round === 0) sidecarLog = await sidecar.logLines();
        } finally {
          await sidecar.stop();
        }
      }
      const last = runs[runs.length - 1];
      options.log(`overhead: round ${round + 1}/${options.rounds} ${side}: ${last?.wrk.requestsPerSecond.toFixed(0)} req/s`);
    }
  }

  const side = (s: 'A' | 'B'): Run[] => runs.filter((r) => r.side === s).sort((x, y) => x.round - y.round);
  const [a, b] = [side('A'), side('B')];
  const paired = (pick: (r: WrkRun) => number) => pairedRatios(a.map((r) => pick(r.wrk)), b.map((r) => pick(r.wrk)));
  const throughput = paired((r) => r.requestsPerSecond);
  const p50 = paired((r) => r.latency.p50);
  const p99 = paired((r) => r.latency.p99);
  const range = (ratios: number[]): string => `per round: ${ratios.map((x) => x.toFixed(3)).join(', ')}`;
  const errors = (rs: readonly Run[]): number =>
    rs.reduce((sum, r) => sum + r.wrk.non2xx3xx + r.wrk.socketErrors.connect + r.wrk.socketErrors.read + r.wrk.socketErrors.write + r.wrk.socketErrors.timeout, 0);
  const sidecarTotals = b.reduce(
    (t, r) => ({
      evaluations: t.evaluations + (r.sidecar?.evaluations ?? 0),
      ok: t.ok + (r.sidecar?.reconcileOk ?? 0),
      error: t.error + (r.sidecar?.reconcileError ?? 0),
      reconcileSeconds: t.reconcileSeconds + (r.sidecar?.reconcileSeconds ?? 0),
    }),
    { evaluations: 0, ok: 0, error: 0, reconcileSeconds: 0 },
  );
  const passes = sidecarTotals.ok + sidecarTotals.error;
  const loggedErrors = sidecarLog.map(parseLogLine).filter((l) => l.level >= 50);
  const limited = runs.filter((r) => r.wrk.hitRequestLimit).length;

  const figures: Figure[] = [
    { metric: 'throughput with / without sidecar', unit: 'ratio', n: throughput.ratios.length, value: throughput.geometricMean, note: `geometric mean of the rounds' B/A ratios; ${range(throughput.ratios)}` },
    { metric: 'latency p50 with / without sidecar', unit: 'ratio', n: p50.ratios.length, value: p50.geometricMean, note: range(p50.ratios) },
    { metric: 'latency p99 with / without sidecar', unit: 'ratio', n: p99.ratios.length, value: p99.geometricMean, note: range(p99.ratios) },
    { metric: 'throughput without sidecar, per run', unit: 'req/s', ...spread(summarise(a.map((r) => r.wrk.requestsPerSecond))) },
    { metric: 'throughput with sidecar, per run', unit: 'req/s', ...spread(summarise(b.map((r) => r.wrk.requestsPerSecond))) },
    { metric: 'latency p50 without sidecar, per run', unit: 'ms', ...spread(summarise(a.map((r) => r.wrk.latency.p50 * 1000))) },
    { metric: 'latency p50 with sidecar, per run', unit: 'ms', ...spread(summarise(b.map((r) => r.wrk.latency.p50 * 1000))) },
    { metric: 'latency p99 without sidecar, per run', unit: 'ms', ...spread(summarise(a.map((r) => r.wrk.latency.p99 * 1000))) },
    { metric: 'latency p99 with sidecar, per run', unit: 'ms', ...spread(summarise(b.map((r) => r.wrk.latency.p99 * 1000))) },
    { metric: 'sidecar process CPU during B runs', unit: '% of one core', ...spread(summarise(b.flatMap((r) => (r.cpu.sidecar === undefined ? [] : [r.cpu.sidecar])))) },
    { metric: 'dockerd CPU during A runs', unit: '% of one core', ...spread(summarise(a.flatMap((r) => (r.cpu.dockerd === undefined ? [] : [r.cpu.dockerd])))) },
    { metric: 'dockerd CPU during B runs', unit: '% of one core', ...spread(summarise(b.flatMap((r) => (r.cpu.dockerd === undefined ? [] : [r.cpu.dockerd])))) },
    { metric: 'failed requests without / with sidecar', unit: 'count', value: errors(a) + errors(b), note: `without: ${errors(a)}, with: ${errors(b)} (non-2xx/3xx and socket errors, all rounds)` },
  ];
  const bSeconds = b.length * options.seconds;
  const notes = [
    `wrk -t${options.threads} -c${options.connections} -d${options.seconds}s --latency on ${url} (nginx's fast "/"), ${options.rounds} rounds of A (no sidecar) and B (sidecar process running), order alternating per round; ${options.settleSeconds} s pause before every run (in B the sidecar starts first); a 2 s warm-up before the first round.`,
    `Pool: HAProxy ${pool.haproxy.haproxyVersion} (master-worker) and ${pool.containers.length} nginx containers published on 127.0.0.1; wrk, HAProxy, nginx, Docker's port proxy, dockerd and the sidecar all share the machine's ${cpus().length} cores, so B's cost shows as CPU taken from the data path.`,
    `The sidecar (compiled sidecar/, its own node process) with the ${pool.driver === 'dataplane' ? 'Data Plane API' : 'runtime API'} driver: it added the pool itself before the rounds; in B runs it watches Docker events, reconciles (converged, so a pass only reads: nothing is written), scrapes HAProxy's exporter and reads Docker (replica list and CPU stats) on every autoscaler evaluation (dry run). The cost measured is the sidecar's own; the driver's writes (reloads, runtime commands) are in the scale-events figures.`,
    `The autoscaler interval is 1 s here (the default is 30 s), so B is a heavy case: ${sidecarTotals.evaluations} evaluations in ${bSeconds} s of B load, about one per ${(bSeconds / sidecarTotals.evaluations).toFixed(1)} s, because one evaluation reads Docker's stats API (which samples each container's CPU over about a second) and the next never starts before it ended; ${sidecarTotals.ok} reconcile passes converged and ${sidecarTotals.error} failed${passes === 0 ? '' : `, ${(sidecarTotals.reconcileSeconds / passes).toFixed(1)} s per pass on average (hsc_reconcile_duration_seconds)`}. dockerd's CPU is shown because answering the sidecar's Docker reads is work the sidecar causes; it also counts every other Docker client on the machine (see the environment's count of other containers).`,
    ...(loggedErrors.length > 0 ? [`The sidecar logged ${loggedErrors.length} error(s) in the first B run, the first: "${loggedErrors[0]?.msg ?? ''}".`] : []),
    ...(limited > 0 ? [`${limited} run(s) hit wrk's request cap, so their rate is understated.`] : []),
  ];
  return { id: 'overhead', title: 'Data-path overhead: HAProxy with and without the sidecar', status: 'measured', figures, notes, data: { runs } };
}

function parseLogLine(line: string): { level: number; msg: string } {
  try {
    const parsed = JSON.parse(line) as { level?: unknown; msg?: unknown };
    return { level: typeof parsed.level === 'number' ? parsed.level : 0, msg: typeof parsed.msg === 'string' ? parsed.msg : '' };
  } catch {
    return { level: 0, msg: line };
  }
}
