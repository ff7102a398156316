// The proof that the environment is real, through the Data Plane API: a server added
// in a transaction serves traffic through HAProxy's frontend, and removed in another one it
// no longer does. Needs the pinned Data Plane API binary (devenv/versions.env); where the Go
// module proxy does not serve it, the suite is reported as skipped, never as passed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { applyInTransaction, type DataplaneClient, type Result } from '../../sidecar/dataplane/index.js';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { dataplaneClientFor } from '../support/dataplane.js';
import { eventually, get } from '../support/http.js';

const binary = dataplaneApiBinary();

function value<T>(result: Result<T>): T {
  if (!result.ok) throw new Error(`${result.error.operation}: ${result.error.kind}: ${result.error.message}`);
  return result.value;
}

describe.skipIf(binary === undefined)('Data Plane API transactions against real HAProxy and Docker', () => {
  let haproxy: LocalHaproxy;
  let nginx: TestContainer;
  let client: DataplaneClient;

  beforeAll(async () => {
    [haproxy, nginx] = await Promise.all([startLocalHaproxy(), startNginx()]);
    client = dataplaneClientFor(haproxy);
  });

  afterAll(async () => {
    await haproxy?.stop();
    await nginx?.remove();
  });

  async function inTransaction(change: (transactionId: string) => Promise<Result<void>>): Promise<void> {
    value(await applyInTransaction(client, change, 20_000));
  }

  it('adds a container as a server in a transaction and serves a request through the frontend', async () => {
    expect((await get(`${haproxy.frontendUrl}/`)).status).toBe(503);
    await inTransaction((id) =>
      client.addServer(haproxy.backend, { name: 'nginx-1', address: '127.0.0.1', port: nginx.hostPort, check: { intervalMs: 500, fall: 2, rise: 1 } }, id),
    );
    expect(value(await client.listServers(haproxy.backend)).map((s) => s.name)).toEqual(['nginx-1']);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).servedBy === nginx.hostname, 20_000)).toBe(true);
  });

  it('removes it in a transaction and the frontend no longer routes to it', async () => {
    await inTransaction((id) => client.deleteServer(haproxy.backend, 'nginx-1', id));
    expect(value(await client.listServers(haproxy.backend))).toEqual([]);
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).status === 503, 20_000)).toBe(true);
  });

  it('reports a conflict when a transaction starts from an outdated version', async () => {
    const version = value(await client.configurationVersion());
    const result = await client.startTransaction(version - 1);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.kind).toBe('conflict');
  });
});
