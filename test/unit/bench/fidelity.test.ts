import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluationPhaseMs, measuredCpuLatencyMs, measuredStartup, replay } from '../../../bench/sim/fidelity.js';
import { NGINX_WORK, type RecordedDecision, type RecordedSecond, type Recording } from '../../../bench/lib/timeline.js';

const second = (serving: number, openSent = 5, clients = 0): RecordedSecond => ({ sent: openSent, openSent, clients, failed: 0, p99: 0.01, serving, running: serving });
const decision = (at: number, current: number, desired: number, started: number, reason = 'requestRate wins', sampledAt = at - 1): RecordedDecision => ({ at, current, desired, applied: true, started, retired: 0, reason, sampledAt });
const recordingOf = (seconds: RecordedSecond[], decisions: RecordedDecision[] = []): Recording => ({
  name: 'synthetic',
  description: '',
  settings: { HSC_AUTOSCALE_INTERVAL_MS: '5000', HSC_AUTOSCALE_RPS_TARGET: '20', HSC_AUTOSCALE_RPS_DOWN: '10', HSC_AUTOSCALE_MIN: '2', HSC_AUTOSCALE_MAX: '6' },
  station: NGINX_WORK,
  startedAt: 0,
  seconds,
  decisions,
});

describe('what a recording says about the environment', () => {
  it('start-up: decision → the first new server in rotation, then per further container', () => {
    // Decided at 10.4 s to start 3; the pool serves 3 at second 15 (ends at 16), 5 at second 17.
    const seconds = [...new Array<RecordedSecond>(15).fill(second(2)), second(3), second(4), second(5), second(5)];
    expect(measuredStartup(recordingOf(seconds, [decision(10.4, 2, 5, 3)]))).toEqual({ firstSeconds: 16 - 10.4, staggerSeconds: 1 });
    expect(measuredStartup(recordingOf(seconds))).toBeUndefined();
  });

  it('Docker’s CPU read: from the scrape to the evaluation’s record; a breach check reads none', () => {
    const decisions = [decision(7.2, 2, 2, 0, 'hold', 6), decision(12.5, 2, 2, 0, 'hold', 11.3), decision(14, 2, 6, 4, 'breach check: …', 13.9)];
    expect(measuredCpuLatencyMs(recordingOf([], decisions))).toBeCloseTo(1200, 6);
  });

  it('the evaluations’ phase: where the first evaluation’s scrape fell in the interval', () => {
    expect(evaluationPhaseMs(recordingOf([], [decision(4, 2, 6, 4, 'breach check: x', 3.9), decision(7.2, 2, 2, 0, 'hold', 6.1)]), 5000)).toBeCloseTo(1100, 6);
    expect(evaluationPhaseMs(recordingOf([]), 5000)).toBeUndefined();
  });
});

describe('replay', () => {
  it('a quiet run is replayed second for second: the same pool, no error', async () => {
    const f = await replay(recordingOf(new Array<RecordedSecond>(60).fill(second(2))));
    expect(f).toMatchObject({ seconds: 60, serving: { meanAbsoluteError: 0, exactShare: 1, real: 120, simulated: 120 }, violations: { real: 0, simulated: 0 } });
  });

  it('counts the error second by second', async () => {
    // The real pool had one server more for 15 of 60 quiet seconds: the simulator (which keeps 2) is off by 0.25 on average.
    const f = await replay(recordingOf([...new Array<RecordedSecond>(45).fill(second(2)), ...new Array<RecordedSecond>(15).fill(second(3))]));
    expect(f.serving).toMatchObject({ meanAbsoluteError: 0.25, exactShare: 0.75, real: 135, simulated: 120 });
  });

  // The recorded runs of the real environment (npm run bench writes them; README: fidelity): the
  // simulator stays as close to them as it was when they were recorded.
  const dir = 'bench/results/fidelity';
  const recorded = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.json')) : [];
  it.each(recorded)('stays close to the recorded run %s', async (file) => {
    const f = await replay(JSON.parse(readFileSync(`${dir}/${file}`, 'utf8')) as Recording);
    expect(f.serving.meanAbsoluteError).toBeLessThan(1);
    expect(Math.abs(f.serving.simulated - f.serving.real) / f.serving.real).toBeLessThan(0.25);
  });
});
