// Faults 1 and 9: the sidecar itself dies or is restarted while it scales. A pool of three
// replicas serves a constant paced load; the replica count is the configuration's (minimum =
// maximum), so a restart with another count is what makes the sidecar scale, at once:
//   1a. restarted with 2: a scale-down starts; SIGKILL while the victim drains (a slow request
//       holds the drain open); the sidecar started again finishes that retirement;
//   1b. restarted with 3: a scale-up starts; SIGKILL as soon as the new container exists (not
//       serving yet); the sidecar started again makes it a server and starts no other;
//   9.  restarted with 2 again; SIGTERM (an operator's restart) while the victim drains; the
//       retirement record carries the scale-down on.
// Each: not one request failed, and HAProxy, Docker and the sidecar agree soon after.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { availableDrivers, type DriverChoice } from '../../devenv/sidecar-env.js';
import { eventually, get } from '../support/http.js';
import { createWorld, type World } from './world.js';

const count = (n: number): Record<string, string> => ({ HSC_AUTOSCALE_MIN: String(n), HSC_AUTOSCALE_MAX: String(n) });

describe.each<DriverChoice>(['runtime', 'dataplane'])('faults: the sidecar killed or restarted while it scales (%s driver)', (driver) => {
  const skip = !availableDrivers().includes(driver);
  let world: World;

  beforeAll(async () => {
    if (skip) return;
    world = await createWorld({ driver, replicas: 3, autoscale: { min: 3, max: 3 } });
    for (let i = 0; i < 3; i++) await world.addReplica();
    await world.startSidecar(count(3));
    const { ms, problems } = await world.converge(3, Date.now(), 30_000);
    if (ms === null) throw new Error(`the pool did not converge before the faults: ${problems.join('; ')}`);
  });

  afterAll(async () => {
    if (!skip) await world?.close();
  });

  /**
   * Restarts the sidecar (gracefully) with two replicas, one slow request on every replica so the
   * drain lasts; once the victim drains, the sidecar is killed (SIGKILL) or stopped (SIGTERM) and
   * started again, and must finish that scale-down.
   */
  const interruptScaleDown = async (fault: string, how: 'kill' | 'stop'): Promise<void> => {
    const load = world.startLoad();
    const slow = Array.from({ length: 3 }, () => get(`${world.haproxy.frontendUrl}/slow?s=5`, { signal: AbortSignal.timeout(30_000) }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    await world.stopSidecar();
    await world.startSidecar(count(2));
    expect(await eventually(async () => (await world.retirements()).some((r) => r.stage === 'draining'), 20_000, 50)).toBe(true);
    const [record] = await world.retirements();
    if (how === 'kill') await world.killSidecar();
    else await world.stopSidecar();
    const back = Date.now();
    await world.startSidecar(count(2));
    const slowStatuses = (await Promise.all(slow)).map((a) => a.status);
    const { problems, failed } = await world.conclude({
      fault,
      expected: 2,
      since: back,
      load,
      extra: { requests: slow.length, failed: slowStatuses.filter((s) => s !== 200).length, onCrashed: 0 },
      notes: () => `${how === 'kill' ? 'killed' : 'restarted'} at stage ${record?.stage ?? '?'} of ${record?.server ?? '?'}; converge includes the rest of its drain (a 5 s request)`,
    });
    expect(problems).toEqual([]);
    expect(failed).toBe(0);
    expect(slowStatuses).toEqual([200, 200, 200]);
  };

  it.skipIf(skip)('1a. SIGKILL mid-drain: the restarted sidecar finishes the scale-down, no request fails', () =>
    interruptScaleDown('1a sidecar SIGKILL mid-drain', 'kill'));

  it.skipIf(skip)('1b. SIGKILL mid-scale-up: the restarted sidecar adds the new replica and starts no other', async () => {
    const load = world.startLoad();
    const before = new Set((await world.containers()).map((c) => c.id));
    await world.stopSidecar();
    await world.startSidecar(count(3));
    expect(await eventually(async () => (await world.containers()).some((c) => !before.has(c.id)), 20_000, 50)).toBe(true);
    await world.killSidecar();
    const fresh = (await world.containers()).filter((c) => !before.has(c.id));
    const back = Date.now();
    await world.startSidecar(count(3));
    const { problems, failed } = await world.conclude({
      fault: '1b sidecar SIGKILL mid-scale-up',
      expected: 3,
      since: back,
      load,
      notes: () => `killed with the new replica ${fresh.map((c) => `#${c.number} ${c.state}${c.healthy ? ' healthy' : ', not healthy yet'}`).join(', ')}`,
    });
    expect(problems).toEqual([]);
    expect(failed).toBe(0);
  });

  it.skipIf(skip)('9. restarted (SIGTERM) mid-scale-down: the retirement record completes it', () =>
    interruptScaleDown('9 sidecar restarted mid-scale-down', 'stop'));
});
