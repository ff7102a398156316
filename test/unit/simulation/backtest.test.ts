import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../sidecar/config/index.js';
import { modelFor, runBacktest, settingsAround, withSetting } from '../../../sidecar/simulation/backtest.js';
import { NON_SCALING_SETTINGS, oursPredictive } from '../../../sidecar/simulation/policies.js';
import { instanceCapacity } from '../../../sidecar/simulation/world.js';

const settings = (env: Record<string, string> = {}) => loadConfig({ env: { ...NON_SCALING_SETTINGS, ...env } }).autoscale;

describe('backtest', () => {
  it('models the user’s instances from their settings: the target at 70 % of capacity, their start-up and minimum', () => {
    const model = modelFor(settings({ HSC_AUTOSCALE_RPS_TARGET: '35', HSC_AUTOSCALE_RPS_DOWN: '20', HSC_AUTOSCALE_STARTUP_MS: '8000', HSC_AUTOSCALE_MIN: '3' }));
    expect(instanceCapacity(model.station)).toBeCloseTo(50, 6);
    expect(model).toMatchObject({ startupSeconds: 8, initialReplicas: 3, sloP99Seconds: 0.5 });
    expect(instanceCapacity(modelFor(settings(), { capacityPerInstance: 400, initialReplicas: 5 }).station)).toBeCloseTo(400, 6);
    expect(modelFor(settings(), { initialReplicas: 5, sloP99Seconds: 0.2 })).toMatchObject({ initialReplicas: 5, sloP99Seconds: 0.2 });
  });

  it('a small instance has fewer workers, not slower requests: an idle one meets the SLO', async () => {
    // 20 req/s at 70 %: 28.6 req/s at saturation, one worker of 35 ms (not four of 140 ms, whose p99 alone would be 0.64 s).
    const model = modelFor(settings({ HSC_AUTOSCALE_RPS_TARGET: '20', HSC_AUTOSCALE_RPS_DOWN: '10' }));
    expect(model.station).toEqual({ kind: 'mmc', workers: 1, serviceTime: 1 / (20 / 0.7) });
    const quiet = await runBacktest({ name: 'quiet', description: '', rates: new Array<number>(120).fill(5) }, settings({ HSC_AUTOSCALE_RPS_TARGET: '20', HSC_AUTOSCALE_RPS_DOWN: '10' }), { suggest: false });
    expect(quiet.runs.every((r) => r.summary.sloViolationMinutes === 0)).toBe(true);
  });

  it('tries targets around the user’s, three windows and theirs, the forecast on and off', () => {
    const tried = settingsAround(settings({ HSC_AUTOSCALE_DOWN_WINDOW_MS: '180000' }));
    expect(new Set(tried.map((s) => s.requestRateTarget))).toEqual(new Set([70, 85, 100, 115]));
    expect(new Set(tried.map((s) => s.scaleDownWindowMs))).toEqual(new Set([60_000, 120_000, 180_000, 300_000]));
    expect(tried).toHaveLength(4 * 4 * 2);
  });

  it('changes only the setting, keeping the scale-down threshold in proportion to the target', () => {
    const changed = withSetting(oursPredictive, { requestRateTarget: 50, scaleDownWindowMs: 60_000, forecast: 'off' });
    expect(changed.policy.signals.requestRate).toEqual({ target: 50, scaleDownBelow: 42.5 });
    expect(changed.policy).toMatchObject({ scaleDownStabilisationMs: 60_000, forecast: { mode: 'off' } });
    expect(changed.policy.signals.cpu).toEqual(oursPredictive.policy.signals.cpu);
  });

  it('suggests the cheapest setting that met the SLO on the history', async () => {
    const trace = { name: 'calm', description: '', rates: new Array<number>(900).fill(120) };
    const result = await runBacktest(trace, settings());
    expect(result.runs.map((r) => r.policy)).toEqual(['bash rule', 'HPA rule', 'ours, reactive', 'ours, predictive']);
    const suggestion = result.suggestion;
    expect(suggestion?.metSlo).toBe(true);
    expect(suggestion?.run.summary.sloViolationMinutes).toBe(0);
    expect(suggestion?.tried).toBe(24);
  });
});
