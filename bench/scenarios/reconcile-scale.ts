// Scenario 5, scale: 10 backends × 50 servers, and bursts of container replacements. The real
// reconciler, reconcile loop (real timers, the configuration's default debounce) and Docker
// event watcher run in-process against a synthetic Docker (500 containers listed from memory,
// events pushed into the watcher's stream) and the in-memory model of the Data Plane API's
// transactions (test/support/memory-dataplane.ts). Log lines are serialised by pino as in
// production and written to /dev/null.
//
// What this measures is the sidecar's own planning and batching: how many passes and
// transactions a burst becomes and how long until HAProxy's configuration (the model) matches
// Docker. It does not include the Data Plane API's commit and reload time, nor Docker's
// listing time; those need the real API (scenario 6) and a real Docker with 500 containers.
import { randomBytes } from 'node:crypto';
import { destination, pino } from 'pino';
import { loadConfig } from '../../sidecar/config/index.js';
import type { ConfiguredServer } from '../../sidecar/dataplane/client.js';
import { isOwnedServerName, type ContainerEvent, type DockerSource } from '../../sidecar/discovery/discovery.js';
import type { ContainerSnapshot } from '../../sidecar/discovery/parse.js';
import { reconcileWork, type ReconcileOutcome } from '../../sidecar/reconcile/reconciler.js';
import { RECONCILE, watchDocker, wireDiscovery, wireQueue, wireReconciler } from '../../sidecar/wiring.js';
import type { Logger } from '../../sidecar/log/logger.js';
import { createMetrics, initialiseBackendSeries } from '../../sidecar/telemetry/metrics.js';
import { createMemoryDataplane } from '../../test/support/memory-dataplane.js';
import { createDataplaneDriver } from '../../sidecar/dataplane/driver.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { summarise } from '../lib/stats.js';

export interface ReconcileScaleOptions {
  readonly backends: number;
  readonly serversPerBackend: number;
  /** Containers replaced per burst (spread evenly over the backends). */
  readonly replacedPerBurst: number;
  readonly bursts: number;
  /** The burst's events are spread over this long. */
  readonly burstSpreadMs: number;
  readonly log: (message: string) => void;
}

interface Pass {
  readonly startedAt: number;
  readonly ms: number;
  readonly outcome: ReconcileOutcome;
}

interface PhaseCount {
  readonly passes: number;
  readonly transactions: number;
  readonly operations: number;
  readonly passMs: readonly number[];
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A stream of events the test pushes into, ending when the signal aborts. */
function eventChannel(): { push(event: ContainerEvent): void; open(signal: AbortSignal): AsyncIterable<ContainerEvent> } {
  const queue: ContainerEvent[] = [];
  let wake: (() => void) | undefined;
  return {
    push(event) {
      queue.push(event);
      wake?.();
    },
    async *open(signal) {
      signal.addEventListener('abort', () => wake?.(), { once: true });
      while (!signal.aborted) {
        const next = queue.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    },
  };
}

export async function reconcileScaleScenario(options: ReconcileScaleOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const backends = Array.from({ length: options.backends }, (_, k) => `be_${k}`);
  const config = loadConfig({
    env: {
      HSC_HAPROXY_DRIVER: 'dataplane',
      HSC_DATAPLANE_PASSWORD: 'unused-in-memory',
      HSC_MANAGED_BACKENDS: backends.join(','),
      HSC_DEFAULT_BACKEND: backends[0] ?? 'be_0',
      HSC_DOCKER_ADDRESS_MODE: 'published',
    },
  });
  const logger: Logger = pino(
    { level: 'info', base: { service: 'haproxy-sidecar' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination({ dest: '/dev/null', sync: true }),
  );

  let serial = 0;
  const containers = new Map<string, ContainerSnapshot>();
  const makeContainer = (backend: string): ContainerSnapshot => {
    serial++;
    return {
      id: randomBytes(32).toString('hex'),
      name: `app-${backend}-${serial}`,
      labels: { 'haproxy.enable': 'true', 'haproxy.backend': backend },
      running: true,
      health: 'healthy',
      networks: {},
      publishedPorts: [{ containerPort: 80, hostIp: '127.0.0.1', hostPort: 20_000 + serial }],
      createdAt: 1_700_000_000 + serial,
    };
  };
  for (const backend of backends) {
    for (let i = 0; i < options.serversPerBackend; i++) {
      const c = makeContainer(backend);
      containers.set(c.id, c);
    }
  }

  const events = eventChannel();
  const source: DockerSource = {
    listRunning: (selects) => Promise.resolve({ ok: true, value: [...containers.values()].filter((c) => selects?.(c.labels) ?? true) }),
    openEvents: (signal) => Promise.resolve(events.open(signal)),
  };
  // One hand-written server per backend, which must survive everything.
  const manual: ConfiguredServer = { name: 'static-1', address: '127.0.0.1', port: 8080, weight: 100, cookie: undefined, checkEnabled: true };
  const dataplane = createMemoryDataplane(Object.fromEntries(backends.map((b) => [b, [manual]])));
  const metrics = createMetrics({ version: 'bench', processMetrics: false });
  initialiseBackendSeries(metrics, backends);
  // The sidecar's own wiring (sidecar/wiring.ts), over the synthetic Docker and the model.
  const reconciler = wireReconciler(config, {
    discovery: wireDiscovery(config, source, logger),
    haproxy: createDataplaneDriver({ client: dataplane, healthCheck: config.haproxy.check, reloadTimeoutMs: 30_000 }),
    // Every synthetic container is healthy per Docker, so no probe is sent.
    probe: () => Promise.resolve(true),
    logger,
    metrics,
  });

  const passes: Pass[] = [];
  let waiter: { after: number; resolve: (at: number) => void } | undefined;
  const converged = (): boolean => {
    const want = new Set([...containers.values()].map((c) => `${c.labels['haproxy.backend']}/hsc-${c.name}/${c.publishedPorts[0]?.hostPort}`));
    let have = 0;
    for (const [backend, servers] of dataplane.backends) {
      if (!servers.some((s) => s.name === manual.name)) return false;
      for (const s of servers.filter((x) => isOwnedServerName(x.name))) {
        if (!want.has(`${backend}/${s.name}/${s.port}`)) return false;
        have++;
      }
    }
    return have === want.size;
  };
  const queue = wireQueue(logger);
  queue.register(
    RECONCILE,
    reconcileWork(
      {
        reconcile: async () => {
          const startedAt = performance.now();
          const outcome = await reconciler.reconcile();
          passes.push({ startedAt, ms: performance.now() - startedAt, outcome });
          return outcome;
        },
      },
      {
        ...config.reconcile,
        logger,
        onOutcome: () => {
          const at = performance.now();
          if (waiter !== undefined && at >= waiter.after && converged()) {
            waiter.resolve(at);
            waiter = undefined;
          }
        },
      },
    ),
  );
  const loop = { start: () => queue.start(), stop: () => queue.stop(), settled: () => queue.settled(RECONCILE), trigger: (reason: string) => queue.add(RECONCILE, reason) };
  const convergedAfter = (after: number, timeoutMs = 30_000): Promise<number> =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not converged within ${timeoutMs} ms`)), timeoutMs);
      waiter = {
        after,
        resolve: (at) => {
          clearTimeout(timer);
          resolve(at);
        },
      };
    });
  const count = (fromPass: number, fromCall: number): PhaseCount => {
    const calls = dataplane.calls.slice(fromCall);
    const ofPhase = passes.slice(fromPass);
    return {
      passes: ofPhase.length,
      transactions: calls.filter((c) => c.startsWith('commitTransaction')).length,
      operations: calls.filter((c) => c.startsWith('addServer') || c.startsWith('deleteServer')).length,
      passMs: ofPhase.map((p) => p.ms),
    };
  };

  const watching = new AbortController();
  const watcher = watchDocker(config, { docker: source, signal: watching.signal, logger, metrics, trigger: loop.trigger });

  try {
    const total = options.backends * options.serversPerBackend;
    // Cold start: every container becomes a server.
    const coldStart = performance.now();
    const coldConverged = convergedAfter(coldStart);
    loop.start();
    const coldAt = await coldConverged;
    const cold = count(0, 0);
    await loop.settled();
    options.log(`reconcile scale: ${total} servers converged in ${(coldAt - coldStart).toFixed(0)} ms`);

    // A pass with nothing to change writes nothing.
    let fromPass = passes.length;
    let fromCall = dataplane.calls.length;
    const idleConverged = convergedAfter(performance.now());
    loop.trigger('bench: resync with nothing to change');
    await idleConverged;
    await loop.settled();
    const idle = count(fromPass, fromCall);

    interface Burst extends PhaseCount {
      readonly fromFirstEventMs: number;
      readonly fromLastEventMs: number;
      readonly events: number;
    }
    const bursts: Burst[] = [];
    for (let b = 0; b < options.bursts; b++) {
      fromPass = passes.length;
      fromCall = dataplane.calls.length;
      // The oldest containers of each backend, evenly: a rolling replacement.
      const perBackend = Math.ceil(options.replacedPerBurst / options.backends);
      const victims = backends.flatMap((backend) =>
        [...containers.values()].filter((c) => c.labels['haproxy.backend'] === backend).slice(0, perBackend),
      ).slice(0, options.replacedPerBurst);
      const gap = options.burstSpreadMs / victims.length;
      let sent = 0;
      const first = performance.now();
      for (const [i, old] of victims.entries()) {
        const backend = old.labels['haproxy.backend'] ?? backends[0] ?? 'be_0';
        containers.delete(old.id);
        for (const action of ['kill', 'die', 'stop', 'destroy']) events.push({ action, containerId: old.id });
        const fresh = makeContainer(backend);
        containers.set(fresh.id, fresh);
        for (const action of ['start', 'health_status']) events.push({ action, containerId: fresh.id });
        sent += 6;
        const due = first + (i + 1) * gap;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
      }
      const last = performance.now();
      const at = await convergedAfter(last);
      await loop.settled();
      bursts.push({ ...count(fromPass, fromCall), fromFirstEventMs: at - first, fromLastEventMs: at - last, events: sent });
      options.log(`reconcile scale: burst ${b + 1}/${options.bursts} converged ${(at - last).toFixed(0)} ms after its last event`);
    }

    const allBurstPasses = bursts.flatMap((b) => b.passMs);
    const figures: Figure[] = [
      {
        metric: `cold start: ${total} containers → servers, time to converge`,
        unit: 'ms',
        value: coldAt - coldStart,
        note: `${cold.passes} pass(es), ${cold.transactions} transaction(s), ${cold.operations} server operations; includes the ${config.reconcile.debounceMs} ms quiet time, because the Docker event stream opening is itself a trigger, as in the sidecar`,
      },
      { metric: 'cold start: transactions', unit: 'count', value: cold.transactions },
      { metric: 'resync with nothing to change: pass duration', unit: 'ms', ...spread(summarise(idle.passMs)), note: `${idle.transactions} transactions, ${idle.operations} writes` },
      {
        metric: `burst of ${options.replacedPerBurst} replacements: converged after last event`,
        unit: 'ms',
        ...spread(summarise(bursts.map((b) => b.fromLastEventMs))),
        note: `includes the ${config.reconcile.debounceMs} ms quiet time the loop waits for`,
      },
      { metric: `burst of ${options.replacedPerBurst} replacements: converged after first event`, unit: 'ms', ...spread(summarise(bursts.map((b) => b.fromFirstEventMs))) },
      { metric: 'burst: reconcile passes per burst', unit: 'count', ...spread(summarise(bursts.map((b) => b.passes))) },
      { metric: 'burst: transactions per burst', unit: 'count', ...spread(summarise(bursts.map((b) => b.transactions))) },
      { metric: 'burst: server operations per burst', unit: 'count', ...spread(summarise(bursts.map((b) => b.operations))) },
      { metric: 'burst: duration of one reconcile pass', unit: 'ms', ...spread(summarise(allBurstPasses)) },
    ];
    const notes = [
      'Planning and batching cost in the sidecar; the Data Plane API\'s own commit and reload time is not included (in-memory model), nor Docker\'s time to list 500 containers (synthetic list).',
      `${options.backends} backends × ${options.serversPerBackend} servers (plus one hand-written server per backend, never touched), the real reconciler, reconcile loop (real timers; debounce ${config.reconcile.debounceMs} ms, at most ${config.reconcile.maxDebounceMs} ms, resync ${config.reconcile.resyncIntervalMs} ms: the configuration defaults) and Docker event watcher, in-process.`,
      `Each burst: ${options.replacedPerBurst} containers replaced (the oldest ${Math.ceil(options.replacedPerBurst / options.backends)} of each backend), each replacement's events (kill, die, stop, destroy, start, health_status) spread evenly over ${options.burstSpreadMs} ms; ${options.bursts} bursts.`,
    ];
    return { id: 'scale', title: `Scale: ${options.backends} backends × ${options.serversPerBackend} servers, bursts of container replacements`, status: 'measured', figures, notes, data: { cold, idle, bursts } };
  } finally {
    watching.abort();
    await watcher;
    await loop.stop();
  }
}
