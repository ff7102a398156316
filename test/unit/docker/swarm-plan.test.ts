import { describe, expect, it } from 'vitest';
import { planActions, type ServingReplica } from '../../../sidecar/autoscale/actions.js';
import {
  isServiceRef,
  isVersionConflict,
  planScaleDown,
  removalOrderOf,
  scaleUpReplicas,
  serviceLabels,
  shortName,
  stoppedBetween,
  swarmRemovalOrder,
  taskName,
  taskSnapshot,
  type SwarmService,
  type SwarmTask,
} from '../../../sidecar/docker/swarm-plan.js';
import { parseService, parseTask, serviceSpecView, updatedSpec } from '../../../sidecar/docker/swarm.js';
import { parseContainer } from '../../../sidecar/discovery/parse.js';
import { replicasOf } from '../../../sidecar/scaling/replicas.js';

/** A task of slot `slot` on `node` ('' = unplaced), observed `state`, wanted running. */
const task = (slot: number, node: string, state = 'running', extra: Partial<SwarmTask> = {}): SwarmTask => ({
  id: `t${slot}${node}${extra.desiredState ?? ''}`,
  serviceId: 's1',
  slot,
  nodeId: node,
  state,
  desiredState: 'running',
  createdAt: 1_700_000_000 + slot,
  addresses: { app: `10.0.1.${slot + 10}` },
  ...extra,
});

const service = (extra: Partial<SwarmService> = {}): SwarmService => ({
  id: 's1',
  name: 'shop_web',
  version: 7,
  replicas: 3,
  labels: { 'com.docker.stack.namespace': 'shop', 'haproxy.backend': 'be_app' },
  containerLabels: { 'com.docker.stack.namespace': 'shop', 'haproxy.weight': '50', 'haproxy.backend': 'ignored' },
  ...extra,
});

describe('swarmRemovalOrder (SwarmKit: replicated/services.go reconcile, slot.go orderings)', () => {
  const cases: Array<{ name: string; tasks: SwarmTask[]; first: string }> = [
    { name: 'balanced over nodes: the highest slot goes', tasks: [task(1, 'A'), task(2, 'B'), task(3, 'C')], first: 't3C' },
    { name: 'the node with the most copies gives one up first', tasks: [task(1, 'A'), task(2, 'A'), task(3, 'B'), task(4, 'C')], first: 't2A' },
    { name: 'on that node, the highest slot of its copies', tasks: [task(1, 'B'), task(2, 'A'), task(3, 'A'), task(4, 'A'), task(5, 'B')], first: 't4A' },
    {
      name: 'node balance before running state: a running copy on the busiest node goes before a starting one elsewhere',
      tasks: [task(1, 'A'), task(2, 'A'), task(3, 'B', 'starting')],
      first: 't2A',
    },
    { name: 'equal balance: a non-running task goes before running ones', tasks: [task(1, 'A', 'starting'), task(2, 'B'), task(3, 'C')], first: 't1A' },
    { name: 'an unplaced task (no node) goes first', tasks: [task(1, 'A'), task(2, 'B'), task(3, '', 'pending')], first: 't3' },
    {
      name: 'a slot with two tasks (one being replaced) has no index and goes first',
      tasks: [task(1, 'A'), task(2, 'B'), task(2, 'C', 'starting', { id: 't2C-new' }), task(3, 'C')],
      first: 't2B',
    },
    {
      name: 'tasks told to stop are not counted',
      tasks: [task(1, 'A'), task(2, 'A', 'running', { desiredState: 'shutdown' }), task(3, 'B')],
      first: 't3B',
    },
  ];
  it.each(cases)('$name', ({ tasks, first }) => {
    expect(swarmRemovalOrder(tasks)[0]).toContain(first);
  });

  it('orders every slot: 1 is stopped first', () => {
    const order = removalOrderOf([task(1, 'A'), task(2, 'A'), task(3, 'B'), task(4, 'C')]);
    expect([...order].sort((a, b) => a[1] - b[1]).map(([id]) => id)).toEqual(['t2A', 't4C', 't3B', 't1A']);
  });
});

describe('planScaleDown', () => {
  const tasks = [task(1, 'A'), task(2, 'A'), task(3, 'B')];
  const cases: Array<{ name: string; tasks: SwarmTask[]; id: string; spec?: number; expected: ReturnType<typeof planScaleDown> }> = [
    { name: "Swarm's pick: one slot fewer", tasks, id: 't2A', expected: { kind: 'scale', replicas: 2 } },
    { name: 'another replica would be stopped: no scale-down', tasks, id: 't3B', expected: { kind: 'not-victim', victim: ['t2A'] } },
    { name: 'already told to stop: done', tasks: [task(1, 'A'), task(2, 'A', 'running', { id: 'tx', desiredState: 'remove' })], id: 'tx', expected: { kind: 'gone' } },
    { name: 'unknown task: done', tasks, id: 'nope', expected: { kind: 'gone' } },
    {
      name: 'the count follows the slots Swarm has, not a spec that asks for more',
      tasks: [task(1, 'A'), task(2, 'B'), task(3, 'C')],
      id: 't3C',
      spec: 5,
      expected: { kind: 'scale', replicas: 2 },
    },
    {
      name: 'the spec already asks for fewer slots (an earlier pass’s update Swarm has not applied): wait, never lower it twice',
      tasks,
      id: 't2A',
      spec: 2,
      expected: { kind: 'pending' },
    },
  ];
  it.each(cases)('$name', ({ tasks: list, id, spec, expected }) => {
    expect(planScaleDown(list, id, spec ?? list.length)).toEqual(expected);
  });
});

describe('scaleUpReplicas', () => {
  const cases: Array<{ name: string; spec: number; tasks: SwarmTask[]; count: number; expected: number }> = [
    { name: 'adds to the slots there are', spec: 2, tasks: [task(1, 'A'), task(2, 'B')], count: 2, expected: 4 },
    { name: 'a repeat while the last scale-up is placed changes nothing', spec: 3, tasks: [task(1, 'A'), task(2, 'B'), task(3, '', 'pending')], count: 0, expected: 3 },
    { name: 'never lowers the spec', spec: 5, tasks: [task(1, 'A')], count: 1, expected: 5 },
    { name: 'a slot only on a lost node is not counted: Swarm replaces it by itself', spec: 2, tasks: [task(1, 'A'), task(2, 'LOST')], count: 1, expected: 2 },
  ];
  it.each(cases)('$name', ({ spec, tasks, count, expected }) => {
    expect(scaleUpReplicas(spec, tasks, count, new Set(['LOST']))).toBe(expected);
  });
});

describe('stoppedBetween', () => {
  it('names the task whose desired state left running', () => {
    const before = [task(1, 'A'), task(2, 'B')];
    const after = [task(1, 'A'), { ...task(2, 'B'), desiredState: 'remove' }];
    expect(stoppedBetween(before, after)).toEqual(['t2B']);
    expect(stoppedBetween(before, [task(1, 'A')])).toEqual(['t2B']);
    expect(stoppedBetween(before, before)).toEqual([]);
  });
});

describe('a task as discovery sees it', () => {
  const nodes = new Map([['A', 'worker-1']]);
  it('labels: the service over its containers, and the stack standing for the Compose project', () => {
    expect(serviceLabels(service())).toEqual({
      'com.docker.stack.namespace': 'shop',
      'haproxy.backend': 'be_app',
      'haproxy.weight': '50',
      'com.docker.compose.service': 'web',
      'com.docker.compose.project': 'shop',
    });
    expect(shortName(service({ name: 'web', labels: {}, containerLabels: {} }))).toBe('web');
    expect(isServiceRef(service(), { service: 'web', project: '' })).toBe(true);
    expect(isServiceRef(service(), { service: 'web', project: 'other' })).toBe(false);
  });

  const names: Array<{ name: string; task: SwarmTask; expected: string }> = [
    { name: 'service, slot and node hostname', task: task(2, 'A'), expected: 'shop_web.2.worker-1' },
    { name: 'an unknown node by its ID', task: task(2, 'abcdefabcdef0123'), expected: 'shop_web.2.abcdefabcdef' },
    { name: 'not placed yet', task: task(2, '', 'pending'), expected: 'shop_web.2.unassigned' },
  ];
  it.each(names)('name: $name', ({ task: t, expected }) => {
    expect(taskName(service(), t, nodes)).toBe(expected);
  });

  // A task told to stop is still listed while its container runs, as stopping: its server is
  // drained until the container is gone (a rolling update), not cut at once.
  const states: Array<{ state: string; desired: string; running: boolean; health: string; stopping: boolean }> = [
    { state: 'running', desired: 'running', running: true, health: 'healthy', stopping: false },
    { state: 'starting', desired: 'running', running: true, health: 'starting', stopping: false },
    { state: 'pending', desired: 'running', running: true, health: 'starting', stopping: false },
    { state: 'running', desired: 'shutdown', running: true, health: 'healthy', stopping: true },
    { state: 'running', desired: 'remove', running: true, health: 'healthy', stopping: true },
    { state: 'shutdown', desired: 'shutdown', running: false, health: 'starting', stopping: false },
    { state: 'failed', desired: 'running', running: false, health: 'starting', stopping: false },
  ];
  it.each(states)('observed $state, desired $desired: running $running, health $health, stopping $stopping', ({ state, desired, running, health, stopping }) => {
    const snapshot = taskSnapshot(service(), task(1, 'A', state, { desiredState: desired }), nodes, 2);
    expect({ running: snapshot.running, health: snapshot.health, removalOrder: snapshot.removalOrder, stopping: snapshot.stopping === true }).toEqual({ running, health, removalOrder: 2, stopping });
  });

  it('a task told to stop is no replica of its service, and its server is asked drained, never added anew', () => {
    const stopping = taskSnapshot(service(), task(1, 'A', 'running', { desiredState: 'shutdown' }), nodes, 1);
    expect(replicasOf([stopping], { service: 'web', project: 'shop' })).toEqual([]);
    const outcome = parseContainer(stopping, {
      labelPrefix: 'haproxy',
      composeService: 'web',
      composeProject: 'shop',
      addressMode: 'network',
      network: 'app',
      managedBackends: ['be_app'],
      defaultBackend: 'be_app',
      defaultPort: 80,
      defaultWeight: 100,
      defaultHealthPath: '/healthz',
    });
    expect(outcome.kind === 'candidate' && outcome.candidate.stopping).toBe(true);
  });

  it('a task on a node Swarm lost is not a replica, though Swarm still reads it running', () => {
    expect(taskSnapshot(service(), task(1, 'A'), nodes, 1, new Set(['A'])).running).toBe(false);
    expect(taskSnapshot(service(), task(1, 'B'), nodes, 1, new Set(['A'])).running).toBe(true);
  });

  it('becomes a server named after its task and node, on the shared overlay network', () => {
    const outcome = parseContainer(taskSnapshot(service(), task(2, 'A'), nodes, 1), {
      labelPrefix: 'haproxy',
      composeService: 'web',
      composeProject: 'shop',
      addressMode: 'network',
      network: 'app',
      managedBackends: ['be_app'],
      defaultBackend: 'be_app',
      defaultPort: 80,
      defaultWeight: 100,
      defaultHealthPath: '/healthz',
    });
    expect(outcome).toMatchObject({ kind: 'candidate', candidate: { serverName: 'hsc-shop_web.2.worker-1', address: '10.0.1.12', port: 80, weight: 50, backend: 'be_app' } });
  });

  it('carries its removal order into the replicas and the scale-down victim', () => {
    const snapshots = [task(1, 'A'), task(2, 'A'), task(3, 'B')].map((t, i) => taskSnapshot(service(), t, nodes, [3, 1, 2][i]));
    const replicas = replicasOf(snapshots, { service: 'web', project: 'shop' });
    expect(replicas.map((r) => r.removalOrder)).toEqual([3, 1, 2]);
    // Fewer sessions elsewhere do not matter: Swarm stops its own pick, so that one is drained.
    const serving: ServingReplica[] = replicas.map((r, i) => ({ containerId: r.id, server: r.name, sessions: [0, 9, 0][i], createdAt: r.createdAt, ...(r.removalOrder === undefined ? {} : { removalOrder: r.removalOrder }) }));
    expect(planActions(2, { serving, draining: [], starting: 0, retiring: 0 })).toEqual([{ kind: 'retire', containerId: 't2A', server: 'shop_web.2.worker-1' }]);
  });
});

describe('parsing Docker answers', () => {
  it('a task: slot, node, states, overlay address without its prefix length', () => {
    expect(
      parseTask({
        ID: 'abc',
        ServiceID: 's1',
        Slot: 3,
        NodeID: 'n1',
        CreatedAt: '2026-11-29T16:00:00.5Z',
        DesiredState: 'running',
        Status: { State: 'running' },
        NetworksAttachments: [
          { Network: { Spec: { Name: 'ingress' } }, Addresses: ['10.0.0.5/24'] },
          { Network: { Spec: { Name: 'app' } }, Addresses: ['10.0.1.7/24'] },
        ],
      }),
    ).toEqual({ id: 'abc', serviceId: 's1', slot: 3, nodeId: 'n1', state: 'running', desiredState: 'running', createdAt: 1_795_968_000, addresses: { ingress: '10.0.0.5', app: '10.0.1.7' } });
    expect(parseTask({ ID: 'x' })).toBeUndefined();
    expect(parseTask(null)).toBeUndefined();
  });
  it('a service: name, version, count, both kinds of labels; a global one has no count', () => {
    const raw = {
      ID: 's1',
      Version: { Index: 42 },
      Spec: { Name: 'shop_web', Labels: { a: '1' }, Mode: { Replicated: { Replicas: 4 } }, TaskTemplate: { ContainerSpec: { Labels: { b: '2' } } } },
    };
    expect(parseService(raw)).toEqual({ id: 's1', name: 'shop_web', version: 42, replicas: 4, labels: { a: '1' }, containerLabels: { b: '2' } });
    expect(parseService({ ID: 's2', Spec: { Name: 'agent', Mode: { Global: {} } } })?.replicas).toBeUndefined();
    expect(parseService({ ID: 's3' })).toBeUndefined();
  });
  it('a task: its own container labels (the spec it was created from), and a snapshot labelled with them, not the service’s current ones', () => {
    const raw = { ID: 'abc', ServiceID: 's1', Slot: 1, NodeID: 'A', DesiredState: 'running', Status: { State: 'running' }, Spec: { ContainerSpec: { Labels: { 'hsc.rollout': 'r-1', 'hsc.rollout.batch': 'swarm' } } } };
    const parsed = parseTask(raw);
    expect(parsed?.containerLabels).toEqual({ 'hsc.rollout': 'r-1', 'hsc.rollout.batch': 'swarm' });
    // The service's spec moved on (a rollback): the task still shows the labels it runs with.
    const nodes = new Map([['A', 'worker-1']]);
    const labels = taskSnapshot(service(), parsed as SwarmTask, nodes, 1).labels;
    expect(labels['hsc.rollout']).toBe('r-1');
    expect(labels['haproxy.weight']).toBeUndefined();
    expect(labels['haproxy.backend']).toBe('be_app');
    // An old task without rollout labels, while the service's spec carries them.
    const old = taskSnapshot(service({ containerLabels: { 'hsc.rollout': 'r-1' } }), task(2, 'A', 'running', { containerLabels: {} }), nodes, 1);
    expect(old.labels['hsc.rollout']).toBeUndefined();
  });
  it('a service spec as a rollout reads it: version, container labels, Swarm’s update state', () => {
    const raw = {
      ID: 's1',
      Spec: { Name: 'web', TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local', Env: ['A=1'], Labels: { 'hsc.rollout': 'r-1' } } } },
      UpdateStatus: { State: 'paused', Message: 'update paused due to failure or early termination of task x' },
    };
    expect(serviceSpecView(raw)).toEqual({
      version: { image: 'hsc/nginx:local', env: ['A=1'] },
      containerLabels: { 'hsc.rollout': 'r-1' },
      update: { state: 'paused', message: 'update paused due to failure or early termination of task x' },
    });
    expect(serviceSpecView({ Spec: { TaskTemplate: { ContainerSpec: { Image: 'x' } } } })).toEqual({ version: { image: 'x', env: [] }, containerLabels: {}, update: undefined });
  });
  it('a rollout’s update: image, environment and labels changed, start-first in batches a bake apart, pausing on failure, everything else as read', () => {
    const spec = {
      Name: 'web',
      Labels: { 'haproxy.backend': 'be_app' },
      Mode: { Replicated: { Replicas: 3 } },
      TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local', Env: ['A=1'], StopGracePeriod: 10_000_000_000 }, ForceUpdate: 0 },
      UpdateConfig: { Parallelism: 1, Order: 'stop-first' },
    };
    const forward = updatedSpec(spec, { version: { image: 'hsc/nginx:next', env: ['A=2'] }, labels: { 'hsc.rollout': 'r-1', 'hsc.rollout.batch': 'swarm' }, parallelism: 2, bakeMs: 5_000 });
    expect(forward).toEqual({
      ...spec,
      TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:next', Env: ['A=2'], StopGracePeriod: 10_000_000_000, Labels: { 'hsc.rollout': 'r-1', 'hsc.rollout.batch': 'swarm' } }, ForceUpdate: 0 },
      UpdateConfig: { Parallelism: 2, Delay: 5_000_000_000, FailureAction: 'pause', Monitor: 5_000_000_000, MaxFailureRatio: 0, Order: 'start-first' },
    });
    // Back: the labels taken away leave no empty Labels (nor an empty Env) where the spec had none,
    // so the tasks that never changed equal the spec and Swarm leaves them.
    const back = updatedSpec(forward, { version: { image: 'hsc/nginx:local', env: [] }, labels: { 'hsc.rollout': undefined, 'hsc.rollout.batch': undefined }, parallelism: 2, bakeMs: 5_000 });
    expect((back.TaskTemplate as { ContainerSpec: object }).ContainerSpec).toEqual({ Image: 'hsc/nginx:local', StopGracePeriod: 10_000_000_000 });
    expect(back.Mode).toEqual({ Replicated: { Replicas: 3 } });
  });
  it.each([
    ['rpc error: code = Unknown desc = update out of sequence', true],
    ['(HTTP code 500) server error - update out of sequence', true],
    ['no such service', false],
  ])('version conflict: %s → %s', (message, expected) => {
    expect(isVersionConflict(message)).toBe(expected);
  });
});
