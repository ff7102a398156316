// Fault 4: the Docker Engine's side.
//   4a. The sidecar reaches Docker through a socket of the test's (docker-proxy.ts) in front of
//       the daemon's; the test cuts every connection, the event stream among them, and has the
//       socket refuse new ones for a few seconds (a daemon gone away) while a replica is
//       replaced; then Docker is back.
//   4b. dockerd itself restarted: a private daemon of the test's (private-dockerd.ts, so that no
//       other test's containers go through the restart), with --live-restore, its replicas
//       reached on its bridge network; right after the restart a replica is replaced.
// The sidecar must notice the stream is down, reopen it, and converge from what Docker shows,
// with no request failed on the way.
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricSum } from '../../bench/lib/sidecar-process.js';
import { availableDrivers, type DriverChoice } from '../../devenv/sidecar-env.js';
import { readPinnedVersions } from '../../devenv/versions.js';
import { eventually } from '../support/http.js';
import { startDockerProxy, type DockerProxy } from './docker-proxy.js';
import { privateDockerdPossible, startPrivateDockerd, type PrivateDockerd } from './private-dockerd.js';
import { createWorld, type World } from './world.js';

describe.each<DriverChoice>(['runtime', 'dataplane'])('faults: the Docker Engine (%s driver)', (driver) => {
  const skip = !availableDrivers().includes(driver);
  let world: World;
  let proxy: DockerProxy;

  const streamUp = async (): Promise<number> => metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_docker_events_stream_up');

  beforeAll(async () => {
    if (skip) return;
    world = await createWorld({ driver, replicas: 3 });
    proxy = await startDockerProxy(join(world.dir, 'docker.sock'), process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock');
    for (let i = 0; i < 3; i++) await world.addReplica();
    await world.startSidecar({ HSC_DOCKER_SOCKET: proxy.path });
    const { ms, problems } = await world.converge(3, Date.now(), 30_000);
    if (ms === null) throw new Error(`the pool did not converge before the faults: ${problems.join('; ')}`);
  });

  afterAll(async () => {
    if (skip) return;
    await world?.close();
    await proxy?.close();
  });

  it.skipIf(skip)('4a. the event stream broken and Docker unreachable while a replica is replaced, then back', async () => {
    expect(await eventually(async () => (await streamUp()) === 1, 10_000)).toBe(true);
    const load = world.startLoad();
    await new Promise((resolve) => setTimeout(resolve, 500));
    proxy.refuse(true);
    proxy.cut();
    const cutAt = Date.now();
    await world.replaceOne();
    const sawDown = await eventually(async () => (await streamUp()) === 0, 5_000, 100);
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, cutAt + 6_000 - Date.now())));
    proxy.refuse(false);
    const back = Date.now();
    let reopened = false;
    const { problems, failed, report } = await world.conclude({
      fault: '4a Docker event stream cut, socket refusing',
      expected: 3,
      since: back,
      load,
      notes: async () => {
        reopened = await eventually(async () => (await streamUp()) === 1, 10_000);
        return `Docker unreachable ${((back - cutAt) / 1000).toFixed(1)} s while a replica was replaced; stream-up gauge 0 meanwhile: ${sawDown}, 1 again: ${reopened}; ${proxy.broken} connections cut or refused`;
      },
    });
    expect(sawDown).toBe(true);
    expect(reopened).toBe(true);
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
  });
});

describe.each<DriverChoice>(['runtime', 'dataplane'])('faults: dockerd restarted (%s driver)', (driver) => {
  const skip = !availableDrivers().includes(driver) || !privateDockerdPossible();
  let world: World;
  let dockerd: PrivateDockerd;

  beforeAll(async () => {
    if (skip) return;
    dockerd = await startPrivateDockerd(await mkdtemp(join(tmpdir(), 'hsc-test-dockerd-')), readPinnedVersions().NGINX_IMAGE);
    world = await createWorld({ driver, replicas: 3, engine: { client: dockerd.client, socket: dockerd.socket } });
    for (let i = 0; i < 3; i++) await world.addReplica();
    await world.startSidecar();
    const { ms, problems } = await world.converge(3, Date.now(), 30_000);
    if (ms === null) throw new Error(`the pool did not converge before the faults: ${problems.join('; ')}`);
  }, 240_000);

  afterAll(async () => {
    if (skip) return;
    await world?.close();
    await dockerd?.stop();
  });

  it.skipIf(skip)('4b. dockerd restarted (live-restore), then a replica replaced: converges, no request fails', async () => {
    const streamUp = async (): Promise<number> => metricSum((await world.sidecar?.metrics()) ?? [], 'hsc_docker_events_stream_up');
    expect(await eventually(async () => (await streamUp()) === 1, 10_000)).toBe(true);
    const load = world.startLoad();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const downMs = await dockerd.restart();
    const back = Date.now();
    const reopened = await eventually(async () => (await streamUp()) === 1, 15_000, 100);
    const reopenedMs = Date.now() - back;
    await world.replaceOne();
    const { problems, failed, report } = await world.conclude({
      fault: '4b dockerd restarted',
      expected: 3,
      since: back,
      load,
      notes: () =>
        `private dockerd down ${(downMs / 1000).toFixed(1)} s; event stream open again ${(reopenedMs / 1000).toFixed(1)} s after; then a replica replaced (converge counted from the restart, includes it)`,
    });
    expect(reopened).toBe(true);
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
  });
});
