import { describe, expect, it } from 'vitest';
import type { ContainerSnapshot } from '../../../sidecar/discovery/parse.js';
import { createDiscovery, type DockerSource, type Probe } from '../../../sidecar/discovery/discovery.js';
import { createReconciler } from '../../../sidecar/reconcile/reconciler.js';
import type { Logger } from '../../../sidecar/log/logger.js';
import { createMetrics, type SidecarMetrics } from '../../../sidecar/telemetry/metrics.js';
import type { AdminState, ConfiguredServer } from '../../../sidecar/dataplane/client.js';
import { createDataplaneDriver } from '../../../sidecar/dataplane/driver.js';
import { createMemoryDataplane, type MemoryDataplane } from '../../support/memory-dataplane.js';
import { PUBLISHED_DISCOVERY } from '../../support/discovery-options.js';

const options = PUBLISHED_DISCOVERY;

const nginx = (n: number, extra: Partial<ContainerSnapshot> = {}): ContainerSnapshot => ({
  id: `${String(n).padStart(2, '0')}${'f'.repeat(62)}`,
  name: `stack-nginx-${n}`,
  labels: { 'com.docker.compose.service': 'nginx', 'com.docker.compose.container-number': String(n) },
  running: true,
  createdAt: 1_700_000_000 + n,
  health: 'healthy',
  networks: {},
  publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 32000 + n }],
  ...extra,
});

const server = (name: string, port: number, address = '127.0.0.1'): ConfiguredServer => ({
  name,
  address,
  port,
  weight: 100,
  cookie: undefined,
  checkEnabled: true,
});

interface Harness {
  readonly dataplane: MemoryDataplane;
  readonly metrics: SidecarMetrics;
  readonly logs: Array<{ level: string; fields: Record<string, unknown>; message: string }>;
  containers: ContainerSnapshot[];
  /** The reconciler's clock (ms since the epoch); tests move it. */
  clock: number;
  reconcile: ReturnType<typeof createReconciler>['reconcile'];
  reconciler: ReturnType<typeof createReconciler>;
}

function harness(
  initial: Record<string, ConfiguredServer[]>,
  containers: ContainerSnapshot[],
  probe: Probe = () => Promise.resolve(true),
  records: Record<string, AdminState> = {},
  holdLastServerMs?: number,
): Harness {
  const logs: Harness['logs'] = [];
  const log =
    (level: string) =>
    (fields: Record<string, unknown>, message: string): void => {
      logs.push({ level, fields, message });
    };
  const logger: Logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
  const dataplane = createMemoryDataplane(initial);
  const metrics = createMetrics({ version: 'test', processMetrics: false });
  const h: Harness = {
    dataplane,
    metrics,
    logs,
    containers,
    clock: 1_700_000_000_000,
    reconcile: () => Promise.reject(new Error('unset')),
    reconciler: undefined as unknown as Harness['reconciler'], // set right below
  };
  const source: DockerSource = {
    listRunning: (selects) => Promise.resolve({ ok: true, value: h.containers.filter((c) => selects?.(c.labels) ?? true) }),
    openEvents: () => Promise.reject(new Error('not used')),
  };
  const reconciler = createReconciler({
    discovery: createDiscovery(source, options, logger),
    // Without a runtime socket the Data Plane API driver writes everything in transactions.
    driver: createDataplaneDriver({ client: dataplane, healthCheck: { intervalMs: 1000, fall: 2, rise: 1 }, reloadTimeoutMs: 1_000 }),
    probe,
    managedBackends: options.managedBackends,
    maxConflictRetries: 3,
    logger,
    metrics,
    now: () => h.clock,
    adminStateOf: (backend, name) => records[`${backend}/${name}`],
    ...(holdLastServerMs === undefined ? {} : { holdLastServerMs }),
  });
  h.reconcile = () => reconciler.reconcile();
  h.reconciler = reconciler;
  return h;
}

const writes = (calls: readonly string[]): string[] => calls.filter((c) => !/^(configurationVersion|listServers|listRuntimeServers|haproxyVersion)/.test(c));
const names = (h: Harness, backend = 'be_app'): string[] => (h.dataplane.backends.get(backend) ?? []).map((s) => s.name);

describe('reconciler', () => {
  it('adds ready containers in one transaction and says exactly what it did', async () => {
    const h = harness({ be_app: [server('static-1', 8080)], be_api: [] }, [nginx(1), nginx(2)]);
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'converged', transactions: 1, conflicts: 0, waiting: 0 });
    expect(writes(h.dataplane.calls)).toEqual([
      'startTransaction 1',
      'addServer be_app hsc-nginx-1 127.0.0.1:32001',
      'addServer be_app hsc-nginx-2 127.0.0.1:32002',
      'commitTransaction tx1',
      'waitForReload reload-2',
    ]);
    expect(names(h)).toEqual(['static-1', 'hsc-nginx-1', 'hsc-nginx-2']);
    const applied = h.logs.filter((l) => l.level === 'info' && l.fields.op === 'add');
    expect(applied.map((l) => l.fields)).toEqual([
      { op: 'add', backend: 'be_app', server: 'hsc-nginx-1', container: 'stack-nginx-1', address: '127.0.0.1:32001', reason: 'container ready' },
      { op: 'add', backend: 'be_app', server: 'hsc-nginx-2', container: 'stack-nginx-2', address: '127.0.0.1:32002', reason: 'container ready' },
    ]);
  });

  it('a Swarm task told to stop keeps its server, drained, and one that never served gets none', async () => {
    const h = harness({ be_app: [server('hsc-nginx-1', 32001)], be_api: [] }, [nginx(1, { stopping: true }), nginx(2, { stopping: true })]);
    h.dataplane.adminStates.set('be_app/hsc-nginx-1', 'ready');
    await h.reconcile();
    expect(names(h)).toEqual(['hsc-nginx-1']);
    expect(h.dataplane.adminStates.get('be_app/hsc-nginx-1')).toBe('drain');
  });

  it('a backend left with no server that stays takes a starting container that answers, before Docker calls it healthy', async () => {
    const probed: string[] = [];
    const probe: Probe = (address, port) => {
      probed.push(`${address}:${port}`);
      return Promise.resolve(port === 32003);
    };
    // Every replica replaced at once: the new ones are starting, none healthy yet.
    const h = harness({ be_app: [], be_api: [] }, [nginx(3, { health: 'starting' }), nginx(4, { health: 'starting' })], probe);
    await h.reconcile();
    expect(names(h)).toEqual(['hsc-nginx-3']);
    expect(probed.sort()).toEqual(['127.0.0.1:32003', '127.0.0.1:32004']);
    // With a server that stays, a starting container waits for Docker's verdict as always.
    probed.length = 0;
    const busy = harness({ be_app: [server('hsc-nginx-1', 32001)], be_api: [] }, [nginx(1), nginx(3, { health: 'starting' })], probe);
    await busy.reconcile();
    expect(names(busy)).toEqual(['hsc-nginx-1']);
    expect(probed).toEqual([]);
  });

  describe('every replica stopping at once (a Compose recreate)', () => {
    const three = (): Harness => {
      const h = harness(
        { be_app: [server('hsc-nginx-1', 32001), server('hsc-nginx-2', 32002), server('hsc-nginx-3', 32003)], be_api: [] },
        [nginx(1), nginx(2), nginx(3)],
        () => Promise.resolve(true),
        {},
        5_000,
      );
      for (const n of [1, 2, 3]) h.dataplane.adminStates.set(`be_app/hsc-nginx-${n}`, 'ready');
      return h;
    };

    it('drains each stopping replica while another stays, and keeps the last one in rotation', async () => {
      const h = three();
      await h.reconcile();
      await h.reconciler.leaving(nginx(1).id);
      await h.reconciler.leaving(nginx(2).id);
      expect(h.reconciler.starved()).toBe(false);
      await h.reconciler.leaving(nginx(3).id);
      expect(h.reconciler.starved()).toBe(true);
      expect([1, 2, 3].map((n) => h.dataplane.adminStates.get(`be_app/hsc-nginx-${n}`))).toEqual(['drain', 'drain', 'ready']);
      expect(h.logs.some((l) => l.message.includes('be_app/hsc-nginx-3 stays in rotation although its container is stopping'))).toBe(true);
      // A pass while they still run keeps it so, and so does the repair between passes.
      await h.reconcile();
      expect(await h.reconciler.repairStates()).toBe(false);
      expect([1, 2, 3].map((n) => h.dataplane.adminStates.get(`be_app/hsc-nginx-${n}`))).toEqual(['drain', 'drain', 'ready']);
    });

    it('holds the last server once its container is gone, until a replacement under its name serves at a new address', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      h.containers = [];
      const held = await h.reconcile();
      expect(held).toMatchObject({ status: 'converged', starving: 1 });
      // The others stay too, drained, until a replacement serves: then they go in one change.
      expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2', 'hsc-nginx-3']);
      expect([1, 2, 3].map((n) => h.dataplane.adminStates.get(`be_app/hsc-nginx-${n}`))).toEqual(['drain', 'drain', 'ready']);
      // Still nothing 4 s later: held.
      h.clock += 4_000;
      await h.reconcile();
      expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2', 'hsc-nginx-3']);
      // The replacement: Compose's same number, another address.
      h.containers = [nginx(3, { id: `33${'e'.repeat(62)}`, publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 32013 }] })];
      const replaced = await h.reconcile();
      expect(replaced).toMatchObject({ status: 'converged', starving: 0 });
      expect(replaced.status === 'converged' && replaced.operations.map((o) => (o.op === 'remove' ? o : { op: o.op, name: o.server.name, port: o.server.port, reason: o.reason }))).toEqual([
        { op: 'remove', backend: 'be_app', name: 'hsc-nginx-1', reason: 'no ready container' },
        { op: 'remove', backend: 'be_app', name: 'hsc-nginx-2', reason: 'no ready container' },
        { op: 'replace', name: 'hsc-nginx-3', port: 32013, reason: 'address changed' },
      ]);
      expect(h.dataplane.backends.get('be_app')?.map((s) => `${s.name} ${s.port}`)).toEqual(['hsc-nginx-3 32013']);
    });

    it('puts a replacement that took over a drained server (same name and address) back in rotation before the removals', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-1')).toBe('drain');
      // Compose's new replica 1, at the old one's address; 2 and 3 gone, not replaced yet.
      h.containers = [nginx(1, { id: `11${'e'.repeat(62)}` })];
      h.dataplane.calls.length = 0;
      await h.reconcile();
      const calls = writes(h.dataplane.calls);
      expect(calls.indexOf('setAdminState be_app/hsc-nginx-1 ready')).toBeGreaterThanOrEqual(0);
      expect(calls.indexOf('setAdminState be_app/hsc-nginx-1 ready')).toBeLessThan(calls.indexOf('startTransaction 1'));
      // The last one held is released: in maintenance until HAProxy's retries gave up on it.
      expect(names(h).sort()).toEqual(['hsc-nginx-1', 'hsc-nginx-3']);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-3')).toBe('maint');
    });

    it('puts a replacement under a drained server\'s name at a new address in rotation before the removals', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      h.containers = [nginx(1, { id: `11${'e'.repeat(62)}`, publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 32011 }] })];
      h.dataplane.calls.length = 0;
      const outcome = await h.reconcile();
      expect(outcome).toMatchObject({ status: 'converged', transactions: 2 });
      const calls = writes(h.dataplane.calls);
      const ready = calls.indexOf('setAdminState be_app/hsc-nginx-1 ready');
      expect(ready).toBeGreaterThan(calls.indexOf('addServer be_app hsc-nginx-1 127.0.0.1:32011'));
      expect(ready).toBeLessThan(calls.indexOf('deleteServer be_app hsc-nginx-2'));
      expect(names(h).sort()).toEqual(['hsc-nginx-1', 'hsc-nginx-3']);
    });

    it('removes a held server when no replacement came within holdLastServerMs', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      h.containers = [];
      await h.reconcile();
      h.clock += 5_000;
      // Released first: in maintenance while HAProxy's retries give up on what it still holds.
      expect(await h.reconcile()).toMatchObject({ status: 'converged', starving: 1 });
      expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2', 'hsc-nginx-3']);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-3')).toBe('maint');
      expect(h.logs.some((l) => l.message === 'be_app/hsc-nginx-3: no replacement came within 5000 ms; removing it')).toBe(true);
      h.clock += 3_000;
      const outcome = await h.reconcile();
      expect(outcome).toMatchObject({ status: 'converged', starving: 0 });
      expect(names(h)).toEqual([]);
    });

    it('releases a held server once another replica serves: in maintenance first, removed 3 s later', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      h.containers = [];
      await h.reconcile();
      // A new replica under another number (a scale-up): in rotation at once; the held server goes to maintenance.
      h.containers = [nginx(4)];
      await h.reconcile();
      expect(names(h)).toEqual(['hsc-nginx-3', 'hsc-nginx-4']);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-3')).toBe('maint');
      h.clock += 3_000;
      await h.reconcile();
      expect(names(h)).toEqual(['hsc-nginx-4']);
    });

    it('holds nothing with holdLastServerMs 0, and nothing when a server stays in the backend', async () => {
      const off = harness({ be_app: [server('hsc-nginx-1', 32001)], be_api: [] }, [nginx(1)], () => Promise.resolve(true), {}, 0);
      await off.reconcile();
      await off.reconciler.leaving(nginx(1).id);
      off.containers = [];
      await off.reconcile();
      expect(names(off)).toEqual([]);

      const h = three();
      await h.reconcile();
      await h.reconciler.leaving(nginx(3).id);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-3')).toBe('drain');
      h.containers = [nginx(1), nginx(2)];
      await h.reconcile();
      expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2']);
    });

    it('drains the replica kept in rotation once a replacement serves beside it', async () => {
      const h = three();
      await h.reconcile();
      for (const n of [1, 2, 3]) await h.reconciler.leaving(nginx(n).id);
      h.containers = [nginx(3), nginx(4, { health: 'starting' })];
      await h.reconcile();
      expect(names(h)).toEqual(['hsc-nginx-3', 'hsc-nginx-4']);
      expect(h.dataplane.adminStates.get('be_app/hsc-nginx-3')).toBe('drain');
    });
  });

  it('a starting container admitted early stays a server when others turn healthy', async () => {
    const h = harness({ be_app: [], be_api: [] }, [nginx(3, { health: 'starting' }), nginx(4, { health: 'starting' })]);
    await h.reconcile();
    expect(names(h)).toEqual(['hsc-nginx-3', 'hsc-nginx-4']);
    h.containers = [nginx(3, { health: 'starting' }), nginx(4), nginx(5)];
    const outcome = await h.reconcile();
    expect(outcome.status === 'converged' && outcome.operations.map((o) => o.op)).toEqual(['add']);
    expect(names(h)).toEqual(['hsc-nginx-3', 'hsc-nginx-4', 'hsc-nginx-5']);
  });

  it('writes nothing when HAProxy already matches Docker', async () => {
    const h = harness({ be_app: [server('hsc-nginx-1', 32001), server('static-1', 8080)], be_api: [] }, [nginx(1)]);
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'converged', operations: [], transactions: 0 });
    expect(writes(h.dataplane.calls)).toEqual([]);
    expect(await h.metrics.registry.getSingleMetricAsString('hsc_drift_servers')).toContain('hsc_drift_servers{backend="be_app"} 0');
  });

  it('counts the managed servers by the admin state HAProxy shows', async () => {
    const h = harness({ be_app: [server('hsc-nginx-1', 32001), server('hsc-nginx-2', 32002), server('static-1', 8080)], be_api: [] }, [nginx(1), nginx(2)], undefined, {
      'be_app/hsc-nginx-2': 'drain',
    });
    h.dataplane.adminStates.set('be_app/hsc-nginx-2', 'drain');
    h.dataplane.adminStates.set('be_app/static-1', 'maint');
    await h.reconcile();
    const text = await h.metrics.registry.getSingleMetricAsString('hsc_servers');
    expect(text).toContain('hsc_servers{backend="be_app",state="ready"} 1');
    expect(text).toContain('hsc_servers{backend="be_app",state="drain"} 1');
    expect(text).toContain('hsc_servers{backend="be_app",state="maint"} 0');
  });

  it('removes the server of a container that is gone and never touches manual servers', async () => {
    const h = harness(
      { be_app: [server('hsc-nginx-1', 32001), server('hsc-nginx-2', 32002), server('static-1', 8080)], be_api: [server('api-1', 9000)] },
      [nginx(1)],
    );
    await h.reconcile();
    expect(writes(h.dataplane.calls)).toEqual(['startTransaction 1', 'deleteServer be_app hsc-nginx-2', 'commitTransaction tx1', 'waitForReload reload-2']);
    expect(names(h)).toEqual(['hsc-nginx-1', 'static-1']);
    expect(names(h, 'be_api')).toEqual(['api-1']);
  });

  it('re-reads and re-plans after a concurrent writer bumps the version, and still converges', async () => {
    const h = harness({ be_app: [], be_api: [] }, [nginx(1), nginx(2)]);
    h.dataplane.beforeNextCommit(() => {
      // Someone else committed a change (and, here, already added one of our servers).
      h.dataplane.backends.set('be_app', [server('hsc-nginx-1', 32001)]);
      h.dataplane.version++;
    });
    const outcome = await h.reconcile();
    // transactions counts the committed ones; the conflicting one was deleted.
    expect(outcome).toMatchObject({ status: 'converged', transactions: 1, reloads: 1, conflicts: 1 });
    expect(writes(h.dataplane.calls)).toEqual([
      'startTransaction 1',
      'addServer be_app hsc-nginx-1 127.0.0.1:32001',
      'addServer be_app hsc-nginx-2 127.0.0.1:32002',
      'commitTransaction tx1',
      'deleteTransaction tx1',
      'startTransaction 2',
      'addServer be_app hsc-nginx-2 127.0.0.1:32002',
      'commitTransaction tx2',
      'waitForReload reload-3',
    ]);
    expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2']);
    expect(h.dataplane.openTransactions()).toEqual([]);
    expect(await h.metrics.registry.getSingleMetricAsString('hsc_reconcile_conflicts_total')).toContain('hsc_reconcile_conflicts_total 1');
  });

  it('gives up after the configured number of conflicts in a row, leaving no transaction open', async () => {
    const h = harness({ be_app: [], be_api: [] }, [nginx(1)]);
    const bump = (): void => {
      h.dataplane.version++;
      h.dataplane.beforeNextCommit(bump);
    };
    h.dataplane.beforeNextCommit(bump);
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'failed', transactions: 0, conflicts: 4 });
    expect(outcome.status === 'failed' && outcome.message).toMatch(/4 version conflicts in a row/);
    expect(h.dataplane.openTransactions()).toEqual([]);
    expect(names(h)).toEqual([]);
  });

  it('applies nothing of a plan when one operation fails: the transaction is deleted whole', async () => {
    const h = harness({ be_app: [server('hsc-old-1', 31000)], be_api: [] }, [nginx(1), nginx(2)]);
    h.dataplane.failNext('addServer', { kind: 'invalid', status: 400, message: 'bad address', operation: 'add' });
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'failed' });
    expect(outcome.status === 'failed' && outcome.message).toMatch(/bad address/);
    expect(h.dataplane.calls).toContain('deleteTransaction tx1');
    expect(h.dataplane.openTransactions()).toEqual([]);
    expect(names(h)).toEqual(['hsc-old-1']);
    // The next pass applies the full plan.
    await h.reconcile();
    expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2']);
  });

  it('reports a failed reload and counts it', async () => {
    const h = harness({ be_app: [], be_api: [] }, [nginx(1)]);
    h.dataplane.failNext('waitForReload', { kind: 'reload-failed', message: 'haproxy -c failed', operation: 'reload' });
    const outcome = await h.reconcile();
    expect(outcome.status === 'failed' && outcome.message).toMatch(/reload after the commit failed: haproxy -c failed/);
    expect(await h.metrics.registry.getSingleMetricAsString('hsc_haproxy_reloads_total')).toContain('result="failed"} 1');
  });

  it('skips a container with a broken label, warns once, and serves the others', async () => {
    const broken = nginx(3, { labels: { ...nginx(3).labels, 'haproxy.port': 'eighty' } });
    const h = harness({ be_app: [], be_api: [] }, [nginx(1), broken, nginx(2)]);
    await h.reconcile();
    await h.reconcile();
    expect(names(h)).toEqual(['hsc-nginx-1', 'hsc-nginx-2']);
    const warnings = h.logs.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.fields).toEqual({ container: 'stack-nginx-3', label: 'haproxy.port', reason: 'must be a port number 1-65535, not "eighty"' });
  });

  it('waits for readiness: starting containers and silent ones do not join; they are reported as waiting', async () => {
    const silent = nginx(3, { health: 'none' });
    const probed: string[] = [];
    const h = harness({ be_app: [], be_api: [] }, [nginx(1), nginx(2, { health: 'starting' }), silent], (address, port, path) => {
      probed.push(`${address}:${port}${path}`);
      return Promise.resolve(false);
    });
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'converged', waiting: 2 });
    expect(names(h)).toEqual(['hsc-nginx-1']);
    expect(probed).toEqual(['127.0.0.1:32003/healthz']);
  });

  it('does not probe a container without a healthcheck again once it serves', async () => {
    let probes = 0;
    const h = harness({ be_app: [server('hsc-nginx-1', 32001)], be_api: [] }, [nginx(1, { health: 'none' })], () => {
      probes++;
      return Promise.resolve(false);
    });
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'converged', operations: [], waiting: 0 });
    expect(probes).toBe(0);
  });

  it('converges 20 new containers in one transaction', async () => {
    const many = Array.from({ length: 20 }, (_, i) => nginx(i + 1));
    const h = harness({ be_app: [], be_api: [] }, many);
    const outcome = await h.reconcile();
    expect(outcome).toMatchObject({ status: 'converged', transactions: 1 });
    expect(names(h)).toHaveLength(20);
    expect(writes(h.dataplane.calls).filter((c) => c.startsWith('startTransaction'))).toHaveLength(1);
  });

  it('moves a server whose container republished on another port with delete and add in one transaction', async () => {
    const h = harness({ be_app: [server('hsc-nginx-1', 31999)], be_api: [] }, [nginx(1)]);
    await h.reconcile();
    expect(writes(h.dataplane.calls)).toEqual([
      'startTransaction 1',
      'deleteServer be_app hsc-nginx-1',
      'addServer be_app hsc-nginx-1 127.0.0.1:32001',
      'commitTransaction tx1',
      'waitForReload reload-2',
    ]);
  });

  it('reports a Docker failure as a failed pass, not a crash', async () => {
    const h = harness({ be_app: [], be_api: [] }, []);
    Object.defineProperty(h, 'containers', {
      get() {
        throw new Error('connect ENOENT /var/run/docker.sock');
      },
    });
    const outcome = await h.reconcile();
    expect(outcome.status === 'failed' && outcome.message).toMatch(/ENOENT/);
    expect(writes(h.dataplane.calls)).toEqual([]);
  });

  describe('admin states: what the records ask, nothing else', () => {
    const twoServers = { be_app: [server('hsc-nginx-1', 32001), server('hsc-nginx-2', 32002), server('static-1', 8080)], be_api: [] };

    it('puts back in service a managed server left in maintenance (a start cut between add and enable)', async () => {
      const h = harness(twoServers, [nginx(1), nginx(2)]);
      h.dataplane.adminStates.set('be_app/hsc-nginx-2', 'maint');
      const outcome = await h.reconcile();
      expect(outcome).toMatchObject({ status: 'converged', operations: [], stateOperations: [{ op: 'set-state', name: 'hsc-nginx-2', state: 'ready' }] });
      expect(writes(h.dataplane.calls)).toEqual(['setAdminState be_app/hsc-nginx-2 ready']);
      expect(await h.metrics.registry.getSingleMetricAsString('hsc_drift_servers')).toContain('hsc_drift_servers{backend="be_app"} 1');
      expect(h.logs.find((l) => l.fields.op === 'set-state')?.message).toMatch(/drift repaired: be_app\/hsc-nginx-2 state ready: in maint without a record/);
      // Repaired: the next pass writes nothing.
      h.dataplane.calls.length = 0;
      expect(await h.reconcile()).toMatchObject({ stateOperations: [] });
      expect(writes(h.dataplane.calls)).toEqual([]);
    });

    it('sets again the drain a record asks for (lost to a reload), and leaves maintenance as a drain', async () => {
      const h = harness(twoServers, [nginx(1), nginx(2)], undefined, { 'be_app/hsc-nginx-1': 'drain', 'be_app/hsc-nginx-2': 'drain' });
      h.dataplane.adminStates.set('be_app/hsc-nginx-2', 'maint');
      await h.reconcile();
      expect(writes(h.dataplane.calls)).toEqual(['setAdminState be_app/hsc-nginx-1 drain']);
    });

    it('never touches a server it does not own', async () => {
      const h = harness(twoServers, [nginx(1), nginx(2)]);
      h.dataplane.adminStates.set('be_app/static-1', 'maint');
      await h.reconcile();
      expect(writes(h.dataplane.calls)).toEqual([]);
    });
  });
});
