// Scaling through the real Docker Engine: new replicas are made like the running one (image,
// labels with the next Compose number, network and alias, published port on a fresh host port,
// healthcheck, stop signal), their CPU is read from the stats API, and a stop is graceful.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, OWNER_LABEL } from '../../devenv/containers.js';
import { readPinnedVersions } from '../../devenv/versions.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE, createDockerEdge, type DockerEdge } from '../../sidecar/docker/compose.js';
import type { Result } from '../../sidecar/edge/result.js';
import { replicasOf, type Replica } from '../../sidecar/scaling/replicas.js';
import { boundedLoad } from '../support/load.js';

const project = `hsc-test-${randomBytes(3).toString('hex')}`;
const network = `${project}_app`;

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.operation}: ${result.error.message}`);
  return result.value;
}

describe('replicas through the real Docker Engine', () => {
  let edge: DockerEdge;
  let started: string[] = [];
  const ref = { service: 'nginx', project };
  const list = async (): Promise<Replica[]> => replicasOf(value(await edge.listRunning()), ref);

  beforeAll(async () => {
    await docker.createNetwork({ Name: network, Labels: { [OWNER_LABEL]: 'test' } });
    const template = await docker.createContainer({
      name: `${project}-nginx-1`,
      Image: readPinnedVersions().NGINX_IMAGE,
      Labels: { [OWNER_LABEL]: 'test', [COMPOSE_PROJECT]: project, [COMPOSE_SERVICE]: 'nginx', [COMPOSE_NUMBER]: '1', 'haproxy.enable': 'true' },
      ExposedPorts: { '80/tcp': {} },
      HostConfig: { NetworkMode: network, PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] }, RestartPolicy: { Name: 'unless-stopped' } },
      NetworkingConfig: { EndpointsConfig: { [network]: { Aliases: ['nginx'] } } },
    });
    await template.start();
    edge = createDockerEdge(process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock');
  });

  afterAll(async () => {
    const all = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true })));
    await docker.getNetwork(network).remove().catch(() => undefined);
  });

  it('starts replicas like the running one, with the next Compose numbers', async () => {
    const [template] = await list();
    started = value(await edge.startLike(ref, template?.id ?? '', 2));
    expect(started).toHaveLength(2);
    expect((await list()).map((r) => [r.name, r.number])).toEqual([
      [`${project}-nginx-1`, 1],
      [`${project}-nginx-2`, 2],
      [`${project}-nginx-3`, 3],
    ]);
    const [first, second] = await Promise.all(started.map((id) => docker.getContainer(id).inspect()));
    for (const info of [first, second]) {
      expect(info?.Config.Image).toBe(readPinnedVersions().NGINX_IMAGE);
      expect(info?.Config.Labels).toMatchObject({ [OWNER_LABEL]: 'test', 'haproxy.enable': 'true', [COMPOSE_SERVICE]: 'nginx' });
      expect(info?.HostConfig.RestartPolicy?.Name).toBe('unless-stopped');
      expect(info?.NetworkSettings.Networks[network]?.Aliases).toContain('nginx');
      expect((info?.Config as { StopSignal?: string }).StopSignal).toBe('SIGQUIT');
      expect(info?.Config.Hostname).toBe(info?.Id.slice(0, 12));
    }
    const ports = [first, second].map((i) => i?.NetworkSettings.Ports['80/tcp']?.[0]);
    expect(ports.every((p) => p?.HostIp === '127.0.0.1' && Number(p.HostPort) > 0)).toBe(true);
    expect(ports[0]?.HostPort).not.toBe(ports[1]?.HostPort);
  });

  it('finishes a scale-up cut between create and start: starts that replica instead of creating another', async () => {
    // What a sidecar killed between the two calls leaves: the next number created, never started.
    const [template] = await list();
    const numbers = (await list()).map((r) => r.number);
    const next = Math.max(...numbers) + 1;
    const info = await docker.getContainer(template?.id ?? '').inspect();
    const leftover = await docker.createContainer({
      name: `${project}-nginx-${next}`,
      Image: info.Config.Image,
      Labels: { ...info.Config.Labels, [COMPOSE_NUMBER]: String(next) },
      HostConfig: { NetworkMode: network, PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
    });
    const resumed = value(await edge.startLike(ref, template?.id ?? '', 1));
    expect(resumed).toEqual([leftover.id]);
    const all = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    expect(all.filter((c) => c.State !== 'running')).toEqual([]);
    expect((await list()).map((r) => r.number)).toEqual([...numbers, next]);
    value(await edge.stopAndRemove(leftover.id, 10));
  });

  it('reads the replicas’ CPU from the stats API, higher under load', async () => {
    const ids = (await list()).map((r) => r.id);
    const idle = value(await edge.cpu(ids));
    expect(idle).toBeGreaterThanOrEqual(0);
    const info = await docker.getContainer(ids[0] ?? '').inspect();
    const port = info.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort ?? '';
    const load = boundedLoad(`http://127.0.0.1:${port}/`, { requests: 200_000, concurrency: 8, deadlineMs: 4_000 });
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const busy = value(await edge.cpu([ids[0] ?? '']));
    await load;
    expect(busy).toBeGreaterThan((idle ?? 0) + 0.05);
  });

  it('stops a replica gracefully and removes it', async () => {
    const victim = started[0] ?? '';
    value(await edge.stopAndRemove(victim, 10));
    expect((await list()).map((r) => r.id)).not.toContain(victim);
    value(await edge.stopAndRemove(victim, 10)); // already gone: not an error
  });
});
