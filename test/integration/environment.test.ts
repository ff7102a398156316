// The local environment is real: HAProxy 2.6 in master-worker mode routes to a real nginx
// container, its stats page needs a login, its Prometheus exporter answers, runtime
// `add server` works (the path the sidecar uses to avoid reloads), a reload is seamless and
// keeps runtime state, and stop() leaves nothing behind.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { eventually, get } from '../support/http.js';

let haproxy: LocalHaproxy;
let first: TestContainer;
let second: TestContainer;

function pidsOf(dir: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir);
      } catch {
        return false;
      }
    })
    .map(Number);
}

beforeAll(async () => {
  [first, second] = await Promise.all([startNginx(), startNginx()]);
  haproxy = await startLocalHaproxy({
    withDataplane: false,
    manualServers: [{ name: 'static-1', address: '127.0.0.1', port: first.hostPort }],
  });
});

afterAll(async () => {
  await haproxy?.stop();
  await Promise.all([first?.remove(), second?.remove()]);
});

describe('local HAProxy environment', () => {
  it('routes a request through the frontend to the nginx container and sets the persistence cookie', async () => {
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).status === 200)).toBe(true);
    const response = await fetch(`${haproxy.frontendUrl}/`);
    expect(response.headers.get('x-served-by')).toBe(first.hostname);
    expect(await response.text()).toBe(`hello from ${first.hostname}\n`);
    expect(response.headers.get('set-cookie')).toMatch(/^SRVID=[0-9a-f]{16};/);
  });

  it('protects the stats page and serves the Prometheus exporter', async () => {
    expect((await get(haproxy.statsUrl)).status).toBe(401);
    const auth = `Basic ${Buffer.from(`${haproxy.statsUser}:${haproxy.statsPassword}`).toString('base64')}`;
    const stats = await get(haproxy.statsUrl, { headers: { authorization: auth } });
    expect(stats.status).toBe(200);
    expect(stats.body).toContain('static-1');
    const metrics = await get(haproxy.metricsUrl);
    expect(metrics.body).toMatch(/haproxy_backend_active_servers\{proxy="be_app"\} 1/);
  });

  it('adds and deletes a server at run time, with health checks and sticky sessions, without a reload', async () => {
    const reloadsBefore = await haproxy.reloadCount();
    // HAProxy 2.6 refuses `cookie` on a dynamic server (the backend's dynamic cookies cover it);
    // 3.0 accepts it.
    const withCookie = await haproxy.runtime(`add server be_app/dyn-x 127.0.0.1:1 cookie dyn-x`);
    if (Number(haproxy.haproxyVersion.split('.')[0]) < 3) {
      expect(withCookie).toContain("'cookie' option is not accepted for dynamic server");
    } else {
      expect(withCookie).toContain('New server registered');
      expect(await haproxy.runtime('del server be_app/dyn-x')).toContain('Server deleted');
    }
    const added = await haproxy.runtime(`add server be_app/dyn-1 127.0.0.1:${second.hostPort} check inter 500 rise 1 fall 2`);
    expect(added).toContain('New server registered');
    await haproxy.runtime('enable health be_app/dyn-1');
    await haproxy.runtime('enable server be_app/dyn-1');
    // A server added at run time gets its dynamic cookie only when the backend's are recomputed.
    await haproxy.runtime('enable dynamic-cookie backend be_app');
    const served = new Set<string>();
    await eventually(async () => {
      served.add((await get(`${haproxy.frontendUrl}/`)).servedBy ?? '');
      return served.has(second.hostname);
    });
    expect(served).toContain(second.hostname);
    const state = await haproxy.runtime('show servers state be_app');
    expect(state).toMatch(/ dyn-1 127\.0\.0\.1 2 /); // operational state 2 = running (health checks pass)
    expect(await haproxy.reloadCount()).toBe(reloadsBefore);

    // A client holding the dynamic server's cookie keeps landing on it.
    let cookie = '';
    await eventually(async () => {
      const response = await fetch(`${haproxy.frontendUrl}/`);
      await response.text();
      if (response.headers.get('x-served-by') === second.hostname) cookie = (response.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      return cookie !== '';
    });
    expect(cookie).toMatch(/^SRVID=[0-9a-f]{16}$/);
    for (let i = 0; i < 6; i += 1) {
      expect((await get(`${haproxy.frontendUrl}/`, { headers: { cookie } })).servedBy).toBe(second.hostname);
    }

    await haproxy.runtime('disable server be_app/dyn-1');
    expect(await haproxy.runtime('del server be_app/dyn-1')).toContain('Server deleted');
  });

  it('reloads seamlessly through the reload script and keeps runtime state (drain) across it', async () => {
    expect(await haproxy.runtime('set server be_app/static-1 state drain')).toBe('\n');
    const reloadsBefore = await haproxy.reloadCount();
    const { execFileSync } = await import('node:child_process');
    execFileSync(`${haproxy.dir}/reload`);
    expect(await haproxy.reloadCount()).toBe(reloadsBefore + 1);
    const state = await haproxy.runtime('show servers state be_app');
    // srv_admin_state 8 = drain set by the runtime API (SRV_ADMF_DRAIN), restored from the state file.
    expect(state).toMatch(/ static-1 127\.0\.0\.1 \d+ 8 /);
    await haproxy.runtime('set server be_app/static-1 state ready');
  });

  it('stop() leaves no process and no file behind', async () => {
    const other = await startLocalHaproxy({ withDataplane: false });
    expect(pidsOf(other.dir).length).toBeGreaterThan(0);
    await other.stop();
    expect(pidsOf(other.dir)).toEqual([]);
    expect(existsSync(other.dir)).toBe(false);
  });
});
