// The policies the simulator compares. All four are configurations of the sidecar's decide():
// the original bash rule and the Kubernetes HPA rule are expressed through its stages (rate
// limits of one instance for ±1 steps, HPA's tolerance and stabilisation window), so the only
// differences measured are the policies' parameters, not four implementations. Ours are the
// sidecar's own defaults, read through its configuration loader.
import { DEFAULT_POLICY, type ScalingPolicy } from '../../sidecar/autoscale/policy.js';
import { loadConfig } from '../../sidecar/config/index.js';
import type { PolicyUnderTest } from './simulate.js';

const noForecast = { ...DEFAULT_POLICY.forecast, mode: 'off' as const };

/** auto-scaler.sh: every 30 s, +1 when CPU > 70 % or > 100 req/s, −1 when CPU < 30 % and < 50 req/s. */
export const bashRule: PolicyUnderTest = {
  name: 'bash rule',
  description: 'the original auto-scaler.sh: ±1 per 30 s on the CPU and request-rate thresholds',
  intervalSeconds: 30,
  breachCheckSeconds: 0,
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
 * The sidecar's defaults as its configuration loader builds them (only the settings it requires
 * without a default are given): the policy, the evaluation interval and the breach check.
 */
const sidecarDefaults = loadConfig({
  env: { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy/admin.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg', HSC_DOCKER_NETWORK: 'app' },
}).autoscale;
const intervalSeconds = sidecarDefaults.intervalMs / 1000;
const breachCheckSeconds = sidecarDefaults.breachCheckMs / 1000;

export const oursReactive: PolicyUnderTest = {
  name: 'ours, reactive',
  description: `the sidecar's defaults without the forecast: every ${intervalSeconds} s, a breach check every ${breachCheckSeconds} s; the demand stage, scale-down below 60 % CPU and 85 req/s (both signals), 120 s window, up to half the pool per period`,
  intervalSeconds,
  breachCheckSeconds,
  policy: { ...sidecarDefaults.policy, forecast: { ...sidecarDefaults.policy.forecast, mode: 'off' } },
};

export const oursPredictive: PolicyUnderTest = {
  name: 'ours, predictive',
  description: `the sidecar's defaults (autoscale.forecast: act): the reactive stages plus the request-rate forecast over start-up and one interval (${sidecarDefaults.policy.forecast.horizonMs / 1000} s)`,
  intervalSeconds,
  breachCheckSeconds,
  policy: sidecarDefaults.policy,
};

export const comparedPolicies: readonly PolicyUnderTest[] = [bashRule, hpaRule, oursReactive, oursPredictive];
export type { ScalingPolicy };
