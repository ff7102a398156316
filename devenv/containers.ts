// Real nginx containers for the tests, the demo and the benchmarks. Every container carries the
// label hsc.owner=<test|demo|bench>, so the test suite's teardown removes whatever a failed test
// left behind without touching a demo or a benchmark running beside it.
import Docker from 'dockerode';
import { spawn } from 'node:child_process';
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

/**
 * Versions of the test nginx image that a rollout can move to, built here from it (a few seconds,
 * no download): `next` answers like it (a good deploy), `broken` answers 500 to everything but
 * its health check (a bad deploy a rollout must roll back). Rebuilt when the base image changed.
 */
export type NginxVariant = 'next' | 'broken';

const VARIANT_EDITS: Record<NginxVariant, string> = {
  next: `RUN sed -i 's/return 200 "hello from/return 200 "hello (next) from/' /etc/nginx/nginx.conf`,
  broken: `RUN sed -i 's/return 200 "hello from \\$hostname\\\\n";/return 500 "broken\\\\n";/' /etc/nginx/nginx.conf && grep -q 'return 500' /etc/nginx/nginx.conf`,
};

export async function ensureNginxVariant(variant: NginxVariant): Promise<string> {
  const base = readPinnedVersions().NGINX_IMAGE;
  const tag = `${base.split(':')[0] ?? base}:rollout-${variant}`;
  const baseId = (await docker.getImage(base).inspect()).Id;
  const existing = await docker
    .getImage(tag)
    .inspect()
    .then((info) => info.Config.Labels?.['hsc.base'], () => undefined);
  if (existing === baseId) return tag;
  const dockerfile = `FROM ${base}\n${VARIANT_EDITS[variant]}\nLABEL hsc.base=${baseId}\n`;
  await new Promise<void>((resolve, reject) => {
    const build = spawn('docker', ['build', '-q', '-t', tag, '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    build.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    build.on('error', reject);
    build.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`docker build ${tag} failed (${code}): ${stderr.trim()}`))));
    build.stdin.end(dockerfile);
  });
  return tag;
}
