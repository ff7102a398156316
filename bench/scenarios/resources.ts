// Scenario 4, the sidecar's memory and CPU: its own process (compiled JavaScript, started with the
// image's node flags, as deployed), read from /proc every second, first idle, then while
// containers labelled for it start and stop in a bounded loop. Start-up is excluded (a settle
// period before the idle phase). The autoscaler runs at the production interval (the default of
// autoscale.intervalMs, with its breach checks between evaluations), and the idle figures are
// stated against the budgets of issue 23.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { configurationReference } from '../../sidecar/config/index.js';
import type { BenchPool } from '../lib/pool.js';
import { clockTicksPerSecond, cpuShare, findProcessByName, sampleProcess, type ProcessSample } from '../lib/procfs.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { imageNodeFlags, metricSum, type SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';

export interface ResourcesOptions {
  readonly settleSeconds: number;
  readonly idleSeconds: number;
  readonly churnSeconds: number;
  /** Upper bound on containers started during churn. */
  readonly maxChurnStarts: number;
  /** Churn containers alive at once; each start past this removes the oldest. */
  readonly churnAlive: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

interface Phase {
  readonly samples: ProcessSample[];
  readonly reconcilePasses: number;
  readonly evaluations: number;
  /** dockerd's CPU over the phase, % of one core: Docker's side of the sidecar's reads. */
  readonly dockerdCpu: number | undefined;
}

const MiB = 1024 * 1024;

/** The idle sidecar's budgets: RSS at every idle sample, CPU as the idle phase's mean. */
export const IDLE_RSS_BUDGET_MIB = 80;
export const IDLE_CPU_BUDGET_PERCENT = 1;

/** What a deployment runs with unless it sets the key: the configuration's default (a number of ms). */
function defaultMs(key: string): number {
  const value = Number(configurationReference().find((k) => k.key === key)?.default);
  if (!(value > 0)) throw new Error(`the configuration reference has no default for ${key}`);
  return value;
}

/** A figure against its budget, in words for the report. */
export function budgetVerdict(value: number, budget: number, unit: string): string {
  if (Number.isNaN(value)) return 'not measured';
  return value <= budget ? `within the budget of ≤ ${budget} ${unit}` : `OVER the budget of ≤ ${budget} ${unit} by ${(value - budget).toFixed(1)} ${unit}`;
}

export async function resourcesScenario(pool: BenchPool, options: ResourcesOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const intervalMs = defaultMs('autoscale.intervalMs');
  const breachCheckMs = defaultMs('autoscale.breachCheckMs');
  const sidecar: SidecarProcess = await pool.startSidecar(join(options.workDir, 'resources-sidecar.log'), { HSC_AUTOSCALE_INTERVAL_MS: String(intervalMs) });
  const churn: TestContainer[] = [];
  let started = 0;
  let removed = 0;
  try {
    await sleep(options.settleSeconds * 1000);
    const counters = async (): Promise<{ passes: number; evaluations: number }> => {
      const m = await sidecar.metrics();
      return { passes: metricSum(m, 'hsc_reconcile_runs_total'), evaluations: metricSum(m, 'hsc_autoscaler_decisions_total') };
    };

    const dockerd = findProcessByName('dockerd');
    /** Samples the process every second until `until` resolves. */
    const measure = async (until: Promise<void>): Promise<Phase> => {
      const before = await counters();
      const dockerdBefore = dockerd === undefined ? undefined : await sampleProcess(dockerd).catch(() => undefined);
      const samples: ProcessSample[] = [await sampleProcess(sidecar.pid)];
      let done = false;
      const finish = (): void => {
        done = true;
      };
      // A failure of `until` surfaces through the race below; here it only ends the sampling.
      until.then(finish, finish);
      while (!done) {
        await Promise.race([sleep(1000), until]);
        samples.push(await sampleProcess(sidecar.pid));
      }
      const after = await counters();
      const dockerdAfter = dockerd === undefined ? undefined : await sampleProcess(dockerd).catch(() => undefined);
      return {
        samples,
        reconcilePasses: after.passes - before.passes,
        evaluations: after.evaluations - before.evaluations,
        dockerdCpu: dockerdBefore === undefined || dockerdAfter === undefined ? undefined : cpuShare(dockerdBefore, dockerdAfter) * 100,
      };
    };

    options.log(`resources: idle ${options.idleSeconds} s`);
    const idle = await measure(sleep(options.idleSeconds * 1000));

    options.log(`resources: churn up to ${options.churnSeconds} s / ${options.maxChurnStarts} containers`);
    const churnLoop = async (): Promise<void> => {
      const deadline = Date.now() + options.churnSeconds * 1000;
      while (Date.now() < deadline && started < options.maxChurnStarts) {
        // A replica of the pool's service: discovery selects it, the autoscaler counts it.
        const number = 100 + started;
        churn.push(await startNginx({ owner: 'bench', name: `${pool.project}-nginx-${number}`, labels: pool.replicaLabels(number), waitHealthy: false }));
        started++;
        if (churn.length > options.churnAlive) {
          await churn.shift()?.remove();
          removed++;
        }
        await sleep(500);
      }
    };
    const busy = await measure(churnLoop());

    const phaseFigures = (label: string, phase: Phase): Figure[] => {
      const first = phase.samples[0];
      const last = phase.samples[phase.samples.length - 1];
      const perSecond = phase.samples.slice(1).map((s, i) => {
        const previous = phase.samples[i];
        return previous === undefined ? NaN : cpuShare(previous, s) * 100;
      });
      return [
        { metric: `RSS, ${label}`, unit: 'MiB', ...spread(summarise(phase.samples.map((s) => s.rssBytes / MiB))) },
        {
          metric: `CPU, ${label} (per-second samples; value = phase mean)`,
          unit: '% of one core',
          ...spread(summarise(perSecond)),
          value: first === undefined || last === undefined ? NaN : cpuShare(first, last) * 100,
        },
      ];
    };
    const lastSample = busy.samples[busy.samples.length - 1];
    const idleFirst = idle.samples[0];
    const idleLast = idle.samples[idle.samples.length - 1];
    const idleRssMax = Math.max(...idle.samples.map((s) => s.rssBytes / MiB));
    const idleCpu = idleFirst === undefined || idleLast === undefined ? NaN : cpuShare(idleFirst, idleLast) * 100;
    const rssVerdict = budgetVerdict(idleRssMax, IDLE_RSS_BUDGET_MIB, 'MiB');
    const cpuVerdict = budgetVerdict(idleCpu, IDLE_CPU_BUDGET_PERCENT, '% of one core');
    options.log(`resources: idle RSS at most ${idleRssMax.toFixed(1)} MiB (${rssVerdict}); idle CPU ${idleCpu.toFixed(2)} % of one core (${cpuVerdict})`);
    const figures: Figure[] = [
      { metric: `budget: idle RSS, highest sample (≤ ${IDLE_RSS_BUDGET_MIB} MiB)`, unit: 'MiB', value: idleRssMax, note: rssVerdict, key: 'idle-rss' },
      { metric: `budget: idle CPU, phase mean at the production interval (≤ ${IDLE_CPU_BUDGET_PERCENT} % of one core)`, unit: '% of one core', value: idleCpu, note: cpuVerdict, key: 'idle-cpu' },
      ...phaseFigures('idle', idle),
      ...phaseFigures('container churn', busy),
      {
        metric: 'dockerd CPU during the idle phase (phase mean)',
        unit: '% of one core',
        value: idle.dockerdCpu ?? NaN,
        note: "the Docker side of the sidecar's reads (replica list, CPU stats, discovery) while nothing else used Docker in this benchmark; compare overhead's dockerd CPU without the sidecar",
      },
      { metric: 'peak RSS over the run (VmHWM)', unit: 'MiB', value: lastSample === undefined ? NaN : lastSample.peakRssBytes / MiB },
      { metric: 'churn: containers started / removed', unit: 'count', value: started, note: `${started} started, ${removed} removed` },
    ];
    const notes = [
      `Budgets (issue 23): idle RSS ${idleRssMax.toFixed(1)} MiB at most, ${rssVerdict}; idle CPU ${idleCpu.toFixed(2)} % of one core, ${cpuVerdict}.`,
      `The sidecar as its own process (${['node', ...imageNodeFlags()].join(' ')} on the compiled sidecar, the image's command, like npm run build), pool of ${pool.containers.length} replicas; ${options.settleSeconds} s after start-up, ${options.idleSeconds} s idle, then up to ${options.churnSeconds} s (at most ${options.maxChurnStarts} starts) of churn: a labelled replica of the pool's service started every ~0.5 s plus its start time, at most ${options.churnAlive} alive, the oldest force-removed (die, kill, destroy events).`,
      `VmRSS and utime+stime from /proc/<pid>/status and /proc/<pid>/stat every second; a per-second CPU sample moves in steps of ${(100 / clockTicksPerSecond()).toFixed(0)} % of one core (the kernel counts CPU time in ${(1000 / clockTicksPerSecond()).toFixed(0)} ms ticks), the phase mean is exact to that over the phase. No load on HAProxy.`,
      `The ${pool.driver === 'dataplane' ? 'Data Plane API' : 'runtime API'} driver on HAProxy ${pool.haproxy.haproxyVersion}: churn makes real reconcile passes that add and remove servers (a churned container that became healthy before its removal was added), besides the Docker event stream, the debounced reconcile loop, Docker listing and label parsing, readiness, and the autoscaler at the production interval (dry run): an evaluation every ${intervalMs / 1000} s (HAProxy scrape, replica list and Docker CPU stats of every replica, churned ones included) and a breach check (HAProxy scrape) between evaluations every ${breachCheckMs / 1000} s.`,
      `Reconcile passes: ${idle.reconcilePasses} idle, ${busy.reconcilePasses} during churn; autoscaler evaluations: ${idle.evaluations} idle, ${busy.evaluations} during churn.`,
    ];
    return { id: 'resources', title: "The sidecar's memory (RSS) and CPU, idle and under container churn", status: 'measured', figures, notes, data: { idle, busy } };
  } finally {
    await sidecar.stop();
    await Promise.all(churn.map((c) => c.remove()));
  }
}
