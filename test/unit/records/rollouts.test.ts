// The rollout runner (sidecar/records/rollouts.ts) over fake Docker and HAProxy ports: what begin()
// accepts and refuses, the effects a tick performs, and the admin API and CLI on top of it.
import { describe, expect, it } from 'vitest';
import { EXIT, run } from '../../../sidecar/cli/hsc.js';
import type { ContainerSnapshot, ReplicaVariant, ServiceSpecView, ServiceUpdate } from '../../../sidecar/docker/compose.js';
import type { RuntimeServer } from '../../../sidecar/driver/port.js';
import { fail, ok } from '../../../sidecar/edge/result.js';
import type { ServerFigures } from '../../../sidecar/haproxy-metrics/exporter.js';
import type { Logger } from '../../../sidecar/log/logger.js';
import type { RetirementRunner } from '../../../sidecar/records/retirements.js';
import { createRolloutRunner, mergeEnv } from '../../../sidecar/records/rollouts.js';
import { memoryStateStore } from '../../../sidecar/records/store.js';
import { startAdminApi, TOKEN } from '../../support/admin-api.js';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function world() {
  let clock = 1_000_000;
  let next = 3;
  const replica = (n: number, labels: Record<string, string> = {}, image = 'shop/web:1'): ContainerSnapshot & { image: string } => ({
    id: `c${n}`,
    name: `shop-web-${n}`,
    labels: { 'com.docker.compose.service': 'web', 'com.docker.compose.project': 'shop', 'com.docker.compose.container-number': String(n), ...labels },
    running: true,
    health: 'healthy',
    networks: {},
    publishedPorts: [],
    createdAt: n,
    image,
  });
  const containers = [replica(1), replica(2)];
  const started: ReplicaVariant[] = [];
  const retired: string[] = [];
  const weights: string[] = [];
  const figures = new Map<string, ServerFigures>();
  const retirements: RetirementRunner = {
    retire: (id) => {
      retired.push(id);
      return Promise.resolve(ok(undefined));
    },
    progress: () => Promise.resolve(0),
    list: () => retired.map((containerId) => ({ containerId, backend: 'be_app', server: '', stage: 'draining' as const, startedAt: 0, deadlineAt: 0, quietReads: 0 })),
    settled: () => Promise.resolve(),
  };
  const server = (c: ContainerSnapshot): string => `hsc-web-${c.labels['com.docker.compose.container-number'] ?? '?'}`;
  const state = memoryStateStore();
  const runner = createRolloutRunner({
    ports: {
      listRunning: () => Promise.resolve(ok(containers.filter((c) => c.running))),
      startLike: (_template, count, variant) => {
        const ids: string[] = [];
        for (let i = 0; i < count; i++) {
          const c = replica(next++, { ...variant.labels }, variant.image);
          containers.push(c);
          ids.push(c.id);
        }
        started.push(variant);
        return Promise.resolve(ok(ids));
      },
      versionOf: () => Promise.resolve(ok({ image: 'shop/web:1', env: ['A=1', 'TOKEN=s3cret'] })),
      hasImage: (image) => Promise.resolve(ok(image !== 'shop/web:missing')),
      serversOf: (list) => new Map(list.map((c) => [c.id, server(c)])),
      haproxy: {
        readServers: () => Promise.resolve(ok({ revision: undefined, backends: ['be_app'], servers: containers.map((c) => ({ backend: 'be_app', name: server(c), address: '127.0.0.1', port: 80, weight: 100 })) })),
        listRuntimeServers: () =>
          Promise.resolve(ok(containers.filter((c) => c.running).map((c): RuntimeServer => ({ name: server(c), adminState: 'ready', operationalState: 'up', checks: 'on', weight: 100 })))),
        setRuntimeWeight: (_b, s, w) => {
          weights.push(`${s}=${w}`);
          return Promise.resolve(ok(undefined));
        },
      },
      readFigures: () => Promise.resolve(figures),
    },
    store: state,
    retirements,
    service: { service: 'web', project: 'shop' },
    backend: 'be_app',
    defaults: { batch: 1, canaryPercent: 100, bakeMs: 10_000, readyTimeoutMs: 60_000, maxErrorRatio: 0.01, maxLatencyRatio: 2, minAnswers: 50 },
    drainDeadlineMs: 30_000,
    requestPass: () => undefined,
    logger: quiet,
    now: () => clock,
  });
  return {
    runner,
    containers,
    started,
    retired,
    weights,
    figures,
    state,
    advance: (ms: number) => (clock += ms),
    stop: (id: string) => {
      const c = containers.find((x) => x.id === id);
      if (c !== undefined) (c as { running: boolean }).running = false;
    },
  };
}

describe('the rollout runner', () => {
  it('refuses what it cannot do, naming why, and records nothing', async () => {
    const w = world();
    expect(await w.runner.begin({})).toMatchObject({ ok: false, error: { kind: 'invalid', message: expect.stringMatching(/give a new image/) as unknown } });
    expect(await w.runner.begin({ env: ['NOEQUALS'] })).toMatchObject({ ok: false, error: { kind: 'invalid' } });
    expect(await w.runner.begin({ image: 'shop/web:missing' })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/not on this Docker host/) as unknown } });
    expect(await w.runner.begin({ image: 'shop/web:2', settings: { batch: 0 } })).toMatchObject({ ok: false, error: { message: expect.stringMatching(/batch must be/) as unknown } });
    expect(w.state.read().rollouts).toBeUndefined();
    for (const c of w.containers) w.stop(c.id);
    expect(await w.runner.begin({ image: 'shop/web:2' })).toMatchObject({ ok: false, error: { kind: 'not-found' } });
  });

  it('starts, bakes with a canary weight, retires, and ends; one at a time; a second rollout meanwhile is a conflict', async () => {
    const w = world();
    const begun = await w.runner.begin({ image: 'shop/web:2', env: ['TOKEN=n3w', 'B=2'], settings: { canaryPercent: 10 } });
    if (!begun.ok) throw new Error(begun.error.message);
    expect(begun.value.old).toEqual(['c1', 'c2']);
    expect(begun.value.to.env).toEqual(['A=1', 'TOKEN=n3w', 'B=2']);
    expect(await w.runner.begin({ image: 'shop/web:3' })).toMatchObject({ ok: false, error: { kind: 'conflict' } });
    // The autoscaler holds its scale-downs and starts the new version meanwhile.
    expect(w.runner.forAutoscaler()).toMatchObject({ hold: 'scale-down', variant: { image: 'shop/web:2', labels: { 'hsc.rollout': begun.value.id, 'hsc.rollout.batch': 'scale' } } });
    await w.runner.tick();
    expect(w.started).toEqual([{ image: 'shop/web:2', env: ['A=1', 'TOKEN=n3w', 'B=2'], labels: { 'hsc.rollout': begun.value.id, 'hsc.rollout.batch': '0' } }]);
    // The canary it started gets its weight the moment the reconciler adds its server; no other does.
    expect(w.runner.canaryWeightOf('c3', 100)).toBe(10);
    expect(w.runner.canaryWeightOf('c1', 100)).toBeUndefined();
    await w.runner.tick();
    expect(w.runner.list()[0]?.phase).toBe('baking');
    expect(w.weights).toEqual(['hsc-web-3=10']);
    w.advance(11_000);
    await w.runner.tick();
    expect(w.runner.list()[0]?.phase).toBe('retiring');
    expect(w.weights).toEqual(['hsc-web-3=10', 'hsc-web-3=100']);
    expect(w.retired).toEqual(['c1']);
    w.stop('c1');
    await w.runner.tick();
    expect(w.runner.list()[0]).toMatchObject({ phase: 'starting', batch: 1 });
    await w.runner.tick();
    await w.runner.tick();
    w.advance(11_000);
    await w.runner.tick();
    expect(w.retired).toEqual(['c1', 'c2']);
    w.stop('c2');
    await w.runner.tick();
    expect(w.runner.list()[0]).toMatchObject({ phase: 'succeeded' });
    expect(w.runner.forAutoscaler()).toEqual({ variant: undefined, hold: 'none' });
  });

  it('an operator rollback wins over the pass in progress; the autoscaler holds everything meanwhile', async () => {
    const w = world();
    const begun = await w.runner.begin({ image: 'shop/web:2' });
    if (!begun.ok) throw new Error(begun.error.message);
    await w.runner.tick();
    expect((await w.runner.rollBack(begun.value.id, 'asked by an operator')).ok).toBe(true);
    expect(w.runner.forAutoscaler().hold).toBe('all');
    await w.runner.tick();
    expect(w.retired).toEqual(['c3']);
    w.stop('c3');
    await w.runner.tick();
    expect(w.runner.list()[0]).toMatchObject({ phase: 'rolled-back', reason: 'rolled back: asked by an operator' });
    expect(await w.runner.rollBack(begun.value.id, 'again')).toMatchObject({ ok: false, error: { kind: 'not-found' } });
  });

  it('merges environment entries by key, in their first place', () => {
    expect(mergeEnv(['A=1', 'B=2', 'C=x=y'], ['B=3', 'D=4', 'C=z'])).toEqual(['A=1', 'B=3', 'C=z', 'D=4']);
  });
});

describe('the rollout runner in Swarm mode', () => {
  /** A Swarm service `web` of two tasks whose spec the fake "Swarm" rewrites on update (the tasks stay: the step is tested on its own). */
  function swarmWorld() {
    let clock = 1_000_000;
    const task = (n: number, labels: Record<string, string> = {}): ContainerSnapshot => ({
      id: `t${n}`,
      name: `web.${n}.node`,
      labels: { 'com.docker.compose.service': 'web', ...labels },
      running: true,
      health: 'healthy',
      networks: {},
      publishedPorts: [],
      createdAt: n,
    });
    const tasks: ContainerSnapshot[] = [task(1), task(2), { ...task(3), stopping: true }];
    let spec: ServiceSpecView = { version: { image: 'shop/web:1', env: ['A=1'] }, containerLabels: {}, update: undefined };
    const updates: ServiceUpdate[] = [];
    const state = memoryStateStore();
    const runner = createRolloutRunner({
      ports: {
        listRunning: () => Promise.resolve(ok(tasks)),
        startLike: () => Promise.resolve(fail('start', 'unsupported', 'Swarm starts its tasks')),
        versionOf: () => Promise.resolve(fail('inspect', 'unsupported', 'no')),
        hasImage: () => Promise.resolve(fail('inspect an image', 'unsupported', 'no')),
        serversOf: (list) => new Map(list.map((c) => [c.id, `hsc-${c.name}`])),
        haproxy: {
          readServers: () => Promise.resolve(ok({ revision: undefined, backends: ['be_app'], servers: [] })),
          listRuntimeServers: () => Promise.resolve(ok(tasks.map((c): RuntimeServer => ({ name: `hsc-${c.name}`, adminState: c.stopping === true ? 'drain' : 'ready', operationalState: 'up', checks: 'on', weight: 100 })))),
          setRuntimeWeight: () => Promise.resolve(ok(undefined)),
        },
        readFigures: () => Promise.resolve(new Map<string, ServerFigures>()),
        swarm: {
          readService: () => Promise.resolve(ok(spec)),
          updateService: (change) => {
            updates.push(change);
            const labels = Object.fromEntries(Object.entries(change.labels).filter((e): e is [string, string] => e[1] !== undefined));
            spec = { version: change.version, containerLabels: labels, update: { state: 'updating', message: '' } };
            return Promise.resolve(ok(undefined));
          },
        },
      },
      store: state,
      retirements: { retire: () => Promise.resolve(ok(undefined)), progress: () => Promise.resolve(0), list: () => [], settled: () => Promise.resolve() },
      service: { service: 'web', project: '' },
      backend: 'be_app',
      defaults: { batch: 1, canaryPercent: 100, bakeMs: 10_000, readyTimeoutMs: 60_000, maxErrorRatio: 0.01, maxLatencyRatio: 2, minAnswers: 50 },
      drainDeadlineMs: 30_000,
      requestPass: () => undefined,
      logger: quiet,
      now: () => clock,
    });
    return { runner, tasks, updates, state, setSpec: (next: ServiceSpecView) => (spec = next), advance: (ms: number) => (clock += ms) };
  }

  it('begins from the service’s spec (no image check: the nodes pull or have it), asks Swarm once, and sets the old spec back on a rollback', async () => {
    const w = swarmWorld();
    const begun = await w.runner.begin({ image: 'shop/web:2', env: ['B=2'], settings: { batch: 2, bakeMs: 4_000 } });
    if (!begun.ok) throw new Error(begun.error.message);
    // The task already told to stop is no replica to replace.
    expect(begun.value).toMatchObject({ via: 'swarm', old: ['t1', 't2'], from: { image: 'shop/web:1', env: ['A=1'] }, to: { image: 'shop/web:2', env: ['A=1', 'B=2'] } });
    expect(begun.value.reason).toMatch(/the nodes must have the image or pull it/);
    await w.runner.tick();
    await w.runner.tick();
    expect(w.updates).toEqual([{ version: { image: 'shop/web:2', env: ['A=1', 'B=2'] }, labels: { 'hsc.rollout': begun.value.id, 'hsc.rollout.batch': 'swarm' }, parallelism: 2, bakeMs: 4_000 }]);
    expect(w.runner.list()[0]).toMatchObject({ phase: 'starting', progressAt: 1_000_000 });
    expect(w.runner.forAutoscaler().hold).toBe('scale-down');
    expect((await w.runner.rollBack(begun.value.id, 'asked by an operator')).ok).toBe(true);
    await w.runner.tick();
    expect(w.updates[1]).toEqual({ version: { image: 'shop/web:1', env: ['A=1'] }, labels: { 'hsc.rollout': undefined, 'hsc.rollout.batch': undefined }, parallelism: 2, bakeMs: 0 });
    // Swarm done: the old version in every slot.
    w.setSpec({ version: { image: 'shop/web:1', env: ['A=1'] }, containerLabels: {}, update: { state: 'completed', message: '' } });
    await w.runner.tick();
    expect(w.runner.list()[0]).toMatchObject({ phase: 'rolled-back', reason: 'rolled back: asked by an operator' });
    expect(w.updates).toHaveLength(2);
  });

  it('begins from a spec an earlier rollout brought, and a rollback puts that rollout’s labels back with its version', async () => {
    const w = swarmWorld();
    w.setSpec({ version: { image: 'shop/web:2', env: [] }, containerLabels: { 'hsc.rollout': 'r-earlier', 'hsc.rollout.batch': 'swarm' }, update: { state: 'completed', message: '' } });
    const begun = await w.runner.begin({ image: 'shop/web:3' });
    if (!begun.ok) throw new Error(begun.error.message);
    expect(begun.value).toMatchObject({ previous: 'r-earlier', from: { image: 'shop/web:2', env: [] } });
    await w.runner.tick();
    expect((await w.runner.rollBack(begun.value.id, 'asked by an operator')).ok).toBe(true);
    await w.runner.tick();
    expect(w.updates.map((u) => u.labels)).toEqual([
      { 'hsc.rollout': begun.value.id, 'hsc.rollout.batch': 'swarm' },
      { 'hsc.rollout': 'r-earlier', 'hsc.rollout.batch': 'swarm' },
    ]);
  });
});

describe('rollouts through the admin API and hsc', () => {
  const hsc = async (args: string[], base: string) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(args, { out: (l) => out.push(l), err: (l) => err.push(l), fetch, env: { HSC_ADMIN_URL: base, HSC_ADMIN_TOKEN: TOKEN }, sleep: () => Promise.resolve() });
    return { code, out, err: err.join('\n') };
  };

  it('starts one with the token only, shows it without the environment\'s values, and refuses bad bodies with 400', async () => {
    const w = world();
    const { call } = await startAdminApi({ rollouts: w.runner });
    expect((await call('POST', '/v1/rollouts', { image: 'shop/web:2' }, null)).status).toBe(401);
    expect(await call('POST', '/v1/rollouts', { image: 'shop/web:2', batch: 0 })).toMatchObject({ status: 400, body: { message: expect.stringMatching(/batch must be a whole number/) as unknown } });
    expect(await call('POST', '/v1/rollouts', { image: 'shop/web:2', surge: 1 })).toMatchObject({ status: 400, body: { message: expect.stringMatching(/unknown field/) as unknown } });
    expect(await call('POST', '/v1/rollouts', { env: ['X'] })).toMatchObject({ status: 400 });
    const started = await call('POST', '/v1/rollouts', { image: 'shop/web:2', env: ['TOKEN=n3w'], bakeSeconds: 5 });
    expect(started.status).toBe(202);
    expect(started.body).toMatchObject({ phase: 'starting', envChanged: ['TOKEN'], from: { image: 'shop/web:1' }, to: { image: 'shop/web:2' }, settings: { bakeMs: 5000 } });
    expect(JSON.stringify(started.body)).not.toMatch(/s3cret|n3w/);
    expect((await call('POST', '/v1/rollouts', { image: 'shop/web:3' })).status).toBe(409);
    const id = String(started.body.id);
    expect((await call('GET', `/v1/rollouts/${id}`)).body).toMatchObject({ id, phase: 'starting' });
    expect((await call('GET', '/v1/rollouts/nope')).status).toBe(404);
    expect(((await call('GET', '/v1/rollouts')).body.rollouts as unknown[]).length).toBe(1);
    expect((await call('POST', `/v1/rollouts/${id}/rollback`, {})).body).toMatchObject({ phase: 'rolling-back' });
  });

  it('hsc rollout follows it to its end, a line per change, and exits 6 on a rollback', async () => {
    const w = world();
    const { base } = await startAdminApi({ rollouts: w.runner });
    // The sidecar's loop, run by the CLI's waits here: every wait is one pass.
    const pass = async (): Promise<void> => {
      await w.runner.tick();
      const r = w.runner.list()[0];
      if (r?.phase === 'baking') w.advance(11_000);
      for (const id of w.retired) w.stop(id);
    };
    const out: string[] = [];
    const code = await run(['rollout', '--image', 'shop/web:2'], {
      out: (l) => out.push(l),
      err: (l) => out.push(`ERR ${l}`),
      fetch,
      env: { HSC_ADMIN_URL: base, HSC_ADMIN_TOKEN: TOKEN },
      sleep: pass,
    });
    expect(code).toBe(EXIT.ok);
    expect(out.some((l) => / baking +batch 1\/2 /.test(l))).toBe(true);
    expect(out.at(-1)).toMatch(/^rollout r-\S+ succeeded in [0-9.]+ s: shop\/web:2 serves$/);
    expect((await hsc(['rollout', 'status'], base)).out[0]).toMatch(/ succeeded +batch 2\/2 .*\(shop\/web:1 -> shop\/web:2\)$/);

    const bad = await hsc(['rollout', '--image', 'shop/web:missing'], base);
    expect(bad).toMatchObject({ code: EXIT.refused, err: expect.stringMatching(/error \(404\): .*not on this Docker host/) as unknown });
    expect((await hsc(['rollout'], base)).code).toBe(EXIT.usage);
    expect((await hsc(['rollout', '--image', 'x', '--bake', 'soon'], base)).code).toBe(EXIT.usage);
    expect((await hsc(['rollout', 'rollback'], base)).code).toBe(EXIT.usage);

    const again = await hsc(['rollout', '--image', 'shop/web:3', '--detach'], base);
    expect(again.code).toBe(EXIT.ok);
    const id = /^(r-\S+)/.exec(again.out[0] ?? '')?.[1] ?? '';
    const rolledBack: string[] = [];
    const backCode = await run(['rollout', 'rollback', id], { out: (l) => rolledBack.push(l), err: (l) => rolledBack.push(l), fetch, env: { HSC_ADMIN_URL: base, HSC_ADMIN_TOKEN: TOKEN }, sleep: pass });
    expect(backCode).toBe(EXIT.rolledBack);
    // The fake reads every replica as shop/web:1: the version before this rollout.
    expect(rolledBack.at(-1)).toMatch(/rolled back after [0-9.]+ s: shop\/web:1 serves$/);
  });
});
