// The Docker edge in Swarm mode (docker.mode: swarm): the same DockerEdge interface the Compose
// mode implements (index.ts), over a Swarm manager's API. A replica is a task of a replicated
// service; it is listed with the service's labels, its address on each overlay network it is
// attached to, and its place in Swarm's removal order; scaling changes the service's replica
// count (with the spec's version index, again on a version conflict). The decisions live in
// swarm-plan.ts, pure; this file only reads, converts and writes.
//
// A scale-down in Swarm cannot name the task that stops: the orchestrator picks it (swarm-plan.ts
// says how). The autoscaler drains the replica Swarm will pick (its removalOrder is 1), and
// stopAndRemove() lowers the count only if Swarm would still pick that one now; otherwise it
// scales nothing and answers `conflict`: the autoscaler gives that retirement up, the drained
// replica is a server again at the next pass and the next evaluation drains Swarm's new pick. After the update it reads which task Swarm stopped and says so when it was
// another (a prediction wrong beyond 12 replicas, or a task that changed in between).
import Docker from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage, fail, ok } from '../edge/result.js';
import type { Logger } from '../log/logger.js';
import { readEvents, type DockerEdge, type ServiceRef, type ServiceSpecView, type ServiceUpdate } from './compose.js';
import type { ContainerEvent } from './snapshot.js';
import {
  isLiveTask,
  isStoppingTask,
  isServiceRef,
  isVersionConflict,
  planScaleDown,
  removalOrderOf,
  scaleUpReplicas,
  serviceLabels,
  stoppedBetween,
  taskSnapshot,
  type DownNodes,
  type NodeNames,
  type SwarmService,
  type SwarmTask,
} from './swarm-plan.js';

/** The calls the Swarm edge makes; dockerode's client has them (tests pass their own). */
export interface SwarmApi {
  listServices(): Promise<unknown[]>;
  listTasks(options: { filters: { service: string[] } }): Promise<unknown[]>;
  listNodes(): Promise<unknown[]>;
  getTask(id: string): { inspect(): Promise<unknown> };
  getService(id: string): { inspect(): Promise<unknown>; update(options: { _query: { version: unknown }; _body: unknown }): Promise<unknown> };
  getEvents(options: { filters: { type: Array<(typeof WATCHED_SWARM_TYPES)[number]> } }): Promise<NodeJS.ReadableStream>;
}

export interface SwarmEdgeOptions {
  /** A Swarm manager's API socket. */
  readonly socketPath: string;
  /** Instead of a dockerode client on socketPath. */
  readonly api?: SwarmApi;
  readonly logger?: Logger;
  /** How long a scale-down waits to see which task Swarm stopped (default 5 s). */
  readonly verifyTimeoutMs?: number;
  /** Attempts of an update refused for an outdated version index (default 5). */
  readonly maxConflictRetries?: number;
}

/** The service and node events that can change the replicas; task changes have no events. */
export const WATCHED_SWARM_TYPES = ['service', 'node'] as const;

const statusOf = (error: unknown): number | undefined => (error as { statusCode?: number }).statusCode;

const record = (value: unknown): Record<string, unknown> => (value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : {});
const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const labelsOf = (value: unknown): Record<string, string> =>
  Object.fromEntries(Object.entries(record(value)).filter((e): e is [string, string] => typeof e[1] === 'string'));

/** Docker's task JSON as a SwarmTask; undefined when it lacks an ID or a service. */
export function parseTask(raw: unknown): SwarmTask | undefined {
  const t = record(raw);
  const id = text(t.ID);
  const serviceId = text(t.ServiceID);
  if (id === '' || serviceId === '') return undefined;
  const addresses: Record<string, string> = {};
  for (const attachment of Array.isArray(t.NetworksAttachments) ? t.NetworksAttachments : []) {
    const a = record(attachment);
    const name = text(record(record(a.Network).Spec).Name);
    const first = (Array.isArray(a.Addresses) ? a.Addresses : []).map(text).find((address) => /^\d+\.\d+\.\d+\.\d+(\/\d+)?$/.test(address));
    if (name !== '' && first !== undefined) addresses[name] = first.replace(/\/\d+$/, '');
  }
  const created = Date.parse(text(t.CreatedAt));
  const containerSpec = record(record(t.Spec).ContainerSpec);
  return {
    id,
    serviceId,
    slot: typeof t.Slot === 'number' ? t.Slot : 0,
    nodeId: text(t.NodeID),
    state: text(record(t.Status).State),
    desiredState: text(t.DesiredState),
    createdAt: Number.isNaN(created) ? 0 : Math.floor(created / 1000),
    addresses,
    ...('Spec' in t ? { containerLabels: labelsOf(containerSpec.Labels) } : {}),
  };
}

/** Docker's service JSON as a SwarmService; undefined without an ID or a name. */
export function parseService(raw: unknown): SwarmService | undefined {
  const s = record(raw);
  const spec = record(s.Spec);
  const id = text(s.ID);
  const name = text(spec.Name);
  if (id === '' || name === '') return undefined;
  const replicated = record(record(spec.Mode).Replicated);
  const replicas = typeof replicated.Replicas === 'number' ? replicated.Replicas : 'Replicated' in record(spec.Mode) ? 1 : undefined;
  return {
    id,
    name,
    version: typeof record(s.Version).Index === 'number' ? (record(s.Version).Index as number) : 0,
    replicas,
    labels: labelsOf(spec.Labels),
    containerLabels: labelsOf(record(record(spec.TaskTemplate).ContainerSpec).Labels),
  };
}

const nanoseconds = (ms: number): number => Math.round(ms * 1_000_000);

/** A service's task template and update state, as a rollout reads them. */
export function serviceSpecView(raw: unknown): ServiceSpecView {
  const s = record(raw);
  const container = record(record(record(s.Spec).TaskTemplate).ContainerSpec);
  const status = record(s.UpdateStatus);
  return {
    version: { image: text(container.Image), env: Array.isArray(container.Env) ? container.Env.filter((e): e is string => typeof e === 'string') : [] },
    containerLabels: labelsOf(container.Labels),
    update: text(status.State) === '' ? undefined : { state: text(status.State), message: text(status.Message) },
  };
}

/**
 * The spec as read with a rollout's change: the task template's image, environment and labels,
 * and an update configuration that replaces `parallelism` tasks at a time, `bakeMs` apart, each new one started
 * before its old one stops (start-first: with stop-first a slot has no task until the sidecar's
 * next pass sees the new one, measured at 76 failed of 301 requests with 2 tasks) and that pauses
 * on a failure (the sidecar rolls back itself, on HAProxy's figures as well as Swarm's).
 * Everything else is sent back as read, the replica count included.
 */
export function updatedSpec(spec: Record<string, unknown>, change: ServiceUpdate): Record<string, unknown> {
  const template = record(spec.TaskTemplate);
  const container = record(template.ContainerSpec);
  const labels: Record<string, string> = { ...labelsOf(container.Labels) };
  for (const [key, value] of Object.entries(change.labels)) {
    if (value === undefined) delete labels[key];
    else labels[key] = value;
  }
  const { Env: _env, Labels: _labels, ...rest } = container;
  // An empty list written where the spec had none would make every task differ from the spec
  // restored by a rollback, and Swarm would replace tasks that never changed.
  const next = {
    ...rest,
    Image: change.version.image,
    ...(change.version.env.length === 0 ? {} : { Env: [...change.version.env] }),
    ...(Object.keys(labels).length === 0 ? {} : { Labels: labels }),
  };
  return {
    ...spec,
    TaskTemplate: { ...template, ContainerSpec: next },
    UpdateConfig: { Parallelism: change.parallelism, Delay: nanoseconds(change.bakeMs), FailureAction: 'pause', Monitor: nanoseconds(change.bakeMs), MaxFailureRatio: 0, Order: 'start-first' },
  };
}

export function createSwarmEdge(options: SwarmEdgeOptions): DockerEdge {
  const docker: SwarmApi = options.api ?? new Docker({ socketPath: options.socketPath });
  const logger = options.logger;
  const verifyTimeoutMs = options.verifyTimeoutMs ?? 5_000;
  const maxConflictRetries = options.maxConflictRetries ?? 5;

  const services = async (): Promise<Array<{ service: SwarmService; raw: Record<string, unknown> }>> =>
    (await docker.listServices()).flatMap((raw) => {
      const service = parseService(raw);
      return service === undefined ? [] : [{ service, raw: record(raw) }];
    });
  const tasksOf = async (serviceId: string): Promise<SwarmTask[]> =>
    (await docker.listTasks({ filters: { service: [serviceId] } }))
      .map(parseTask)
      .filter((t): t is SwarmTask => t !== undefined && t.serviceId === serviceId);
  const nodeList = async (): Promise<{ names: NodeNames; down: DownNodes }> => {
    const nodes = (await docker.listNodes()).map(record);
    return {
      names: new Map(nodes.map((n) => [text(n.ID), text(record(n.Description).Hostname)] as const)),
      down: new Set(nodes.filter((n) => text(record(n.Status).State) !== 'ready').map((n) => text(n.ID))),
    };
  };

  /** Sets the service's count from the spec read at `version`; false on a version conflict. */
  async function setReplicas(serviceId: string, raw: Record<string, unknown>, replicas: number): Promise<boolean> {
    const spec = record(raw.Spec);
    const version = record(raw.Version).Index;
    try {
      // The spec exactly as read, only the count changed: anything else would roll the tasks.
      await docker.getService(serviceId).update({ _query: { version }, _body: { ...spec, Mode: { Replicated: { Replicas: replicas } } } });
      return true;
    } catch (error) {
      if (isVersionConflict(errorMessage(error))) return false;
      throw error;
    }
  }

  async function findService(ref: ServiceRef): Promise<{ service: SwarmService; raw: Record<string, unknown> } | string> {
    const matching = (await services()).filter((s) => isServiceRef(s.service, ref));
    if (matching.length === 1 && matching[0] !== undefined) return matching[0];
    const name = ref.project === '' ? ref.service : `${ref.project}_${ref.service}`;
    return matching.length === 0 ? `no Swarm service ${name}` : `${matching.length} Swarm services match ${name}: set docker.composeProject to the stack`;
  }

  return {
    async listRunning(selects) {
      try {
        const [all, nodes] = await Promise.all([services(), nodeList()]);
        const chosen = all.filter(({ service }) => selects === undefined || selects(serviceLabels(service)));
        const snapshots = await Promise.all(
          chosen.map(async ({ service }) => {
            const tasks = await tasksOf(service.id);
            const order = service.replicas === undefined ? new Map<string, number>() : removalOrderOf(tasks);
            return tasks.filter((t) => isLiveTask(t) || isStoppingTask(t)).map((t) => taskSnapshot(service, t, nodes.names, order.get(t.id), nodes.down));
          }),
        );
        return ok(snapshots.flat());
      } catch (error) {
        return fail('list Swarm tasks', 'unavailable', errorMessage(error));
      }
    },

    async openEvents(signal) {
      const stream = (await docker.getEvents({ filters: { type: [...WATCHED_SWARM_TYPES] } })) as NodeJS.ReadableStream & { destroy(): void };
      // Service and node events carry the service's or node's ID where containers' carry theirs:
      // the reconciler only uses them as triggers.
      return readEvents(stream, signal) as AsyncIterable<ContainerEvent>;
    },

    // Swarm creates and starts its tasks itself: nothing is left half-started by the sidecar.
    removeNeverStarted: () => Promise.resolve(ok(0)),

    // A Swarm rollout reads and changes the service's spec (readService, updateService), not a
    // replica's; and the image is the nodes' business (they pull it or have it), not this host's.
    versionOf: () => Promise.resolve(fail('inspect a replica\'s version', 'unsupported', 'in Swarm mode a rollout reads the service\'s spec')),
    hasImage: () => Promise.resolve(fail('inspect an image', 'unsupported', 'in Swarm mode the nodes pull or have the image')),

    async readService(ref) {
      const operation = `read the Swarm service ${ref.service}`;
      try {
        const found = await findService(ref);
        return typeof found === 'string' ? fail(operation, 'not-found', found) : ok(serviceSpecView(found.raw));
      } catch (error) {
        return fail(operation, 'unavailable', errorMessage(error));
      }
    },

    async updateService(ref, change) {
      const operation = `update the Swarm service ${ref.service}`;
      try {
        for (let attempt = 0; attempt <= maxConflictRetries; attempt++) {
          const found = await findService(ref);
          if (typeof found === 'string') return fail(operation, 'not-found', found);
          try {
            await docker.getService(found.service.id).update({ _query: { version: record(found.raw.Version).Index }, _body: updatedSpec(record(found.raw.Spec), change) });
          } catch (error) {
            // A scale-up or another update came in between: read the spec again.
            if (isVersionConflict(errorMessage(error))) continue;
            throw error;
          }
          logger?.info({ service: found.service.name, image: change.version.image, parallelism: change.parallelism }, `Swarm service ${found.service.name}: rolling update to ${change.version.image} asked`);
          return ok(undefined);
        }
        return fail(operation, 'conflict', `the service's version kept changing (${maxConflictRetries + 1} attempts)`);
      } catch (error) {
        return fail(operation, statusOf(error) === 404 ? 'not-found' : 'unavailable', errorMessage(error));
      }
    },

    async startLike(ref, _templateId, count) {
      const operation = `scale the Swarm service ${ref.service} up by ${count}`;
      if (count <= 0) return ok([]);
      try {
        for (let attempt = 0; attempt <= maxConflictRetries; attempt++) {
          const found = await findService(ref);
          if (typeof found === 'string') return fail(operation, 'not-found', found);
          // Setting a count would turn a global service into a replicated one.
          if (found.service.replicas === undefined) return fail(operation, 'unsupported', `${found.service.name} is a global service: one task per node, no count to raise`);
          const [before, nodes] = await Promise.all([tasksOf(found.service.id), nodeList()]);
          const replicas = scaleUpReplicas(found.service.replicas ?? 0, before, count, nodes.down);
          if (replicas === found.service.replicas) return ok([]);
          if (!(await setReplicas(found.service.id, found.raw, replicas))) continue;
          logger?.info({ service: found.service.name, replicas }, `Swarm service ${found.service.name} scaled to ${replicas}`);
          // The orchestrator creates the tasks right after the update: report their IDs.
          const known = new Set(before.map((t) => t.id));
          for (const deadline = Date.now() + 2_000; Date.now() < deadline; await sleep(100)) {
            const added = (await tasksOf(found.service.id)).filter((t) => !known.has(t.id) && isLiveTask(t)).map((t) => t.id);
            if (added.length > 0) return ok(added);
          }
          return ok([]);
        }
        return fail(operation, 'conflict', `the service's version kept changing (${maxConflictRetries + 1} attempts)`);
      } catch (error) {
        return fail(operation, statusOf(error) === 404 ? 'not-found' : 'unavailable', errorMessage(error));
      }
    },

    // The task's stop and removal are Swarm's: the count goes down by one and Swarm stops the
    // task it picks, with the service's stop grace period (not timeoutSeconds).
    async stopAndRemove(taskId) {
      const operation = `scale down the Swarm service of task ${taskId.slice(0, 12)}`;
      try {
        for (let attempt = 0; attempt <= maxConflictRetries; attempt++) {
          let serviceId: string;
          try {
            serviceId = text(record(await docker.getTask(taskId).inspect()).ServiceID);
          } catch (error) {
            if (statusOf(error) === 404) return ok(undefined);
            throw error;
          }
          const raw = record(await docker.getService(serviceId).inspect());
          const service = parseService(raw);
          if (service === undefined) return ok(undefined);
          // A conflict, so the autoscaler gives the retirement up and the task serves again.
          if (service.replicas === undefined) return fail(operation, 'conflict', `${service.name} is a global service: one task per node, no count to lower`);
          const before = await tasksOf(serviceId);
          const plan = planScaleDown(before, taskId, service.replicas ?? 0);
          // Pending: asked at an earlier pass, not applied by Swarm yet; the next pass looks again.
          if (plan.kind === 'gone' || plan.kind === 'pending') return ok(undefined);
          if (plan.kind === 'not-victim') {
            // A conflict: the autoscaler gives this retirement up (the replica serves again) and
            // its next evaluation drains Swarm's pick.
            return fail(operation, 'conflict', `Swarm would now stop ${plan.victim.map((id) => id.slice(0, 12)).join(', ')}, not this task; nothing was scaled`);
          }
          if (!(await setReplicas(serviceId, raw, plan.replicas))) continue;
          const stoppedOther = await verify(service, before, taskId);
          // Swarm stopped another task than the drained one: the scale-down is done (the count is
          // down by one), and the drained task must serve again, not be scaled down as well.
          return stoppedOther === undefined
            ? ok(undefined)
            : fail(operation, 'conflict', `Swarm stopped ${stoppedOther.map((id) => id.slice(0, 12)).join(', ')} instead of this task`);
        }
        return fail(operation, 'conflict', `the service's version kept changing (${maxConflictRetries + 1} attempts)`);
      } catch (error) {
        return fail(operation, statusOf(error) === 404 ? 'not-found' : 'unavailable', errorMessage(error));
      }
    },

    cpu() {
      // A task's container runs on its node's engine; the manager's API cannot read its stats.
      return Promise.resolve(ok(undefined));
    },
  };

  /**
   * Reads which task the update stopped and says so when it was not the drained one; resolves with
   * the tasks stopped instead of it, or undefined.
   */
  async function verify(service: SwarmService, before: readonly SwarmTask[], taskId: string): Promise<string[] | undefined> {
    for (const deadline = Date.now() + verifyTimeoutMs; Date.now() < deadline; await sleep(100)) {
      const stopped = stoppedBetween(before, await tasksOf(service.id));
      if (stopped.length === 0) continue;
      if (stopped.includes(taskId)) {
        logger?.info({ service: service.name, task: taskId.slice(0, 12) }, `Swarm stopped the drained task of ${service.name}, as predicted`);
        return undefined;
      } else {
        // The safety net: that task is no longer live, so discovery drops its server at the next
        // pass, and HAProxy's retries with option redispatch resend a connection it refuses.
        logger?.warn(
          { service: service.name, drained: taskId.slice(0, 12), stopped: stopped.map((id) => id.slice(0, 12)) },
          `Swarm stopped another task of ${service.name} than the drained one; its server is removed now and the drained one goes back into service`,
        );
        return stopped;
      }
    }
    // Not applied yet: the next pass sees the scale-down pending (and waits) or the task gone.
    logger?.warn({ service: service.name, task: taskId.slice(0, 12) }, `Swarm has not stopped a task of ${service.name} within ${verifyTimeoutMs} ms of the scale-down`);
    return undefined;
  }
}
