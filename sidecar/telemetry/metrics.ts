// The sidecar's Prometheus metrics. Names, types and labels are the contract in docs/metrics.md,
// which the alert rules and dashboards use; each registry is separate so tests read real values
// without sharing global state.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AutoscalerRecorder } from '../autoscale/controller.js';
import type { DrainRecorder } from '../records/drains.js';
import type { RolloutRecorder } from '../records/rollouts.js';
import type { ScalingPolicy, SignalName } from '../autoscale/policy.js';

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
  readonly rolloutPhase: Gauge<'backend' | 'phase'>;
  readonly rolloutBatch: Gauge<'backend'>;
  readonly rolloutsEnded: Counter<'backend' | 'outcome'>;
  readonly rolloutDuration: Histogram<'backend' | 'outcome'>;
  readonly autoscaler: {
    readonly current: Gauge<'service'>;
    readonly desired: Gauge<'service'>;
    readonly min: Gauge<'service'>;
    readonly max: Gauge<'service'>;
    readonly decisions: Counter<'service' | 'direction' | 'stage'>;
    readonly actions: Counter<'service' | 'direction' | 'result'>;
    readonly signalStale: Gauge<'service' | 'signal'>;
    readonly scaleDownFrozen: Gauge<'service'>;
    readonly sourceUp: Gauge<'source'>;
    readonly lastSample: Gauge<'source'>;
    readonly observedRate: Gauge<'service'>;
    readonly predictedRate: Gauge<'service'>;
    readonly cpu: Gauge<'service'>;
    readonly servicePresent: Gauge<'service'>;
    readonly forecastOnly: Gauge<'service'>;
  };
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
    rolloutPhase: new Gauge({
      name: 'hsc_rollout_phase',
      help: 'The phase of the rollout in progress (1 on its phase, 0 on the others; all 0 when none runs).',
      labelNames: ['backend', 'phase'],
      registers,
    }),
    rolloutBatch: new Gauge({ name: 'hsc_rollout_batch', help: 'The batch in progress of the rollout in progress (1 first; 0 when none runs).', labelNames: ['backend'], registers }),
    rolloutsEnded: new Counter({
      name: 'hsc_rollouts_total',
      help: 'Rollouts ended, by outcome: succeeded (every old replica replaced), rolled-back (the old version serves again).',
      labelNames: ['backend', 'outcome'],
      registers,
    }),
    rolloutDuration: new Histogram({
      name: 'hsc_rollout_duration_seconds',
      help: 'From the start of a rollout to its end, by outcome.',
      labelNames: ['backend', 'outcome'],
      buckets: [10, 30, 60, 120, 300, 600, 1200, 3600],
      registers,
    }),
    autoscaler: {
      current: new Gauge({ name: 'hsc_autoscaler_current_replicas', help: 'Replicas serving now.', labelNames: ['service'], registers }),
      desired: new Gauge({ name: 'hsc_autoscaler_desired_replicas', help: "The last decision's replica count.", labelNames: ['service'], registers }),
      min: new Gauge({ name: 'hsc_autoscaler_min_replicas', help: 'Configured minimum.', labelNames: ['service'], registers }),
      max: new Gauge({ name: 'hsc_autoscaler_max_replicas', help: 'Configured maximum.', labelNames: ['service'], registers }),
      decisions: new Counter({
        name: 'hsc_autoscaler_decisions_total',
        help: 'Decisions, by direction and the policy stage that settled them.',
        labelNames: ['service', 'direction', 'stage'],
        registers,
      }),
      actions: new Counter({
        name: 'hsc_autoscaler_scaling_actions_total',
        help: 'Scaling actions carried out, by direction and result.',
        labelNames: ['service', 'direction', 'result'],
        registers,
      }),
      signalStale: new Gauge({
        name: 'hsc_autoscaler_signal_stale',
        help: '1 when the signal is missing or older than allowed.',
        labelNames: ['service', 'signal'],
        registers,
      }),
      scaleDownFrozen: new Gauge({
        name: 'hsc_autoscaler_scale_down_frozen',
        help: '1 while scale-down is frozen (metrics source down or a signal stale).',
        labelNames: ['service'],
        registers,
      }),
      sourceUp: new Gauge({ name: 'hsc_autoscaler_metrics_source_up', help: '1 when the last read of the source succeeded.', labelNames: ['source'], registers }),
      lastSample: new Gauge({
        name: 'hsc_autoscaler_last_sample_timestamp_seconds',
        help: 'Unix time of the newest successful sample of the source.',
        labelNames: ['source'],
        registers,
      }),
      observedRate: new Gauge({ name: 'hsc_autoscaler_observed_request_rate', help: 'Requests per second over all replicas.', labelNames: ['service'], registers }),
      predictedRate: new Gauge({
        name: 'hsc_autoscaler_predicted_request_rate',
        help: 'Forecast request rate at now plus the start-up horizon.',
        labelNames: ['service'],
        registers,
      }),
      cpu: new Gauge({ name: 'hsc_autoscaler_cpu_utilisation_ratio', help: 'Mean container CPU over replicas, as a fraction of one core.', labelNames: ['service'], registers }),
      servicePresent: new Gauge({
        name: 'hsc_autoscaler_service_present',
        help: '1 when the scaled service has a running replica to copy; 0 when it has none (nothing can be scaled).',
        labelNames: ['service'],
        registers,
      }),
      forecastOnly: new Gauge({ name: 'hsc_autoscaler_forecast_only', help: '1 in shadow mode: the forecast is recorded, not acted on.', labelNames: ['service'], registers }),
    },
  };
}

/** Feeds the autoscaler's decisions and actions into its metrics. */
export function autoscalerRecorder(
  metrics: SidecarMetrics,
  service: string,
  policy: ScalingPolicy,
): AutoscalerRecorder {
  const m = metrics.autoscaler;
  m.min.set({ service }, policy.minReplicas);
  m.max.set({ service }, policy.maxReplicas);
  m.forecastOnly.set({ service }, policy.forecast.mode === 'shadow' ? 1 : 0);
  for (const direction of ['up', 'down']) for (const result of ['ok', 'failed']) m.actions.inc({ service, direction, result }, 0);
  return {
    decided(record, decision, sample) {
      m.current.set({ service }, record.current);
      m.desired.set({ service }, record.desired);
      m.decisions.inc({ service, direction: record.direction, stage: record.stage });
      for (const proposal of decision.proposals) {
        m.signalStale.set({ service, signal: SIGNAL_LABEL[proposal.signal] }, proposal.status === 'missing' || proposal.status === 'stale' ? 1 : 0);
      }
      m.scaleDownFrozen.set({ service }, decision.scaleDownFrozen ? 1 : 0);
      m.sourceUp.set({ source: 'haproxy' }, sample.sources.haproxy ? 1 : 0);
      m.sourceUp.set({ source: 'docker' }, sample.sources.docker ? 1 : 0);
      if (sample.sources.haproxy && sample.snapshot !== undefined) m.lastSample.set({ source: 'haproxy' }, sample.snapshot.at / 1000);
      if (sample.samples.cpu !== undefined) {
        m.lastSample.set({ source: 'docker' }, sample.samples.cpu.at / 1000);
        m.cpu.set({ service }, sample.samples.cpu.value);
      }
      if (sample.samples.requestRate !== undefined) m.observedRate.set({ service }, sample.samples.requestRate.value);
      if (decision.predictedRequestRate !== undefined) m.predictedRate.set({ service }, decision.predictedRequestRate);
    },
    acted(direction, ok) {
      m.actions.inc({ service, direction, result: ok ? 'ok' : 'failed' });
    },
    servicePresent(present) {
      m.servicePresent.set({ service }, present ? 1 : 0);
    },
  };
}

/** The signal label values docs/metrics.md promises. */
const SIGNAL_LABEL: Record<SignalName, string> = { cpu: 'cpu', requestRate: 'request_rate', queue: 'queue', responseTime: 'response_time' };

/** Feeds the drainer's events into the drain metrics. */
export function drainRecorder(metrics: SidecarMetrics): DrainRecorder {
  return {
    started: (backend) => metrics.drainsStarted.inc({ backend }),
    finished: (backend, outcome, seconds) => {
      metrics.drainsCompleted.inc({ backend, outcome });
      metrics.drainDuration.observe({ backend }, seconds);
    },
    inProgress: (backend, count) => metrics.drainsInProgress.set({ backend }, count),
  };
}

const ROLLOUT_PHASES = ['starting', 'baking', 'retiring', 'rolling-back'] as const;

export function rolloutRecorder(metrics: SidecarMetrics, backend: string): RolloutRecorder {
  return {
    phase: (rollout) => {
      for (const phase of ROLLOUT_PHASES) metrics.rolloutPhase.set({ backend, phase }, rollout.phase === phase ? 1 : 0);
      metrics.rolloutBatch.set({ backend }, rollout.phase === 'succeeded' || rollout.phase === 'rolled-back' ? 0 : rollout.batch + 1);
    },
    ended: (outcome, seconds) => {
      metrics.rolloutsEnded.inc({ backend, outcome });
      metrics.rolloutDuration.observe({ backend, outcome }, seconds);
    },
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
    for (const outcome of ['succeeded', 'rolled-back']) metrics.rolloutsEnded.inc({ backend, outcome }, 0);
    metrics.rolloutBatch.set({ backend }, 0);
    for (const state of ['ready', 'drain', 'maint']) metrics.servers.set({ backend, state }, 0);
  }
}
