// The Docker edge: the only module that imports dockerode. One client for everything the sidecar
// asks of Docker (list, events, inspect, start a replica like another, stop, stats), converting
// Docker's types into the one snapshot type (snapshot.ts) right here, and every failure into an
// EdgeError value.
import Docker from 'dockerode';
import { errorMessage, fail, ok, type Result } from '../edge/result.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE, ROLLOUT_BATCH, ROLLOUT_ID, composeNumber } from './labels.js';
import type { ContainerEvent, ContainerHealth, ContainerSnapshot, PublishedPort } from './snapshot.js';

export type { ContainerEvent, ContainerHealth, ContainerSnapshot, PublishedPort } from './snapshot.js';
export { isLeavingEvent, isReturningEvent, isStoppingKill } from './snapshot.js';
export { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE, ROLLOUT_BATCH, ROLLOUT_ID, composeNumber } from './labels.js';

/**
 * What a rollout changes in the replicas it starts: the image, the whole environment, and labels
 * added to the template's (which rollout and batch started it).
 */
export interface ReplicaVariant {
  readonly image: string;
  readonly env: readonly string[];
  readonly labels: Readonly<Record<string, string>>;
}

/** The version a container runs: its image as configured and its environment. */
export interface ReplicaVersion {
  readonly image: string;
  readonly env: readonly string[];
}

/**
 * A Swarm service's task template as a rollout reads it: the version its new tasks get, the
 * labels their containers get, and Swarm's own rolling update's state (undefined before any).
 */
export interface ServiceSpecView {
  readonly version: ReplicaVersion;
  readonly containerLabels: Readonly<Record<string, string>>;
  readonly update: { readonly state: string; readonly message: string } | undefined;
}

/** A rollout's change of a Swarm service: Swarm's own rolling update replaces the tasks. */
export interface ServiceUpdate {
  readonly version: ReplicaVersion;
  /** Container labels set (a value) or taken away (undefined); the others stay as they are. */
  readonly labels: Readonly<Record<string, string | undefined>>;
  /** Tasks replaced at a time. */
  readonly parallelism: number;
  /**
   * How long each batch serves before Swarm replaces the next, watched for failures meanwhile
   * (its update's Delay and Monitor): the rollout's bake, so a bad version is caught on the
   * first batch rather than after Swarm replaced every task.
   */
  readonly bakeMs: number;
}

/** A Compose service: its containers carry these two labels (in Swarm mode: a stack's service and its stack). */
export interface ServiceRef {
  readonly service: string;
  /** Empty: any project (the local environment has one service of that name). */
  readonly project: string;
}

export interface DockerEdge {
  /** Running containers; `selects` filters on labels before anything else is converted. */
  listRunning(selects?: (labels: Readonly<Record<string, string>>) => boolean): Promise<Result<ContainerSnapshot[]>>;
  /** Resolves once the event stream is open; iterating it ends (or throws) when Docker closes it. */
  openEvents(signal: AbortSignal): Promise<AsyncIterable<ContainerEvent>>;
  /**
   * Creates and starts `count` containers like `templateId` (cloneSpec), numbered after every
   * container of `ref`; with `variant`, of that image and environment instead (a rollout).
   */
  startLike(ref: ServiceRef, templateId: string, count: number, variant?: ReplicaVariant): Promise<Result<string[]>>;
  /** The image and environment a container was created with. */
  versionOf(id: string): Promise<Result<ReplicaVersion>>;
  /** Whether the image is on this Docker host (a rollout pulls nothing). */
  hasImage(image: string): Promise<Result<boolean>>;
  /** Swarm mode: the service's task template and update state; Compose answers `unsupported`. */
  readService(ref: ServiceRef): Promise<Result<ServiceSpecView>>;
  /** Swarm mode: a new task template through Swarm's rolling update; Compose answers `unsupported`. */
  updateService(ref: ServiceRef, change: ServiceUpdate): Promise<Result<void>>;
  /** Graceful stop (the image's STOPSIGNAL; nginx quits after its requests), then removal. */
  stopAndRemove(id: string, timeoutSeconds: number): Promise<Result<void>>;
  /** Mean CPU of the containers, as a fraction of one core; undefined if none could be read. */
  cpu(ids: readonly string[]): Promise<Result<number | undefined>>;
  /** Removes the containers of `ref` created but never started, older than `minAgeSeconds`; how many. */
  removeNeverStarted(ref: ServiceRef, minAgeSeconds: number, nowSeconds: number): Promise<Result<number>>;
}

/** The events that can change which containers are ready. */
export const WATCHED_ACTIONS = ['start', 'die', 'stop', 'kill', 'destroy', 'health_status', 'pause', 'unpause'] as const;

/** 304: already stopped; 404: already gone. Both are what a stop wants. */
const statusOf = (error: unknown): number | undefined => (error as { statusCode?: number }).statusCode;

export function createDockerEdge(socketPath: string): DockerEdge {
  const docker = new Docker({ socketPath });
  const serviceFilters = (ref: ServiceRef) => ({
    label: [`${COMPOSE_SERVICE}=${ref.service}`, ...(ref.project === '' ? [] : [`${COMPOSE_PROJECT}=${ref.project}`])],
  });

  return {
    async listRunning(selects) {
      try {
        const containers = await docker.listContainers({ all: false });
        return ok(containers.filter((c) => selects === undefined || selects(c.Labels)).map(toSnapshot));
      } catch (error) {
        return fail('list containers', 'unavailable', errorMessage(error));
      }
    },

    async openEvents(signal) {
      const stream = (await docker.getEvents({
        filters: { type: ['container'], event: [...WATCHED_ACTIONS] },
      })) as NodeJS.ReadableStream & { destroy(): void };
      return readEvents(stream, signal);
    },

    async startLike(ref, templateId, count, variant) {
      const operation = `start ${count} container(s) like ${templateId.slice(0, 12)}`;
      if (count <= 0) return ok([]);
      const started: string[] = [];
      try {
        const template = await docker.getContainer(templateId).inspect();
        // Numbers of every container of the service, running or not, so a new one never reuses one.
        const all = await docker.listContainers({ all: true, filters: serviceFilters(ref) });
        const used = new Set(all.map((c) => composeNumber(c.Labels) ?? 0));
        // A scale-up cut between create and start (the sidecar killed) left a replica that never
        // ran: start it rather than create another beside it, which would stay behind forever.
        // Only one of the same version and rollout batch: a rollout's new replica never stands in for an old one.
        const sameKind = (c: Docker.ContainerInfo): boolean =>
          variant === undefined
            ? c.Labels[ROLLOUT_ID] === undefined
            : c.Image === variant.image && c.Labels[ROLLOUT_ID] === variant.labels[ROLLOUT_ID] && c.Labels[ROLLOUT_BATCH] === variant.labels[ROLLOUT_BATCH];
        for (const leftover of all.filter((c) => c.State === 'created' && sameKind(c))) {
          if (started.length >= count) break;
          const container = docker.getContainer(leftover.Id);
          const ran = await container.start().then(() => true, () => false);
          if (ran) started.push(leftover.Id);
          else await container.remove({ force: true }).catch(() => undefined);
        }
        let number = 1;
        for (let i = started.length; i < count; i++) {
          while (used.has(number)) number++;
          used.add(number);
          const spec = cloneSpec(template, number, variant);
          const container = await docker.createContainer(spec.create);
          for (const [network, endpoint] of spec.connectAfterCreate) {
            await docker.getNetwork(network).connect({ Container: container.id, EndpointConfig: endpoint });
          }
          await container.start();
          started.push(container.id);
        }
        return ok(started);
      } catch (error) {
        // The ones already started stay: they are replicas like the others, and the next
        // evaluation counts them.
        return fail(operation, statusOf(error) === 404 ? 'not-found' : 'unavailable', `${errorMessage(error)} (started ${started.length} of ${count})`);
      }
    },

    async versionOf(id) {
      try {
        const inspected = await docker.getContainer(id).inspect();
        return ok({ image: inspected.Config.Image, env: inspected.Config.Env ?? [] });
      } catch (error) {
        return fail(`inspect ${id.slice(0, 12)}`, statusOf(error) === 404 ? 'not-found' : 'unavailable', errorMessage(error));
      }
    },

    async hasImage(image) {
      try {
        await docker.getImage(image).inspect();
        return ok(true);
      } catch (error) {
        if (statusOf(error) === 404) return ok(false);
        return fail(`inspect image ${image}`, 'unavailable', errorMessage(error));
      }
    },

    // A Compose rollout replaces containers itself, batch by batch (records/rollouts.ts).
    readService: () => Promise.resolve(fail('read a Swarm service', 'unsupported', 'docker.mode is compose: there is no Swarm service to read')),
    updateService: () => Promise.resolve(fail('update a Swarm service', 'unsupported', 'docker.mode is compose: there is no Swarm service to update')),

    async removeNeverStarted(ref, minAgeSeconds, nowSeconds) {
      try {
        const created = await docker.listContainers({ all: true, filters: { ...serviceFilters(ref), status: ['created'] } });
        let removed = 0;
        for (const c of created.filter((x) => nowSeconds - x.Created >= minAgeSeconds)) {
          const gone = await docker.getContainer(c.Id).remove({ force: true }).then(() => true, (error: unknown) => statusOf(error) === 404);
          if (gone) removed++;
        }
        return ok(removed);
      } catch (error) {
        return fail(`remove never-started containers of ${ref.service}`, 'unavailable', errorMessage(error));
      }
    },

    async stopAndRemove(id, timeoutSeconds) {
      const container = docker.getContainer(id);
      try {
        await container.stop({ t: timeoutSeconds }).catch((error: unknown) => {
          if (statusOf(error) !== 304 && statusOf(error) !== 404) throw error;
        });
        await container.remove().catch((error: unknown) => {
          if (statusOf(error) !== 404) throw error;
        });
        return ok(undefined);
      } catch (error) {
        return fail(`stop and remove ${id.slice(0, 12)}`, 'unavailable', errorMessage(error));
      }
    },

    async cpu(ids) {
      const readings = await Promise.all(
        ids.map(async (id) => {
          try {
            const stats = (await docker.getContainer(id).stats({ stream: false })) as unknown as DockerStats;
            return cpuFraction(stats);
          } catch {
            return undefined;
          }
        }),
      );
      const known = readings.filter((r): r is number => r !== undefined);
      return ok(known.length === 0 ? undefined : known.reduce((a, b) => a + b, 0) / known.length);
    },
  };
}

/**
 * The list endpoint carries everything discovery needs, so one call per reconcile suffices even
 * with hundreds of containers. Health is only in its Status text ("Up 5 minutes (healthy)"),
 * a format the daemon has produced unchanged since healthchecks exist (Docker 1.12).
 */
export function toSnapshot(c: Docker.ContainerInfo): ContainerSnapshot {
  const networks: Record<string, string> = {};
  for (const [name, network] of Object.entries(c.NetworkSettings.Networks)) {
    if (network.IPAddress !== '') networks[name] = network.IPAddress;
  }
  const publishedPorts: PublishedPort[] = c.Ports.filter(
    (p) => p.Type === 'tcp' && p.PublicPort !== undefined && p.PublicPort > 0,
  ).map((p) => ({ containerPort: p.PrivatePort, hostIp: p.IP ?? '', hostPort: p.PublicPort }));
  // IPv4 bindings first: HAProxy reaches a wildcard binding through 127.0.0.1.
  publishedPorts.sort((a, b) => Number(a.hostIp.includes(':')) - Number(b.hostIp.includes(':')));
  return {
    id: c.Id,
    name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
    labels: c.Labels,
    running: c.State === 'running',
    health: healthFromStatus(c.Status),
    networks,
    publishedPorts,
    createdAt: c.Created,
  };
}

export function healthFromStatus(status: string): ContainerHealth {
  if (status.includes('(healthy)')) return 'healthy';
  if (status.includes('(unhealthy)')) return 'unhealthy';
  if (status.includes('(health: starting)')) return 'starting';
  return 'none';
}

export async function* readEvents(
  stream: NodeJS.ReadableStream & { destroy(): void },
  signal: AbortSignal,
): AsyncGenerator<ContainerEvent> {
  const close = (): void => stream.destroy();
  signal.addEventListener('abort', close, { once: true });
  let buffered = '';
  try {
    for await (const chunk of stream) {
      buffered += chunk.toString();
      // The daemon writes one JSON object per line.
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        const event = parseEventLine(line);
        if (event !== undefined) yield event;
      }
    }
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  } finally {
    signal.removeEventListener('abort', close);
    stream.destroy();
  }
}

function parseEventLine(line: string): ContainerEvent | undefined {
  try {
    const raw = JSON.parse(line) as { Action?: unknown; Actor?: { ID?: unknown; Attributes?: { signal?: unknown } } };
    if (typeof raw.Action !== 'string' || typeof raw.Actor?.ID !== 'string') return undefined;
    const signal = raw.Actor.Attributes?.signal;
    // health_status events read "health_status: healthy": the verb, and the verdict apart.
    const [action = raw.Action, verdict] = raw.Action.split(':').map((part) => part.trim());
    return {
      action,
      containerId: raw.Actor.ID,
      ...(typeof signal === 'string' ? { signal } : {}),
      ...(action === 'health_status' && verdict !== undefined && verdict !== '' ? { health: verdict } : {}),
    };
  } catch {
    return undefined;
  }
}

/** The fields of Docker's stats answer that CPU needs. */
export interface DockerStats {
  readonly cpu_stats: { readonly cpu_usage: { readonly total_usage: number }; readonly system_cpu_usage?: number; readonly online_cpus?: number };
  readonly precpu_stats: { readonly cpu_usage: { readonly total_usage: number }; readonly system_cpu_usage?: number };
}

/** CPU used between Docker's two readings, as a fraction of one core (what `docker stats` shows / 100). */
export function cpuFraction(stats: DockerStats): number | undefined {
  const used = stats.cpu_stats.cpu_usage.total_usage - stats.precpu_stats.cpu_usage.total_usage;
  const system = (stats.cpu_stats.system_cpu_usage ?? 0) - (stats.precpu_stats.system_cpu_usage ?? 0);
  const cpus = stats.cpu_stats.online_cpus ?? 1;
  if (!(system > 0) || used < 0) return undefined;
  return (used / system) * cpus;
}

export interface CloneSpec {
  readonly create: Docker.ContainerCreateOptions;
  /** Networks beyond the first: Docker before API 1.44 connects only one at creation. */
  readonly connectAfterCreate: ReadonlyArray<readonly [string, Docker.EndpointSettings]>;
}

/**
 * What Compose would create for another replica: same image, command, environment, volumes,
 * networks (with the service's aliases), restart policy and labels, the next container number,
 * Compose's name, and published ports on fresh host ports. The hostname is left to Docker, so
 * each replica says who it is.
 */
export function cloneSpec(template: Docker.ContainerInspectInfo, number: number, variant?: ReplicaVariant): CloneSpec {
  // A replica carries the rollout labels of the variant it is started as, never its template's:
  // after a rollout every replica has them, and a later scale-up is no part of that rollout.
  const { [ROLLOUT_ID]: _rollout, [ROLLOUT_BATCH]: _batch, ...inherited } = template.Config.Labels ?? {};
  const labels: Record<string, string> = { ...inherited, ...variant?.labels, [COMPOSE_NUMBER]: String(number) };
  // The inspect type omits StopSignal, which Docker returns when the image or run sets one.
  const stopSignal = (template.Config as { StopSignal?: string }).StopSignal;
  const project = labels[COMPOSE_PROJECT];
  const service = labels[COMPOSE_SERVICE];
  const baseName = template.Name.replace(/^\//, '').replace(/[-_]\d+$/, '');
  const name = project !== undefined && service !== undefined ? `${project}-${service}-${number}` : `${baseName}-${number}`;

  const portBindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  // The inspect type has PortBindings as `any`; Docker answers { "80/tcp": [{ HostIp, HostPort }] }.
  const templateBindings = (template.HostConfig.PortBindings ?? {}) as Record<string, unknown>;
  for (const [port, bindings] of Object.entries(templateBindings)) {
    portBindings[port] = ((bindings ?? []) as Array<{ HostIp?: string }>).map((b) => ({ HostIp: b.HostIp ?? '', HostPort: '' }));
  }
  const templateId = template.Id.slice(0, 12);
  const templateName = template.Name.replace(/^\//, '');
  const endpoints = Object.entries(template.NetworkSettings.Networks).map(([network, settings]): [string, Docker.EndpointSettings] => {
    const aliases = ((settings as { Aliases?: string[] | null }).Aliases ?? []).filter((a) => a !== templateId && a !== templateName);
    return [network, aliases.length > 0 ? { Aliases: aliases } : {}];
  });
  const mode = template.HostConfig.NetworkMode ?? 'default';
  const primary = endpoints.find(([network]) => network === mode) ?? endpoints[0];

  const create: Docker.ContainerCreateOptions = {
    name,
    Image: variant?.image ?? template.Config.Image,
    Labels: labels,
    ...(template.Config.Cmd === undefined || template.Config.Cmd === null ? {} : { Cmd: template.Config.Cmd }),
    ...(template.Config.Entrypoint === undefined || template.Config.Entrypoint === null ? {} : { Entrypoint: template.Config.Entrypoint }),
    ...(variant !== undefined ? { Env: [...variant.env] } : template.Config.Env === undefined ? {} : { Env: template.Config.Env }),
    ...(template.Config.WorkingDir ? { WorkingDir: template.Config.WorkingDir } : {}),
    ...(template.Config.User ? { User: template.Config.User } : {}),
    ...(template.Config.ExposedPorts === undefined ? {} : { ExposedPorts: template.Config.ExposedPorts }),
    ...(stopSignal === undefined ? {} : { StopSignal: stopSignal }),
    ...(template.Config.Healthcheck === undefined ? {} : { Healthcheck: template.Config.Healthcheck }),
    HostConfig: { ...template.HostConfig, PortBindings: portBindings },
    ...(primary === undefined ? {} : { NetworkingConfig: { EndpointsConfig: { [primary[0]]: primary[1] } } }),
  };
  return { create, connectAfterCreate: endpoints.filter((e) => e !== primary) };
}
