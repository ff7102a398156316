// The autoscaler's scale-down end to end through the product, once per HAProxy driver: a
// Compose-style pool of three nginx replicas, a real sidecar with autoscaling on (minimum 2, no
// stabilisation window, forecast off) and a small constant load. The sidecar must pick the
// replica with the fewest sessions, drain its server, have the reconciler remove the server, and
// only then stop that container: exactly one container stopped, the one whose server was
// drained, the other two still serving, not one request failed.
//
// Which replica has the fewest sessions is made certain: long requests pinned (with HAProxy's
// persistence cookie) to two of the replicas keep a session open on each at every moment, so
// the third, the oldest, must be the victim, where the tie-break alone would pick the newest.
// HAProxy's state is read straight from its runtime socket, Docker's straight from the Engine.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { eventually } from '../support/http.js';
import type { LoadReport } from '../support/load.js';
import { startPacedLoad } from '../support/paced-load.js';
import { runtimeServerStates, type RuntimeServerState } from '../support/runtime.js';
import { adminClient, sidecarLogger, type AdminClient } from '../support/sidecar.js';

const binary = dataplaneApiBinary();

interface Replica {
  readonly number: number;
  readonly server: string;
  readonly container: TestContainer;
}

interface Observation {
  readonly at: number;
  readonly servers: readonly RuntimeServerState[];
  /** Container id → running, as Docker showed it just before the servers were read. */
  readonly running: ReadonlyMap<string, boolean>;
  /** The sidecar's own account of the scale-downs in progress (GET /v1/autoscaler inFlight). */
  readonly inFlight: readonly string[];
}

/** Closed-loop long requests pinned to one server by its persistence cookie. */
function pinnedSlowRequests(url: string, cookie: string, workers: number, staggerMs: number, deadlineMs: number) {
  let stopped = false;
  const statuses = new Map<number, number>();
  const servedBy = new Set<string>();
  const deadline = Date.now() + deadlineMs;
  const worker = async (index: number): Promise<void> => {
    await new Promise((resolve) => setTimeout(resolve, index * staggerMs));
    for (let i = 0; i < 200 && !stopped && Date.now() < deadline; i++) {
      let status = 0;
      try {
        const response = await fetch(url, { headers: { cookie }, signal: AbortSignal.timeout(20_000) });
        await response.arrayBuffer();
        servedBy.add(response.headers.get('x-served-by') ?? '');
        status = response.status;
      } catch {
        status = 0;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  const running = Promise.all(Array.from({ length: workers }, (_, i) => worker(i)));
  return {
    async stop(): Promise<{ statuses: Map<number, number>; servedBy: Set<string> }> {
      stopped = true;
      await running;
      return { statuses, servedBy };
    },
  };
}

describe.each<DriverChoice>(['runtime', 'dataplane'])('scale-down through the sidecar’s autoscaler (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const project = `hsc-test-${randomBytes(3).toString('hex')}`;
  // Another project on this Docker Engine (the demo, another run) may have a `web` service too:
  // discovery and the autoscaler are both scoped to this project.
  const service = 'web';
  const token = randomBytes(24).toString('hex');
  let haproxy: LocalHaproxy;
  let sidecar: RunningSidecar | undefined;
  let admin: AdminClient;
  const replicas: Replica[] = [];

  beforeAll(async () => {
    if (skip) return;
    // One after the other (each waits for Docker's healthcheck, seconds apart), so their creation
    // times differ and the planner's tie-break alone would pick the newest, number 3.
    for (const number of [1, 2, 3]) {
      const container = await startNginx({
        name: `${project}-${service}-${number}`,
        labels: { [COMPOSE_PROJECT]: project, [COMPOSE_SERVICE]: service, [COMPOSE_NUMBER]: String(number) },
      });
      replicas.push({ number, server: `hsc-${service}-${number}`, container });
    }
    haproxy = await startLocalHaproxy({ withDataplane: driver === 'dataplane' });
  });

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await haproxy?.stop();
    const all = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  });

  it.skipIf(skip)(
    'drains the replica with the fewest sessions, removes its server, then stops only that container',
    async () => {
      sidecar = await startSidecar(
        loadConfig({
          env: {
            ...haproxyEnv(haproxy, driver),
            HSC_DOCKER_ADDRESS_MODE: 'published',
            HSC_DOCKER_LABEL_PREFIX: project,
            HSC_DOCKER_COMPOSE_SERVICE: service,
            HSC_DOCKER_COMPOSE_PROJECT: project,
            HSC_DEFAULT_BACKEND: haproxy.backend,
            HSC_AUTOSCALE_ENABLED: 'true',
            HSC_AUTOSCALE_SERVICE: service,
            HSC_AUTOSCALE_PROJECT: project,
            HSC_AUTOSCALE_MIN: '2',
            HSC_AUTOSCALE_MAX: '4',
            HSC_AUTOSCALE_INTERVAL_MS: '1000',
            HSC_AUTOSCALE_DOWN_WINDOW_MS: '0',
            HSC_AUTOSCALE_FORECAST: 'off',
            // The pinned long requests are the test's doing, not slowness: keep the response
            // time out of the decision (request rate, queue and CPU decide).
            HSC_AUTOSCALE_RT_TARGET: '30',
            HSC_AUTOSCALE_RT_DOWN: '20',
            HSC_ADMIN_TOKEN: token,
            HSC_DRAIN_POLL_MS: '200',
            HSC_DRAIN_DEADLINE_MS: '30000',
            HSC_RECONCILE_DEBOUNCE_MS: '100',
            HSC_RESYNC_INTERVAL_MS: '2000',
            HSC_HTTP_PORT: '0',
          },
        }),
        { logger: sidecarLogger(`scale-down-${driver}`) },
      );
      admin = adminClient(sidecar.port, token);
      // Paused until the pool serves and the pinned sessions are in place (the first evaluation
      // is an interval away, so this lands before it).
      expect((await admin.post('/v1/autoscaler/pause')).status).toBe(200);

      // The sidecar discovers the three replicas and adds them; each answers through HAProxy.
      const cookies = new Map<string, string>();
      const allUp = await eventually(async () => {
        const states = await runtimeServerStates(haproxy);
        return replicas.every((r) => states.some((s) => s.name === r.server && s.operational === 2 && s.admin === 'ready'));
      }, 30_000, 100);
      expect(allUp, JSON.stringify(await runtimeServerStates(haproxy))).toBe(true);
      const seen = await eventually(async () => {
        const response = await fetch(`${haproxy.frontendUrl}/`, { signal: AbortSignal.timeout(5_000) });
        await response.arrayBuffer();
        const host = response.headers.get('x-served-by');
        const cookie = /SRVID=([^;]+)/.exec(response.headers.get('set-cookie') ?? '')?.[1];
        if (host !== null && cookie !== undefined) cookies.set(host, cookie);
        return replicas.every((r) => cookies.has(r.container.hostname));
      }, 10_000, 20);
      expect(seen, `persistence cookies seen: ${JSON.stringify([...cookies])}`).toBe(true);

      const [victim, ...keepers] = replicas as [Replica, Replica, Replica];
      const load = startPacedLoad(`${haproxy.frontendUrl}/`, { ratePerSecond: 20, maxDurationMs: 90_000, maxRequests: 1_800 });
      const pinned = keepers.map((r) =>
        pinnedSlowRequests(`${haproxy.frontendUrl}/slow?s=2`, `SRVID=${cookies.get(r.container.hostname) ?? ''}`, 3, 700, 90_000),
      );
      await new Promise((resolve) => setTimeout(resolve, 1_500));

      // Watch HAProxy and Docker from before the autoscaler acts until the victim's container is gone.
      const observations: Observation[] = [];
      const ids = replicas.map((r) => r.container.id);
      const isRunning = async (id: string): Promise<boolean> =>
        docker
          .getContainer(id)
          .inspect()
          .then((info) => info.State.Running, () => false);
      let watching = true;
      const watcher = (async () => {
        const deadline = Date.now() + 90_000;
        while (watching && Date.now() < deadline) {
          const running = new Map(await Promise.all(ids.map(async (id) => [id, await isRunning(id)] as const)));
          const servers = await runtimeServerStates(haproxy);
          const inFlight = ((await admin.get('/v1/autoscaler')).body.inFlight ?? []) as string[];
          observations.push({ at: Date.now(), running, servers, inFlight });
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();

      let report: LoadReport | undefined;
      let pinnedResults: Array<{ statuses: Map<number, number>; servedBy: Set<string> }> = [];
      try {
        expect((await admin.post('/v1/autoscaler/resume')).status).toBe(200);
        const stopped = await eventually(async () => !(await isRunning(victim.container.id)), 60_000, 200);
        expect(stopped, `${victim.server}'s container still runs 60 s after the autoscaler resumed`).toBe(true);
        // A few more evaluations: the pool is at its minimum, nothing else may go.
        await new Promise((resolve) => setTimeout(resolve, 3_000));
      } finally {
        watching = false;
        await watcher;
        report = await load.stop();
        pinnedResults = await Promise.all(pinned.map((p) => p.stop()));
      }

      // Exactly one container stopped (and removed by the sidecar): the victim.
      const left = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
      expect(left.map((c) => [c.Id, c.State]).sort()).toEqual(keepers.map((r) => [r.container.id, 'running']).sort());

      // In HAProxy: the victim's server went into drain, then was removed while its container
      // still ran; the other two never left ready and UP.
      const firstDrain = observations.find((o) => o.servers.some((s) => s.name === victim.server && s.admin === 'drain'));
      const firstGone = observations.find((o) => !o.servers.some((s) => s.name === victim.server));
      const firstStopped = observations.find((o) => o.running.get(victim.container.id) === false);
      const timeline = observations
        .filter((o, i) => i === 0 || JSON.stringify(o.servers.map((s) => [s.name, s.admin, s.operational])) !== JSON.stringify(observations[i - 1]?.servers.map((s) => [s.name, s.admin, s.operational])))
        .map((o) => `${o.at}: ${o.servers.map((s) => `${s.name}=${s.admin}/${s.operational}`).join(' ')} victim running ${o.running.get(victim.container.id)}`);
      expect(firstDrain, timeline.join('\n')).toBeDefined();
      expect(firstGone, timeline.join('\n')).toBeDefined();
      expect(firstStopped, timeline.join('\n')).toBeDefined();
      expect(firstDrain?.at ?? Infinity).toBeLessThan(firstGone?.at ?? -Infinity);
      expect(firstGone?.at ?? Infinity, timeline.join('\n')).toBeLessThanOrEqual(firstStopped?.at ?? -Infinity);
      // Never the container stopped while HAProxy still had its server.
      expect(observations.filter((o) => o.running.get(victim.container.id) === false && o.servers.some((s) => s.name === victim.server))).toEqual([]);
      for (const keeper of keepers) {
        const notServing = observations.filter((o) => !o.servers.some((s) => s.name === keeper.server && s.admin === 'ready' && s.operational === 2));
        expect(notServing.length, `${keeper.server}:\n${timeline.join('\n')}`).toBe(0);
      }
      expect((await runtimeServerStates(haproxy)).map((s) => [s.name, s.admin, s.operational])).toEqual(keepers.map((r) => [r.server, 'ready', 2]));

      // The sidecar's own account: one applied retirement, of the victim, and its drain ended drained.
      const state = await admin.get('/v1/autoscaler');
      const recent = state.body.recent as Array<{ applied: boolean; actions: Array<{ kind: string; server?: string }> }>;
      const applied = recent.filter((r) => r.applied).flatMap((r) => r.actions);
      expect(applied).toEqual([{ kind: 'retire', containerId: victim.container.id, server: victim.server }]);
      const inFlight = [...new Set(observations.flatMap((o) => o.inFlight))];
      expect(inFlight.length, 'the sidecar never showed the scale-down in progress').toBeGreaterThan(0);
      expect(inFlight.filter((entry) => !entry.startsWith(`${victim.server} `))).toEqual([]);
      expect(observations.at(-1)?.inFlight).toEqual([]);
      // Drained, not forced: a forced drain ends only at the deadline (30 s here).
      expect((firstGone?.at ?? Infinity) - (firstDrain?.at ?? 0)).toBeLessThan(30_000);

      // Not one request failed; the pinned long requests stayed on their replicas and completed.
      console.info(
        `[scale-down ${driver}, HAProxy ${haproxy.haproxyVersion}] ${report.sent} paced requests (${report.ok} 2xx, failures ${JSON.stringify(report.failures)}), ` +
          `pinned long requests ${pinnedResults.map((p) => JSON.stringify([...p.statuses])).join(' ')}; ` +
          `drain ${firstDrain === undefined || firstGone === undefined ? '?' : firstGone.at - firstDrain.at} ms before removal, ` +
          `container stopped ${firstGone === undefined || firstStopped === undefined ? '?' : firstStopped.at - firstGone.at} ms after`,
      );
      expect(report.failures).toEqual({});
      expect(report.ok).toBeGreaterThan(50);
      pinnedResults.forEach((p, i) => {
        expect([...p.statuses.keys()]).toEqual([200]);
        expect([...p.servedBy]).toEqual([keepers[i]?.container.hostname]);
      });
      // The two that are left serve.
      const servedBy = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const response = await fetch(`${haproxy.frontendUrl}/`, { signal: AbortSignal.timeout(5_000) });
        await response.arrayBuffer();
        expect(response.status).toBe(200);
        servedBy.add(response.headers.get('x-served-by') ?? '');
      }
      expect([...servedBy].sort()).toEqual(keepers.map((r) => r.container.hostname).sort());
    },
    180_000,
  );
});
