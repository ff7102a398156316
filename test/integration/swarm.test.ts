// The sidecar in Swarm mode on a real multi-node Swarm (test/support/swarm-cluster.ts): three
// Docker engines in containers on this machine (a manager, two workers), an overlay network,
// HAProxy on the manager attached to it, and the application as a replicated Swarm service
// spread over the nodes. A real sidecar on the host talks to the manager's API and to HAProxy's
// runtime socket. Under a paced load from 127.0.0.1 it must:
//   - put every task of the service into HAProxy, named <service>.<slot>.<node>;
//   - scale up across the nodes through the service's replica count, 0 failed requests;
//   - scale down twice, each time draining the task Swarm then stops and no other, 0 failed;
//   - carry a scale-down on after being stopped in the middle of its drain (a new sidecar on the
//     same state file), 0 failed, the drained task the one that stops;
//   - roll the service out to a new environment with hsc rollout (POST /v1/rollouts: Swarm's own
//     update, start-first, baked on HAProxy's figures), 0 failed; roll one back on the operator's
//     word mid-bake, 0 failed, the task that never changed left alone; carry one on after the
//     sidecar was stopped mid-rollout; roll one to an image answering 500 back on its own;
//   - replace the servers of a worker lost outright by those of the tasks Swarm reschedules,
//     requests failing only while HAProxy could still send them to the lost node.
// The figures (failed requests per event, times to converge) are printed at the end.
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureNginxVariant } from '../../devenv/containers.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { parseTask } from '../../sidecar/docker/swarm.js';
import type { SwarmTask } from '../../sidecar/docker/swarm-plan.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { eventually } from '../support/http.js';
import type { LoadReport, RunningLoad } from '../support/load.js';
import { startPacedLoad } from '../support/paced-load.js';
import { sidecarLogger } from '../support/sidecar.js';
import { startSwarmCluster, sweepSwarmLeftovers, type SwarmCluster, type SwarmNode } from '../support/swarm-cluster.js';

const SERVICE = 'web';
const token = randomBytes(24).toString('hex');

interface ServerState {
  readonly name: string;
  readonly address: string;
  /** srv_op_state 2: running (UP). */
  readonly up: boolean;
  readonly admin: 'ready' | 'drain' | 'maint';
}

/** `show servers state` straight off HAProxy's runtime socket, not through the sidecar. */
async function serverStates(socket: string, backend: string): Promise<ServerState[]> {
  const answer = await new Promise<string>((resolve, reject) => {
    const connection = createConnection(socket);
    let text = '';
    connection.setTimeout(5_000, () => connection.destroy(new Error('runtime socket timeout')));
    connection.on('connect', () => connection.end(`show servers state ${backend}\n`));
    connection.on('data', (chunk) => (text += chunk.toString()));
    connection.on('end', () => resolve(text));
    connection.on('error', reject);
  });
  const lines = answer.split('\n').filter((l) => l.trim() !== '');
  const header = lines.find((l) => l.startsWith('# '))?.slice(2).trim().split(/\s+/) ?? [];
  const at = (name: string): number => header.indexOf(name);
  return lines
    .filter((l) => !l.startsWith('#') && l.trim().split(/\s+/).length >= header.length)
    .map((l) => {
      const f = l.trim().split(/\s+/);
      const flags = Number(f[at('srv_admin_state')]);
      return {
        name: f[at('srv_name')] ?? '',
        address: f[at('srv_addr')] ?? '',
        up: f[at('srv_op_state')] === '2',
        admin: (flags & 0x27) !== 0 ? 'maint' : (flags & 0x18) !== 0 ? 'drain' : 'ready',
      } satisfies ServerState;
    })
    .sort((a, b) => a.name.localeCompare(b.name));
}

describe('Swarm mode on a three-node Swarm', () => {
  let cluster: SwarmCluster;
  let sidecar: RunningSidecar | undefined;
  let adminPort = 0;
  const figures: string[] = [];
  let nodeNames = new Map<string, string>();

  const sidecarEnv = (extra: Record<string, string> = {}) => ({
    HSC_DOCKER_MODE: 'swarm',
    // Through the stack's Docker API proxy (Swarm allowlist), as in stack/swarm.yaml.
    HSC_DOCKER_SOCKET: cluster.proxySocket,
    HSC_DOCKER_NETWORK: cluster.overlay,
    HSC_DOCKER_COMPOSE_SERVICE: SERVICE,
    HSC_DEFAULT_BACKEND: cluster.backend,
    HSC_HAPROXY_DRIVER: 'runtime',
    HSC_HAPROXY_RUNTIME_SOCKET: cluster.runtimeSocket,
    HSC_HAPROXY_CONFIG_FILE: cluster.configFile,
    HSC_HAPROXY_METRICS_URL: cluster.metricsUrl,
    HSC_HAPROXY_CHECK_INTERVAL_MS: '500',
    HSC_AUTOSCALE_ENABLED: 'true',
    HSC_AUTOSCALE_SERVICE: SERVICE,
    HSC_AUTOSCALE_MIN: '1',
    HSC_AUTOSCALE_MAX: '6',
    HSC_AUTOSCALE_INTERVAL_MS: '1000',
    HSC_AUTOSCALE_DOWN_WINDOW_MS: '0',
    HSC_AUTOSCALE_FORECAST: 'off',
    HSC_AUTOSCALE_STATE_FILE: join(cluster.dir, 'retirements.json'),
    HSC_ADMIN_TOKEN: token,
    HSC_DRAIN_POLL_MS: '200',
    HSC_DRAIN_DEADLINE_MS: '20000',
    HSC_RECONCILE_DEBOUNCE_MS: '100',
    // Swarm has no event for a task's state: the periodic pass is how a new task is seen.
    HSC_RESYNC_INTERVAL_MS: '1000',
    HSC_HTTP_PORT: '0',
    ...extra,
  });

  async function start(extra: Record<string, string> = {}, name = 'swarm'): Promise<void> {
    sidecar = await startSidecar(loadConfig({ env: sidecarEnv(extra) }), { logger: sidecarLogger(name) });
    adminPort = sidecar.port;
  }

  const admin = async (method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown): Promise<Record<string, unknown>> => {
    const response = await fetch(`http://127.0.0.1:${adminPort}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(20_000),
    });
    const parsed = (await response.json()) as Record<string, unknown>;
    if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(parsed)}`);
    return parsed;
  };

  /** Every task of the service the manager knows, current or historic. */
  async function tasks(): Promise<SwarmTask[]> {
    const raw = await cluster.api.listTasks({ filters: { service: [SERVICE] } });
    return raw.map(parseTask).filter((t): t is SwarmTask => t !== undefined);
  }
  const wanted = (list: readonly SwarmTask[]) => list.filter((t) => t.desiredState === 'running');
  const serverOf = (t: SwarmTask): string => `hsc-${SERVICE}.${t.slot}.${nodeNames.get(t.nodeId) ?? '?'}`;
  const servers = () => serverStates(cluster.runtimeSocket, cluster.backend);
  const specReplicas = async (): Promise<number> =>
    ((await cluster.api.getService(SERVICE).inspect()) as { Spec: { Mode: { Replicated: { Replicas: number } } } }).Spec.Mode.Replicated.Replicas;

  /** Waits until `n` tasks run and HAProxy serves exactly their servers, at their addresses; returns the ms it took. */
  async function converge(n: number, timeoutMs = 90_000): Promise<number> {
    const started = Date.now();
    let last = '';
    const done = await eventually(
      async () => {
        const all = wanted(await tasks());
        const running = all.filter((t) => t.state === 'running');
        const spec = await specReplicas();
        const states = await servers();
        const expected = running.map((t) => `${serverOf(t)}@${t.addresses[cluster.overlay] ?? '?'}`).sort();
        const serving = states.filter((s) => s.up && s.admin === 'ready').map((s) => `${s.name}@${s.address}`);
        last = `spec ${spec}, tasks ${JSON.stringify(expected)} of ${all.length} wanted, HAProxy ${JSON.stringify(states)}`;
        return spec === n && all.length === n && running.length === n && JSON.stringify(serving) === JSON.stringify(expected) && states.length === n;
      },
      timeoutMs,
      250,
    );
    expect(done, last).toBe(true);
    return Date.now() - started;
  }

  interface Watched {
    readonly load: RunningLoad;
    /** sentAt of every request that failed. */
    readonly failedAt: number[];
  }
  const watchLoad = (): Watched => {
    const failedAt: number[] = [];
    const load = startPacedLoad(`${cluster.frontendUrl}/`, {
      ratePerSecond: 25,
      maxDurationMs: 150_000,
      maxRequests: 3_750,
      onAnswer: (status, sentAt) => {
        if (status < 200 || status >= 300) failedAt.push(sentAt);
      },
    });
    return { load, failedAt };
  };
  const summary = (r: LoadReport): string => `${r.sent} requests, ${r.sent - r.ok} failed ${JSON.stringify(r.failures)}`;

  /** Records HAProxy's servers every 100 ms until stopped: when did a server drain, leave. */
  function watchServers(): { stop(): Promise<Array<{ at: number; states: ServerState[] }>> } {
    const seen: Array<{ at: number; states: ServerState[] }> = [];
    let watching = true;
    const loop = (async () => {
      const deadline = Date.now() + 150_000;
      while (watching && Date.now() < deadline) {
        seen.push({ at: Date.now(), states: await servers().catch(() => []) });
        await sleep(100);
      }
    })();
    return {
      async stop() {
        watching = false;
        await loop;
        // One more look: the last change may have come between the loop's last look and now.
        seen.push({ at: Date.now(), states: await servers().catch(() => []) });
        return seen;
      },
    };
  }

  /** One scale-down by one through the sidecar: the task it drained is the one Swarm stopped. */
  async function scaleDownTo(n: number, label: string, midway?: () => Promise<void>): Promise<void> {
    const before = wanted(await tasks());
    const watched = watchLoad();
    const watcher = watchServers();
    const started = Date.now();
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: n });
    // The task the sidecar retires: its decision record names it.
    let retired: string | undefined;
    await eventually(async () => {
      const state = await admin('GET', '/v1/autoscaler');
      const recent = (state.recent ?? []) as Array<{ applied: boolean; actions: Array<{ kind: string; containerId?: string }> }>;
      retired = recent.filter((r) => r.applied).flatMap((r) => r.actions).filter((a) => a.kind === 'retire').at(-1)?.containerId;
      return retired !== undefined && before.some((t) => t.id === retired);
    }, 20_000, 100);
    expect(retired, 'the sidecar retired none of the tasks').toBeDefined();
    if (midway !== undefined) await midway();
    const took = await converge(n);
    const report = await watched.load.stop();
    const seen = await watcher.stop();

    const after = wanted(await tasks());
    const stopped = before.filter((t) => !after.some((a) => a.id === t.id));
    const victim = before.find((t) => t.id === retired);
    expect(stopped.map((t) => t.id), 'Swarm stopped another task than the drained one').toEqual([retired]);
    // Its server went into drain before it left HAProxy.
    const name = victim === undefined ? '' : serverOf(victim);
    const drained = seen.find((o) => o.states.some((s) => s.name === name && s.admin === 'drain'));
    const gone = seen.find((o) => !o.states.some((s) => s.name === name));
    expect(drained, `${name} never seen in drain`).toBeDefined();
    expect(drained?.at ?? Infinity).toBeLessThan(gone?.at ?? -Infinity);
    figures.push(`${label}: ${summary(report)}; drained ${name}, the task Swarm stopped; converged in ${Date.now() - started} ms (${took} ms after the decision)`);
    expect(report.failures, label).toEqual({});
  }

  beforeAll(async () => {
    // Another run's Swarm on this machine is left alone when sweeping is off, as the suite's own sweep is.
    if (process.env.HSC_TEST_SWEEP !== '0') await sweepSwarmLeftovers();
    const t0 = Date.now();
    cluster = await startSwarmCluster();
    const nodes = await cluster.api.listNodes();
    nodeNames = new Map(nodes.map((n: { ID: string; Description: { Hostname: string } }) => [n.ID, n.Description.Hostname]));
    await cluster.exec(cluster.manager, [
      'service', 'create', '--detach', '--quiet', '--name', SERVICE, '--replicas', '2', '--network', cluster.overlay,
      // deploy.labels: read by the sidecar from the service, as from a Compose container.
      '--label', 'haproxy.backend=be_app', '--label', 'haproxy.check.path=/healthz',
      '--hostname', '{{.Node.Hostname}}-{{.Task.Slot}}', '--stop-grace-period', '10s', '--no-resolve-image', 'hsc/nginx:local',
    ]);
    figures.push(`cluster: 3 engines, Swarm, images loaded, overlay, HAProxy up in ${Date.now() - t0} ms`);
  }, 300_000);

  afterAll(async () => {
    await sidecar?.stop().catch(() => undefined);
    await cluster?.remove();
    console.info(`[swarm]\n  ${figures.join('\n  ')}`);
  }, 120_000);

  it('serves every task of the service, named after its slot and node, at its overlay address', async () => {
    await start();
    // The policy is not under test: the count is set by hand from here on.
    await admin('POST', '/v1/autoscaler/pause');
    const took = await converge(2);
    figures.push(`start: 2 tasks served ${took} ms after the sidecar started`);
  }, 120_000);

  it('scales up across the nodes through the replica count, with no failed request', async () => {
    const watched = watchLoad();
    const started = Date.now();
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: 5 });
    expect(await specReplicas()).toBe(5);
    await converge(5);
    const report = await watched.load.stop();
    const nodes = new Set(wanted(await tasks()).map((t) => t.nodeId));
    figures.push(`scale-up 2 → 5: ${summary(report)}; converged in ${Date.now() - started} ms; tasks on ${nodes.size} nodes`);
    expect(nodes.size).toBe(3);
    expect(report.failures).toEqual({});
  }, 150_000);

  it('scales down through a drain of the very task Swarm stops, twice, with no failed request', async () => {
    await scaleDownTo(4, 'scale-down 5 → 4');
    await scaleDownTo(3, 'scale-down 4 → 3');
  }, 240_000);

  it('a sidecar stopped in the middle of a scale-down drain and started again carries it on', async () => {
    await scaleDownTo(2, 'scale-down 3 → 2, sidecar restarted mid-drain', async () => {
      // Stopped while the retirement is still draining (or just past it), then a new one on the
      // same state file, whose policy keeps 2 (and whose stored count set by hand is 2 as well).
      await eventually(async () => ((await admin('GET', '/v1/autoscaler')).inFlight as string[]).some((s) => s.endsWith('draining')), 10_000, 50);
      await sidecar?.stop();
      sidecar = undefined;
      await sleep(1_000);
      await start({ HSC_AUTOSCALE_MIN: '2', HSC_AUTOSCALE_MAX: '2' }, 'swarm-restarted');
    });
  }, 240_000);

  it('the Docker API proxy’s Swarm allowlist passes the sidecar’s calls (every step above) and refuses the rest', async () => {
    const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<number> =>
      new Promise((resolve, reject) => {
        const request = httpRequest({ socketPath: cluster.proxySocket, method, path, headers: { host: 'docker', ...headers } }, (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        });
        request.on('error', reject);
        request.setTimeout(10_000, () => request.destroy(new Error('timeout')));
        request.end(body);
      });
    const service = (await cluster.api.getService(SERVICE).inspect()) as { Version: { Index: number }; Spec: Record<string, unknown> };
    const update = (spec: Record<string, unknown>) => JSON.stringify(spec);
    const withMount = { ...service.Spec, TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local', Mounts: [{ Type: 'bind', Source: '/', Target: '/host' }] } } };
    const withCapability = { ...service.Spec, TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local', CapabilityAdd: ['CAP_SYS_ADMIN'] } } };
    const escaped = update(withMount).replace('"bind"', '"\\u0062ind"');
    const cases: Array<[string, string, string, string | undefined, Record<string, string>?]> = [
      ['a container create', 'POST', '/v1.41/containers/create', '{}'],
      ['the secrets', 'GET', '/v1.41/secrets', undefined],
      ['an exec', 'POST', '/v1.41/containers/abc/exec', '{}'],
      ['a service removal', 'DELETE', `/v1.41/services/${SERVICE}`, undefined],
      ['an update binding the node’s root', 'POST', `/v1.41/services/${SERVICE}/update?version=${service.Version.Index}`, update(withMount), { 'content-type': 'application/json' }],
      ['an update adding a capability', 'POST', `/v1.41/services/${SERVICE}/update?version=${service.Version.Index}`, update(withCapability), { 'content-type': 'application/json' }],
      ['an update hiding "bind" in a JSON escape', 'POST', `/v1.41/services/${SERVICE}/update?version=${service.Version.Index}`, escaped, { 'content-type': 'application/json' }],
      ['a chunked update', 'POST', `/v1.41/services/${SERVICE}/update?version=${service.Version.Index}`, update(service.Spec), { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }],
    ];
    for (const [name, method, path, body, headers] of cases) {
      expect(await call(method, path, body, headers), name).toBe(403);
    }
    expect(await call('GET', '/v1.41/tasks')).toBe(200);
    // Nothing above reached Swarm: the spec's version is unchanged.
    expect(((await cluster.api.getService(SERVICE).inspect()) as { Version: { Index: number } }).Version.Index).toBe(service.Version.Index);
  }, 60_000);

  it('a scale-up during a scale-down’s drain puts the drained server back instead of raising the count', async () => {
    // A new sidecar whose pool may shrink to 1; paused before its first evaluation.
    await sidecar?.stop();
    await start({ HSC_AUTOSCALE_MIN: '1', HSC_AUTOSCALE_MAX: '6' }, 'swarm-undrain');
    await admin('POST', '/v1/autoscaler/pause');
    await converge(2);
    // Long requests on both replicas keep the drain going (bounded: 6 requests of 8 s).
    const slow = Promise.all(
      Array.from({ length: 6 }, async () => {
        try {
          const response = await fetch(`${cluster.frontendUrl}/slow?s=8`, { signal: AbortSignal.timeout(30_000) });
          await response.arrayBuffer();
          return response.status;
        } catch {
          return 0;
        }
      }),
    );
    await sleep(1_000);
    const specBefore = await specReplicas();
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: 1 });
    const draining = await eventually(async () => ((await admin('GET', '/v1/autoscaler')).inFlight as string[]).some((s) => s.endsWith('draining')), 10_000, 100);
    expect(draining, 'no retirement draining').toBe(true);
    const drainedServer = ((await admin('GET', '/v1/autoscaler')).inFlight as string[])[0]?.split(' ')[0] ?? '';
    expect((await servers()).find((s) => s.name === drainedServer)?.admin).toBe('drain');

    const record = (await admin('PUT', '/v1/autoscaler/replicas', { replicas: 2 })) as { actions: Array<{ kind: string; server?: string }> };
    expect(record.actions).toEqual([expect.objectContaining({ kind: 'undrain', server: drainedServer })]);
    const back = await eventually(async () => (await servers()).some((s) => s.name === drainedServer && s.admin === 'ready' && s.up), 10_000, 100);
    expect(back, `${drainedServer} not back in service`).toBe(true);
    expect((await admin('GET', '/v1/autoscaler')).inFlight).toEqual([]);
    // No task started or stopped: Swarm's count never moved.
    expect(await specReplicas()).toBe(specBefore);
    expect(await slow).toEqual([200, 200, 200, 200, 200, 200]);
    await converge(2);
    figures.push(`undrain: a scale-up during ${drainedServer}'s drain put it back; Swarm's count stayed ${specBefore}, the 6 long requests all 200`);
  }, 120_000);

  it('a rolling update (docker service update) drains each task Swarm replaces, with no failed request', async () => {
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: 2 });
    await converge(2);
    const before = wanted(await tasks());
    const watched = watchLoad();
    const watcher = watchServers();
    // Long requests on both tasks: a task told to stop runs on until they end, and they must end
    // with their answer, not be cut when its server goes (bounded: 4 requests of 4 s).
    const slow = Promise.all(
      Array.from({ length: 4 }, async () => {
        try {
          const response = await fetch(`${cluster.frontendUrl}/slow?s=4`, { signal: AbortSignal.timeout(30_000) });
          await response.arrayBuffer();
          return response.status;
        } catch {
          return 0;
        }
      }),
    );
    await sleep(500);
    const started = Date.now();
    // A new version through the environment (no image to load into the nodes), one task at a
    // time, each new task started before the old one stops (stack/swarm.yaml's update_config).
    // With stop-first and two tasks, the other one is stopped next, possibly before the sidecar's
    // periodic pass saw its replacement (Swarm has no event for a task): 503s then, measured.
    await cluster.exec(cluster.manager, [
      'service', 'update', '--quiet', '--env-add', `DEPLOY_MARK=${started}`, '--update-parallelism', '1', '--update-order', 'start-first', '--no-resolve-image', SERVICE,
    ]);
    const took = await converge(2, 120_000);
    const report = await watched.load.stop();
    const seen = await watcher.stop();
    const after = wanted(await tasks());
    expect(after.some((t) => before.some((b) => b.id === t.id)), 'a task of the old version still runs').toBe(false);
    // Every old task's server went into drain before it left HAProxy (it was not cut at once).
    for (const old of before) {
      const name = serverOf(old);
      const drained = seen.find((o) => o.states.some((x) => x.name === name && x.admin === 'drain'));
      const gone = seen.find((o) => !o.states.some((x) => x.name === name));
      expect(drained, `${name} never seen in drain`).toBeDefined();
      expect(drained?.at ?? Infinity).toBeLessThan(gone?.at ?? -Infinity);
    }
    expect(await slow).toEqual([200, 200, 200, 200]);
    figures.push(`rolling update of 2 tasks (start-first), 4 requests of 4 s in flight, all answered: ${summary(report)}; each old task drained before its server left; converged ${took} ms after the update returned, ${Date.now() - started} ms in all`);
    expect(report.failures).toEqual({});
  }, 240_000);

  interface RolloutAnswer {
    readonly id: string;
    readonly via?: string;
    /** The rollout that brought the version this one replaces; its label is back on a rollback. */
    readonly previous?: string;
    readonly phase: string;
    readonly reason: string;
    readonly started: number;
    readonly startedAt: number;
    readonly endedAt?: number;
    readonly bake?: { readonly newAnswers: number; readonly newErrors: number; readonly oldAnswers: number };
  }
  const rolloutOf = async (id: string): Promise<RolloutAnswer> => (await admin('GET', `/v1/rollouts/${id}`)) as unknown as RolloutAnswer;
  const beginRollout = async (body: object): Promise<RolloutAnswer> => (await admin('POST', '/v1/rollouts', body)) as unknown as RolloutAnswer;
  const isFinished = (r: RolloutAnswer): boolean => r.phase === 'succeeded' || r.phase === 'rolled-back';
  /** Polls the rollout until `done`; the sidecar may be away for a moment (a restart). */
  async function untilRollout(id: string, done: (r: RolloutAnswer) => boolean, timeoutMs = 180_000): Promise<RolloutAnswer> {
    let last: RolloutAnswer | undefined;
    const reached = await eventually(
      async () => {
        last = await rolloutOf(id).catch(() => last);
        return last !== undefined && done(last);
      },
      timeoutMs,
      200,
    );
    if (!reached || last === undefined) throw new Error(`rollout ${id} never got there: ${JSON.stringify(last)}`);
    return last;
  }
  /** The rollout label of every running task wanted running ('' for a task of no rollout). */
  const taskRollouts = async (): Promise<string[]> => wanted(await tasks()).filter((t) => t.state === 'running').map((t) => t.containerLabels?.['hsc.rollout'] ?? '');
  const took = (r: RolloutAnswer): string => `${(((r.endedAt ?? Date.now()) - r.startedAt) / 1000).toFixed(1)} s`;

  it('hsc rollout of the service to a new environment: Swarm’s own update, start-first, baked; succeeded, every task new, no failed request', async () => {
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: 2 });
    await converge(2);
    const watched = watchLoad();
    await sleep(500);
    const begun = await beginRollout({ env: [`DEPLOY_MARK=rollout-${Date.now()}`], batch: 1, bakeSeconds: 4 });
    expect(begun.via).toBe('swarm');
    const end = await untilRollout(begun.id, isFinished);
    await converge(2);
    const report = await watched.load.stop();
    expect(end.phase, end.reason).toBe('succeeded');
    expect(await taskRollouts()).toEqual([begun.id, begun.id]);
    figures.push(`hsc rollout of 2 tasks (new environment, batch 1, bake 4 s): succeeded in ${took(end)}; ${summary(report)}; the new tasks answered ${end.bake?.newAnswers ?? 0} requests in the bake, ${end.bake?.newErrors ?? 0} errors`);
    expect(report.failures).toEqual({});
  }, 240_000);

  it('a rollout the operator rolls back mid-bake ends rolled back, every task of the old version, the untouched task left running, no failed request', async () => {
    const before = wanted(await tasks()).map((t) => t.id);
    const watched = watchLoad();
    await sleep(500);
    // A long bake: Swarm waits it after the first task, and the rollback comes in it.
    const begun = await beginRollout({ env: [`DEPLOY_MARK=rollback-${Date.now()}`], batch: 1, bakeSeconds: 30 });
    await untilRollout(begun.id, (r) => r.started >= 1, 120_000);
    await sleep(2_000);
    const asked = Date.now();
    await admin('POST', `/v1/rollouts/${begun.id}/rollback`, {});
    const end = await untilRollout(begun.id, isFinished);
    await converge(2);
    const report = await watched.load.stop();
    expect(end.phase, end.reason).toBe('rolled-back');
    expect(end.reason).toMatch(/asked by an operator/);
    const after = wanted(await tasks());
    expect(await taskRollouts()).toEqual([begun.previous ?? '', begun.previous ?? '']);
    // The old task Swarm had not replaced yet runs on: the spec set back equals its own.
    const kept = after.filter((t) => before.includes(t.id));
    expect(kept, 'Swarm replaced the task that never changed').toHaveLength(1);
    figures.push(`rollout rolled back by the operator mid-bake (1 of 2 tasks replaced): rolled back ${((end.endedAt ?? Date.now()) - asked) / 1000} s after the request, ${took(end)} in all; ${summary(report)}; the untouched task kept`);
    expect(report.failures).toEqual({});
  }, 240_000);

  it('a rollout whose sidecar is stopped mid-way and started again on the same state file ends finished, never a mixed pool', async () => {
    const watched = watchLoad();
    await sleep(500);
    const begun = await beginRollout({ env: [`DEPLOY_MARK=restart-${Date.now()}`], batch: 1, bakeSeconds: 4 });
    await untilRollout(begun.id, (r) => r.started >= 1, 120_000);
    await sidecar?.stop();
    sidecar = undefined;
    const stoppedAt = Date.now();
    // Swarm goes on meanwhile (its wait between batches is 4 s): the sidecar comes back to a
    // service further on than it left it.
    await sleep(3_000);
    await start({}, 'swarm-rollout-restarted');
    const end = await untilRollout(begun.id, isFinished);
    await converge(2);
    const report = await watched.load.stop();
    const labels = await taskRollouts();
    expect(new Set(labels).size, `a mixed pool: ${JSON.stringify(labels)}`).toBe(1);
    expect(labels[0]).toBe(end.phase === 'succeeded' ? begun.id : (begun.previous ?? ''));
    const failedAway = watched.failedAt.filter((at) => at >= stoppedAt && at <= stoppedAt + 3_500).length;
    figures.push(`rollout with the sidecar stopped 3 s mid-way: ${end.phase} (${end.reason}) in ${took(end)}; ${summary(report)}, ${failedAway} of them sent while the sidecar was away`);
  }, 240_000);

  it('a rollout to an image that answers 500 rolls back on its own, the old version serving every slot, its failures bounded', async () => {
    const loadStarted = Date.now();
    const broken = await ensureNginxVariant('broken');
    await cluster.loadImages([broken]);
    const loadMs = Date.now() - loadStarted;
    await converge(2);
    const watched = watchLoad();
    await sleep(500);
    const begun = await beginRollout({ image: broken, batch: 1, bakeSeconds: 10 });
    const end = await untilRollout(begun.id, isFinished);
    await converge(2);
    const report = await watched.load.stop();
    expect(end.phase, end.reason).toBe('rolled-back');
    expect(end.reason).toMatch(/the new replicas failed/);
    expect(await taskRollouts()).toEqual([begun.previous ?? '', begun.previous ?? '']);
    const failed = report.sent - report.ok;
    figures.push(`rollout to an image answering 500 (batch 1, bake 10 s; image loaded into 3 nodes in ${loadMs} ms): rolled back on its own in ${took(end)} (${end.reason}); ${summary(report)}`);
    // Only the one new task answered 500, from the time it served to the time it drained: the
    // verdict needs 50 of its answers (about half of 25 requests/s), then Swarm replaces it.
    expect(Object.keys(report.failures)).toEqual(['500']);
    expect(failed).toBeLessThan(200);
  }, 300_000);

  it('replaces the servers of a worker lost outright with those of the tasks Swarm reschedules', async () => {
    const before = wanted(await tasks());
    const onWorker = cluster.workers.find((w) => before.some((t) => nodeNames.get(t.nodeId) === w.name));
    expect(onWorker, `no task on a worker: ${JSON.stringify(before.map((t) => nodeNames.get(t.nodeId)))}`).toBeDefined();
    const lostNode = onWorker as SwarmNode;
    const lostServers = before.filter((t) => nodeNames.get(t.nodeId) === lostNode.name).map(serverOf);

    // The policy keeps 2 (the count set by hand holds while the node is lost).
    await admin('PUT', '/v1/autoscaler/replicas', { replicas: 2 });
    const watched = watchLoad();
    await sleep(2_000);
    const killedAt = Date.now();
    await cluster.kill(lostNode);
    // Whether the autoscaler added a replica while Swarm had not declared the node down yet.
    let highest = await specReplicas();
    let watchingSpec = true;
    const specWatch = (async () => {
      while (watchingSpec) {
        highest = Math.max(highest, await specReplicas().catch(() => 0));
        await sleep(250);
      }
    })();
    // When HAProxy stopped sending to the lost node: its servers DOWN (checks) or removed.
    let outAt = 0;
    await eventually(async () => {
      const states = await servers();
      const out = lostServers.every((name) => !states.some((s) => s.name === name && s.up && s.admin === 'ready'));
      if (out) outAt = Date.now();
      return out;
    }, 60_000, 100);
    expect(outAt).toBeGreaterThan(0);
    const took = await converge(2, 120_000);
    watchingSpec = false;
    await specWatch;
    const after = wanted(await tasks());
    expect(after.some((t) => nodeNames.get(t.nodeId) === lostNode.name)).toBe(false);
    await sleep(2_000);
    const report = await watched.load.stop();
    // Requests failed, if any, only while HAProxy could still send them to the lost node (a
    // request sent then may end up to its connect timeout and retries later).
    const late = watched.failedAt.filter((at) => at > outAt);
    figures.push(
      `worker ${lostNode.name} lost (${lostServers.join(', ')}): ${summary(report)}, ${watched.failedAt.length - late.length} of them sent before its servers were out; ` +
        `servers out ${outAt - killedAt} ms after the loss; replacements served and the count back at 2 ${Date.now() - killedAt - 2_000} ms after (${took} ms converge wait); ` +
        `highest replica count meanwhile ${highest}`,
    );
    expect(late, `requests failed after the lost node's servers were out of rotation`).toEqual([]);
  }, 240_000);
});
