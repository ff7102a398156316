// The Swarm edge's calls, against a scripted manager API: which update it sends (the spec as read,
// only the count changed, with the version it read), when it sends none, and how it retries a
// version conflict. The real manager is in test/integration/swarm.test.ts.
import { describe, expect, it } from 'vitest';
import { createSwarmEdge, type SwarmApi } from '../../../sidecar/docker/swarm.js';
import type { Logger } from '../../../sidecar/log/logger.js';

interface RawTask {
  ID: string;
  ServiceID: string;
  Slot: number;
  NodeID: string;
  DesiredState: string;
  Status: { State: string };
  CreatedAt: string;
  NetworksAttachments: Array<{ Network: { Spec: { Name: string } }; Addresses: string[] }>;
}

const rawTask = (id: string, slot: number, node: string, state = 'running'): RawTask => ({
  ID: id,
  ServiceID: 's1',
  Slot: slot,
  NodeID: node,
  DesiredState: 'running',
  Status: { State: state },
  CreatedAt: '2026-11-29T16:00:00Z',
  NetworksAttachments: [{ Network: { Spec: { Name: 'app' } }, Addresses: [`10.0.1.${slot}/24`] }],
});

interface World {
  readonly api: SwarmApi;
  readonly updates: Array<{ version: unknown; body: Record<string, unknown> }>;
  readonly warnings: string[];
  tasks: RawTask[];
}

/**
 * A manager with service s1 (`web`, version 10, `replicas` slots) and three ready nodes. An update
 * sets the desired state of `stops(body)`'s task to remove; `conflicts` updates fail first with
 * Docker's out-of-sequence answer, each bumping the version as another writer would.
 */
function world(options: { tasks: RawTask[]; replicas: number; conflicts?: number; stops?: (replicas: number, tasks: RawTask[]) => string | undefined; down?: string[] }): World {
  let version = 10;
  let replicas = options.replicas;
  let conflicts = options.conflicts ?? 0;
  const updates: World['updates'] = [];
  const warnings: string[] = [];
  const service = () => ({
    ID: 's1',
    Version: { Index: version },
    Spec: { Name: 'web', Labels: { 'haproxy.weight': '50' }, Mode: { Replicated: { Replicas: replicas } }, TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local' } } },
  });
  const w: World = {
    tasks: options.tasks,
    updates,
    warnings,
    api: {
      listServices: () => Promise.resolve([service()]),
      listTasks: () => Promise.resolve(w.tasks.map((t) => ({ ...t }))),
      listNodes: () =>
        Promise.resolve(['A', 'B', 'C'].map((id) => ({ ID: id, Description: { Hostname: `node-${id}` }, Status: { State: options.down?.includes(id) === true ? 'down' : 'ready' } }))),
      getTask: (id) => ({
        inspect: () => {
          const t = w.tasks.find((x) => x.ID === id);
          return t === undefined ? Promise.reject(Object.assign(new Error('no such task'), { statusCode: 404 })) : Promise.resolve(t);
        },
      }),
      getService: () => ({
        inspect: () => Promise.resolve(service()),
        update: (request) => {
          if (conflicts > 0) {
            conflicts--;
            version++;
            return Promise.reject(new Error('(HTTP code 500) server error - rpc error: code = Unknown desc = update out of sequence'));
          }
          const body = request._body as Record<string, unknown>;
          updates.push({ version: request._query.version, body });
          replicas = (body.Mode as { Replicated: { Replicas: number } }).Replicated.Replicas;
          version++;
          // A scale-up: the orchestrator creates the new slots' tasks at once.
          for (let slot = w.tasks.length + 1; slot <= replicas; slot++) w.tasks = [...w.tasks, rawTask(`new${slot}`, slot, '', 'pending')];
          const stopped = options.stops?.(replicas, w.tasks);
          w.tasks = w.tasks.map((t) => (t.ID === stopped ? { ...t, DesiredState: 'remove' } : t));
          return Promise.resolve({});
        },
      }),
      getEvents: () => Promise.reject(new Error('not used')),
    },
  };
  return w;
}

const logger = (warnings: string[]): Logger =>
  ({
    info: () => undefined,
    debug: () => undefined,
    error: () => undefined,
    warn: (_fields: unknown, message: string) => warnings.push(message),
  });

const edgeOf = (w: World) => createSwarmEdge({ socketPath: '/nonexistent', api: w.api, logger: logger(w.warnings), verifyTimeoutMs: 300 });

// Slots 1 and 2 on node A, 3 on B: Swarm's pick is slot 2 (the second copy on the busiest node).
const threeTasks = () => [rawTask('t1', 1, 'A'), rawTask('t2', 2, 'A'), rawTask('t3', 3, 'B')];

describe('the Swarm edge', () => {
  it('lists live tasks with their removal order, overlay address and service labels; a lost node’s as not running', async () => {
    const w = world({ tasks: [...threeTasks(), { ...rawTask('old', 1, 'C', 'shutdown'), DesiredState: 'shutdown' }], replicas: 3, down: ['B'] });
    const listed = await edgeOf(w).listRunning();
    expect(listed.ok).toBe(true);
    if (!listed.ok) return;
    expect(listed.value.map((s) => [s.id, s.name, s.running, s.removalOrder, s.networks.app, s.labels['haproxy.weight']])).toEqual([
      ['t1', 'web.1.node-A', true, 3, '10.0.1.1', '50'],
      ['t2', 'web.2.node-A', true, 1, '10.0.1.2', '50'],
      ['t3', 'web.3.node-B', false, 2, '10.0.1.3', '50'],
    ]);
  });

  it('scale-down of Swarm’s pick: one update, the spec as read with one slot fewer, at the version read', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3, stops: () => 't2' });
    expect(await edgeOf(w).stopAndRemove('t2', 30)).toEqual({ ok: true, value: undefined });
    expect(w.updates).toEqual([
      {
        version: 10,
        body: { Name: 'web', Labels: { 'haproxy.weight': '50' }, Mode: { Replicated: { Replicas: 2 } }, TaskTemplate: { ContainerSpec: { Image: 'hsc/nginx:local' } } },
      },
    ]);
    expect(w.warnings).toEqual([]);
  });

  it('a version conflict: reads again and updates with the new version', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3, conflicts: 2, stops: () => 't2' });
    expect((await edgeOf(w).stopAndRemove('t2', 30)).ok).toBe(true);
    expect(w.updates.map((u) => u.version)).toEqual([12]);
  });

  it('gives up after too many conflicts, as a conflict', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3, conflicts: 99 });
    const result = await edgeOf(w).stopAndRemove('t2', 30);
    expect(result.ok ? undefined : result.error.kind).toBe('conflict');
    expect(w.updates).toEqual([]);
  });

  const noUpdate: Array<{ name: string; id: string; tasks: () => RawTask[]; error: RegExp | undefined }> = [
    { name: 'not Swarm’s pick: no update, a conflict naming Swarm’s pick', id: 't3', tasks: threeTasks, error: /^conflict: Swarm would now stop t2, not this task/ },
    { name: 'a task already told to stop (a sidecar restarted after its update): done', id: 't2', tasks: () => threeTasks().map((t) => (t.ID === 't2' ? { ...t, DesiredState: 'remove' } : t)), error: undefined },
    { name: 'a task Swarm no longer has: done', id: 'gone', tasks: threeTasks, error: undefined },
  ];
  it.each(noUpdate)('$name', async ({ id, tasks, error }) => {
    const w = world({ tasks: tasks(), replicas: 3 });
    const result = await edgeOf(w).stopAndRemove(id, 30);
    if (error === undefined) expect(result).toEqual({ ok: true, value: undefined });
    else expect(result.ok ? 'ok' : `${result.error.kind}: ${result.error.message}`).toMatch(error);
    expect(w.updates).toEqual([]);
    expect(w.warnings).toEqual([]);
  });

  it('Swarm stopped another task than the drained one: says so and answers conflict (the drained one serves again)', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3, stops: () => 't1' });
    const result = await edgeOf(w).stopAndRemove('t2', 30);
    expect(result.ok ? 'ok' : `${result.error.kind}: ${result.error.message}`).toBe('conflict: Swarm stopped t1 instead of this task');
    expect(w.warnings.join('\n')).toMatch(/Swarm stopped another task/);
  });

  it('Swarm slow to apply the update: the next pass waits, and never lowers the count twice', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3 });
    const edge = edgeOf(w);
    expect((await edge.stopAndRemove('t2', 30)).ok).toBe(true);
    expect((await edge.stopAndRemove('t2', 30)).ok).toBe(true);
    expect(w.updates.map((u) => (u.body.Mode as { Replicated: { Replicas: number } }).Replicated.Replicas)).toEqual([2]);
  });

  const ups: Array<{ name: string; replicas: number; tasks: () => RawTask[]; count: number; down?: string[]; expected: number[] }> = [
    { name: 'adds to the slots Swarm has', replicas: 3, tasks: threeTasks, count: 2, expected: [5] },
    { name: 'a repeat while Swarm places the last ones: no update', replicas: 4, tasks: () => [...threeTasks(), rawTask('t4', 4, '', 'pending')], count: 0, expected: [] },
    { name: 'a slot on a lost node is Swarm’s to replace', replicas: 3, tasks: threeTasks, count: 1, down: ['B'], expected: [] },
  ];
  it.each(ups)('scale-up: $name', async ({ replicas, tasks, count, down, expected }) => {
    const w = world({ tasks: tasks(), replicas, ...(down === undefined ? {} : { down }) });
    const started = await edgeOf(w).startLike({ service: 'web', project: '' }, 't1', count);
    expect(started.ok && started.value.length).toBe(expected.length === 0 ? 0 : (expected[0] ?? 0) - tasks().length);
    expect(w.updates.map((u) => (u.body.Mode as { Replicated: { Replicas: number } }).Replicated.Replicas)).toEqual(expected);
  });

  it('a global service is never given a count: no update either way', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3 });
    const globalApi: SwarmApi = {
      ...w.api,
      listServices: async () => (await w.api.listServices()).map((s) => ({ ...(s as object), Spec: { Name: 'web', Mode: { Global: {} } } })),
      getService: (id) => ({ ...w.api.getService(id), inspect: () => Promise.resolve({ ID: 's1', Version: { Index: 10 }, Spec: { Name: 'web', Mode: { Global: {} } } }) }),
    };
    const edge = createSwarmEdge({ socketPath: '/nonexistent', api: globalApi, logger: logger(w.warnings), verifyTimeoutMs: 300 });
    const up = await edge.startLike({ service: 'web', project: '' }, 't1', 1);
    const down = await edge.stopAndRemove('t2', 30);
    expect([up.ok ? 'ok' : up.error.kind, down.ok ? 'ok' : down.error.kind]).toEqual(['unsupported', 'conflict']);
    expect(w.updates).toEqual([]);
  });

  it('scale-up of a service Swarm does not have: not found', async () => {
    const w = world({ tasks: threeTasks(), replicas: 3 });
    const started = await edgeOf(w).startLike({ service: 'api', project: '' }, 't1', 1);
    expect(started.ok ? undefined : started.error.kind).toBe('not-found');
  });
});
