// Scenario 6, what needs the sidecar to write to HAProxy through the Data Plane API:
// - ready container → first request it serves through HAProxy, and reloads per added and per
//   removed server (the master CLI's reload count);
// - load step → the first scale-up decision, and → new capacity serving.
// Where the Data Plane API binary is missing (this workplace, see README) they report "not
// measured" and no figure: nothing here is simulated or estimated.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { COMPOSE_PROJECT } from '../../sidecar/scaling/docker.js';
import { startLoad } from '../../test/support/load.js';
import { serverSnapshots, timedGet, waitForServers } from '../lib/haproxy.js';
import { startPool, type BenchPool } from '../lib/pool.js';
import { NEEDS_DATAPLANE, spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';

export interface DataplaneOptions {
  readonly build: SidecarBuild;
  readonly readyTrials: number;
  readonly stepTrials: number;
  /** The autoscaler's interval for the load-step trials (the default is 30 s). */
  readonly stepIntervalMs: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

const READY_TITLE = 'Ready container → first request served through HAProxy; reloads per added and removed server';
const STEP_TITLE = 'Load step → first scale-up decision → new capacity serving';

export function dataplaneAvailable(): boolean {
  return dataplaneApiBinary() !== undefined;
}

export function notMeasured(): Array<Omit<ScenarioResult, 'seconds'>> {
  const why = [
    'The sidecar writes to HAProxy only through the Data Plane API, whose binary cannot be built on this workplace (README, "Data Plane API availability").',
    'bench/scenarios/dataplane.ts implements these measurements; they run as soon as devenv/versions.env pins a Data Plane API version that setup.sh can build.',
  ];
  return [
    { id: 'ready-to-served', title: READY_TITLE, status: 'not-measured', reason: NEEDS_DATAPLANE, figures: [], notes: why },
    { id: 'load-step', title: STEP_TITLE, status: 'not-measured', reason: NEEDS_DATAPLANE, figures: [], notes: why },
  ];
}

/** When Docker's healthcheck first passed: the end of the first successful probe, ms since the epoch. */
async function healthyAt(containerId: string): Promise<number> {
  const info = await docker.getContainer(containerId).inspect();
  const log = (info.State.Health as { Log?: Array<{ ExitCode: number; End: string }> } | undefined)?.Log ?? [];
  const first = log.find((entry) => entry.ExitCode === 0);
  if (first === undefined) throw new Error(`container ${containerId.slice(0, 12)} has no passing healthcheck yet`);
  // Docker writes nanoseconds; Date.parse wants at most milliseconds.
  const at = Date.parse(first.End.replace(/(\.\d{3})\d+/, '$1'));
  if (Number.isNaN(at)) throw new Error(`cannot read the healthcheck time ${first.End}`);
  return at;
}

/** GETs `url` every `everyMs` until an answer comes from a host not in `known`; wall-clock time and host. */
async function firstNewHost(url: string, known: ReadonlySet<string>, everyMs: number, timeoutMs: number, stop: { stopped: boolean }): Promise<{ at: number; host: string } | undefined> {
  const deadline = Date.now() + timeoutMs;
  while (!stop.stopped && Date.now() < deadline) {
    const answer = await timedGet(url, 5_000);
    if (answer.status === 200 && answer.servedBy !== null && !known.has(answer.servedBy)) return { at: Date.now(), host: answer.servedBy };
    await sleep(everyMs);
  }
  return undefined;
}

export async function readyToServedScenario(options: DataplaneOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const tag = randomBytes(3).toString('hex');
  const labelPrefix = `hscbench${tag}`;
  const labels = { [`${labelPrefix}.enable`]: 'true' };
  let haproxy: LocalHaproxy | undefined;
  let sidecar: SidecarProcess | undefined;
  const containers: TestContainer[] = [];
  try {
    const base = await startNginx({ owner: 'bench', name: `${labelPrefix}-base`, labels });
    containers.push(base);
    haproxy = await startLocalHaproxy({ purpose: 'bench' });
    const local = haproxy;
    if (local.dataplaneUrl === undefined) throw new Error('HAProxy started without its Data Plane API');
    sidecar = await startSidecarProcess(
      options.build,
      {
        HSC_DATAPLANE_URL: local.dataplaneUrl,
        HSC_DATAPLANE_USERNAME: local.dataplaneUser,
        HSC_DATAPLANE_PASSWORD: local.dataplanePassword,
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_LABEL_PREFIX: labelPrefix,
        HSC_DOCKER_COMPOSE_SERVICE: `none-${labelPrefix}`,
        HSC_DEFAULT_BACKEND: local.backend,
        HSC_HAPROXY_METRICS_URL: local.metricsUrl,
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_HTTP_PORT: String(await freePort()),
      },
      join(options.workDir, 'ready-to-served-sidecar.log'),
    );
    const baseServer = `hsc-${labelPrefix}-base`;
    await waitForServers(local, 'the base server UP', (s) => s.some((x) => x.name === baseServer && x.state === 'UP'), 60_000);

    interface Trial {
      readonly readyToServedMs: number;
      readonly reloadsAdd: number;
      readonly reloadsRemove: number;
    }
    const trials: Trial[] = [];
    const settleMs = 2_000;
    for (let i = 1; i <= options.readyTrials; i++) {
      const reloads0 = await local.reloadCount();
      const stop = { stopped: false };
      // Polling starts before the container exists, so the first answer it serves is never missed.
      const served = firstNewHost(`${local.frontendUrl}/`, new Set([base.hostname]), 20, 60_000, stop);
      let container: TestContainer;
      try {
        container = await startNginx({ owner: 'bench', name: `${labelPrefix}-t${i}`, labels });
      } catch (error) {
        stop.stopped = true;
        await served;
        throw error;
      }
      containers.push(container);
      const first = await served;
      if (first === undefined || first.host !== container.hostname) throw new Error(`trial ${i}: the new container never served through HAProxy`);
      const readyToServedMs = first.at - (await healthyAt(container.id));
      await sleep(settleMs);
      const reloads1 = await local.reloadCount();

      const server = `hsc-${labelPrefix}-t${i}`;
      await container.remove();
      containers.splice(containers.indexOf(container), 1);
      await waitForServers(local, `${server} removed`, (s) => !s.some((x) => x.name === server), 60_000);
      await sleep(settleMs);
      const reloads2 = await local.reloadCount();
      trials.push({ readyToServedMs, reloadsAdd: reloads1 - reloads0, reloadsRemove: reloads2 - reloads1 });
      if (i % 5 === 0) options.log(`ready → served: ${i}/${options.readyTrials} trials`);
    }
    const figures: Figure[] = [
      { metric: 'container healthy → first request served by it through HAProxy', unit: 'ms', ...spread(summarise(trials.map((t) => t.readyToServedMs))) },
      { metric: 'HAProxy reloads per added server', unit: 'count', ...spread(summarise(trials.map((t) => t.reloadsAdd))) },
      { metric: 'HAProxy reloads per removed server', unit: 'count', ...spread(summarise(trials.map((t) => t.reloadsRemove))) },
    ];
    const notes = [
      `${options.readyTrials} trials, each: a labelled nginx container starts beside one base server; ready = the end of its first passing Docker healthcheck (Docker's own timestamp); served = the first answer it gives to GET / through HAProxy, polled every 20 ms from before the container was created.`,
      `Reloads: the master CLI's reload count (show proc) before the container, ${settleMs} ms after its first answer, and ${settleMs} ms after its server left (the container force-removed).`,
      'The sidecar: its own process, configuration defaults (debounce 250 ms), the Data Plane API started by devenv/localenv.ts with a 200 ms reload delay.',
    ];
    return { id: 'ready-to-served', title: READY_TITLE, status: 'measured', figures, notes, data: { trials } };
  } finally {
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all(containers.map((c) => c.remove()));
  }
}

export async function loadStepScenario(options: DataplaneOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  let pool: BenchPool | undefined;
  let sidecar: SidecarProcess | undefined;
  try {
    pool = await startPool(options.build, 2, true);
    const local = pool.haproxy;
    sidecar = await pool.startSidecar(join(options.workDir, 'load-step-sidecar.log'), {
      HSC_AUTOSCALE_DRY_RUN: 'false',
      HSC_AUTOSCALE_INTERVAL_MS: String(options.stepIntervalMs),
      // /work serves at most 50 req/s per instance: a target of 20 per instance makes a step
      // to ~100 req/s ask for about 5 instances.
      HSC_AUTOSCALE_RPS_TARGET: '20',
      HSC_AUTOSCALE_RPS_DOWN: '10',
      HSC_AUTOSCALE_FORECAST: 'off',
      HSC_AUTOSCALE_MIN: '2',
      HSC_AUTOSCALE_MAX: '6',
      // Scale-down takes the highest recommendation of this window: long enough to hold the
      // capacity while the step's load runs, short enough that the pool shrinks back to two
      // between trials by the sidecar's own closed loop (drain, remove, stop).
      HSC_AUTOSCALE_DOWN_WINDOW_MS: String(2 * options.stepIntervalMs),
    });
    const admin = sidecar.adminUrl;
    const project = pool.project;
    const runningHosts = async (): Promise<Set<string>> => {
      const list = await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
      const infos = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
      return new Set(infos.map((i) => i.Config.Hostname));
    };
    const recentDecisions = async (): Promise<Array<{ at: number; direction: string; desired: number }>> => {
      const response = await fetch(`${admin}/v1/autoscaler`, { signal: AbortSignal.timeout(10_000) });
      if (!response.ok) throw new Error(`GET /v1/autoscaler: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { recent?: Array<{ at: number; direction: string; desired: number }> }).recent ?? [];
    };

    interface Trial {
      readonly decisionMs: number;
      readonly servingMs: number;
      readonly desired: number;
    }
    const trials: Trial[] = [];
    for (let i = 1; i <= options.stepTrials; i++) {
      // Two evaluations without load, so the request rate has a baseline before the step.
      await sleep(2 * options.stepIntervalMs);
      const known = await runningHosts();
      const stepAt = Date.now();
      const load = startLoad(`${local.frontendUrl}/work`, { concurrency: 12, maxDurationMs: 120_000, maxRequests: 20_000 });
      const stop = { stopped: false };
      const serving = firstNewHost(`${local.frontendUrl}/`, known, 100, 110_000, stop);
      let decision: { at: number; desired: number } | undefined;
      const deadline = Date.now() + 110_000;
      while (decision === undefined && Date.now() < deadline) {
        const up = (await recentDecisions()).find((r) => r.at >= stepAt && r.direction === 'up');
        if (up !== undefined) decision = { at: up.at, desired: up.desired };
        else await sleep(200);
      }
      const first = await serving;
      stop.stopped = true;
      await load.stop();
      if (decision === undefined || first === undefined) throw new Error(`trial ${i}: ${decision === undefined ? 'no scale-up decision' : 'no new capacity served'} within 110 s`);
      trials.push({ decisionMs: decision.at - stepAt, servingMs: first.at - stepAt, desired: decision.desired });
      options.log(`load step: trial ${i}/${options.stepTrials}: decision after ${decision.at - stepAt} ms, serving after ${first.at - stepAt} ms`);

      // Without load the policy shrinks the pool back to two (one replica per interval).
      const back = Date.now() + 240_000;
      while ((await runningHosts()).size > 2 || (await serverSnapshots(local)).filter((s) => s.name.startsWith('hsc-')).length > 2) {
        if (Date.now() > back) throw new Error(`trial ${i}: the pool did not shrink back to 2 replicas within 240 s`);
        await sleep(1_000);
      }
    }
    const figures: Figure[] = [
      { metric: 'load step → first scale-up decision', unit: 'ms', ...spread(summarise(trials.map((t) => t.decisionMs))) },
      { metric: 'load step → first request served by a new container', unit: 'ms', ...spread(summarise(trials.map((t) => t.servingMs))) },
    ];
    const notes = [
      `${options.stepTrials} trials on a pool of 2 replicas: from idle to 12 concurrent clients on /work (at most 50 req/s per instance), the autoscaler every ${options.stepIntervalMs} ms (the default is 30 000 ms: the decision time scales with it), 20 req/s per instance as its target, forecast off.`,
      'Decision time is the decision record\'s own timestamp (GET /v1/autoscaler); serving is the first answer to GET / (polled every 100 ms) from a container that was not running at the step.',
      `After each trial the load stops and the sidecar itself shrinks the pool back to 2 (scale-down window ${2 * options.stepIntervalMs} ms, then one replica per interval, each drained, removed and stopped).`,
    ];
    return { id: 'load-step', title: STEP_TITLE, status: 'measured', figures, notes, data: { trials } };
  } finally {
    await sidecar?.stop();
    await pool?.stop();
    // Replicas the sidecar started are clones of the pool's, with its owner label.
    if (pool !== undefined) {
      const list = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${pool.project}`] } });
      await Promise.all(list.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    }
  }
}
