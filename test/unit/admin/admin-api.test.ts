import { describe, expect, it } from 'vitest';
import { ADMIN_OPENAPI } from '../../../sidecar/admin/openapi.js';
import { startAdminApi, TOKEN } from '../../support/admin-api.js';
import { world } from '../../support/autoscale-world.js';

describe('admin API', () => {
  it('lists backends with each server’s state, figures, container and whether the sidecar manages it', async () => {
    const { call, dataplane } = await startAdminApi();
    dataplane.adminStates.set('be_app/hsc-nginx-2', 'drain');
    const { status, body } = await call('GET', '/v1/backends');
    expect(status).toBe(200);
    expect(body).toEqual([
      {
        name: 'be_app',
        servers: [
          { name: 'hsc-nginx-1', address: '127.0.0.1', port: 32001, managed: true, adminState: 'ready', operationalState: 'up', sessions: 3, queue: 0, container: 'stack-nginx-1', drain: null },
          { name: 'hsc-nginx-2', address: '127.0.0.1', port: 32002, managed: true, adminState: 'drain', operationalState: 'up', sessions: null, queue: null, container: 'stack-nginx-2', drain: null },
          { name: 'static-1', address: '127.0.0.1', port: 32003, managed: false, adminState: 'ready', operationalState: 'up', sessions: null, queue: null, container: null, drain: null },
        ],
      },
      { name: 'be_api', servers: [] },
    ]);
  });

  it('drains and waits: HAProxy state set, outcome and progress reported', async () => {
    const { call, dataplane } = await startAdminApi({ loads: { 'hsc-nginx-1': [{ sessions: 2, queue: 1 }, { sessions: 1, queue: 0 }, { sessions: 0, queue: 0 }] } });
    const drained = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', { wait: true });
    expect(drained.status).toBe(200);
    expect(drained.body.outcome).toMatchObject({ outcome: 'drained' });
    expect(dataplane.adminStates.get('be_app/hsc-nginx-1')).toBe('drain');
    const progress = await call('GET', '/v1/backends/be_app/servers/hsc-nginx-1/drain');
    expect(progress).toMatchObject({ status: 200, body: { backend: 'be_app', server: 'hsc-nginx-1', state: 'drained', reason: 'admin API', load: { sessions: 0, queue: 0 } } });
  });

  it('starts a drain without waiting (202), and undrain puts the server back to ready', async () => {
    const { call, dataplane } = await startAdminApi({ loads: { 'hsc-nginx-2': [{ sessions: 5, queue: 0 }] } });
    const started = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-2/drain', {});
    expect(started.status).toBe(202);
    expect(started.body.progress).toMatchObject({ state: 'draining' });
    const back = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-2/undrain');
    expect(back.status).toBe(200);
    expect(back.body).toMatchObject({ name: 'hsc-nginx-2', adminState: 'ready', drain: { state: 'cancelled' } });
    expect(dataplane.adminStates.get('be_app/hsc-nginx-2')).toBe('ready');
  });

  it('reports a state change HAProxy refused as 502, however long it took to answer', async () => {
    const { call, dataplane } = await startAdminApi({ stateDelayMs: 300 });
    dataplane.failNext('setAdminState', { kind: 'unavailable', status: 503, message: 'runtime API busy', operation: 'state' });
    const answer = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', {});
    expect(answer).toEqual({ status: 502, body: { error: 'upstream', message: 'setting be_app/hsc-nginx-1 to drain: runtime API busy' } });
    expect((await call('GET', '/v1/backends/be_app/servers/hsc-nginx-1/drain')).status).toBe(404);
  });

  it('refuses to drain the last ready server unless forced', async () => {
    const { call } = await startAdminApi({ servers: ['hsc-nginx-1'] });
    const refused = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', {});
    expect(refused.status).toBe(409);
    expect(refused.body).toEqual({ error: 'conflict', message: expect.stringMatching(/last ready server of be_app/) as unknown });
    expect((await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', { force: true })).status).toBe(202);
  });

  it.each([
    { name: 'no token', token: null, message: /missing bearer token/ },
    { name: 'a wrong token', token: 'nope', message: /wrong token/ },
    { name: 'a token of the right length but wrong', token: 'x'.repeat(TOKEN.length), message: /wrong token/ },
  ])('answers 401 to a mutating request with $name', async ({ token, message }) => {
    const { call, dataplane } = await startAdminApi();
    const answer = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', {}, token);
    expect(answer.status).toBe(401);
    expect(answer.body.message).toMatch(message);
    expect(dataplane.adminStates.size).toBe(0);
  });

  it('disables mutating routes when no token is configured, but still answers reads', async () => {
    const { call } = await startAdminApi({ token: '' });
    const answer = await call('POST', '/v1/resync', {}, null);
    expect(answer).toEqual({ status: 401, body: { error: 'unauthorized', message: expect.stringMatching(/no admin token is configured/) as unknown } });
    expect((await call('GET', '/v1/backends', undefined, null)).status).toBe(200);
  });

  it.each([
    { path: '/v1/backends/be_nope/servers/x/drain', body: {}, status: 404, message: /unknown backend be_nope/ },
    { path: '/v1/backends/be_app/servers/nope/drain', body: {}, status: 404, message: /unknown server nope in backend be_app/ },
    { path: '/v1/backends/be_app/servers/hsc-nginx-1/drain', body: '{not json', status: 400, message: /not valid JSON/ },
    { path: '/v1/backends/be_app/servers/hsc-nginx-1/drain', body: { wait: 'yes' }, status: 400, message: /wait must be true or false/ },
    { path: '/v1/backends/be_app/servers/hsc-nginx-1/drain', body: { deadline: 3 }, status: 400, message: /unknown field\(s\): deadline/ },
    { path: '/v1/backends/be_app/servers/hsc-nginx-1/drain', body: { deadlineSeconds: 0 }, status: 400, message: /deadlineSeconds must be/ },
    { path: '/v1/backends/be_app/servers/hsc-nginx-1/drain', body: [1], status: 400, message: /must be a JSON object/ },
    { path: '/v1/backends/be_app/servers/bad%20name/drain', body: {}, status: 404, message: /no route/ },
  ])('answers $status with a JSON message for $path $body', async ({ path, body, status, message }) => {
    const { call } = await startAdminApi();
    const answer = await call('POST', path, body);
    expect(answer.status).toBe(status);
    expect(answer.body.message).toMatch(message);
  });

  it('asks for a reconcile pass', async () => {
    const { call, resyncs } = await startAdminApi();
    expect((await call('POST', '/v1/resync')).status).toBe(202);
    expect(resyncs).toEqual(['admin API']);
  });

  it('serves its OpenAPI document, which covers every route', async () => {
    const { call } = await startAdminApi();
    const doc = await call('GET', '/v1/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths as object).sort()).toEqual(Object.keys(ADMIN_OPENAPI.paths).sort());
    expect(Object.keys(ADMIN_OPENAPI.paths).sort()).toEqual([
      '/v1/autoscaler',
      '/v1/autoscaler/dry-run',
      '/v1/autoscaler/pause',
      '/v1/autoscaler/replicas',
      '/v1/autoscaler/resume',
      '/v1/backends',
      '/v1/backends/{backend}/servers/{server}',
      '/v1/backends/{backend}/servers/{server}/drain',
      '/v1/backends/{backend}/servers/{server}/undrain',
      '/v1/openapi.json',
      '/v1/records',
      '/v1/resync',
      '/v1/rollouts',
      '/v1/rollouts/{id}',
      '/v1/rollouts/{id}/rollback',
    ]);
    // Every documented operation answers something other than "no route".
    for (const [path, operations] of Object.entries(ADMIN_OPENAPI.paths)) {
      for (const method of Object.keys(operations)) {
        const concrete = path.replace('{backend}', 'be_app').replace('{server}', 'hsc-nginx-2').replace('{id}', 'r-1');
        const answer = await call(method.toUpperCase(), concrete, method === 'get' ? undefined : {});
        expect(answer.body.message ?? '', `${method} ${path}`).not.toMatch(/no route/);
        expect(answer.status, `${method} ${path}`).not.toBe(405);
      }
    }
  });
});

describe('admin API: autoscaler', () => {
  it('answers 404 with a reason when autoscaling is disabled', async () => {
    const { call } = await startAdminApi();
    expect(await call('GET', '/v1/autoscaler')).toEqual({ status: 404, body: { error: 'not-found', message: 'autoscaling is disabled (autoscale.enabled)' } });
  });

  it('dry-runs, pauses, sets replicas by hand within bounds, resumes, and lists the decisions with their reasons', async () => {
    const pool = world(2);
    pool.setRate(500);
    const { call } = await startAdminApi({ autoscaler: pool });
    const dry = await call('GET', '/v1/autoscaler/dry-run');
    expect(dry).toMatchObject({ status: 200, body: { mode: 'dry-run', current: 2, desired: 5, applied: false, actions: [{ kind: 'start', count: 3 }] } });
    expect(pool.events).toEqual([]);
    expect((await call('POST', '/v1/autoscaler/pause')).body).toMatchObject({ mode: 'paused' });
    expect(await call('PUT', '/v1/autoscaler/replicas', { replicas: 11 })).toMatchObject({ status: 400, body: { message: expect.stringMatching(/from 2 to 10/) as unknown } });
    const manual = await call('PUT', '/v1/autoscaler/replicas', { replicas: 3 });
    expect(manual).toMatchObject({ status: 200, body: { mode: 'manual', desired: 3, reason: 'set by hand to 3', applied: true } });
    expect(pool.events).toEqual(['start c3']);
    expect((await call('POST', '/v1/autoscaler/resume')).body).toMatchObject({ mode: 'auto' });
    const state = await call('GET', '/v1/autoscaler');
    expect(state.body).toMatchObject({ service: 'nginx', mode: 'auto', policy: { minReplicas: 2, maxReplicas: 10 } });
    expect((state.body.recent as Array<{ reason: string }>).map((r) => r.reason)).toEqual(['set by hand to 3']);
  });

  it('requires the token to change anything', async () => {
    const { call } = await startAdminApi({ autoscaler: world(2) });
    expect((await call('POST', '/v1/autoscaler/pause', {}, null)).status).toBe(401);
    expect((await call('PUT', '/v1/autoscaler/replicas', { replicas: 3 }, 'wrong')).status).toBe(401);
  });
});
