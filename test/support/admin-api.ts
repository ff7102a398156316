// A running admin API over the in-memory Data Plane API model and a real drainer, for the admin
// API and CLI tests.
import { randomBytes } from 'node:crypto';
import { afterEach } from 'vitest';
import { createAdminRoutes } from '../../sidecar/admin/routes.js';
import type { RolloutRunner } from '../../sidecar/records/rollouts.js';
import { createAdminService } from '../../sidecar/admin/service.js';
import type { Candidate } from '../../sidecar/discovery/discovery.js';
import { createDrainer, type ServerLoad } from '../../sidecar/records/drains.js';
import { memoryStateStore, operationRecords } from '../../sidecar/records/store.js';
import { createHttpServer, type HttpServer } from '../../sidecar/http/server.js';
import { silentLogger } from '../../sidecar/log/logger.js';
import { createMetrics } from '../../sidecar/telemetry/metrics.js';
import { policy, type world } from './autoscale-world.js';
import { createMemoryDataplane } from './memory-dataplane.js';
import { createDataplaneDriver } from '../../sidecar/dataplane/driver.js';

export const TOKEN = randomBytes(16).toString('hex');
let server: HttpServer | undefined;
let ticking: NodeJS.Timeout | undefined;
afterEach(async () => {
  clearInterval(ticking);
  ticking = undefined;
  await server?.close();
  server = undefined;
});

const configured = (name: string, port: number) => ({ name, address: '127.0.0.1', port, weight: 100, cookie: undefined, checkEnabled: true });
const candidate = (serverName: string, containerName: string): Candidate => ({
  containerId: `${containerName}-id`,
  containerName,
  backend: 'be_app',
  serverName,
  address: '127.0.0.1',
  port: 1,
  weight: 100,
  healthPath: '/healthz',
  health: 'healthy',
});

export async function startAdminApi(
  options: {
    token?: string;
    loads?: Record<string, ServerLoad[]>;
    servers?: string[];
    autoscaler?: ReturnType<typeof world>;
    /** How long HAProxy takes to answer a state change (a slow Data Plane API). */
    stateDelayMs?: number;
    rollouts?: Pick<RolloutRunner, 'begin' | 'rollBack' | 'list'>;
  } = {},
) {
  const names = options.servers ?? ['hsc-nginx-1', 'hsc-nginx-2', 'static-1'];
  const dataplane = createMemoryDataplane({ be_app: names.map((n, i) => configured(n, 32001 + i)), be_api: [] });
  const loads = options.loads ?? {};
  const state = memoryStateStore();
  const drainer = createDrainer({
    ports: {
      setAdminState: async (b, s, state) => {
        await new Promise((resolve) => setTimeout(resolve, options.stateDelayMs ?? 0));
        return dataplane.setAdminState(b, s, state);
      },
      listRuntimeServers: (b) => dataplane.listRuntimeServers(b),
      readLoad: (_b, s) => {
        const script = loads[s] ?? [{ sessions: 0, queue: 0 }];
        return Promise.resolve(script.length > 1 ? script.shift() : script[0]);
      },
    },
    store: state,
    deadlineMs: 5_000,
    now: () => Date.now(),
    logger: silentLogger,
  });
  // The control loop's passes over the drain records, as the sidecar runs them.
  ticking = setInterval(() => void drainer.tick(), 5);
  const resyncs: string[] = [];
  const service = createAdminService({
    haproxy: createDataplaneDriver({ client: dataplane, healthCheck: { intervalMs: 1000, fall: 2, rise: 1 }, reloadTimeoutMs: 1_000 }),
    drainer,
    backendLoad: (backend) =>
      Promise.resolve({
        backend,
        at: 0,
        httpRequestsTotal: 0,
        currentSessions: 3,
        currentQueue: 0,
        responseTimeAverageSeconds: 0,
        queueTimeAverageSeconds: 0,
        activeServers: 3,
        servers: [{ name: 'hsc-nginx-1', currentSessions: 3, currentQueue: 0, state: 'UP' as const }],
      }),
    candidates: () => Promise.resolve([candidate('hsc-nginx-1', 'stack-nginx-1'), candidate('hsc-nginx-2', 'stack-nginx-2')]),
    managedBackends: ['be_app', 'be_api'],
    isOwned: (n) => n.startsWith('hsc-'),
  });
  server = createHttpServer({
    registry: createMetrics({ version: 't', processMetrics: false }).registry,
    readiness: () => ({ ready: true, detail: {} }),
    routes: createAdminRoutes({
      service,
      adminToken: options.token ?? TOKEN,
      resync: (r) => resyncs.push(r),
      records: () => ({ records: operationRecords(state.read()), autoscaler: state.read().autoscaler ?? null }),
      ...(options.autoscaler === undefined ? {} : { autoscaler: { controller: options.autoscaler.autoscaler(), policy, service: 'nginx' } }),
      ...(options.rollouts === undefined ? {} : { rollouts: options.rollouts }),
    }),
  });
  const base = `http://127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
  const call = async (method: string, path: string, body?: unknown, token: string | null = options.token ?? TOKEN) => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { ...(token === null ? {} : { authorization: `Bearer ${token}` }), 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  return { base, call, dataplane, resyncs };
}

