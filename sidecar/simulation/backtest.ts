// A backtest: a recorded request-rate series replayed through the compared policies (the
// original bash rule, the HPA rule, ours with the user's own autoscale settings) on a model of
// the user's instances, and a search of a few of ours' settings for the cheapest that would have
// met the SLO on that history. The I/O (Prometheus, the terminal, the chart file) is the CLI's
// (sidecar/cli/backtest.ts); this is the part a test drives with a trace.
import type { ScalingPolicy } from '../autoscale/policy.js';
import type { AutoscaleConfig } from '../config/index.js';
import { policiesFor } from './policies.js';
import { DEFAULT_MODEL, simulate, type ModelSettings, type PolicyUnderTest, type RunResult } from './simulate.js';
import type { Trace } from './trace.js';

/** Share of an instance's capacity its request-rate target is: the original design's 70 % CPU at 100 req/s. */
const TARGET_SHARE_OF_CAPACITY = 0.7;

/**
 * The model of the user's instances: the simulator's M/M/c instance, with as many workers of
 * about its service time (28 ms) as make it saturate at `capacityPerInstance` requests a second,
 * by default the request-rate target over TARGET_SHARE_OF_CAPACITY (a target is set below what
 * an instance can serve). Workers, not a longer service time: a request's own time stays what
 * it is, and the SLO is judged on it. The start-up, the pool's first size and the SLO are the user's.
 */
export function modelFor(autoscale: AutoscaleConfig, options: Pick<BacktestOptions, 'capacityPerInstance' | 'initialReplicas' | 'sloP99Seconds'> = {}): ModelSettings {
  const target = autoscale.policy.signals.requestRate?.target ?? 100;
  const capacity = options.capacityPerInstance ?? target / TARGET_SHARE_OF_CAPACITY;
  const base = DEFAULT_MODEL.station.kind === 'mmc' ? DEFAULT_MODEL.station.serviceTime : 0.028;
  const workers = Math.max(1, Math.round(capacity * base));
  return {
    ...DEFAULT_MODEL,
    station: { kind: 'mmc', workers, serviceTime: workers / capacity },
    startupSeconds: autoscale.policy.demand.startupMs / 1000,
    initialReplicas: Math.max(autoscale.policy.minReplicas, options.initialReplicas ?? autoscale.policy.minReplicas),
    sloP99Seconds: options.sloP99Seconds ?? DEFAULT_MODEL.sloP99Seconds,
  };
}

export interface Setting {
  readonly requestRateTarget: number;
  readonly scaleDownWindowMs: number;
  readonly forecast: ScalingPolicy['forecast']['mode'];
}

export interface Suggestion {
  readonly setting: Setting;
  readonly run: RunResult;
  /** True when it met the SLO budget; false: none did, and this one came closest. */
  readonly metSlo: boolean;
  readonly tried: number;
}

/** The settings tried: request-rate targets around the user's, three scale-down windows, the forecast on and off. */
export function settingsAround(autoscale: AutoscaleConfig): Setting[] {
  const target = autoscale.policy.signals.requestRate?.target ?? 100;
  const targets = [0.7, 0.85, 1, 1.15].map((f) => Number((target * f).toPrecision(3)));
  const windows = [...new Set([60_000, 120_000, 300_000, autoscale.policy.scaleDownStabilisationMs])].sort((a, b) => a - b);
  return targets.flatMap((requestRateTarget) => windows.flatMap((scaleDownWindowMs) => (['act', 'off'] as const).map((forecast) => ({ requestRateTarget, scaleDownWindowMs, forecast }))));
}

/** Ours with one setting changed from the user's (the scale-down threshold kept in the same proportion to the target). */
export function withSetting(ours: PolicyUnderTest, setting: Setting): PolicyUnderTest {
  const rate = ours.policy.signals.requestRate;
  const ratio = rate === undefined ? 0.85 : rate.scaleDownBelow / rate.target;
  return {
    ...ours,
    name: `ours, ${setting.requestRateTarget} req/s, ${setting.scaleDownWindowMs / 1000} s, forecast ${setting.forecast}`,
    policy: {
      ...ours.policy,
      signals: { ...ours.policy.signals, requestRate: { target: setting.requestRateTarget, scaleDownBelow: Number((setting.requestRateTarget * ratio).toPrecision(3)) } },
      scaleDownStabilisationMs: setting.scaleDownWindowMs,
      forecast: { ...ours.policy.forecast, mode: setting.forecast },
    },
  };
}

export interface BacktestResult {
  readonly model: ModelSettings;
  readonly policies: readonly PolicyUnderTest[];
  readonly runs: readonly RunResult[];
  readonly suggestion: Suggestion | undefined;
}

export interface BacktestOptions {
  readonly capacityPerInstance?: number;
  /** The pool's size at the start of the history (the recorded one, where known). */
  readonly initialReplicas?: number;
  /** The SLO's p99 response time, in seconds (default the simulator's 0.5). */
  readonly sloP99Seconds?: number;
  /** SLO-violation minutes a setting may have and still count as meeting the SLO. */
  readonly sloBudgetMinutes?: number;
  /** Search settings of ours for the cheapest that meets the SLO (default true). */
  readonly suggest?: boolean;
}

export async function runBacktest(trace: Trace, autoscale: AutoscaleConfig, options: BacktestOptions = {}): Promise<BacktestResult> {
  const model = modelFor(autoscale, options);
  const policies = policiesFor(autoscale);
  const runs: RunResult[] = [];
  for (const policy of policies) runs.push(await simulate(trace, policy, model));
  if (options.suggest === false) return { model, policies, runs, suggestion: undefined };
  const predictive = policies.at(-1);
  if (predictive === undefined) return { model, policies, runs, suggestion: undefined };
  const budget = options.sloBudgetMinutes ?? 0;
  const settings = settingsAround(autoscale);
  const tried: Array<{ setting: Setting; run: RunResult }> = [];
  for (const setting of settings) tried.push({ setting, run: await simulate(trace, withSetting(predictive, setting), model) });
  const met = tried.filter((t) => t.run.summary.sloViolationMinutes <= budget);
  const pool = met.length > 0 ? met : tried;
  const best = [...pool].sort((a, b) => (met.length > 0 ? 0 : a.run.summary.sloViolationMinutes - b.run.summary.sloViolationMinutes) || a.run.summary.instanceHours - b.run.summary.instanceHours)[0];
  return { model, policies, runs, suggestion: best === undefined ? undefined : { ...best, metSlo: met.length > 0, tried: tried.length } };
}
