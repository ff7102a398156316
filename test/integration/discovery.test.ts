// Discovery against the real Docker Engine: labelled nginx containers become candidates with the
// address HAProxy reaches them on, a broken label skips only that container, readiness follows
// Docker's healthcheck or a real HTTP probe, and lifecycle events arrive on the stream.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { createDockerEdge } from '../../sidecar/docker/compose.js';
import {
  createDiscovery,
  httpProbe,
  selectReady,
  type ContainerEvent,
  type DiscoveryResult,
} from '../../sidecar/discovery/discovery.js';
import type { Logger } from '../../sidecar/log/logger.js';
import { PUBLISHED_DISCOVERY } from '../support/discovery-options.js';

// A label prefix of its own, so containers of other tests or a running demo are never selected.
const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
const options = { ...PUBLISHED_DISCOVERY, labelPrefix: prefix, composeService: `no-such-service-${prefix}` };

describe('discovery on the real Docker Engine', () => {
  const warnings: Array<Record<string, unknown>> = [];
  const logger: Logger = { debug: () => {}, info: () => {}, error: () => {}, warn: (fields) => warnings.push(fields) };
  const source = createDockerEdge(process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock');
  const discovery = createDiscovery(source, options, logger);
  let web: TestContainer;
  let api: TestContainer;
  let broken: TestContainer;
  let noHealthcheck: TestContainer;
  let unlabelled: TestContainer;
  let result: DiscoveryResult;
  const name = (role: string): string => `${prefix}-${role}`;

  beforeAll(async () => {
    [web, api, broken, noHealthcheck, unlabelled] = await Promise.all([
      startNginx({ name: name('web'), labels: { [`${prefix}.enable`]: 'true' } }),
      startNginx({ name: name('api'), labels: { [`${prefix}.enable`]: 'true', [`${prefix}.backend`]: 'be_api', [`${prefix}.weight`]: '10' } }),
      startNginx({ name: name('broken'), labels: { [`${prefix}.enable`]: 'true', [`${prefix}.port`]: 'eighty' } }),
      startNginx({ name: name('plain'), labels: { [`${prefix}.enable`]: 'true' }, healthcheck: false }),
      startNginx({ name: name('other') }),
    ]);
    const discovered = await discovery.discover();
    if (!discovered.ok) throw new Error(discovered.error.message);
    result = discovered.value;
  });

  afterAll(async () => {
    await Promise.all([web, api, broken, noHealthcheck, unlabelled].map((c) => c?.remove()));
  });

  it('finds the labelled containers with the loopback address and published port HAProxy reaches', () => {
    expect(result.candidates.map((c) => [c.backend, c.serverName, c.address, c.port, c.weight, c.health])).toEqual([
      ['be_api', `hsc-${name('api')}`, '127.0.0.1', api.hostPort, 10, 'healthy'],
      ['be_app', `hsc-${name('plain')}`, '127.0.0.1', noHealthcheck.hostPort, 100, 'none'],
      ['be_app', `hsc-${name('web')}`, '127.0.0.1', web.hostPort, 100, 'healthy'],
    ]);
    expect(result.candidates.map((c) => c.containerId)).toEqual([api.id, noHealthcheck.id, web.id]);
  });

  it('skips the container with a broken label, with a warning naming container and label', () => {
    expect(result.skipped).toEqual([{ containerName: name('broken'), label: `${prefix}.port`, reason: 'must be a port number 1-65535, not "eighty"' }]);
    expect(warnings).toEqual([{ container: name('broken'), label: `${prefix}.port`, reason: 'must be a port number 1-65535, not "eighty"' }]);
  });

  it('counts a container without a healthcheck ready once it answers its health path', async () => {
    const readiness = await selectReady(result.candidates, () => false, httpProbe(2_000));
    expect(readiness.ready.map((c) => c.containerName).sort()).toEqual([name('api'), name('plain'), name('web')]);
    // A port nothing listens on is not ready.
    const silent = await httpProbe(500)('127.0.0.1', 9, '/healthz');
    expect(silent).toBe(false);
  });

  it('streams the lifecycle events of a container that is killed', async () => {
    const controller = new AbortController();
    const seen: ContainerEvent[] = [];
    const stream = await source.openEvents(controller.signal);
    const reading = (async () => {
      for await (const event of stream) {
        if (event.containerId !== web.id) continue;
        seen.push(event);
        if (event.action === 'die') break;
      }
    })();
    await docker.getContainer(web.id).kill();
    await Promise.race([reading, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    controller.abort();
    expect(seen.map((e) => e.action)).toEqual(['kill', 'die']);
    // Once dead, it is no longer a candidate; the others are unaffected.
    const after = await discovery.discover();
    expect(after.ok && after.value.candidates.map((c) => c.containerName)).toEqual([name('api'), name('plain')]);
  });
});
