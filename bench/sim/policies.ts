// The policies the simulator compares. All four are configurations of the sidecar's decide():
// the original bash rule and the Kubernetes HPA rule are expressed through its stages (rate
// limits of one instance for ±1 steps, HPA's tolerance and stabilisation window), so the only
// differences measured are the policies' parameters, not four implementations.
import { DEFAULT_POLICY, type ScalingPolicy } from '../../sidecar/autoscale/policy.js';
import type { PolicyUnderTest } from './simulate.js';

const noForecast = { ...DEFAULT_POLICY.forecast, mode: 'off' as const };

/** auto-scaler.sh: every 30 s, +1 when CPU > 70 % or > 100 req/s, −1 when CPU < 30 % and < 50 req/s. */
export const bashRule: PolicyUnderTest = {
  name: 'bash rule',
  description: 'the original auto-scaler.sh: ±1 per 30 s on the CPU and request-rate thresholds',
  intervalSeconds: 30,
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
  description: 'Kubernetes HPA: proportional on CPU 70 %, 10 % tolerance, 300 s scale-down stabilisation, 15 s period',
  intervalSeconds: 15,
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

export const oursReactive: PolicyUnderTest = {
  name: 'ours, reactive',
  description: "the sidecar's default policy without the forecast",
  intervalSeconds: 30,
  policy: { ...DEFAULT_POLICY, forecast: noForecast },
};

export const oursPredictive: PolicyUnderTest = {
  name: 'ours, predictive',
  description: "the sidecar's default policy: reactive stages plus the request-rate forecast over start-up and one interval",
  intervalSeconds: 30,
  policy: { ...DEFAULT_POLICY, forecast: { ...DEFAULT_POLICY.forecast, mode: 'act', horizonMs: 50_000 } },
};

export const comparedPolicies: readonly PolicyUnderTest[] = [bashRule, hpaRule, oursReactive, oursPredictive];
export type { ScalingPolicy };
