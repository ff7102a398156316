// The closed loop end to end, once per HAProxy driver: a Compose-style pool of two nginx replicas
// (labels com.docker.compose.project/service/container-number; the autoscaler's service and
// project set to them), a sidecar process with autoscaling on, and a load step on nginx's bounded
// /work (about 50 requests a second per instance). Measured per trial:
//   step → the first scale-up decision (the decision record's own time, GET /v1/autoscaler),
//   step → the first answer from a container that was not running at the step (new capacity),
//   step → every container started for the step serving,
//   load dropped → the first scale-down decision, → back to the minimum (two containers running,
//   two servers in HAProxy), every retirement drained (or forced at its deadline) by the sidecar,
// and reloads and failed requests over the trial. A light open-loop load on / runs through the
// whole trial, so the scale-downs happen under traffic too.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { serverSnapshots } from '../lib/haproxy.js';
import { startPool, type BenchPool } from '../lib/pool.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import type { SidecarBuild, SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';
import { NGINX_WORK, recording, saveRecordings, watchDecisions, watchPool } from '../lib/timeline.js';
import { startClosedLoop, startTraffic, type Answer, type Failure } from '../lib/traffic.js';
import { fidelityLine, replay } from '../sim/fidelity.js';

export interface LoadStepOptions {
  readonly build: SidecarBuild;
  readonly driver: DriverChoice;
  readonly trials: number;
  /** The autoscaler's interval (the default is 30 s). */
  readonly intervalMs: number;
  /** The scale-down stabilisation window (the default is 120 s). */
  readonly downWindowMs: number;
  /** Clients of the closed-loop step on /work. */
  readonly stepClients: number;
  /** Requests per second on / through the whole trial. */
  readonly backgroundRate: number;
  readonly workDir: string;
  /** Where each trial's recording (bench/lib/timeline.ts) is written, for the fidelity replay; none when absent. */
  readonly recordTo?: string;
  readonly log: (message: string) => void;
}

export const LOAD_STEP_TITLE = 'Load step → scale-up decision → new capacity serving → load dropped → back to the minimum through drains';

interface DecisionRecord {
  readonly at: number;
  readonly direction: string;
  readonly desired: number;
  readonly current: number;
  readonly applied: boolean;
  readonly reason: string;
  readonly actions: ReadonlyArray<{ readonly kind: string; readonly server?: string; readonly count?: number }>;
}

interface Trial {
  readonly trial: number;
  readonly decisionMs: number;
  readonly desired: number;
  readonly firstServingMs: number;
  readonly allServingMs: number;
  readonly peakReplicas: number;
  readonly loadSeconds: number;
  readonly dropToFirstDownMs: number;
  readonly dropToMinimumMs: number;
  readonly retirements: number;
  readonly forcedDrains: number;
  readonly reloadsUp: number;
  readonly reloadsDown: number;
  readonly stepRequests: number;
  readonly backgroundRequests: number;
  readonly failures: readonly Failure[];
}

const MINIMUM = 2;
const MAXIMUM = 6;
/** How long the pool may take to come back to the minimum after the load drops. */
const SHRINK_TIMEOUT_MS = 240_000;

export async function loadStepScenario(options: LoadStepOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { driver } = options;
  let pool: BenchPool | undefined;
  let sidecar: SidecarProcess | undefined;
  let watches: ReadonlyArray<{ stop(): Promise<unknown> }> = [];
  const logFile = join(options.workDir, `load-step-${driver}-sidecar.log`);
  try {
    pool = await startPool(options.build, MINIMUM, driver);
    const local = pool.haproxy;
    const settings: Record<string, string> = {
      HSC_AUTOSCALE_DRY_RUN: 'false',
      HSC_AUTOSCALE_INTERVAL_MS: String(options.intervalMs),
      // /work serves at most 50 req/s per instance: a target of 20 per instance makes the step
      // (which saturates whatever pool it meets) ask for more instances up to the maximum.
      HSC_AUTOSCALE_RPS_TARGET: '20',
      HSC_AUTOSCALE_RPS_DOWN: '10',
      HSC_AUTOSCALE_FORECAST: 'off',
      HSC_AUTOSCALE_MIN: String(MINIMUM),
      HSC_AUTOSCALE_MAX: String(MAXIMUM),
      HSC_AUTOSCALE_DOWN_WINDOW_MS: String(options.downWindowMs),
      HSC_LOG_LEVEL: 'debug',
    };
    sidecar = await pool.startSidecar(logFile, settings);
    const side = sidecar;
    const decisions = async (): Promise<DecisionRecord[]> => {
      const answer = await side.admin('GET', '/v1/autoscaler');
      if (answer.status !== 200) throw new Error(`GET /v1/autoscaler: ${answer.status} ${JSON.stringify(answer.body)}`);
      return (answer.body as { recent?: DecisionRecord[] }).recent ?? [];
    };
    const waitForDecision = async (since: number, direction: 'up' | 'down', timeoutMs: number): Promise<DecisionRecord | undefined> => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        const found = (await decisions()).find((r) => r.at >= since && r.direction === direction && r.applied && r.actions.length > 0);
        if (found !== undefined) return found;
        await sleep(200);
      }
      return undefined;
    };
    const sidecarServers = async (): Promise<number> => (await serverSnapshots(local)).filter((s) => s.name.startsWith('hsc-')).length;
    const logLinesSoFar = async (): Promise<number> => (await side.logLines()).length;

    const trials: Trial[] = [];
    // The trials second by second, for the simulator to replay (bench/sim/fidelity.ts): one
    // recording of them all, since one sidecar runs through them and its history carries over.
    const recordingStart = Date.now();
    const poolWatch = watchPool(local, pool);
    const decisionWatch = watchDecisions(side);
    watches = [poolWatch, decisionWatch];
    const backgroundAnswers: Answer[] = [];
    const stepAnswers: Answer[] = [];
    const steps: Array<{ readonly from: number; readonly to: number }> = [];
    for (let i = 1; i <= options.trials; i++) {
      const background = startTraffic(`${local.frontendUrl}/`, { ratePerSecond: options.backgroundRate, maxDurationMs: SHRINK_TIMEOUT_MS + 180_000, maxRequests: options.backgroundRate * (SHRINK_TIMEOUT_MS / 1000 + 180) });
      let step: ReturnType<typeof startClosedLoop> | undefined;
      try {
        // Two evaluations at rest, so the request rate has a baseline before the step.
        await sleep(2 * options.intervalMs);
        const known = await pool.replicasNow();
        const logFrom = await logLinesSoFar();
        const reloads0 = await local.reloadCount();
        const stepAt = Date.now();
        step = startClosedLoop(`${local.frontendUrl}/work`, { concurrency: options.stepClients, maxDurationMs: 120_000, maxRequests: 40_000 });
        const load = step;
        const up = await waitForDecision(stepAt, 'up', 60_000);
        if (up === undefined) throw new Error(`trial ${i}: no scale-up decision within 60 s of the step`);

        // New capacity: the containers the autoscaler started answer through HAProxy.
        let firstServing: number | undefined;
        let allServing: number | undefined;
        let peak = known.size;
        const holdUntil = Date.now() + 60_000;
        while (allServing === undefined && Date.now() < holdUntil) {
          const now = await pool.replicasNow();
          peak = Math.max(peak, now.size);
          const fresh = [...now].filter(([id]) => !known.has(id)).map(([, host]) => load.firstServedBy(host));
          const served = fresh.filter((at): at is number => at !== undefined);
          if (served.length > 0) firstServing = Math.min(...served);
          // Every container started so far serves, and the autoscaler starts no more (at its maximum or satisfied).
          if (fresh.length > 0 && served.length === fresh.length && now.size >= Math.min(up.desired, MAXIMUM)) allServing = Math.max(...served);
          else await sleep(200);
        }
        if (firstServing === undefined) throw new Error(`trial ${i}: no new container served within 60 s of the decision`);
        const reloads1 = await local.reloadCount();
        // The load holds a few more seconds with the new capacity, then drops to the background.
        await sleep(3_000);
        const dropAt = Date.now();
        const stepReport = await load.stop();
        stepAnswers.push(...load.answers());
        steps.push({ from: stepAt, to: dropAt });
        step = undefined;
        options.log(`load step (${driver}): trial ${i}: decision ${up.at - stepAt} ms (desired ${up.desired}), first new capacity ${firstServing - stepAt} ms, all ${allServing === undefined ? '?' : allServing - stepAt} ms; load dropped`);

        const down = await waitForDecision(dropAt, 'down', SHRINK_TIMEOUT_MS);
        let backAt: number | undefined;
        const shrinkDeadline = dropAt + SHRINK_TIMEOUT_MS;
        while (backAt === undefined && Date.now() < shrinkDeadline) {
          if ((await pool.replicasNow()).size <= MINIMUM && (await sidecarServers()) <= MINIMUM) backAt = Date.now();
          else await sleep(500);
        }
        if (backAt === undefined) {
          const state = await side.admin('GET', '/v1/autoscaler');
          const last = (state.body as { recent?: DecisionRecord[]; inFlight?: string[] }).recent?.at(-1);
          throw new Error(
            `trial ${i}: the pool did not shrink back to ${MINIMUM} replicas within ${SHRINK_TIMEOUT_MS / 1000} s ` +
              `(${(await pool.replicasNow()).size} running, ${await sidecarServers()} servers; in flight ${JSON.stringify((state.body as { inFlight?: string[] }).inFlight)}; last decision: ${last?.current} → ${last?.desired}, ${last?.reason}); sidecar log: ${logFile}`,
          );
        }
        await sleep(1_000);
        const reloads2 = await local.reloadCount();
        const messages = (await side.logLines()).slice(logFrom).map((line) => {
          try {
            const msg = (JSON.parse(line) as { msg?: unknown }).msg;
            return typeof msg === 'string' ? msg : '';
          } catch {
            return line;
          }
        });
        const backgroundReport = await background.stop();
        backgroundAnswers.push(...background.answers());
        const failures = [...stepReport.failures, ...backgroundReport.failures].sort((a, b) => a.sentAt - b.sentAt);
        trials.push({
          trial: i,
          decisionMs: up.at - stepAt,
          desired: up.desired,
          firstServingMs: firstServing - stepAt,
          allServingMs: (allServing ?? NaN) - stepAt,
          peakReplicas: peak,
          loadSeconds: (dropAt - stepAt) / 1000,
          dropToFirstDownMs: down === undefined ? NaN : down.at - dropAt,
          dropToMinimumMs: backAt - dropAt,
          retirements: messages.filter((m) => /^scale-down: retiring /.test(m)).length,
          forcedDrains: messages.filter((m) => /still busy at its drain deadline/.test(m)).length,
          reloadsUp: reloads1 - reloads0,
          reloadsDown: reloads2 - reloads1,
          stepRequests: stepReport.sent,
          backgroundRequests: backgroundReport.sent,
          failures,
        });
        const t = trials.at(-1);
        options.log(`load step (${driver}): trial ${i}: back to ${MINIMUM} ${backAt - dropAt} ms after the drop; ${t?.retirements} retirements (${t?.forcedDrains} forced), reloads ${t?.reloadsUp} up / ${t?.reloadsDown} down, ${failures.length} failed`);
      } finally {
        await step?.stop();
        await background.stop();
      }
    }
    await poolWatch.stop();
    const recorded = recording({
      name: `load-step-${driver}`,
      description: `the bench's load step, ${options.trials} trial(s), ${driver} driver: ${options.backgroundRate} req/s on / throughout each trial, ${options.stepClients} closed-loop clients on /work for ${steps.map((s) => `${((s.to - s.from) / 1000).toFixed(0)} s`).join(' and ')}`,
      settings: Object.fromEntries(Object.entries(settings).filter(([key]) => key.startsWith('HSC_AUTOSCALE_'))),
      station: NGINX_WORK,
      startedAt: recordingStart,
      endedAt: Date.now(),
      answers: [...backgroundAnswers, ...stepAnswers],
      openAnswers: backgroundAnswers,
      clients: (at) => (steps.some((s) => at >= s.from && at < s.to) ? options.stepClients : 0),
      pool: poolWatch.samples(),
      decisions: await decisionWatch.stop(),
    });
    if (options.recordTo !== undefined) await saveRecordings(options.recordTo, [recorded]);
    const fidelity = [await replay(recorded)];

    const failed = trials.reduce((sum, t) => sum + t.failures.length, 0);
    const requests = trials.reduce((sum, t) => sum + t.stepRequests + t.backgroundRequests, 0);
    const figures: Figure[] = [
      { key: 'step-decision', metric: 'load step → first scale-up decision', unit: 'ms', ...spread(summarise(trials.map((t) => t.decisionMs))) },
      { key: 'step-serving', metric: 'load step → first request served by a new container', unit: 'ms', ...spread(summarise(trials.map((t) => t.firstServingMs))) },
      { metric: 'load step → every container of the scale-up serving', unit: 'ms', ...spread(summarise(trials.map((t) => t.allServingMs))), note: `peak replicas per trial: ${trials.map((t) => t.peakReplicas).join(', ')} (first decision asked for ${trials.map((t) => t.desired).join(', ')})` },
      { key: 'drop-first-down', metric: 'load dropped → first scale-down decision', unit: 'ms', ...spread(summarise(trials.map((t) => t.dropToFirstDownMs))) },
      { key: 'drop-minimum', metric: `load dropped → back to ${MINIMUM} replicas (containers and servers)`, unit: 'ms', ...spread(summarise(trials.map((t) => t.dropToMinimumMs))), note: `retirements per trial: ${trials.map((t) => `${t.retirements} (${t.forcedDrains} forced)`).join(', ')}` },
      { key: 'step-reloads-up', metric: 'HAProxy reloads while scaling up, per trial', unit: 'count', ...spread(summarise(trials.map((t) => t.reloadsUp))) },
      { key: 'step-reloads-down', metric: 'HAProxy reloads while scaling down, per retirement', unit: 'count', ...spread(summarise(trials.map((t) => (t.retirements === 0 ? 0 : t.reloadsDown / t.retirements)))) },
      { key: 'step-failed', metric: 'failed requests over every trial', unit: 'count', value: failed, note: `${requests} requests; failures: ${failed === 0 ? 'none' : [...new Set(trials.flatMap((t) => t.failures.map((f) => `${f.status} ${f.error ?? ''}`)))].slice(0, 3).join('; ')}` },
      {
        key: 'sim-serving-error',
        metric: 'simulator vs this run, second by second: mean |simulated − real| servers in rotation',
        unit: 'count',
        ...spread(summarise(fidelity.map((f) => f.serving.meanAbsoluteError))),
        note: 'the trials replayed in the simulator with the same load and settings (bench/sim/fidelity.ts)',
      },
    ];
    const notes = [
      ...fidelity.map((f) => `Fidelity: ${fidelityLine(f)}.`),
      `HAProxy ${local.haproxyVersion}, the ${driver === 'dataplane' ? 'Data Plane API driver' : 'runtime API driver'}; the sidecar as its own process; ${options.trials} trials on a Compose-style pool of ${MINIMUM} nginx replicas (minimum ${MINIMUM}, maximum ${MAXIMUM}), the autoscaler on (not a dry run), forecast off, request-rate target 20 req/s per instance (scale down below 10).`,
      `Step: ${options.stepClients} closed-loop clients on /work (a token bucket of 50 req/s per instance with 10 ms of work: the step saturates whatever pool it meets), from rest; held until every container started for it served and 3 s more, then dropped. A light open loop of ${options.backgroundRate} GET / per second runs through the whole trial, so the scale-downs happen under traffic; a failure is any non-2xx answer or a request with no answer, step and background.`,
      'Decision times are the decision records\' own timestamps (GET /v1/autoscaler); serving is the first answer of the step\'s own requests from a container that was not running at the step; back to the minimum is when Docker runs 2 containers of the project and HAProxy holds 2 servers of the sidecar\'s.',
      'This scenario used to fail with "the pool did not shrink back to 2 replicas within 240 s" (reproduced on 6d702ce, when HAProxy 2.6 was the local default): the Data Plane API v3.2 answers its runtime server endpoint with 404 "no data for be_app/<server>" against HAProxy 2.6, so every scale-down failed at its first step (setting the server to drain) and was tried again each interval while the pool stayed at its peak. The product has changed since: HAProxy 3.0 is the default, and the Data Plane API driver sets drain states through the runtime socket where the API cannot (sidecar/dataplane/driver.ts).',
      `Shortened from production defaults so that a trial fits the benchmark: autoscaler interval ${options.intervalMs} ms (default 30 000; the scale-down decisions come at it, and the scale-up and scale-down rate limits use it as their period), scale-down stabilisation window ${options.downWindowMs} ms (default 120 000). At their defaults: the breach check every 2 s between evaluations (it makes the scale-up decision, so the step → decision time does not depend on the interval), up to half the pool fewer per period, one scale-down at a time, drain poll 500 ms, drain deadline 60 s, docker stop grace 30 s, reconcile debounce 250 ms, health checks every 1 s (rise 1).`,
    ];
    return { id: 'load-step', driver, title: LOAD_STEP_TITLE, status: 'measured', figures, notes, data: { trials, fidelity: fidelity.map(({ perSecond: _, ...summary }) => summary) } };
  } finally {
    // A trial that failed leaves them polling: they stop before what they poll does.
    for (const watch of watches) await watch.stop();
    await sidecar?.stop();
    await pool?.stop();
  }
}
