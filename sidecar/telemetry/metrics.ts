// The sidecar's Prometheus metrics. Names, types and labels are the contract in docs/metrics.md,
// which the alert rules and dashboards use; each registry is separate so tests read real values
// without sharing global state.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface SidecarMetrics {
  readonly registry: Registry;
  readonly reconcileRuns: Counter<'result'>;
  readonly reconcileDuration: Histogram;
  readonly reconcileOperations: Counter<'backend' | 'op'>;
  readonly reconcileConflicts: Counter;
  readonly transactions: Counter<'result'>;
  readonly reconcileLastSuccess: Gauge;
  readonly driftServers: Gauge<'backend'>;
  readonly reloads: Counter<'result'>;
  readonly eventsStreamUp: Gauge;
  readonly servers: Gauge<'backend' | 'state'>;
  readonly drainsStarted: Counter<'backend'>;
  readonly drainsCompleted: Counter<'backend' | 'outcome'>;
  readonly drainDuration: Histogram<'backend'>;
  readonly drainsInProgress: Gauge<'backend'>;
}

export interface MetricsOptions {
  readonly version: string;
  /** Process and Node.js metrics (CPU, RSS, event loop lag); off in unit tests. */
  readonly processMetrics: boolean;
}

export function createMetrics(options: MetricsOptions): SidecarMetrics {
  const registry = new Registry();
  if (options.processMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  new Gauge({ name: 'hsc_build_info', help: 'The running version (always 1).', labelNames: ['version'], registers }).set(
    { version: options.version },
    1,
  );
  return {
    registry,
    reconcileRuns: new Counter({
      name: 'hsc_reconcile_runs_total',
      help: 'Reconcile passes, by result.',
      labelNames: ['result'],
      registers,
    }),
    reconcileDuration: new Histogram({
      name: 'hsc_reconcile_duration_seconds',
      help: 'Duration of one reconcile pass: list Docker, read HAProxy, plan, apply.',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    reconcileOperations: new Counter({
      name: 'hsc_reconcile_operations_total',
      help: 'Server operations applied, by backend and operation.',
      labelNames: ['backend', 'op'],
      registers,
    }),
    reconcileConflicts: new Counter({
      name: 'hsc_reconcile_conflicts_total',
      help: 'Data Plane API version conflicts met while applying a plan (each one re-read and re-planned).',
      registers,
    }),
    transactions: new Counter({
      name: 'hsc_dataplane_transactions_total',
      help: 'Data Plane API transactions the sidecar opened, by result.',
      labelNames: ['result'],
      registers,
    }),
    reconcileLastSuccess: new Gauge({
      name: 'hsc_reconcile_last_success_timestamp_seconds',
      help: 'Unix time at which the last reconcile pass converged.',
      registers,
    }),
    driftServers: new Gauge({
      name: 'hsc_drift_servers',
      help: 'Servers that differ between Docker and HAProxy at the start of the last pass (0 when converged).',
      labelNames: ['backend'],
      registers,
    }),
    reloads: new Counter({
      name: 'hsc_haproxy_reloads_total',
      help: 'HAProxy reloads caused by the sidecar, by result.',
      labelNames: ['result'],
      registers,
    }),
    eventsStreamUp: new Gauge({
      name: 'hsc_docker_events_stream_up',
      help: '1 while the Docker event stream is open.',
      registers,
    }),
    servers: new Gauge({
      name: 'hsc_servers',
      help: 'Servers the sidecar manages, by backend and admin state (as the running HAProxy shows them).',
      labelNames: ['backend', 'state'],
      registers,
    }),
    drainsStarted: new Counter({ name: 'hsc_drains_started_total', help: 'Drains started.', labelNames: ['backend'], registers }),
    drainsCompleted: new Counter({
      name: 'hsc_drains_completed_total',
      help: 'Drains ended, by outcome: drained (no session, no queue), forced (deadline; sessions cut), cancelled (undrained).',
      labelNames: ['backend', 'outcome'],
      registers,
    }),
    drainDuration: new Histogram({
      name: 'hsc_drain_duration_seconds',
      help: 'From the start of a drain to its end, any outcome.',
      labelNames: ['backend'],
      buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
      registers,
    }),
    drainsInProgress: new Gauge({ name: 'hsc_drains_in_progress', help: 'Drains in progress.', labelNames: ['backend'], registers }),
  };
}

/** Feeds the drainer's events into the drain metrics. */
export function drainRecorder(metrics: SidecarMetrics): {
  started(backend: string): void;
  finished(backend: string, outcome: 'drained' | 'forced' | 'cancelled', seconds: number): void;
  inProgress(backend: string, count: number): void;
} {
  return {
    started: (backend) => metrics.drainsStarted.inc({ backend }),
    finished: (backend, outcome, seconds) => {
      metrics.drainsCompleted.inc({ backend, outcome });
      metrics.drainDuration.observe({ backend }, seconds);
    },
    inProgress: (backend, count) => metrics.drainsInProgress.set({ backend }, count),
  };
}

/** Zero-valued series for every backend, so rates and alerts see them before the first event. */
export function initialiseBackendSeries(metrics: SidecarMetrics, backends: readonly string[]): void {
  metrics.reloads.inc({ result: 'ok' }, 0);
  metrics.reloads.inc({ result: 'failed' }, 0);
  for (const backend of backends) {
    metrics.drainsStarted.inc({ backend }, 0);
    for (const outcome of ['drained', 'forced', 'cancelled']) metrics.drainsCompleted.inc({ backend, outcome }, 0);
    metrics.drainsInProgress.set({ backend }, 0);
    for (const state of ['ready', 'drain', 'maint']) metrics.servers.set({ backend, state }, 0);
  }
}
