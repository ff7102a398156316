// Reads the real HAProxy exporter: request counters move with traffic, per-server sessions and
// states are there, a drained server shows DRAIN, and a reload's counter reset gives a sane rate.
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { backendSnapshot, counterRate, scrape, type BackendSnapshot } from '../../sidecar/haproxy-metrics/exporter.js';
import { eventually, get } from '../support/http.js';

describe('HAProxy metrics from the real exporter', () => {
  let haproxy: LocalHaproxy;
  let nginx: TestContainer[];

  const snapshot = async (): Promise<BackendSnapshot> => {
    const result = await scrape({ url: haproxy.metricsUrl, timeoutMs: 5_000 });
    if (!result.ok) throw new Error(result.error.message);
    const backend = backendSnapshot(result.value.samples, haproxy.backend, result.value.at);
    if (backend === undefined) throw new Error(`no ${haproxy.backend} in the exporter's output`);
    return backend;
  };

  beforeAll(async () => {
    nginx = await Promise.all([startNginx(), startNginx()]);
    haproxy = await startLocalHaproxy({
      withDataplane: false,
      manualServers: nginx.map((c, i) => ({ name: `web-${i + 1}`, address: '127.0.0.1', port: c.hostPort })),
    });
    expect(await eventually(async () => (await snapshot()).activeServers === 2, 20_000)).toBe(true);
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all((nginx ?? []).map((c) => c.remove()));
  });

  it('counts requests and lists every server with its state', async () => {
    const before = await snapshot();
    for (let i = 0; i < 20; i++) expect((await get(`${haproxy.frontendUrl}/`)).status).toBe(200);
    // HAProxy counts a request when its stream ends, just after the client read the answer: the
    // last one may show a moment later.
    let after = await snapshot();
    for (let i = 0; i < 20 && after.httpRequestsTotal - before.httpRequestsTotal < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      after = await snapshot();
    }
    expect(after.httpRequestsTotal - before.httpRequestsTotal).toBe(20);
    expect(after.servers.map((s) => [s.name, s.state])).toEqual([
      ['web-1', 'UP'],
      ['web-2', 'UP'],
    ]);
    // nginx answers / at once: HAProxy's average is a real figure, well under a second.
    expect(after.responseTimeAverageSeconds).toBeGreaterThanOrEqual(0);
    expect(after.responseTimeAverageSeconds).toBeLessThan(1);
    const rate = counterRate({ value: before.httpRequestsTotal, at: before.at }, { value: after.httpRequestsTotal, at: after.at });
    expect(rate).toBeGreaterThan(0);
  });

  it('shows a drained server as DRAIN and its sessions while a slow request runs', async () => {
    await haproxy.runtime(`set server ${haproxy.backend}/web-1 state drain`);
    // A slow request pinned to web-2 (the only one taking new traffic) holds a session there.
    const slow = get(`${haproxy.frontendUrl}/slow?s=2`);
    const busy = await eventually(async () => (await snapshot()).servers.find((s) => s.name === 'web-2')?.currentSessions === 1, 3_000, 50);
    const drained = (await snapshot()).servers.find((s) => s.name === 'web-1');
    expect((await slow).status).toBe(200);
    await haproxy.runtime(`set server ${haproxy.backend}/web-1 state ready`);
    expect(busy).toBe(true);
    expect(drained?.state).toBe('DRAIN');
  });

  it('turns the counter reset of a reload into a rate counted from zero, never a negative one', async () => {
    for (let i = 0; i < 10; i++) await get(`${haproxy.frontendUrl}/`);
    const before = await snapshot();
    execFileSync(`${haproxy.dir}/reload`);
    await eventually(async () => (await snapshot()).activeServers === 2, 10_000);
    for (let i = 0; i < 5; i++) await get(`${haproxy.frontendUrl}/`);
    // The old worker answers one more request on each kept-alive connection before closing it
    // (option idle-close-on-response, so a reload fails no client): the new worker's reset
    // counter shows from the next scrape on.
    expect(await eventually(async () => (await snapshot()).httpRequestsTotal < before.httpRequestsTotal, 5_000, 100)).toBe(true);
    const after = await snapshot();
    expect(after.httpRequestsTotal).toBeLessThan(before.httpRequestsTotal);
    const rate = counterRate({ value: before.httpRequestsTotal, at: before.at }, { value: after.httpRequestsTotal, at: after.at });
    expect(rate).toBeCloseTo(after.httpRequestsTotal / ((after.at - before.at) / 1000), 6);
  });
});
