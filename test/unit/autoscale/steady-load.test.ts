// Issue 24: at a steady ~176 req/s on two replicas (target 100 req/s each) the forecast said 231
// req/s in 25 s and started a third replica, twice. The samples decide() was given in such a run,
// as the sidecar recorded them (bench/forecast-recording.ts: a pool of two, the autoscaler every
// 5 s so the forecast looks 25 s ahead, a paced load of 176 req/s, HAProxy reloaded through its
// master CLI as the Data Plane API driver reloads it), are replayed here in their order: one row
// per decision, each checked against what a steady load needs. The issue's own samples were not
// kept; in this recording the forecast before the fix peaked at 196 req/s (bench/results: the
// note of docs/autoscaling-policy.md), so a second table has the shape that made it say 231: a
// steady load whose requests, held back for a moment (a reload, a pause), all end in one window,
// which HAProxy counts when they end.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { decide, EMPTY_HISTORY, type History, type Samples } from '../../../sidecar/autoscale/policy.js';
import { loadConfig } from '../../../sidecar/config/index.js';
import { NON_SCALING_SETTINGS } from '../../../sidecar/simulation/policies.js';

interface Recorded {
  readonly at: number;
  readonly current: number;
  readonly reason: string;
  readonly predictedRequestRate: number | null;
  readonly inputs: Samples;
}
const fixture = JSON.parse(readFileSync(new URL('./fixtures/steady-load.json', import.meta.url), 'utf8')) as { description: string; decisions: Recorded[] };

// The sidecar's settings in that run.
const policy = loadConfig({ env: { ...NON_SCALING_SETTINGS, HSC_AUTOSCALE_INTERVAL_MS: '5000', HSC_AUTOSCALE_FORECAST: 'act', HSC_AUTOSCALE_MIN: '2', HSC_AUTOSCALE_MAX: '4' } }).autoscale.policy;

/** Every recorded decision made again, in order, the history carried as the controller carries it. */
function replayed(decisions: readonly Recorded[]) {
  let history: History = EMPTY_HISTORY;
  const start = decisions[0]?.at ?? 0;
  return decisions.map((d) => {
    const decision = decide(d.inputs, history, policy, d.at);
    history = decision.replicas === d.inputs.replicas ? decision.history : { ...decision.history, changes: history.changes };
    const counted = d.inputs.requestRate?.value;
    return {
      second: Math.round((d.at - start) / 1000),
      counted: counted === undefined || counted === null ? 'none' : counted.toFixed(1),
      replicas: decision.replicas,
      predicted: decision.predictedRequestRate,
      reason: decision.reason,
      serving: d.inputs.replicas,
    };
  });
}

/** 176 req/s read every 5 s (±4 req/s), one window counting 40 more that the next misses: the requests a pause held back. */
function heldBackWindow(): Recorded[] {
  const start = 1_800_000_000_000;
  const wobble = [2, -3, 4, -1, 0, 3, -4, 1, -2, 2, 0, -3, 3, -1, 1, -2, 0, 2, -4, 3];
  return wobble.map((w, i) => {
    const rate = i === 12 ? 216 : i === 13 ? 136 : 176 + w;
    const at = start + i * 5_000;
    const reading = (value: number) => ({ value, at });
    const inputs: Samples = { replicas: 2, sourceUp: true, cpu: reading(0.3), requestRate: reading(rate), queue: reading(0), responseTime: reading(0.02), inFlight: reading(2), inFlightGrowth: reading(0) };
    return { at, current: 2, reason: '', predictedRequestRate: null, inputs };
  });
}

describe('the forecast at a steady load (recorded samples, issue 24)', () => {
  const rows = replayed(fixture.decisions);

  it('the recording is of a steady load of about 176 req/s on two replicas', () => {
    expect(fixture.description).toMatch(/^176 req\/s paced on \/ .* against a pool of 2/);
    const counted = fixture.decisions.map((d) => d.inputs.requestRate?.value).filter((v): v is number => typeof v === 'number');
    expect(counted.length).toBeGreaterThan(20);
    const median = [...counted].sort((a, b) => a - b)[Math.floor(counted.length / 2)] ?? 0;
    expect(median).toBeGreaterThan(160);
    expect(median).toBeLessThan(190);
  });

  it.each(rows)('second $second: $counted req/s counted on $serving → forecast $predicted, $replicas replicas', ({ predicted, replicas, serving }) => {
    // Two replicas at 100 req/s each hold the load: the forecast never asks for a third.
    expect(replicas).toBeLessThanOrEqual(Math.max(2, serving));
    if (predicted !== undefined) expect(predicted).toBeLessThan(200);
  });
});

describe('the forecast at a steady load whose requests a pause held back (issue 24’s shape)', () => {
  // Before the fix the window of 216 (108 req/s per replica: within the tolerance, no scale-up of its own) made the forecast 224.55 req/s in 25 s, and a third replica.
  it.each(replayed(heldBackWindow()))('second $second: $counted req/s counted → forecast $predicted, $replicas replicas', ({ predicted, replicas }) => {
    expect(replicas).toBe(2);
    if (predicted !== undefined) expect(predicted).toBeLessThan(200);
  });
});
