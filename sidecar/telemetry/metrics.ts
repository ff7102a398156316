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
  };
}
