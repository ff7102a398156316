// Real nginx containers for the tests, the demo and the benchmarks. Every container carries the
// label hsc.owner=<test|demo|bench>, so the test suite's teardown removes whatever a failed test
// left behind without touching a demo or a benchmark running beside it.
import Docker from 'dockerode';
import { setTimeout as sleep } from 'node:timers/promises';
import { readPinnedVersions } from './versions.js';

export const OWNER_LABEL = 'hsc.owner';
export type ContainerOwner = 'test' | 'demo' | 'bench' | 'soak';

export const docker = new Docker({ socketPath: process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock' });

export interface TestContainer {
  readonly id: string;
  /** The container's hostname, which nginx puts in X-Served-By. */
  readonly hostname: string;
  /** The port it publishes on 127.0.0.1. */
  readonly hostPort: number;
  remove(): Promise<void>;
}

export interface NginxOptions {
  readonly owner?: ContainerOwner;
  readonly name?: string;
  readonly labels?: Readonly<Record<string, string>>;
  /** Wait for the Docker healthcheck to report healthy (default true). */
  readonly waitHealthy?: boolean;
  /** Keep the image's Docker healthcheck (default true); false runs the container without one. */
  readonly healthcheck?: boolean;
  /** Another Docker Engine than this machine's (a private daemon a test restarts). */
  readonly client?: Docker;
}

export async function startNginx(options: NginxOptions = {}): Promise<TestContainer> {
  const container = await (options.client ?? docker).createContainer({
    Image: readPinnedVersions().NGINX_IMAGE,
    ...(options.name === undefined ? {} : { name: options.name }),
    Labels: { [OWNER_LABEL]: options.owner ?? 'test', ...options.labels },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    ...(options.healthcheck === false ? { Healthcheck: { Test: ['NONE'] } } : {}),
  });
  const remove = async (): Promise<void> => {
    await container.remove({ force: true }).catch((error: { statusCode?: number }) => {
      if (error.statusCode !== 404) throw error;
    });
  };
  try {
    await container.start();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const info = await container.inspect();
      const hostPort = Number(info.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort);
      const healthy = info.State.Health?.Status === 'healthy';
      if (hostPort > 0 && (healthy || options.waitHealthy === false || options.healthcheck === false)) {
        return { id: info.Id, hostname: info.Config.Hostname, hostPort, remove };
      }
      if (!info.State.Running) throw new Error(`nginx container ${info.Id.slice(0, 12)} exited: ${info.State.Error}`);
      if (Date.now() > deadline) throw new Error(`nginx container ${info.Id.slice(0, 12)} not healthy after 30 s`);
      await sleep(200);
    }
  } catch (error) {
    await remove();
    throw error;
  }
}

/** Removes every container of that owner, whatever state it is in. */
export async function removeOwnedContainers(owner: ContainerOwner): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${OWNER_LABEL}=${owner}`] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  return containers.length;
}
