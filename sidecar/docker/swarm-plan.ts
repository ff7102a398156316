// Swarm mode's decisions, as pure functions over plain data: which tasks are replicas, what each
// one looks like as a ContainerSnapshot (the one snapshot type discovery and scaling read), which
// task Swarm will stop when the service shrinks by one, and the replica count of a scale-up.
// The Swarm edge (swarm.ts) converts dockerode's answers into the types here and acts on what
// these functions return; nothing here talks to Docker.
//
// Which task Swarm stops. SwarmKit's replicated orchestrator (manager/orchestrator/replicated/
// services.go, Orchestrator.reconcile, the "specifiedSlots < numSlots" case; the orderings in
// slot.go, slotsByRunningState and slotsByIndex) shrinks a service like this:
//   1. the updatable slots (a slot: the tasks of one replica number whose desired state is at most
//      running) are sorted with running ones first (a slot counts as running when one of its
//      tasks is observed running), then by slot number, ascending;
//   2. walking that order, each slot whose only task is on a node gets an index: it is the n-th
//      copy of the service on that node (1, 2, 3 …); any other slot gets no index (-1);
//   3. the slots are sorted by that index, ascending, slots without an index last;
//   4. the first `replicas` slots are kept; the desired state of every task of the others becomes
//      REMOVE, and the agents stop them.
// So the victim is the last slot of that order: a copy on the node with the most copies, a
// non-running one before a running one among equals, the highest slot number last. Step 3 uses
// Go's sort.Sort, which is not stable in general; for up to 12 slots it is an insertion sort
// (stable), so the prediction is exact there and may differ from Swarm's among equal indices
// beyond. The edge therefore checks which task Swarm actually stopped (see swarm.ts).
import { COMPOSE_PROJECT, COMPOSE_SERVICE } from './labels.js';
import type { ContainerSnapshot } from './snapshot.js';

/** Swarm's label naming the stack a service belongs to (`docker stack deploy <stack>`). */
export const STACK_NAMESPACE = 'com.docker.stack.namespace';

/** A task as the Swarm edge reads it (Docker's /tasks answer, converted). */
export interface SwarmTask {
  readonly id: string;
  readonly serviceId: string;
  /** The replica number; 0 for tasks of a global service. */
  readonly slot: number;
  /** '' while the scheduler has not placed it. */
  readonly nodeId: string;
  /** Observed state (Status.State): new, pending, assigned, accepted, preparing, ready, starting, running, complete, shutdown, failed, rejected, remove, orphaned. */
  readonly state: string;
  readonly desiredState: string;
  /** Seconds since the epoch. */
  readonly createdAt: number;
  /** IPv4 address (without its prefix length) per attached network name. */
  readonly addresses: Readonly<Record<string, string>>;
  /**
   * The labels of the task's own container spec: the spec it was created from, which differs from
   * the service's current one while a rolling update replaces it (a rollout's label tells its new
   * tasks from the old ones). Undefined when Docker's answer has no task spec.
   */
  readonly containerLabels?: Readonly<Record<string, string>>;
}

/** A service as the Swarm edge reads it. */
export interface SwarmService {
  readonly id: string;
  /** As Swarm names it: `<stack>_<service>` for a stack's service. */
  readonly name: string;
  /** The spec's version index: an update must carry it. */
  readonly version: number;
  /** Undefined for a global service (not scaled by a count). */
  readonly replicas: number | undefined;
  /** The service's labels (Compose's `deploy.labels`). */
  readonly labels: Readonly<Record<string, string>>;
  /** The labels its containers get (Compose's `labels`). */
  readonly containerLabels: Readonly<Record<string, string>>;
}

/** Node ID → hostname. */
export type NodeNames = ReadonlyMap<string, string>;

/** IDs of the nodes Swarm does not see as ready (down, disconnected, unknown): their tasks are lost. */
export type DownNodes = ReadonlySet<string>;

/** States a task passes through before it runs; with `running`, the ones a replica can be in. */
const LIVE_STATES = new Set(['new', 'pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);
/** Desired states of a task the orchestrator still counts in its slot (above NEW, at most RUNNING). */
const ACTIVE_DESIRED = new Set(['pending', 'assigned', 'accepted', 'preparing', 'ready', 'starting', 'running']);

/** A task the orchestrator counts as a replica of its service: wanted, whatever it is doing now. */
export const isActiveTask = (task: SwarmTask): boolean => ACTIVE_DESIRED.has(task.desiredState);

/** A task that is, or is about to be, a replica that serves: wanted running and not ended. */
export const isLiveTask = (task: SwarmTask): boolean => task.desiredState === 'running' && LIVE_STATES.has(task.state);

/**
 * A task told to stop whose container still runs: a rolling update or Swarm's own scale-down
 * changed its desired state, and the agent stops its container next. Its server is drained
 * meanwhile, and removed once the container is gone.
 */
export const isStoppingTask = (task: SwarmTask): boolean => (task.desiredState === 'shutdown' || task.desiredState === 'remove') && task.state === 'running';

/** The stack a service belongs to ('' outside a stack). */
export const stackOf = (service: SwarmService): string => service.labels[STACK_NAMESPACE] ?? service.containerLabels[STACK_NAMESPACE] ?? '';

/** The service's name within its stack: `web` for `shop_web` of the stack `shop`. */
export function shortName(service: SwarmService): string {
  const stack = stackOf(service);
  return stack !== '' && service.name.startsWith(`${stack}_`) ? service.name.slice(stack.length + 1) : service.name;
}

/**
 * The labels discovery reads for every task of the service: the container labels, the service's
 * own over them (that is where `deploy.labels` go), and Compose's service and project labels
 * standing for the stack's service and the stack, so `docker.composeService` and
 * `docker.composeProject` select a stack's service as they select a Compose service.
 */
export function serviceLabels(service: SwarmService): Record<string, string> {
  const stack = stackOf(service);
  return {
    ...service.containerLabels,
    ...service.labels,
    [COMPOSE_SERVICE]: shortName(service),
    ...(stack === '' ? {} : { [COMPOSE_PROJECT]: stack }),
  };
}

/** Whether the service is the one `service` (and `project`, when set) name. */
export function isServiceRef(service: SwarmService, ref: { readonly service: string; readonly project: string }): boolean {
  return shortName(service) === ref.service && (ref.project === '' || stackOf(service) === ref.project);
}

/**
 * `<service>.<slot>.<node>`: which replica and where it runs, readable in HAProxy's stats. The
 * node is its hostname (its ID's first 12 characters if unknown; `unassigned` before placement).
 * Discovery prefixes it and replaces what a server name may not contain.
 */
export function taskName(service: SwarmService, task: SwarmTask, nodes: NodeNames): string {
  const node = task.nodeId === '' ? 'unassigned' : (nodes.get(task.nodeId) ?? task.nodeId.slice(0, 12));
  return `${service.name}.${task.slot === 0 ? task.id.slice(0, 12) : task.slot}.${node}`;
}

/**
 * A live task as the snapshot discovery and scaling read. `running` is true from the moment Swarm
 * wants it running until it is told to stop, so a replica being placed or started counts as
 * starting (and is not started twice); `health` is `healthy` once Swarm observes it running,
 * which for an image with a healthcheck is after its first healthy check (Swarm holds a task in
 * `starting` until then). A task told to stop is not a replica any more, but while its container
 * runs it is listed as `stopping`: its server is drained, not cut, and goes once it stopped.
 */
export function taskSnapshot(
  service: SwarmService,
  task: SwarmTask,
  nodes: NodeNames,
  removalOrder: number | undefined,
  down: DownNodes = new Set(),
): ContainerSnapshot {
  return {
    id: task.id,
    name: taskName(service, task, nodes),
    // The task's own container labels, not the service's current ones: during a rolling update
    // the old tasks still run the spec they were created from.
    labels: serviceLabels(task.containerLabels === undefined ? service : { ...service, containerLabels: task.containerLabels }),
    // A task on a node Swarm lost still reads running until Swarm reschedules it: not a replica.
    running: (isLiveTask(task) || isStoppingTask(task)) && !down.has(task.nodeId),
    health: task.state === 'running' ? 'healthy' : 'starting',
    networks: task.addresses,
    publishedPorts: [],
    createdAt: task.createdAt,
    ...(removalOrder === undefined ? {} : { removalOrder }),
    ...(isStoppingTask(task) ? { stopping: true } : {}),
  };
}

interface Slot {
  readonly slot: number;
  readonly tasks: readonly SwarmTask[];
}

function activeSlots(tasks: readonly SwarmTask[]): Slot[] {
  const bySlot = new Map<number, SwarmTask[]>();
  for (const task of tasks) {
    if (!isActiveTask(task)) continue;
    // A global service's tasks have slot 0; each is its own replica (keyed by task).
    const key = task.slot;
    bySlot.set(key, [...(bySlot.get(key) ?? []), task]);
  }
  return [...bySlot].map(([slot, list]) => ({ slot, tasks: list }));
}

/**
 * The slots of a replicated service in the order Swarm stops them when it shrinks: the first one
 * is stopped when the count goes down by one, the first two when it goes down by two, and so on.
 * Each entry lists the task IDs of that slot. See the file's header for SwarmKit's ordering.
 */
export function swarmRemovalOrder(tasks: readonly SwarmTask[]): string[][] {
  const running = (s: Slot): boolean => s.tasks.some((t) => t.state === 'running');
  const byRunningState = activeSlots(tasks).sort((a, b) => Number(running(b)) - Number(running(a)) || a.slot - b.slot);
  const copiesOnNode = new Map<string, number>();
  const indexed = byRunningState.map((s) => {
    const only = s.tasks.length === 1 ? s.tasks[0] : undefined;
    if (only === undefined || only.nodeId === '') return { s, index: -1 };
    const index = (copiesOnNode.get(only.nodeId) ?? 0) + 1;
    copiesOnNode.set(only.nodeId, index);
    return { s, index };
  });
  // Array.prototype.sort is stable, as Go's sort.Sort is for the small services this predicts exactly.
  const kept = indexed.sort((a, b) => (a.index < 0 ? 1 : 0) - (b.index < 0 ? 1 : 0) || a.index - b.index);
  return kept.reverse().map(({ s }) => s.tasks.map((t) => t.id));
}

/** Task ID → its place in Swarm's removal order (1: stopped first). */
export function removalOrderOf(tasks: readonly SwarmTask[]): Map<string, number> {
  const order = new Map<string, number>();
  swarmRemovalOrder(tasks).forEach((ids, i) => {
    for (const id of ids) order.set(id, i + 1);
  });
  return order;
}

/** What a scale-down of `taskId` should do, given the service's tasks now. */
export type ScaleDownPlan =
  /** Lower the count to this: Swarm then stops exactly that task's slot (as predicted). */
  | { readonly kind: 'scale'; readonly replicas: number }
  /** The task is already told to stop, or gone: the scale-down happened (or someone else's did). */
  | { readonly kind: 'gone' }
  /**
   * The spec already asks for fewer slots than Swarm has: a scale-down (this one, from an earlier
   * pass) Swarm has not applied yet. Lowering the count again would stop one more task: wait.
   */
  | { readonly kind: 'pending' }
  /** Swarm would stop another replica: do not scale; the drained one goes back into service. */
  | { readonly kind: 'not-victim'; readonly victim: readonly string[] };

export function planScaleDown(tasks: readonly SwarmTask[], taskId: string, specReplicas: number): ScaleDownPlan {
  const order = swarmRemovalOrder(tasks);
  const first = order[0];
  if (!order.some((ids) => ids.includes(taskId))) return { kind: 'gone' };
  if (specReplicas < order.length) return { kind: 'pending' };
  if (first === undefined || !first.includes(taskId)) return { kind: 'not-victim', victim: first ?? [] };
  // One slot fewer than Swarm counts now (not the spec's count minus one: when the spec asks for
  // more slots than there are, that would stop nothing).
  return { kind: 'scale', replicas: order.length - 1 };
}

/**
 * The count that adds `count` replicas to those Swarm has now (its slots, less those only on lost
 * nodes, which Swarm replaces by itself), and never lowers the spec: a scale-up asked again while
 * Swarm still places the last one's tasks changes nothing.
 */
export function scaleUpReplicas(specReplicas: number, tasks: readonly SwarmTask[], count: number, down: DownNodes = new Set()): number {
  const kept = activeSlots(tasks).filter((s) => s.tasks.some((t) => t.nodeId === '' || !down.has(t.nodeId)));
  return Math.max(specReplicas, kept.length + count);
}

/** Which tasks an update told to stop: active before, not active (or gone) after. */
export function stoppedBetween(before: readonly SwarmTask[], after: readonly SwarmTask[]): string[] {
  const activeAfter = new Set(after.filter(isActiveTask).map((t) => t.id));
  return before.filter((t) => isActiveTask(t) && !activeAfter.has(t.id)).map((t) => t.id);
}

/** Docker's answer when an update carried an outdated version index. */
export const isVersionConflict = (message: string): boolean => /update out of sequence|version.*out of date/i.test(message);
