// Failure modes of the Data Plane API that a real server will not produce on demand:
// 5xx bursts, timeouts, conflicts, malformed bodies. The happy paths run against the real
// Data Plane API in test/integration.
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyInTransaction, createDataplaneClient } from '../../../sidecar/dataplane/client.js';
import { freePort } from '../../../devenv/localenv.js';

const url = 'http://dataplane.test:5555';
const password = 'pw-not-in-messages';

function client(overrides: Partial<Parameters<typeof createDataplaneClient>[0]> = {}) {
  return createDataplaneClient({
    url,
    username: 'admin',
    password,
    timeoutMs: 200,
    retries: 3,
    minRetryDelayMs: 1,
    reloadPollMs: 1,
    ...overrides,
  });
}

beforeAll(() => {
  nock.disableNetConnect();
  nock.enableNetConnect('127.0.0.1');
});
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

describe('Data Plane API adapter', () => {
  it('sends basic auth and reads the configuration version', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .basicAuth({ user: 'admin', pass: password })
      .reply(200, '7', { 'content-type': 'application/json' });
    expect(await client().configurationVersion()).toEqual({ ok: true, value: 7 });
  });

  it('retries 5xx and 429, then succeeds', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .reply(503, { code: 503, message: 'busy' })
      .get('/v3/services/haproxy/configuration/version')
      .reply(429, { code: 429, message: 'slow down' })
      .get('/v3/services/haproxy/configuration/version')
      .reply(200, '3', { 'content-type': 'application/json' });
    const retries: number[] = [];
    const result = await client({ onRetry: (info) => retries.push(info.attempt) }).configurationVersion();
    expect(result).toEqual({ ok: true, value: 3 });
    expect(retries).toEqual([1, 2]);
  });

  it('gives up after the configured retries with the last answer as an unavailable error', async () => {
    nock(url).get('/v3/services/haproxy/configuration/version').times(3).reply(500, { code: 500, message: 'config parser crashed' });
    const result = await client({ retries: 2 }).configurationVersion();
    expect(result).toEqual({
      ok: false,
      error: { kind: 'unavailable', status: 500, message: 'config parser crashed', operation: 'read configuration version' },
    });
  });

  it('does not retry a 4xx', async () => {
    nock(url)
      .delete('/v3/services/haproxy/configuration/backends/be_app/servers/web-1')
      .query({ transaction_id: 't1' })
      .once()
      .reply(404, { code: 404, message: 'server web-1 does not exist in backend be_app' });
    const result = await client().deleteServer('be_app', 'web-1', 't1');
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.kind).toBe('not-found');
      expect(result.error.message).toBe('server web-1 does not exist in backend be_app');
    }
  });

  it('surfaces a 409 version conflict as a typed error carrying the API message', async () => {
    nock(url)
      .post('/v3/services/haproxy/transactions')
      .query({ version: '4' })
      .reply(409, { code: 409, message: 'version mismatch, have 5, given 4' });
    const result = await client().startTransaction(4);
    expect(result).toEqual({
      ok: false,
      error: { kind: 'conflict', status: 409, message: 'version mismatch, have 5, given 4', operation: 'start transaction at version 4' },
    });
  });

  it('times out a request that hangs, retrying only idempotent ones', async () => {
    nock(url).get('/v3/services/haproxy/configuration/version').times(2).delay(1_000).reply(200, '1');
    const result = await client({ retries: 1, timeoutMs: 50 }).configurationVersion();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.kind).toBe('timeout');

    // A POST that timed out may have been applied: it is not sent twice.
    nock(url).post('/v3/services/haproxy/transactions').query({ version: '1' }).once().delay(1_000).reply(201, {});
    const post = await client({ retries: 3, timeoutMs: 50 }).startTransaction(1);
    expect(post.ok).toBe(false);
    if (!post.ok) expect(post.error.kind).toBe('timeout');
  });

  it('reports malformed bodies instead of throwing', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .reply(200, '{"not json', { 'content-type': 'application/json' })
      .get('/v3/services/haproxy/configuration/backends/be_app/servers')
      .reply(200, { servers: 'nope' })
      .post('/v3/services/haproxy/transactions')
      .query({ version: '2' })
      .reply(201, { status: 'in_progress' });
    const c = client();
    const version = await c.configurationVersion();
    const servers = await c.listServers('be_app');
    const transaction = await c.startTransaction(2);
    for (const result of [version, servers, transaction]) {
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.error.kind).toBe('malformed');
    }
  });

  it('reads the reload id of a commit and waits for the reload', async () => {
    nock(url)
      .put('/v3/services/haproxy/transactions/tx-1')
      .reply(202, { id: 'tx-1', status: 'success' }, { 'reload-id': '2026-r1' })
      .get('/v3/services/haproxy/reloads/2026-r1')
      .reply(200, { id: '2026-r1', status: 'in_progress' })
      .get('/v3/services/haproxy/reloads/2026-r1')
      .reply(200, { id: '2026-r1', status: 'succeeded' });
    const c = client();
    expect(await c.commitTransaction('tx-1')).toEqual({ ok: true, value: { reloadId: '2026-r1' } });
    expect(await c.waitForReload('2026-r1', 5_000)).toEqual({ ok: true, value: undefined });
  });

  it('reports a failed reload with HAProxy’s answer', async () => {
    nock(url)
      .get('/v3/services/haproxy/reloads/r2')
      .reply(200, { id: 'r2', status: 'failed', response: 'reload refused: configuration check failed\n' });
    const result = await client().waitForReload('r2', 5_000);
    expect(result).toEqual({
      ok: false,
      error: { kind: 'reload-failed', message: 'reload refused: configuration check failed', operation: 'wait for reload r2' },
    });
  });

  it('reports a refused connection as a network error after retrying, without the password', async () => {
    const closedPort = await freePort();
    const result = await createDataplaneClient({
      url: `http://127.0.0.1:${closedPort}`,
      username: 'admin',
      password,
      timeoutMs: 500,
      retries: 2,
      minRetryDelayMs: 1,
    }).configurationVersion();
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error.kind).toBe('network');
      expect(result.error.message).toContain('ECONNREFUSED');
      expect(JSON.stringify(result)).not.toContain(password);
    }
  });

  it('maps server objects at the edge', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/backends/be_app/servers')
      .query({ transaction_id: 'tx-9' })
      .reply(200, [{ name: 'web-1', address: '127.0.0.1', port: 32768, check: 'enabled', cookie: 'web-1', weight: 100 }])
      .post('/v3/services/haproxy/configuration/backends/be_app/servers', {
        name: 'web-2',
        address: '127.0.0.1',
        port: 32769,
        cookie: 'web-2',
        check: 'enabled',
        inter: 1000,
        fall: 2,
        rise: 1,
      })
      .query({ transaction_id: 'tx-9' })
      .reply(202, {});
    const c = client();
    expect(await c.listServers('be_app', 'tx-9')).toEqual({
      ok: true,
      value: [{ name: 'web-1', address: '127.0.0.1', port: 32768, weight: 100, cookie: 'web-1', checkEnabled: true }],
    });
    const added = await c.addServer(
      'be_app',
      { name: 'web-2', address: '127.0.0.1', port: 32769, cookie: 'web-2', check: { intervalMs: 1000, fall: 2, rise: 1 } },
      'tx-9',
    );
    expect(added).toEqual({ ok: true, value: undefined });
  });
});

describe('applyInTransaction', () => {
  const server = { name: 'web-1', address: '127.0.0.1', port: 32768 };

  it('commits the change and waits for the reload it scheduled', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .reply(200, '5', { 'content-type': 'application/json' })
      .post('/v3/services/haproxy/transactions')
      .query({ version: '5' })
      .reply(201, { id: 'tx-5', _version: 5, status: 'in_progress' })
      .post('/v3/services/haproxy/configuration/backends/be_app/servers')
      .query({ transaction_id: 'tx-5' })
      .reply(202, {})
      .put('/v3/services/haproxy/transactions/tx-5')
      .reply(202, { id: 'tx-5', status: 'success' }, { 'reload-id': 'r5' })
      .get('/v3/services/haproxy/reloads/r5')
      .reply(200, { id: 'r5', status: 'succeeded' });
    const c = client();
    const result = await applyInTransaction(c, (id) => c.addServer('be_app', server, id), 5_000);
    expect(result).toEqual({ ok: true, value: { reloadId: 'r5' } });
  });

  it('deletes the transaction when the change fails, returning the change’s error', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .reply(200, '5', { 'content-type': 'application/json' })
      .post('/v3/services/haproxy/transactions')
      .query({ version: '5' })
      .reply(201, { id: 'tx-6', _version: 5, status: 'in_progress' })
      .post('/v3/services/haproxy/configuration/backends/be_app/servers')
      .query({ transaction_id: 'tx-6' })
      .reply(409, { code: 409, message: 'server web-1 already exists' })
      .delete('/v3/services/haproxy/transactions/tx-6')
      .reply(204);
    const c = client();
    const result = await applyInTransaction(c, (id) => c.addServer('be_app', server, id), 5_000);
    expect(result.ok).toBe(false);
    // 409 for an object that exists is told apart from a version conflict.
    if (!result.ok) expect(result.error).toMatchObject({ kind: 'exists', message: 'server web-1 already exists' });
  });

  it('deletes the transaction when the commit fails', async () => {
    nock(url)
      .get('/v3/services/haproxy/configuration/version')
      .reply(200, '5', { 'content-type': 'application/json' })
      .post('/v3/services/haproxy/transactions')
      .query({ version: '5' })
      .reply(201, { id: 'tx-7', _version: 5, status: 'in_progress' })
      .put('/v3/services/haproxy/transactions/tx-7')
      .reply(406, { code: 406, message: 'transaction tx-7 is outdated' })
      .delete('/v3/services/haproxy/transactions/tx-7')
      .reply(204);
    const c = client();
    const result = await applyInTransaction(c, () => Promise.resolve({ ok: true, value: undefined }), 5_000);
    expect(result.ok).toBe(false);
    // The real API's answer when another commit made the transaction outdated: re-read and re-plan.
    if (!result.ok) expect(result.error).toMatchObject({ kind: 'conflict', status: 406, message: 'transaction tx-7 is outdated' });
  });
});

describe('runtime server state', () => {
  it('reads admin and operational states of the running servers', async () => {
    nock(url)
      .get('/v3/services/haproxy/runtime/backends/be_app/servers')
      .reply(200, [
        { name: 'hsc-nginx-1', admin_state: 'ready', operational_state: 'up', address: '127.0.0.1', port: 32768 },
        { name: 'hsc-nginx-2', admin_state: 'drain', operational_state: 'up' },
      ]);
    expect(await client().listRuntimeServers('be_app')).toEqual({
      ok: true,
      value: [
        { name: 'hsc-nginx-1', adminState: 'ready', operationalState: 'up' },
        { name: 'hsc-nginx-2', adminState: 'drain', operationalState: 'up' },
      ],
    });
  });

  it('sets a server to drain with a PUT of its admin state, and reports an unknown server as not-found', async () => {
    nock(url)
      .put('/v3/services/haproxy/runtime/backends/be_app/servers/hsc-nginx-1', { admin_state: 'drain' })
      .reply(200, { name: 'hsc-nginx-1', admin_state: 'drain' })
      .put('/v3/services/haproxy/runtime/backends/be_app/servers/nope', { admin_state: 'maint' })
      .reply(404, { code: 404, message: 'server nope not found' });
    expect(await client().setAdminState('be_app', 'hsc-nginx-1', 'drain')).toEqual({ ok: true, value: undefined });
    const missing = await client().setAdminState('be_app', 'nope', 'maint');
    expect(missing).toEqual({
      ok: false,
      error: { kind: 'not-found', status: 404, message: 'server nope not found', operation: 'set server be_app/nope to maint' },
    });
  });

  it('reports a runtime list that is not a list as malformed', async () => {
    nock(url).get('/v3/services/haproxy/runtime/backends/be_app/servers').reply(200, { servers: [] });
    const result = await client().listRuntimeServers('be_app');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.kind).toBe('malformed');
  });
});
