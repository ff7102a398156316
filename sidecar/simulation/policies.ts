// The policies the simulator compares. All four are configurations of the sidecar's decide():
// the original bash rule and the Kubernetes HPA rule are expressed through its stages (rate
// limits of one instance for ±1 steps, HPA's tolerance and stabilisation window), so the only
// differences measured are the policies' parameters, not four implementations. Ours are the
// sidecar's own defaults, read through its configuration loader, or a user's settings (backtest).
import { DEFAULT_POLICY } from '../autoscale/policy.js';
import { loadConfig, type AutoscaleConfig } from '../config/index.js';
import type { PolicyUnderTest } from './simulate.js';

const noForecast = { ...DEFAULT_POLICY.forecast, mode: 'off' as const };

/** auto-scaler.sh: every 30 s, +1 when CPU > 70 % or > 100 req/s, −1 when CPU < 30 % and < 50 req/s. */
const bashRule: PolicyUnderTest = {
  name: 'bash rule',
  description: 'the original auto-scaler.sh: ±1 per 30 s on the CPU and request-rate thresholds',
  intervalSeconds: 30,
  breachCheckSeconds: 0,
  // Its Prometheus query: the containers' CPU over the 30 s between polls.
  cpu: { windowSeconds: 30, readyOnly: false, latencyMs: 0 },
  policy: {
    ...DEFAULT_POLICY,
    signals: { cpu: { target: 0.7, scaleDownBelow: 0.3 }, requestRate: { target: 100, scaleDownBelow: 50 } },
    tolerance: 0,
    scaleDownStabilisationMs: 0,
    scaleUp: { instances: 1, fraction: 0, periodMs: 30_000 },
    scaleDown: { instances: 1, fraction: 0, periodMs: 30_000 },
    forecast: noForecast,
  },
};

/** HPA v2 defaults on a CPU target of 70 %: 10 % tolerance, 300 s scale-down window, 15 s sync. */
export const hpaRule: PolicyUnderTest = {
  name: 'HPA rule',
  description:
    'Kubernetes HPA v2 with its defaults on a CPU target of 70 %: every 15 s (the sync period) desired = ceil(current × CPU / 70 %) on the CPU averaged over those 15 s, ' +
    'current being the instances that serve (HPA leaves unready pods out of the ratio, and a scale-up already counts the pods it started, so nothing starting is started again); ' +
    'no change within a 10 % tolerance (CPU 63–77 %); scale-up at once by at most max(4 pods, 100 %) per 15 s; scale-down to the highest recommendation of the last 300 s, by at most 100 % per 15 s; no forecast',
  intervalSeconds: 15,
  breachCheckSeconds: 0,
  // The metrics pipeline's window, over ready pods only (HPA leaves unready ones out).
  cpu: { windowSeconds: 15, readyOnly: true, latencyMs: 0 },
  policy: {
    ...DEFAULT_POLICY,
    signals: { cpu: { target: 0.7, scaleDownBelow: 0.63 } },
    tolerance: 0.1,
    scaleDownStabilisationMs: 300_000,
    // HPA's default behaviour: up by max(4 pods, 100 %) per 15 s, down by 100 % per 15 s.
    scaleUp: { instances: 4, fraction: 1, periodMs: 15_000 },
    scaleDown: { instances: 0, fraction: 1, periodMs: 15_000 },
    forecast: noForecast,
  },
};

/**
 * The settings the configuration loader requires that have nothing to do with scaling: given so
 * that a policy can be built from the defaults, or from a user's autoscale settings alone.
 */
export const NON_SCALING_SETTINGS: Readonly<Record<string, string>> = {
  HSC_HAPROXY_DRIVER: 'runtime',
  HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy/admin.sock',
  HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg',
  HSC_DOCKER_NETWORK: 'app',
};

/** The sidecar reads Docker's stats of every running replica: the CPU of the last second, a second after asking. */
const DOCKER_CPU = { windowSeconds: 1, readyOnly: false, latencyMs: 1000 } as const;

/** Ours with these autoscale settings (as the configuration loader built them): reactive, and with the forecast as configured. */
export function ours(autoscale: AutoscaleConfig): { readonly reactive: PolicyUnderTest; readonly predictive: PolicyUnderTest } {
  const intervalSeconds = autoscale.intervalMs / 1000;
  const breachCheckSeconds = autoscale.breachCheckMs / 1000;
  const { policy } = autoscale;
  const rate = policy.signals.requestRate;
  const cpu = policy.signals.cpu;
  const schedule = `every ${intervalSeconds} s, a breach check every ${breachCheckSeconds} s`;
  const down = `scale-down below ${cpu === undefined ? '-' : `${Math.round(cpu.scaleDownBelow * 100)} % CPU`} and ${rate?.scaleDownBelow ?? '-'} req/s, ${policy.scaleDownStabilisationMs / 1000} s window`;
  return {
    reactive: {
      name: 'ours, reactive',
      description: `the sidecar without the forecast: ${schedule}; the demand stage, ${down}`,
      intervalSeconds,
      breachCheckSeconds,
      cpu: DOCKER_CPU,
      policy: { ...policy, forecast: { ...policy.forecast, mode: 'off' } },
    },
    predictive: {
      name: 'ours, predictive',
      description: `the sidecar as configured (autoscale.forecast: ${policy.forecast.mode}): the reactive stages plus the request-rate forecast over start-up and one interval (${policy.forecast.horizonMs / 1000} s)`,
      intervalSeconds,
      breachCheckSeconds,
      cpu: DOCKER_CPU,
      policy,
    },
  };
}

/** The sidecar's defaults as its configuration loader builds them. */
const DEFAULT_AUTOSCALE: AutoscaleConfig = loadConfig({ env: NON_SCALING_SETTINGS }).autoscale;

const defaults = ours(DEFAULT_AUTOSCALE);
export const oursReactive: PolicyUnderTest = defaults.reactive;
export const oursPredictive: PolicyUnderTest = defaults.predictive;

/** The four policies compared, ours with these autoscale settings and the others within the same minimum and maximum. */
export function policiesFor(autoscale: AutoscaleConfig): readonly PolicyUnderTest[] {
  const mine = autoscale === DEFAULT_AUTOSCALE ? defaults : ours(autoscale);
  const { minReplicas, maxReplicas } = autoscale.policy;
  const bounded = (p: PolicyUnderTest): PolicyUnderTest =>
    p.policy.minReplicas === minReplicas && p.policy.maxReplicas === maxReplicas ? p : { ...p, policy: { ...p.policy, minReplicas, maxReplicas } };
  return [bounded(bashRule), bounded(hpaRule), mine.reactive, mine.predictive];
}

export const comparedPolicies: readonly PolicyUnderTest[] = policiesFor(DEFAULT_AUTOSCALE);
