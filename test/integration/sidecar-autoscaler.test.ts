// The sidecar process's autoscaler against the real HAProxy exporter and the real Docker Engine:
// under load on the bounded-capacity /work endpoint, the decision it reports (dry run) asks for
// the instances the load needs, from inputs read off HAProxy; with HAProxy's metrics endpoint
// unreachable, it scales nothing down, sets the freeze metric and says why.
//
// The reconciler needs the Data Plane API, which this workplace cannot build: the sidecar runs
// with an unreachable one here, so its /readyz says not ready while everything above works.
// The end-to-end scale-up and drain-to-minimum through the Data Plane API are in
// reconcile.test.ts and run where the binary is available.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, OWNER_LABEL } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { readPinnedVersions } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { silentLogger } from '../../sidecar/log/logger.js';
import { eventually } from '../support/http.js';
import { startLoad } from '../support/load.js';

const project = `hsc-test-${randomBytes(3).toString('hex')}`;
const token = randomBytes(16).toString('hex');

interface Replica {
  readonly id: string;
  readonly port: number;
}

async function startReplica(number: number): Promise<Replica> {
  const container = await docker.createContainer({
    name: `${project}-nginx-${number}`,
    Image: readPinnedVersions().NGINX_IMAGE,
    Labels: { [OWNER_LABEL]: 'test', [COMPOSE_PROJECT]: project, [COMPOSE_SERVICE]: 'nginx', [COMPOSE_NUMBER]: String(number) },
    ExposedPorts: { '80/tcp': {} },
    HostConfig: { PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] } },
  });
  await container.start();
  const info = await container.inspect();
  return { id: info.Id, port: Number(info.NetworkSettings.Ports['80/tcp']?.[0]?.HostPort) };
}

describe('the sidecar’s autoscaler on real HAProxy metrics and Docker', () => {
  let haproxy: LocalHaproxy;
  let replicas: Replica[];
  let sidecar: RunningSidecar | undefined;

  const start = async (metricsUrl: string, dryRun: boolean): Promise<string> => {
    sidecar = await startSidecar(
      loadConfig({
        env: {
          HSC_HAPROXY_DRIVER: 'dataplane',
          HSC_DATAPLANE_URL: `http://127.0.0.1:${await freePort()}`,
          HSC_DATAPLANE_PASSWORD: randomBytes(8).toString('hex'),
          HSC_DATAPLANE_RETRIES: '0',
          HSC_DOCKER_ADDRESS_MODE: 'published',
          HSC_DOCKER_LABEL_PREFIX: project,
          HSC_DOCKER_COMPOSE_SERVICE: 'nginx',
          // Its own project only: a benchmark's or a demo's `nginx` service on the same host would
          // otherwise share the server names and leave two of these replicas unnamed.
          HSC_DOCKER_COMPOSE_PROJECT: project,
          HSC_AUTOSCALE_PROJECT: project,
          HSC_AUTOSCALE_INTERVAL_MS: '1000',
          HSC_AUTOSCALE_RPS_TARGET: '20',
          HSC_AUTOSCALE_RPS_DOWN: '10',
          HSC_AUTOSCALE_DOWN_WINDOW_MS: '0',
          HSC_AUTOSCALE_FORECAST: 'off',
          HSC_HAPROXY_METRICS_URL: metricsUrl,
          HSC_HTTP_PORT: '0',
          HSC_ADMIN_TOKEN: token,
          HSC_AUTOSCALE_DRY_RUN: String(dryRun),
        },
      }),
      { logger: silentLogger },
    );
    return `http://127.0.0.1:${sidecar.port}`;
  };
  const json = async (url: string): Promise<Record<string, unknown>> => (await (await fetch(url)).json()) as Record<string, unknown>;
  const metric = async (base: string, series: string): Promise<number | undefined> => {
    const line = (await (await fetch(`${base}/metrics`)).text()).split('\n').find((l) => l.startsWith(series));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  };

  beforeAll(async () => {
    replicas = await Promise.all([1, 2, 3].map(startReplica));
    // The replicas are in haproxy.cfg under the names the sidecar would give them.
    haproxy = await startLocalHaproxy({
      withDataplane: false,
      manualServers: replicas.map((r, i) => ({ name: `hsc-nginx-${i + 1}`, address: '127.0.0.1', port: r.port })),
    });
    await eventually(async () => (await fetch(`${haproxy.frontendUrl}/`)).ok, 20_000);
  });

  afterAll(async () => {
    await sidecar?.stop();
    await haproxy?.stop();
    const all = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(all.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  });

  it('asks for the instances the load needs, from what HAProxy shows (dry run)', async () => {
    const base = await start(haproxy.metricsUrl, true);
    // ~100 req/s offered to /work (50 req/s per instance at most), against a target of 20 per instance.
    const load = startLoad(`${haproxy.frontendUrl}/work`, { concurrency: 12, maxDurationMs: 20_000, maxRequests: 1_500 });
    let decision: Record<string, unknown> = {};
    const asked = await eventually(async () => {
      decision = await json(`${base}/v1/autoscaler/dry-run`);
      return typeof decision.desired === 'number' && decision.desired >= 5;
    }, 15_000, 500);
    await load.stop();
    expect(asked, JSON.stringify(decision)).toBe(true);
    expect(decision).toMatchObject({ mode: 'dry-run', current: 3, applied: false, stage: expect.stringMatching(/largest|rateLimit|clamp/) as unknown });
    const inputs = decision.inputs as { requestRate?: { value: number }; sourceUp: boolean };
    expect(inputs.sourceUp).toBe(true);
    expect(inputs.requestRate?.value).toBeGreaterThan(60);
    const proposals = decision.proposals as Array<{ signal: string; replicas: number }>;
    expect(proposals.find((p) => p.signal === 'requestRate')?.replicas).toBeGreaterThanOrEqual(5);
    // Dry-run mode: the interval's own decisions were recorded, none was acted on.
    const state = await json(`${base}/v1/autoscaler`);
    expect((state.recent as Array<{ applied: boolean }>).every((r) => !r.applied)).toBe(true);
    expect(await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`] } })).toHaveLength(3);
    await sidecar?.stop();
    sidecar = undefined;
  });

  it('with the metrics endpoint unreachable, scales nothing down and sets the freeze metric', async () => {
    const base = await start(`http://127.0.0.1:${await freePort()}/metrics`, false);
    // No load at all: with data, 3 idle instances would shrink to the minimum of 2.
    const frozen = await eventually(async () => (await metric(base, 'hsc_autoscaler_scale_down_frozen{service="nginx"}')) === 1, 10_000, 250);
    expect(frozen).toBe(true);
    expect(await metric(base, 'hsc_autoscaler_metrics_source_up{source="haproxy"}')).toBe(0);
    type Recent = Array<{ desired: number; current: number; problems: string[]; actions: unknown[] }>;
    let recent: Recent = [];
    // Each evaluation reads Docker's CPU figures, which take a second or two.
    await eventually(async () => {
      recent = (await json(`${base}/v1/autoscaler`)).recent as Recent;
      return recent.length >= 3;
    }, 20_000, 500);
    expect(recent.length).toBeGreaterThanOrEqual(3);
    expect(recent.every((r) => r.desired >= r.current && r.actions.length === 0), JSON.stringify(recent.slice(-2))).toBe(true);
    expect(recent.at(-1)?.problems[0]).toMatch(/\/metrics: /);
    const running = await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    expect(running).toHaveLength(3);
  });
});
