// A Data Plane API client for a local environment's instance, as the integration tests use it.
import type { LocalHaproxy } from '../../devenv/localenv.js';
import { createDataplaneClient, type DataplaneClient } from '../../sidecar/dataplane/client.js';

export function dataplaneClientFor(haproxy: LocalHaproxy): DataplaneClient {
  if (haproxy.dataplaneUrl === undefined) throw new Error('this HAProxy instance runs without the Data Plane API');
  return createDataplaneClient({
    url: haproxy.dataplaneUrl,
    username: haproxy.dataplaneUser,
    password: haproxy.dataplanePassword,
    timeoutMs: 5_000,
    retries: 2,
  });
}
