// Faults the autoscaler meets in the pool it scales (minimum 2, maximum 3, a load that never
// asks for more: left alone, it scales three replicas down to two):
//   5. HAProxy's metrics endpoint down (its stats frontend disabled) from before the sidecar
//      starts: no scale-down, the freeze gauge and the metrics-source gauge say why, and a real
//      Prometheus with the stack's alert rules has the two alerts pending; once the endpoint is
//      back, the scale-down happens;
//   7. a replica killed (SIGKILL) under load: its server goes, a replacement is started and
//      joins; the only failed requests may be those that were on the killed container.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricSum } from '../../bench/lib/sidecar-process.js';
import { docker } from '../../devenv/containers.js';
import { startLocalPrometheus, STACK_RULE_FILES, type LocalPrometheus } from '../../devenv/prometheus.js';
import { availableDrivers, type DriverChoice } from '../../devenv/sidecar-env.js';
import { eventually, get } from '../support/http.js';
import { createWorld, SERVICE, type World } from './world.js';

describe.each<DriverChoice>(['runtime', 'dataplane'])('faults: the pool the autoscaler scales (%s driver)', (driver) => {
  const skip = !availableDrivers().includes(driver);
  let world: World;
  let prometheus: LocalPrometheus | undefined;

  beforeAll(async () => {
    if (skip) return;
    world = await createWorld({ driver, replicas: 3, autoscale: { min: 2, max: 3 } });
    for (let i = 0; i < 3; i++) await world.addReplica();
  });

  afterAll(async () => {
    if (skip) return;
    await prometheus?.stop();
    await world?.close();
  });

  it.skipIf(skip)('5. metrics endpoint down: no scale-down, frozen and alerted; back: the scale-down completes', async () => {
    expect((await world.haproxy.runtime('disable frontend fe_stats')).trim()).toBe('');
    const sidecar = await world.startSidecar();
    prometheus = await startLocalPrometheus({
      scrapeTargets: [{ job: 'sidecar', targets: [new URL(sidecar.adminUrl).host] }],
      ruleFiles: STACK_RULE_FILES,
    });
    const joined = await world.converge(3, Date.now(), 30_000);
    expect(joined.problems).toEqual([]);
    const load = world.startLoad();
    // Several evaluations (one a second) with the endpoint down.
    const alerts = new Set<string>();
    const pending = await eventually(async () => {
      for (const alert of (await prometheus?.alerts()) ?? []) if (alert.labels.service === SERVICE || alert.labels.source === 'haproxy') alerts.add(alert.labels.alertname ?? '');
      return alerts.has('AutoscalerMetricsSourceDown') && alerts.has('AutoscalerScaleDownFrozen');
    }, 20_000, 500);
    const samples = await sidecar.metrics();
    const frozen = metricSum(samples, 'hsc_autoscaler_scale_down_frozen', { service: SERVICE });
    const sourceUp = metricSum(samples, 'hsc_autoscaler_metrics_source_up', { source: 'haproxy' });
    const runningWhileDown = (await world.containers()).filter((c) => c.state === 'running').length;
    const recordsWhileDown = await world.retirements();

    expect((await world.haproxy.runtime('enable frontend fe_stats')).trim()).toBe('');
    const { problems, failed, report } = await world.conclude({
      fault: '5 metrics endpoint down',
      expected: 2,
      since: Date.now(),
      load,
      notes: () =>
        `while down: ${runningWhileDown} replicas kept, ${recordsWhileDown.length} retirements, frozen=${frozen}, source_up=${sourceUp}, ` +
        `alerts pending: ${[...alerts].sort().join(', ')}; back: scale-down 3 → 2 within the converge time`,
    });
    expect(runningWhileDown).toBe(3);
    expect(recordsWhileDown).toEqual([]);
    expect(frozen).toBe(1);
    expect(sourceUp).toBe(0);
    expect(pending, [...alerts].join(', ')).toBe(true);
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
  });

  it.skipIf(skip)('7. a replica killed under load: its server goes, a replacement joins, only its own requests may fail', async () => {
    if (world.sidecar === undefined) await world.startSidecar();
    await prometheus?.stop();
    prometheus = undefined;
    expect((await world.converge(2, Date.now(), 30_000)).problems).toEqual([]);
    const load = world.startLoad();
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    // A slow request on each replica: the victim's is cut by the kill.
    const slow = Array.from({ length: 2 }, () => get(`${world.haproxy.frontendUrl}/slow?s=4`, { signal: AbortSignal.timeout(30_000) }));
    await new Promise((resolve) => setTimeout(resolve, 500));
    const [victim] = (await world.containers()).filter((c) => c.state === 'running').sort((a, b) => b.number - a.number);
    if (victim === undefined) throw new Error('no replica to kill');
    const killed = Date.now();
    await docker.getContainer(victim.id).kill();
    // What a crashed replica leaves is the operator's (or Compose's) to remove, not the sidecar's.
    await docker.getContainer(victim.id).remove({ force: true });
    // Until HAProxy's checks took the server out, requests may have been on the killed container.
    const window = await world.crashWindow(victim.number, killed);
    const slowFailed = (await Promise.all(slow)).filter((a) => a.status !== 200).length;
    const { problems, failed, report } = await world.conclude({
      fault: '7 replica killed under load',
      expected: 2,
      since: killed,
      load,
      window,
      extra: { requests: slow.length, failed: 0, onCrashed: slowFailed },
      notes: () => `killed #${victim.number}, out of HAProxy's rotation ${window.to - 300 - killed} ms later; converge = its server removed, a replacement started and UP`,
    });
    expect(problems).toEqual([]);
    expect(failed, JSON.stringify(report.failures)).toBe(0);
    expect(slowFailed).toBeLessThanOrEqual(1);
  });
});
