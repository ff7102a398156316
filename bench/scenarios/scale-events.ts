// Scenario 3, failed requests per scale-up and per scale-down under load. Each event gets its
// own window of closed-loop load on the frontend, so every failure is attributed to one event:
// - scale-up: a ready nginx container becomes a server (runtime add server with health checks,
//   enabled, until HAProxy shows it UP), as the sidecar adds a ready container;
// - scale-down: the oldest server is drained by the real drainer (sessions and queue from the
//   exporter), put in maintenance and deleted, then its container is stopped gracefully (nginx
//   quits on SIGQUIT after its requests) and removed, the sidecar's closed-loop order. Slow
//   requests are sent just before, so the victim usually holds one when its drain begins.
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { createDrainer } from '../../sidecar/drain/drainer.js';
import { silentLogger } from '../../sidecar/telemetry/logger.js';
import { startLoad, type LoadReport } from '../../test/support/load.js';
import { addRuntimeServer, removeRuntimeServer, runtimeDrainPorts, timedGet } from '../lib/haproxy.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { summarise } from '../lib/stats.js';

export interface ScaleEventsOptions {
  readonly cycles: number;
  readonly concurrency: number;
  readonly slowRequests: number;
  readonly log: (message: string) => void;
}

interface EventRecord {
  readonly cycle: number;
  readonly kind: 'up' | 'down';
  readonly requests: number;
  readonly failed: number;
  readonly failures: Readonly<Record<string, number>>;
  /** Scale-down: sessions on the victim as its drain began, and the slow requests' statuses. */
  readonly victimSessions?: number;
  readonly slowStatuses?: readonly number[];
  readonly drainOutcome?: string;
  readonly eventMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function scaleEventsScenario(options: ScaleEventsOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  let haproxy: LocalHaproxy | undefined;
  const pool = new Map<string, TestContainer>();
  const spare: TestContainer[] = [];
  let serial = 0;
  try {
    haproxy = await startLocalHaproxy({ purpose: 'bench', withDataplane: false });
    const local = haproxy;
    const ports = runtimeDrainPorts(local);
    const drainer = createDrainer({
      ports,
      pollMs: 500,
      deadlineMs: 30_000,
      now: () => Date.now(),
      sleep,
      logger: silentLogger,
    });
    for (const container of await Promise.all([startNginx({ owner: 'bench' }), startNginx({ owner: 'bench' })])) {
      const name = `hsc-web-${++serial}`;
      await addRuntimeServer(local, name, container.hostPort);
      pool.set(name, container);
    }

    const url = `${local.frontendUrl}/`;
    // Each window is bounded in time and count; it normally ends when its event is over.
    const window = () => startLoad(url, { concurrency: options.concurrency, maxDurationMs: 60_000, maxRequests: 200_000 });
    const failedCount = (report: LoadReport): number => Object.values(report.failures).reduce((a, b) => a + b, 0);
    const events: EventRecord[] = [];

    for (let cycle = 1; cycle <= options.cycles; cycle++) {
      // Scale-up: the container is started and healthy first (the sidecar adds only ready ones).
      const fresh = await startNginx({ owner: 'bench' });
      spare.push(fresh);
      const name = `hsc-web-${++serial}`;
      let load = window();
      await sleep(300);
      let began = performance.now();
      await addRuntimeServer(local, name, fresh.hostPort);
      let eventMs = performance.now() - began;
      spare.splice(spare.indexOf(fresh), 1);
      pool.set(name, fresh);
      await sleep(500);
      let report = await load.stop();
      events.push({ cycle, kind: 'up', requests: report.sent, failed: failedCount(report), failures: report.failures, eventMs });

      // Scale-down of the oldest server.
      const [victim, container] = [...pool.entries()][0] ?? [];
      if (victim === undefined || container === undefined) throw new Error('empty pool');
      load = window();
      const slow = Array.from({ length: options.slowRequests }, () => timedGet(`${local.frontendUrl}/slow?s=1`));
      await sleep(300);
      const victimSessions = (await ports.readLoad(local.backend, victim))?.sessions ?? -1;
      began = performance.now();
      const outcome = await drainer.drain(local.backend, victim, { reason: `bench cycle ${cycle}` });
      await removeRuntimeServer(local, victim);
      pool.delete(victim);
      await docker.getContainer(container.id).stop({ t: 10 });
      await container.remove();
      eventMs = performance.now() - began;
      await sleep(300);
      report = await load.stop();
      const slowStatuses = (await Promise.all(slow)).map((r) => r.status);
      const slowFailed = slowStatuses.filter((s) => s !== 200).length;
      events.push({
        cycle,
        kind: 'down',
        requests: report.sent + slowStatuses.length,
        failed: failedCount(report) + slowFailed,
        failures: report.failures,
        victimSessions,
        slowStatuses,
        drainOutcome: outcome.outcome,
        eventMs,
      });
      options.log(`scale events: cycle ${cycle}/${options.cycles}: failed up ${events.at(-2)?.failed}, down ${events.at(-1)?.failed}`);
    }

    const of = (kind: 'up' | 'down'): EventRecord[] => events.filter((e) => e.kind === kind);
    const [ups, downs] = [of('up'), of('down')];
    const requests = (es: readonly EventRecord[]): number => es.reduce((sum, e) => sum + e.requests, 0);
    const figures: Figure[] = [
      { metric: 'failed requests per scale-up', unit: 'count', ...spread(summarise(ups.map((e) => e.failed))), note: `${requests(ups)} requests in the scale-up windows` },
      { metric: 'failed requests per scale-down', unit: 'count', ...spread(summarise(downs.map((e) => e.failed))), note: `${requests(downs)} requests in the scale-down windows, slow ones included` },
      { metric: 'scale-up: runtime add server until HAProxy shows it UP', unit: 'ms', ...spread(summarise(ups.map((e) => e.eventMs))) },
      { metric: 'scale-down: drain, delete, stop container', unit: 'ms', ...spread(summarise(downs.map((e) => e.eventMs))) },
      { metric: 'sessions on the victim when its drain began', unit: 'count', ...spread(summarise(downs.map((e) => e.victimSessions ?? 0))) },
    ];
    const forced = downs.filter((e) => e.drainOutcome !== 'drained').length;
    const notes = [
      `${options.cycles} cycles of one scale-up (2 → 3 servers) and one scale-down (3 → 2, the oldest server) under closed-loop load of ${options.concurrency} concurrent GET / (test/support/load.ts), with ${options.slowRequests} /slow?s=1 requests sent 300 ms before each drain.`,
      'A failure is any answer that is not 2xx or a request with no answer (reset, timeout); each window runs from 300 ms before its event to 300–500 ms after it.',
      'Servers are added and deleted with the runtime API (add server / del server) and drained with the real drainer, because the Data Plane API binary is not available here; with it the sidecar adds and removes them in transactions, and the reload that follows is not part of these figures.',
      ...(forced > 0 ? [`${forced} drain(s) did not end as drained.`] : []),
    ];
    return { id: 'scale-events', title: 'Failed requests per scale-up and per scale-down under load', status: 'measured', figures, notes, data: { events } };
  } finally {
    await haproxy?.stop();
    await Promise.all([...pool.values(), ...spare].map((c) => c.remove()));
  }
}
