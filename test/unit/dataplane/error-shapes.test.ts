// The Data Plane API's failure answers as each release gives them, and what the client and the
// driver must make of them. v3.2.5 and v3.3.0 rows were recorded from the real binaries (go-swagger
// server) against HAProxy 3.0 and 2.6; the v3.4 rows are what v3.4.2's source writes (chi router:
// handlers/respond/respond.go, adapters/adapters.go, UPGRADE.md), since no v3.4 binary can be built
// here: the body's `code` is the HTTP status, and credentials are checked before routing, so a path
// the API does not have answers 401 without valid credentials. nock serves the recorded answers.
import nock from 'nock';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDataplaneClient, kindOf, type DataplaneClient } from '../../../sidecar/dataplane/client.js';
import { createDataplaneDriver } from '../../../sidecar/dataplane/driver.js';
import type { EdgeErrorKind, Result } from '../../../sidecar/edge/result.js';

const url = 'http://dataplane.test:5555';
const client = (): DataplaneClient =>
  createDataplaneClient({ url, username: 'admin', password: 'pw', timeoutMs: 500, retries: 0, minRetryDelayMs: 1, reloadPollMs: 1 });

beforeAll(() => nock.disableNetConnect());
afterEach(() => {
  const pending = nock.pendingMocks();
  nock.cleanAll();
  expect(pending).toEqual([]);
});

const json = { 'content-type': 'application/json' };
const unauthorizedHeaders = { ...json, 'www-authenticate': 'Basic realm="API"' };
const hint = ' (the Data Plane API refused dataplane.username / dataplane.password)';

interface Row {
  readonly release: 'v3.2/v3.3' | 'v3.4';
  readonly what: string;
  /** Registers the answer with nock. */
  readonly answer: (scope: nock.Scope) => nock.Scope;
  readonly call: (c: DataplaneClient) => Promise<Result<unknown>>;
  readonly kind: EdgeErrorKind;
  readonly status: number;
  readonly message: string;
}

const startAt4 = (c: DataplaneClient): Promise<Result<unknown>> => c.startTransaction(4);
const addInTx = (c: DataplaneClient): Promise<Result<unknown>> => c.addServer('be_app', { name: 'x2', address: '127.0.0.1', port: 9 }, 'tx-1');
const addAtVersion = (c: DataplaneClient): Promise<Result<unknown>> => c.addServerAtVersion('be_app', { name: 'x2', address: '127.0.0.1', port: 9 }, 1);
const commit = (c: DataplaneClient): Promise<Result<unknown>> => c.commitTransaction('tx-2');
const version = (c: DataplaneClient): Promise<Result<unknown>> => c.configurationVersion();
const runtimeList = (c: DataplaneClient): Promise<Result<unknown>> => c.listRuntimeServers('be_app');

const rows: readonly Row[] = [
  {
    release: 'v3.2/v3.3',
    what: 'a transaction started from an old version',
    answer: (s) => s.post('/v3/services/haproxy/transactions').query({ version: '4' }).reply(409, { code: 409, message: 'version mismatch: version in configuration file is 5, given version is 4' }, json),
    call: startAt4,
    kind: 'conflict',
    status: 409,
    message: 'version mismatch: version in configuration file is 5, given version is 4',
  },
  {
    release: 'v3.4',
    what: 'a transaction started from an old version',
    answer: (s) => s.post('/v3/services/haproxy/transactions').query({ version: '4' }).reply(409, { code: 409, message: 'version mismatch: version in configuration file is 5, given version is 4' }, json),
    call: startAt4,
    kind: 'conflict',
    status: 409,
    message: 'version mismatch: version in configuration file is 5, given version is 4',
  },
  {
    release: 'v3.2/v3.3',
    what: 'a server added twice',
    answer: (s) => s.post('/v3/services/haproxy/configuration/backends/be_app/servers').query({ transaction_id: 'tx-1' }).reply(409, { code: 409, message: 'object already exists: server x2 already exists in be_app backend' }, json),
    call: addInTx,
    kind: 'exists',
    status: 409,
    message: 'object already exists: server x2 already exists in be_app backend',
  },
  {
    release: 'v3.4',
    what: 'a server added twice',
    answer: (s) => s.post('/v3/services/haproxy/configuration/backends/be_app/servers').query({ transaction_id: 'tx-1' }).reply(409, { code: 409, message: 'object already exists: server x2 already exists in be_app backend' }, json),
    call: addInTx,
    kind: 'exists',
    status: 409,
    message: 'object already exists: server x2 already exists in be_app backend',
  },
  {
    release: 'v3.2/v3.3',
    what: 'a commit another commit made outdated',
    answer: (s) => s.put('/v3/services/haproxy/transactions/tx-2').reply(406, { code: 406, message: 'transaction tx-2 is outdated and cannot be committed' }, json),
    call: commit,
    kind: 'conflict',
    status: 406,
    message: 'transaction tx-2 is outdated and cannot be committed',
  },
  {
    release: 'v3.4',
    what: 'a commit another commit made outdated',
    answer: (s) => s.put('/v3/services/haproxy/transactions/tx-2').reply(406, { code: 406, message: 'transaction tx-2 is outdated and cannot be committed' }, json),
    call: commit,
    kind: 'conflict',
    status: 406,
    message: 'transaction tx-2 is outdated and cannot be committed',
  },
  {
    release: 'v3.2/v3.3',
    what: 'a body the specification refuses (go-swagger code 602 in a 422)',
    answer: (s) => s.post('/v3/services/haproxy/configuration/backends/be_app/servers').query({ version: '1' }).reply(422, { code: 602, message: 'name in body is required' }, json),
    call: addAtVersion,
    kind: 'invalid',
    status: 422,
    message: 'name in body is required',
  },
  {
    release: 'v3.4',
    what: 'a body the specification refuses (code 422, respond.Unprocessable)',
    answer: (s) => s.post('/v3/services/haproxy/configuration/backends/be_app/servers').query({ version: '1' }).reply(422, { code: 422, message: 'name in body is required' }, json),
    call: addAtVersion,
    kind: 'invalid',
    status: 422,
    message: 'name in body is required',
  },
  {
    release: 'v3.2/v3.3',
    what: 'HAProxy 2.6, whose runtime server states the API cannot read',
    answer: (s) => s.get('/v3/services/haproxy/runtime/backends/be_app/servers').reply(404, { code: 404, message: 'no data for be_app: not found' }, json),
    call: runtimeList,
    kind: 'not-found',
    status: 404,
    message: 'no data for be_app: not found',
  },
  {
    release: 'v3.4',
    what: 'HAProxy 2.6, whose runtime server states the API cannot read',
    answer: (s) => s.get('/v3/services/haproxy/runtime/backends/be_app/servers').reply(404, { code: 404, message: 'no data for be_app: not found' }, json),
    call: runtimeList,
    kind: 'not-found',
    status: 404,
    message: 'no data for be_app: not found',
  },
  {
    release: 'v3.2/v3.3',
    what: 'a path the API does not route (dataplane.url wrong, or another API version)',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(404, { code: 404, message: 'path /v3/services/haproxy/configuration/version was not found' }, json),
    call: version,
    kind: 'unsupported',
    status: 404,
    message: 'path /v3/services/haproxy/configuration/version was not found',
  },
  {
    release: 'v3.4',
    what: 'a path the API does not route, with valid credentials (respond.NotFound)',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(404, { code: 404, message: 'path /v3/services/haproxy/configuration/version was not found' }, json),
    call: version,
    kind: 'unsupported',
    status: 404,
    message: 'path /v3/services/haproxy/configuration/version was not found',
  },
  {
    release: 'v3.4',
    what: 'a path the API does not route, with a wrong password: 401 before routing',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(401, { code: 401, message: 'unauthorized' }, unauthorizedHeaders),
    call: version,
    kind: 'unauthorized',
    status: 401,
    message: `unauthorized${hint}`,
  },
  {
    release: 'v3.2/v3.3',
    what: 'a wrong password',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(401, { code: 401, message: 'unauthenticated for invalid credentials' }, unauthorizedHeaders),
    call: version,
    kind: 'unauthorized',
    status: 401,
    message: `unauthenticated for invalid credentials${hint}`,
  },
  {
    release: 'v3.4',
    what: 'no credentials at all',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(401, { code: 401, message: 'missing or invalid authorization' }, unauthorizedHeaders),
    call: version,
    kind: 'unauthorized',
    status: 401,
    message: `missing or invalid authorization${hint}`,
  },
  {
    release: 'v3.2/v3.3',
    what: 'a method the path does not have',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(405, { code: 405, message: 'method GET is not allowed, but [PUT] are' }, { ...json, allow: 'PUT' }),
    call: version,
    kind: 'unsupported',
    status: 405,
    message: 'method GET is not allowed, but [PUT] are',
  },
  {
    release: 'v3.4',
    what: 'a method the path does not have (respond.MethodNotAllowed)',
    answer: (s) => s.get('/v3/services/haproxy/configuration/version').reply(405, { code: 405, message: 'method GET is not allowed for path /v3/services/haproxy/configuration/version' }, { ...json, allow: 'PUT' }),
    call: version,
    kind: 'unsupported',
    status: 405,
    message: 'method GET is not allowed for path /v3/services/haproxy/configuration/version',
  },
  {
    release: 'v3.4',
    what: 'a query parameter of the wrong type (middleware.ErrorHandler: 400, where go-swagger gave 422 with code 601)',
    answer: (s) => s.post('/v3/services/haproxy/transactions').query({ version: '4' }).reply(400, { code: 400, message: 'Invalid format for parameter version: error binding string parameter' }, json),
    call: startAt4,
    kind: 'invalid',
    status: 400,
    message: 'Invalid format for parameter version: error binding string parameter',
  },
  {
    release: 'v3.4',
    what: 'an error body whose message is null (the schema allows it)',
    answer: (s) => s.put('/v3/services/haproxy/transactions/tx-2').reply(500, { code: 500, message: null }, json),
    call: commit,
    kind: 'unavailable',
    status: 500,
    message: 'HTTP 500',
  },
];

describe('Data Plane API failure answers, per release', () => {
  it.each(rows.map((row) => [row.release, row.what, row] as const))('%s, %s', async (_release, _what, row) => {
    row.answer(nock(url));
    const result = await row.call(client());
    expect(result).toEqual({ ok: false, error: expect.objectContaining({ kind: row.kind, status: row.status, message: row.message }) as unknown });
  });

  it('answers the same kind for every release that gives the same status to the same failure', () => {
    // The body's code never decides: 602 (v3.3) and 422 (v3.4) for one refusal are one kind.
    expect(kindOf(422, 'name in body is required')).toBe('invalid');
    expect(kindOf(404, 'path /v3/nope was not found')).toBe('unsupported');
    expect(kindOf(404, 'missing object: server nope does not exist in be_app backend')).toBe('not-found');
    expect(kindOf(404, 'transaction does not exist: transaction file t1 does not exist')).toBe('not-found');
  });

  it('takes a commit answered 200 (no reload) or 202 with Reload-Id, as v3.4 spells the header, as committed', async () => {
    nock(url)
      .put('/v3/services/haproxy/transactions/tx-3')
      .reply(200, { _version: 2, id: 'tx-3', status: 'success' }, json)
      .put('/v3/services/haproxy/transactions/tx-4')
      .reply(202, { _version: 3, id: 'tx-4', status: 'success' }, { ...json, 'Reload-Id': '2026-12-06-7' });
    expect(await client().commitTransaction('tx-3')).toEqual({ ok: true, value: { reloadId: undefined } });
    expect(await client().commitTransaction('tx-4')).toEqual({ ok: true, value: { reloadId: '2026-12-06-7' } });
  });
});

describe('the Data Plane API driver on these answers', () => {
  const check = { intervalMs: 1000, fall: 2, rise: 1 };

  it.each(['v3.2/v3.3', 'v3.4'])('%s on HAProxy 2.6: inspection reports the runtime states as unreadable and the driver degrades', async () => {
    nock(url)
      .get('/v3/services/haproxy/runtime/info')
      .reply(200, { info: { version: '2.6.12-1+deb12u4' } }, json)
      .get('/v3/services/haproxy/runtime/backends/be_app/servers')
      .reply(404, { code: 404, message: 'no data for be_app: not found' }, json);
    const driver = createDataplaneDriver({ client: client(), healthCheck: check, reloadTimeoutMs: 1_000 });
    const report = await driver.inspect(['be_app']);
    expect(report).toMatchObject({ ok: true, value: { driver: 'dataplane', haproxyVersion: '2.6.12', runtimeReads: false } });
    const drain = await driver.setAdminState('be_app', 'hsc-web-1', 'drain');
    expect(drain).toMatchObject({ ok: false, error: { kind: 'unsupported' } });
  });

  it('v3.4 with a wrong password: inspection fails as unauthorized, never as a missing endpoint', async () => {
    nock(url).get('/v3/services/haproxy/runtime/info').reply(401, { code: 401, message: 'unauthorized' }, unauthorizedHeaders);
    const driver = createDataplaneDriver({ client: client(), healthCheck: check, reloadTimeoutMs: 1_000 });
    expect(await driver.inspect(['be_app'])).toMatchObject({ ok: false, error: { kind: 'unauthorized', status: 401 } });
  });

  it('an API without the runtime servers path: inspection fails as unsupported, not as HAProxy 2.6', async () => {
    nock(url)
      .get('/v3/services/haproxy/runtime/info')
      .reply(200, { info: { version: '3.4.7-1' } }, json)
      .get('/v3/services/haproxy/runtime/backends/be_app/servers')
      .reply(404, { code: 404, message: 'path /v3/services/haproxy/runtime/backends/be_app/servers was not found' }, json);
    const driver = createDataplaneDriver({ client: client(), healthCheck: check, reloadTimeoutMs: 1_000 });
    expect(await driver.inspect(['be_app'])).toMatchObject({ ok: false, error: { kind: 'unsupported', status: 404 } });
  });
});
