// The Docker edge of scaling (with discovery/docker.ts the only code that imports dockerode):
// the replicas of the scaled Compose service, new replicas made like the existing ones, graceful
// stops, and container CPU. cloneSpec() is pure so the copy rules are unit-tested on real inspect
// output.
import Docker from 'dockerode';

export const COMPOSE_PROJECT = 'com.docker.compose.project';
export const COMPOSE_SERVICE = 'com.docker.compose.service';
export const COMPOSE_NUMBER = 'com.docker.compose.container-number';

export interface Replica {
  readonly id: string;
  readonly name: string;
  /** Compose's container number (0 when the label is missing). */
  readonly number: number;
  /** Seconds since the epoch. */
  readonly createdAt: number;
}

export interface ServiceRef {
  readonly service: string;
  /** Empty: any project (the local environment has one service of that name). */
  readonly project: string;
}

export interface Replicas {
  list(): Promise<Replica[]>;
  /** Creates and starts `count` replicas like the newest running one; returns their IDs. */
  startLike(count: number): Promise<string[]>;
  /** Graceful stop (the image's STOPSIGNAL; nginx quits after its requests), then removal. */
  stopAndRemove(id: string, timeoutSeconds: number): Promise<void>;
  /** Mean CPU of the containers, as a fraction of one core; undefined if none could be read. */
  cpu(ids: readonly string[]): Promise<number | undefined>;
}

export function createDockerReplicas(socketPath: string, ref: ServiceRef): Replicas {
  const docker = new Docker({ socketPath });
  const filters = { label: [`${COMPOSE_SERVICE}=${ref.service}`, ...(ref.project === '' ? [] : [`${COMPOSE_PROJECT}=${ref.project}`])] };

  const list = async (): Promise<Replica[]> => {
    const containers = await docker.listContainers({ all: false, filters });
    return containers
      .map((c) => ({
        id: c.Id,
        name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
        number: Number(c.Labels[COMPOSE_NUMBER] ?? 0) || 0,
        createdAt: c.Created,
      }))
      .sort((a, b) => a.createdAt - b.createdAt || a.number - b.number);
  };

  return {
    list,
    async startLike(count) {
      if (count <= 0) return [];
      const replicas = await list();
      const newest = replicas[replicas.length - 1];
      if (newest === undefined) throw new Error(`no running replica of ${ref.service} to copy: start one first (docker compose up)`);
      const template = await docker.getContainer(newest.id).inspect();
      // Numbers of every container of the service, running or not, so a new one never reuses one.
      const all = await docker.listContainers({ all: true, filters });
      const used = new Set(all.map((c) => Number(c.Labels[COMPOSE_NUMBER] ?? 0)));
      const started: string[] = [];
      let number = 1;
      for (let i = 0; i < count; i++) {
        while (used.has(number)) number++;
        used.add(number);
        const spec = cloneSpec(template, number);
        const container = await docker.createContainer(spec.create);
        for (const [network, endpoint] of spec.connectAfterCreate) {
          await docker.getNetwork(network).connect({ Container: container.id, EndpointConfig: endpoint });
        }
        await container.start();
        started.push(container.id);
      }
      return started;
    },
    async stopAndRemove(id, timeoutSeconds) {
      const container = docker.getContainer(id);
      await container.stop({ t: timeoutSeconds }).catch((error: { statusCode?: number }) => {
        // 304: already stopped; 404: already gone.
        if (error.statusCode !== 304 && error.statusCode !== 404) throw error;
      });
      await container.remove().catch((error: { statusCode?: number }) => {
        if (error.statusCode !== 404) throw error;
      });
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
      return known.length === 0 ? undefined : known.reduce((a, b) => a + b, 0) / known.length;
    },
  };
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
export function cloneSpec(template: Docker.ContainerInspectInfo, number: number): CloneSpec {
  const labels: Record<string, string> = { ...template.Config.Labels, [COMPOSE_NUMBER]: String(number) };
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
    Image: template.Config.Image,
    Labels: labels,
    ...(template.Config.Cmd === undefined || template.Config.Cmd === null ? {} : { Cmd: template.Config.Cmd }),
    ...(template.Config.Entrypoint === undefined || template.Config.Entrypoint === null ? {} : { Entrypoint: template.Config.Entrypoint }),
    ...(template.Config.Env === undefined ? {} : { Env: template.Config.Env }),
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
