// A few minutes of a varying load on the real environment, recorded second by second and
// replayed in the simulator (bench/sim/fidelity.ts): a Compose-style pool of two nginx replicas,
// the sidecar as its own process with its autoscaler on and the forecast as by default, and an
// open loop on nginx's bounded /work whose rate changes every segment. The figures are the
// simulator's error against what the product did: the servers in rotation second by second, the
// seconds that violated the SLO, the first scale-up.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { startPool, type BenchPool } from '../lib/pool.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import type { SidecarBuild, SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';
import { NGINX_WORK, recording, saveRecordings, watchDecisions, watchPool } from '../lib/timeline.js';
import { startTraffic, type Answer } from '../lib/traffic.js';
import { fidelityLine, replay } from '../sim/fidelity.js';

export interface VaryingLoadOptions {
  readonly build: SidecarBuild;
  readonly driver: DriverChoice;
  /** The open loop's rate (req/s on /work) and how long each segment holds it. */
  readonly segments: ReadonlyArray<{ readonly rate: number; readonly seconds: number }>;
  readonly intervalMs: number;
  readonly downWindowMs: number;
  readonly workDir: string;
  /** Where the recording is written, for the fidelity replay; none when absent. */
  readonly recordTo?: string;
  readonly log: (message: string) => void;
}

export const VARYING_LOAD_TITLE = 'A varying load on the real environment, replayed in the simulator: its error second by second';

const MINIMUM = 2;
const MAXIMUM = 6;

export async function varyingLoadScenario(options: VaryingLoadOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { driver } = options;
  let pool: BenchPool | undefined;
  let sidecar: SidecarProcess | undefined;
  try {
    pool = await startPool(options.build, MINIMUM, driver);
    const local = pool.haproxy;
    const settings: Record<string, string> = {
      HSC_AUTOSCALE_DRY_RUN: 'false',
      HSC_AUTOSCALE_INTERVAL_MS: String(options.intervalMs),
      // /work serves 50 req/s per instance: a target of 35 asks for one instance per 35 req/s.
      HSC_AUTOSCALE_RPS_TARGET: '35',
      HSC_AUTOSCALE_RPS_DOWN: '25',
      HSC_AUTOSCALE_MIN: String(MINIMUM),
      HSC_AUTOSCALE_MAX: String(MAXIMUM),
      HSC_AUTOSCALE_DOWN_WINDOW_MS: String(options.downWindowMs),
    };
    sidecar = await pool.startSidecar(join(options.workDir, `varying-${driver}-sidecar.log`), { ...settings, HSC_LOG_LEVEL: 'debug' });
    // Two evaluations at rest, so the request rate has a baseline.
    await sleep(2 * options.intervalMs);
    const startedAt = Date.now();
    const poolWatch = watchPool(local, pool);
    const decisionWatch = watchDecisions(sidecar);
    const answers: Answer[] = [];
    let sent = 0;
    try {
      for (const segment of options.segments) {
        const traffic = startTraffic(`${local.frontendUrl}/work`, { ratePerSecond: segment.rate, maxDurationMs: segment.seconds * 1000, maxRequests: segment.rate * segment.seconds });
        await sleep(segment.seconds * 1000);
        const report = await traffic.stop();
        sent += report.sent;
        answers.push(...traffic.answers());
        options.log(`varying load (${driver}): ${segment.rate} req/s for ${segment.seconds} s: ${report.sent} sent, ${report.failures.length} failed`);
      }
    } catch (error) {
      // Stopped before the sidecar it polls.
      await decisionWatch.stop();
      throw error;
    } finally {
      await poolWatch.stop();
    }
    const recorded = recording({
      name: `varying-${driver}`,
      description: `an open loop on /work of ${options.segments.map((s) => `${s.rate}`).join(', ')} req/s, ${options.segments[0]?.seconds ?? 0} s each, ${driver} driver`,
      settings,
      station: NGINX_WORK,
      startedAt,
      endedAt: Date.now(),
      answers,
      openAnswers: answers,
      clients: () => 0,
      pool: poolWatch.samples(),
      decisions: await decisionWatch.stop(),
    });
    if (options.recordTo !== undefined) await saveRecordings(options.recordTo, [recorded]);
    const f = await replay(recorded);
    options.log(`varying load (${driver}): ${fidelityLine(f)}`);
    const failed = answers.filter((a) => !a.ok).length;
    const figures: Figure[] = [
      { key: 'sim-serving-error', metric: 'simulator vs this run, second by second: mean |simulated − real| servers in rotation', unit: 'count', value: Number(f.serving.meanAbsoluteError.toFixed(3)) },
      { key: 'sim-serving-equal', metric: 'seconds where the simulated servers in rotation equal the real ones', unit: '%', value: Number((f.serving.exactShare * 100).toFixed(1)) },
      { key: 'sim-server-seconds', metric: 'server-seconds in rotation, simulated − real', unit: '%', value: Number((((f.serving.simulated - f.serving.real) / Math.max(1, f.serving.real)) * 100).toFixed(1)) },
      { key: 'sim-violations', metric: 'SLO-violation seconds, simulated (real in the note)', unit: 'count', value: f.violations.simulated, note: `real: ${f.violations.real}` },
      { metric: 'requests sent; failed', unit: 'count', value: sent, note: `${failed} failed (non-2xx or no answer: /work answers 503 beyond its line of 200)` },
      { metric: 'servers in rotation, real', unit: 'count', ...spread(summarise(f.perSecond.real)) },
    ];
    const notes = [
      `Fidelity: ${fidelityLine(f)}.`,
      `HAProxy ${local.haproxyVersion}, the ${driver === 'dataplane' ? 'Data Plane API driver' : 'runtime API driver'}; the sidecar as its own process on a Compose-style pool (minimum ${MINIMUM}, maximum ${MAXIMUM}), the autoscaler on with the forecast (the default), request-rate target 35 req/s per instance (scale down below 25), interval ${options.intervalMs} ms, scale-down window ${options.downWindowMs} ms.`,
      `Load: an open loop on /work (a token bucket of 50 req/s per instance, 200 waiting, then 10 ms of work) of ${options.segments.map((s) => `${s.rate} req/s for ${s.seconds} s`).join(', ')}. The simulator replays the requests sent each second, with the sidecar's settings, an instance modelled as that token bucket, and the start-up measured in this run.`,
    ];
    return { id: 'varying', driver, title: VARYING_LOAD_TITLE, status: 'measured', figures, notes, data: { fidelity: { ...f, perSecond: undefined } } };
  } finally {
    await sidecar?.stop();
    await pool?.stop();
  }
}
