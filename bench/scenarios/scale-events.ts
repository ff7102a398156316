// Scale events through the product, once per HAProxy driver: a Compose-style pool of two nginx
// replicas, a sidecar process with autoscaling on, and an open-loop load on the frontend for the
// whole scenario. Each cycle sets the count by the admin API (PUT /v1/autoscaler/replicas), so
// the sidecar's own code does everything after that:
// - scale-up 2 → 3: the autoscaler starts a copy of the newest replica (Docker), the reconciler
//   adds its server once Docker says healthy (dataplane: POST at run time + `enable health`;
//   runtime: managed region, then `add server`), HAProxy's check brings it UP;
// - scale-down 3 → 2: the autoscaler retires the replica with the fewest sessions (a durable
//   record), drains its server until idle, the reconciler removes the server (dataplane: one
//   transaction, one reload; runtime: maint, `wait srv-removable`, `del server`), and only then
//   the container is stopped (SIGQUIT, nginx finishes its requests) and removed.
// Per event: HAProxy reloads (master CLI's count before and after), failed requests (every request
// sent in the event's window), and for scale-up the time from the container's first passing
// Docker healthcheck (the moment the sidecar may add it) to the first answer it gave through
// HAProxy.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { healthyAt, serverSnapshots, timedGet } from '../lib/haproxy.js';
import { startPool, type BenchPool } from '../lib/pool.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import type { SidecarBuild, SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';
import { startTraffic, type Failure, type TrafficReport } from '../lib/traffic.js';

export interface ScaleEventsOptions {
  readonly build: SidecarBuild;
  readonly driver: DriverChoice;
  readonly cycles: number;
  /** Requests per second on GET / for the whole scenario. */
  readonly ratePerSecond: number;
  /** /slow?s=1 requests sent 300 ms before each scale-down, so the victim likely holds one. */
  readonly slowRequests: number;
  /** The autoscaler's interval; see the note on manual scale-downs below. */
  readonly intervalMs: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

interface UpEvent {
  readonly cycle: number;
  readonly container: string;
  readonly server: string | undefined;
  readonly reloads: number;
  readonly sent: number;
  readonly failures: readonly Failure[];
  /** First passing Docker healthcheck → first answer through HAProxy. */
  readonly readyToServedMs: number;
  /** PUT replicas → first answer through HAProxy. */
  readonly commandToServedMs: number;
}

interface DownEvent {
  readonly cycle: number;
  readonly server: string;
  readonly reloads: number;
  readonly sent: number;
  readonly failures: readonly Failure[];
  /** PUT replicas → server gone from HAProxy, → container gone from Docker. */
  readonly serverGoneMs: number;
  readonly containerGoneMs: number;
  /** Sessions on the victim just before the scale-down command (it has the fewest). */
  readonly victimSessions: number;
  readonly slowStatuses: readonly number[];
}

/** The settle time after an event before its reloads are read and its window closes. */
const SETTLE_MS = 1_000;
const EVENT_TIMEOUT_MS = 60_000;

interface DecisionRecord {
  readonly at: number;
  readonly applied: boolean;
  readonly actions: ReadonlyArray<{ readonly kind: string; readonly containerId?: string; readonly server?: string }>;
}

async function setReplicas(sidecar: SidecarProcess, replicas: number): Promise<void> {
  const answer = await sidecar.admin('PUT', '/v1/autoscaler/replicas', { replicas }, 30_000);
  if (answer.status !== 200) throw new Error(`PUT /v1/autoscaler/replicas ${replicas}: ${answer.status} ${JSON.stringify(answer.body)}`);
}

/** The first applied retirement the sidecar decided at or after `since` (GET /v1/autoscaler). */
async function retirementSince(sidecar: SidecarProcess, since: number): Promise<{ containerId: string; server: string } | undefined> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const answer = await sidecar.admin('GET', '/v1/autoscaler');
    const recent = (answer.body as { recent?: DecisionRecord[] }).recent ?? [];
    for (const record of recent) {
      const retire = record.at >= since && record.applied ? record.actions.find((a) => a.kind === 'retire') : undefined;
      if (retire?.containerId !== undefined && retire.server !== undefined) return { containerId: retire.containerId, server: retire.server };
    }
    await sleep(50);
  }
  return undefined;
}

export async function scaleEventsScenario(options: ScaleEventsOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { driver } = options;
  let pool: BenchPool | undefined;
  let sidecar: SidecarProcess | undefined;
  try {
    pool = await startPool(options.build, 2, driver);
    const local = pool.haproxy;
    const logFile = join(options.workDir, `scale-events-${driver}-sidecar.log`);
    sidecar = await pool.startSidecar(logFile, {
      HSC_AUTOSCALE_DRY_RUN: 'false',
      HSC_AUTOSCALE_MIN: '2',
      HSC_AUTOSCALE_MAX: '3',
      HSC_AUTOSCALE_INTERVAL_MS: String(options.intervalMs),
      HSC_LOG_LEVEL: 'debug',
    });
    const side = sidecar;
    // Manual at once (before the first evaluation, an interval after start): the policy must not
    // act on the benchmark's load; each cycle sets the count.
    await setReplicas(side, 2);

    const traffic = startTraffic(`${local.frontendUrl}/`, { ratePerSecond: options.ratePerSecond, maxDurationMs: 15 * 60_000, maxRequests: options.ratePerSecond * 15 * 60 });
    const ups: UpEvent[] = [];
    const downs: DownEvent[] = [];
    const reloadsAtStart = await local.reloadCount();
    const trafficStart = Date.now();
    let stopped: TrafficReport | undefined;
    try {
      await sleep(1_000);
      for (let cycle = 1; cycle <= options.cycles; cycle++) {
        // Scale-up.
        const before = await pool.replicasNow();
        const serversBefore = new Set((await serverSnapshots(local)).map((s) => s.name));
        let reloads0 = await local.reloadCount();
        let from = Date.now();
        await setReplicas(side, 3);
        let fresh: [string, string] | undefined;
        const startDeadline = Date.now() + EVENT_TIMEOUT_MS;
        while (fresh === undefined && Date.now() < startDeadline) {
          fresh = [...(await pool.replicasNow())].find(([id]) => !before.has(id));
          if (fresh === undefined) await sleep(100);
        }
        if (fresh === undefined) throw new Error(`cycle ${cycle}: the sidecar started no container within ${EVENT_TIMEOUT_MS} ms`);
        const [id, hostname] = fresh;
        const served = await traffic.waitForHost(hostname, EVENT_TIMEOUT_MS);
        if (served === undefined) throw new Error(`cycle ${cycle}: the new container ${hostname} never answered through HAProxy`);
        const ready = await healthyAt(id);
        await sleep(SETTLE_MS);
        let window = traffic.between(from, Date.now());
        const server = (await serverSnapshots(local)).map((s) => s.name).find((name) => !serversBefore.has(name));
        ups.push({
          cycle,
          container: id,
          server,
          reloads: (await local.reloadCount()) - reloads0,
          sent: window.sent,
          failures: window.failures,
          readyToServedMs: served - ready,
          commandToServedMs: served - from,
        });

        // Scale-down.
        const slow = Array.from({ length: options.slowRequests }, () => timedGet(`${local.frontendUrl}/slow?s=1`));
        await sleep(300);
        reloads0 = await local.reloadCount();
        from = Date.now() - 300;
        const sessionsBefore = new Map((await serverSnapshots(local)).map((s) => [s.name, s.currentSessions]));
        await setReplicas(side, 2);
        // The victim from the sidecar's own record: the PUT's answer is its own evaluation, and an
        // evaluation of the control loop that was under way may have been the one to act on it.
        const retire = await retirementSince(side, from);
        if (retire === undefined) throw new Error(`cycle ${cycle}: no retirement recorded within 10 s of the scale-down command`);
        const victim = retire.server;
        const victimSessions = sessionsBefore.get(victim);
        if (victimSessions === undefined) throw new Error(`cycle ${cycle}: the victim ${victim} was not among HAProxy's servers before the command (${[...sessionsBefore.keys()].join(', ')})`);
        let serverGone: number | undefined;
        let containerGone: number | undefined;
        const downDeadline = Date.now() + EVENT_TIMEOUT_MS;
        while ((serverGone === undefined || containerGone === undefined) && Date.now() < downDeadline) {
          if (serverGone === undefined && !(await serverSnapshots(local)).some((s) => s.name === victim)) serverGone = Date.now();
          if (containerGone === undefined && !(await pool.replicasNow()).has(retire.containerId)) containerGone = Date.now();
          await sleep(50);
        }
        if (serverGone === undefined || containerGone === undefined) {
          throw new Error(`cycle ${cycle}: ${victim} ${serverGone === undefined ? 'still in HAProxy' : 'removed, but its container still runs'} ${EVENT_TIMEOUT_MS} ms after the scale-down`);
        }
        const slowStatuses = (await Promise.all(slow)).map((r) => r.status);
        await sleep(SETTLE_MS);
        window = traffic.between(from, Date.now());
        downs.push({
          cycle,
          server: victim,
          reloads: (await local.reloadCount()) - reloads0,
          sent: window.sent + slowStatuses.length,
          failures: [...window.failures, ...slowStatuses.filter((s) => s !== 200).map((status) => ({ sentAt: from, endedAt: from, status, error: 'slow request' }))],
          serverGoneMs: serverGone - from,
          containerGoneMs: containerGone - from,
          victimSessions,
          slowStatuses,
        });
        options.log(
          `scale events (${driver}): cycle ${cycle}/${options.cycles}: up: ${ups.at(-1)?.readyToServedMs} ms ready → served, ${ups.at(-1)?.reloads} reload(s), ${ups.at(-1)?.failures.length} failed; ` +
            `down: ${containerGone - from} ms, ${downs.at(-1)?.reloads} reload(s), ${downs.at(-1)?.failures.length} failed`,
        );
      }
    } finally {
      stopped = await traffic.stop();
    }
    const report = stopped;
    const reloadsTotal = (await local.reloadCount()) - reloadsAtStart;
    const trafficSeconds = (Date.now() - trafficStart) / 1000;

    const failed = (events: ReadonlyArray<{ failures: readonly Failure[] }>): number[] => events.map((e) => e.failures.length);
    const total = (events: ReadonlyArray<{ sent: number }>): number => events.reduce((sum, e) => sum + e.sent, 0);
    const describe = (failures: readonly Failure[]): string =>
      failures.length === 0 ? 'none' : [...new Set(failures.map((f) => `${f.status}${f.error === undefined ? '' : ` ${f.error}`}`))].slice(0, 3).join('; ');
    const inWindows = [...ups, ...downs].reduce((sum, e) => sum + e.failures.length, 0);
    const figures: Figure[] = [
      { key: 'reloads-up', metric: 'HAProxy reloads per scale-up', unit: 'count', ...spread(summarise(ups.map((e) => e.reloads))) },
      { key: 'reloads-down', metric: 'HAProxy reloads per scale-down (one server per batch)', unit: 'count', ...spread(summarise(downs.map((e) => e.reloads))) },
      {
        key: 'ready-to-served',
        metric: 'container healthy → first request it served through HAProxy',
        unit: 'ms',
        ...spread(summarise(ups.map((e) => e.readyToServedMs))),
        note: 'healthy = the end of its first passing Docker healthcheck (Docker\'s timestamp), when the sidecar may add it; served = the end of the first 2xx answer carrying its X-Served-By',
      },
      { metric: 'scale-up command → first request served by the new container', unit: 'ms', ...spread(summarise(ups.map((e) => e.commandToServedMs))), note: 'includes Docker creating and starting the container and its first healthcheck (the image checks every 2 s)' },
      { key: 'failed-up', metric: 'failed requests per scale-up', unit: 'count', ...spread(summarise(failed(ups))), note: `${total(ups)} requests in the scale-up windows; failures: ${describe(ups.flatMap((e) => e.failures))}` },
      { key: 'failed-down', metric: 'failed requests per scale-down', unit: 'count', ...spread(summarise(failed(downs))), note: `${total(downs)} requests in the scale-down windows, slow ones included; failures: ${describe(downs.flatMap((e) => e.failures))}` },
      {
        key: 'failed-all',
        metric: 'failed requests over the whole scenario',
        unit: 'count',
        value: report.failures.length,
        note: `${report.sent} requests in ${trafficSeconds.toFixed(0)} s (${report.failures.length - inWindows} outside the event windows); failures: ${describe(report.failures)}`,
      },
      { metric: 'scale-down command → server gone from HAProxy', unit: 'ms', ...spread(summarise(downs.map((e) => e.serverGoneMs))) },
      { metric: 'scale-down command → container gone', unit: 'ms', ...spread(summarise(downs.map((e) => e.containerGoneMs))) },
      { metric: 'sessions on the victim just before the scale-down command', unit: 'count', ...spread(summarise(downs.map((e) => e.victimSessions))) },
      { key: 'reloads-all', metric: 'HAProxy reloads over the whole scenario', unit: 'count', value: reloadsTotal, note: `${options.cycles} scale-ups and ${options.cycles} scale-downs` },
    ];
    const notes = [
      `HAProxy ${local.haproxyVersion} (${local.haproxyBinary === '/usr/sbin/haproxy' ? "Debian 12's package" : 'devenv/versions.ts haproxyBinary()'}), the ${driver === 'dataplane' ? 'Data Plane API driver (the API started by devenv/localenv.ts, reload delay 200 ms; the runtime socket configured, so additions go in without a reload)' : 'runtime API driver (managed region of haproxy.cfg, never a reload)'}; the sidecar as its own process (compiled sidecar/).`,
      `${options.cycles} cycles of scale-up 2 → 3 and scale-down 3 → 2, each set through the admin API (PUT /v1/autoscaler/replicas, which puts the autoscaler in manual mode); everything after the command is the sidecar's: Docker start like the newest replica, discovery, reconcile, drain, removal, stop.`,
      `Load: open loop, ${options.ratePerSecond} GET / per second for the whole scenario (Node fetch, keep-alive), plus ${options.slowRequests} GET /slow?s=1 sent 300 ms before each scale-down. A failure is any answer that is not 2xx or a request with no answer. Windows: scale-up from the command to ${SETTLE_MS} ms after the new container's first answer; scale-down from 300 ms before the command to ${SETTLE_MS} ms after its container is gone.`,
      `Reloads: the master CLI's reload count (show proc) at the start and the end of each window.`,
      `Settings that differ from production defaults: autoscaler interval ${options.intervalMs} ms (default 30 000), reconcile and drain timings at their defaults (debounce 250 ms, drain poll 500 ms, deadline 60 s, stop grace 30 s). A scale-down set by hand is moved on by the control loop only from its next evaluation on: the PUT's evaluation records the retirement and puts the server in drain, but the loop (sidecar/autoscale/loop.ts) had scheduled its next tick an interval away, as no retirement was in progress at its last pass; the scale-down durations include up to one interval of that wait. The autoscaler's own scale-downs start inside a tick and are polled every drain poll period at once.`,
    ];
    const leftover = (await serverSnapshots(local)).filter((s) => s.name.startsWith('hsc-')).length;
    if (leftover !== 2) notes.push(`At the end HAProxy showed ${leftover} servers of the sidecar's, not 2.`);
    return {
      id: 'scale-events',
      driver,
      title: 'Scale-up and scale-down through the sidecar under load: reloads, ready → served, failed requests',
      status: 'measured',
      figures,
      notes,
      data: { ups, downs, reloadsTotal, traffic: { sent: report.sent, ok: report.ok, failures: report.failures } },
    };
  } finally {
    await sidecar?.stop();
    await pool?.stop();
  }
}
