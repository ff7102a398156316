// `hsc rollout` end to end: the sidecar as its own process (compiled as `npm run build` does)
// beside a real HAProxy and four real nginx replicas of a Compose service, under constant bounded
// load through HAProxy. A rollout to a new image through the CLI replaces every replica without
// one failed request; a rollout to an image that answers 500 rolls back on its own, its failures
// bounded by the canary's weight; and a sidecar killed with SIGKILL at each stage of a rollout
// finishes it or rolls it back after its restart, never leaving a mixed pool. Once per HAProxy
// driver (the Data Plane API one where its binary exists, reported as skipped otherwise).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildSidecar, startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../../bench/lib/sidecar-process.js';
import { docker, ensureNginxVariant, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary, readPinnedVersions } from '../../devenv/versions.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';
import type { RolloutPhase } from '../../sidecar/records/rollout.js';
import { LOAD_BLIND_AUTOSCALER } from '../support/autoscale-env.js';
import { eventually } from '../support/http.js';
import { startLoad, type LoadReport, type RunningLoad } from '../support/load.js';

const binary = dataplaneApiBinary();
const REPLICAS = 4;

interface RolloutAnswer {
  id: string;
  phase: RolloutPhase;
  started: number;
  reason: string;
  bake?: { newAnswers: number; newErrors: number };
}

describe.each<DriverChoice>(['runtime', 'dataplane'])('hsc rollout (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const run = randomBytes(3).toString('hex');
  const service = `web${run}`;
  const project = `hsc-test-${run}`;
  const token = randomBytes(16).toString('hex');
  const base = readPinnedVersions().NGINX_IMAGE;
  let next = '';
  let broken = '';
  let build: SidecarBuild;
  let haproxy: LocalHaproxy;
  let dir: string;
  let sidecar: SidecarProcess | undefined;
  let port = 0;
  const seeded: TestContainer[] = [];

  const startSidecar = async (): Promise<SidecarProcess> => {
    sidecar = await startSidecarProcess(
      build,
      {
        ...haproxyEnv(haproxy, driver),
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_COMPOSE_SERVICE: service,
        HSC_DOCKER_COMPOSE_PROJECT: project,
        HSC_DOCKER_LABEL_PREFIX: `hsc-none-${run}`,
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_SERVICE: service,
        HSC_AUTOSCALE_PROJECT: project,
        HSC_AUTOSCALE_STATE_FILE: join(dir, 'state.json'),
        // The autoscaler runs, blind to the test's load, at the pool's size: a rollout's surge
        // is more than it wants, and it must not scale that down.
        ...LOAD_BLIND_AUTOSCALER,
        HSC_AUTOSCALE_MIN: String(REPLICAS),
        HSC_AUTOSCALE_MAX: String(REPLICAS + 2),
        HSC_DRAIN_POLL_MS: '200',
        HSC_DRAIN_DEADLINE_MS: '30000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_RESYNC_INTERVAL_MS: '2000',
        HSC_ROLLOUT_BAKE_MS: '2000',
        HSC_ADMIN_TOKEN: token,
        HSC_HTTP_PORT: String(port),
        HSC_LOG_LEVEL: 'debug',
      },
      join(dir, 'sidecar.log'),
    );
    return sidecar;
  };
  const kill = async (): Promise<void> => {
    if (sidecar === undefined) return;
    process.kill(sidecar.pid, 'SIGKILL');
    await sidecar.stop();
    sidecar = undefined;
  };
  const admin = (): SidecarProcess => {
    if (sidecar === undefined) throw new Error('no sidecar running');
    return sidecar;
  };
  const rolloutNow = async (id: string): Promise<RolloutAnswer | undefined> => {
    const answer = await admin().admin('GET', `/v1/rollouts/${id}`).catch(() => undefined);
    return answer?.status === 200 ? (answer.body as RolloutAnswer) : undefined;
  };
  const begin = async (body: object): Promise<string> => {
    const answer = await admin().admin('POST', '/v1/rollouts', body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    return (answer.body as RolloutAnswer).id;
  };
  const ended = async (id: string, timeoutMs = 180_000): Promise<RolloutAnswer> => {
    let last: RolloutAnswer | undefined;
    const done = await eventually(
      async () => {
        last = await rolloutNow(id);
        return last !== undefined && (last.phase === 'succeeded' || last.phase === 'rolled-back');
      },
      timeoutMs,
      250,
    );
    if (!done || last === undefined) throw new Error(`rollout ${id} did not end: ${JSON.stringify(last)}`);
    return last;
  };
  /** The service's running replicas with their images, and HAProxy's managed servers. */
  const pool = async (): Promise<{ images: string[]; numbers: string[]; servers: string[] }> => {
    const listed = await docker.listContainers({ filters: { label: [`com.docker.compose.project=${project}`, `com.docker.compose.service=${service}`] } });
    const state = await haproxy.runtime(`show servers state ${haproxy.backend}`);
    const servers = state
      .split('\n')
      .slice(2)
      .map((line) => line.split(' ')[3] ?? '')
      .filter(isOwnedServerName);
    return { images: listed.map((c) => c.Image).sort(), numbers: listed.map((c) => c.Labels['com.docker.compose.container-number'] ?? '').sort(), servers };
  };
  /** The runtime weights of the managed servers. */
  const weights = async (): Promise<number[]> =>
    (await haproxy.runtime(`show servers state ${haproxy.backend}`))
      .split('\n')
      .slice(2)
      .map((line) => line.split(' '))
      .filter((fields) => isOwnedServerName(fields[3] ?? ''))
      .map((fields) => Number(fields[7]));
  /** Every replica runs `image`, the pool is whole, HAProxy serves exactly those, no record is left. */
  const expectWholePool = async (image: string): Promise<void> => {
    const whole = await eventually(
      async () => {
        const now = await pool();
        return now.images.length === REPLICAS && now.images.every((i) => i === image) && now.servers.length === REPLICAS;
      },
      60_000,
      250,
    );
    expect(whole, JSON.stringify(await pool())).toBe(true);
    const { numbers } = await pool();
    // Compose's numbering: one number per replica, as `docker compose ps` shows them.
    expect(new Set(numbers).size).toBe(REPLICAS);
    const records = (await admin().admin('GET', '/v1/records')).body as { records: unknown[] };
    expect(await eventually(async () => ((await admin().admin('GET', '/v1/records')).body as { records: unknown[] }).records.length === 0, 30_000), JSON.stringify(records)).toBe(true);
  };
  const withLoad = async <T>(body: () => Promise<T>): Promise<{ result: T; report: LoadReport }> => {
    const load: RunningLoad = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 3, maxDurationMs: 400_000, maxRequests: 5_000_000 });
    try {
      const result = await body();
      return { result, report: await load.stop() };
    } catch (error) {
      await load.stop();
      throw error;
    }
  };

  beforeAll(async () => {
    if (skip) return;
    dir = await mkdtemp(join(tmpdir(), 'hsc-test-rollout-'));
    port = await freePort();
    [build, haproxy, next, broken] = await Promise.all([buildSidecar('test'), startLocalHaproxy({ withDataplane: driver === 'dataplane' }), ensureNginxVariant('next'), ensureNginxVariant('broken')]);
    for (let number = 1; number <= REPLICAS; number++) {
      seeded.push(
        await startNginx({
          name: `${project}-${service}-${number}`,
          labels: { 'com.docker.compose.project': project, 'com.docker.compose.service': service, 'com.docker.compose.container-number': String(number) },
        }),
      );
    }
    await startSidecar();
    expect(await eventually(async () => (await pool()).servers.length === REPLICAS, 30_000)).toBe(true);
  }, 180_000);

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await haproxy?.stop();
    // The replicas the rollouts started carry the template's labels, the test's owner among them.
    const left = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await Promise.all(seeded.map((c) => c.remove()));
    await build?.remove();
    await rm(dir, { recursive: true, force: true });
  });

  it.skipIf(skip)('hsc rollout replaces 4 replicas with a new image two at a time, printing each step, without one failed request', async () => {
    const { result, report } = await withLoad(async () => {
      const hsc = join(build.dir, 'sidecar', 'cli', 'hsc.js');
      return promisify(execFile)(process.execPath, [hsc, '--url', admin().adminUrl, '--token', token, 'rollout', '--image', next, '--batch', '2', '--bake', '2'], { timeout: 240_000 });
    });
    const lines = result.stdout.trim().split('\n');
    expect(lines.some((l) => / baking +batch 1\/2 /.test(l)), result.stdout).toBe(true);
    expect(lines.some((l) => / baking +batch 2\/2 /.test(l)), result.stdout).toBe(true);
    expect(lines.at(-1)).toMatch(new RegExp(`succeeded in [0-9.]+ s: ${next} serves`));
    await expectWholePool(next);
    expect(report.sent).toBeGreaterThan(500);
    expect(report.failures).toEqual({});
  }, 300_000);

  it.skipIf(skip)('a rollout to an image that answers 500 rolls back on its own, the canary failing few requests, the old replicas serving', async () => {
    const { result: outcome, report } = await withLoad(async () => {
      const id = await begin({ image: broken, batch: 1, canaryPercent: 10, bakeSeconds: 10 });
      return ended(id);
    });
    expect(outcome.phase).toBe('rolled-back');
    expect(outcome.reason).toMatch(/the new replicas failed \d+ of \d+ answers/);
    await expectWholePool(next);
    // Only the canary's 500s: no request went unanswered, none met a 502 or a 503.
    expect(Object.keys(report.failures)).toEqual(['500']);
    // The canary had a tenth of one replica's weight beside four (1 of 41 shares) and was judged
    // once it had answered 50 requests: about 50 failed, each one counted by HAProxy too.
    const failed = report.failures['500'] ?? 0;
    console.log(`[rollout ${driver}] rollback to ${broken}: ${failed} of ${report.sent} requests failed (${outcome.reason})`);
    expect(failed).toBeLessThanOrEqual(200);
  }, 300_000);

  it.skipIf(skip)('killed with SIGKILL at each stage, the restarted sidecar finishes the rollout or rolls it back: never a mixed pool, no failed request', async () => {
    const stages: Array<{ stage: RolloutPhase | 'creating'; image: string }> = [
      { stage: 'creating', image: base },
      { stage: 'baking', image: next },
      { stage: 'retiring', image: base },
      { stage: 'starting', image: next },
    ];
    let current = next;
    const { report } = await withLoad(async () => {
      for (const { stage, image } of stages) {
        // The bake killed is a canary's: its weight must be set again after the restart too.
        const id = await begin({ image, batch: 2, bakeSeconds: 2, ...(stage === 'baking' ? { canaryPercent: 25 } : {}) });
        if (stage === 'creating') {
          // While Docker creates and starts the first batch: the record says nothing started yet.
          await new Promise((resolve) => setTimeout(resolve, 300));
        } else {
          const reached = await eventually(async () => (await rolloutNow(id))?.phase === stage && (stage !== 'starting' || ((await rolloutNow(id))?.started ?? 0) > 0), 90_000, 20);
          expect(reached, `rollout ${id} never reached ${stage}`).toBe(true);
          if (stage === 'baking') expect(await eventually(async () => (await weights()).filter((w) => w === 25).length === 2, 5_000, 20), String(await weights())).toBe(true);
          if (stage === 'starting') {
            // The second batch's replicas are starting: kill it there.
            const second = await eventually(async () => {
              const now = await rolloutNow(id);
              return now !== undefined && now.phase === 'starting' && now.started > 0 && /batch 2/.test(now.reason);
            }, 90_000, 20);
            expect(second).toBe(true);
          }
        }
        await kill();
        await startSidecar();
        const outcome = await ended(id);
        current = outcome.phase === 'succeeded' ? image : current;
        console.log(`[rollout ${driver}] killed at ${stage}: ${outcome.phase} (${outcome.reason})`);
        await expectWholePool(current);
      }
    });
    expect(report.sent).toBeGreaterThan(500);
    expect(report.failures).toEqual({});
  }, 900_000);

  it.skipIf(skip)('killed while it rolls back, the restarted sidecar finishes the rollback', async () => {
    const before = (await pool()).images[0] ?? '';
    const id = await begin({ image: broken, batch: 2, bakeSeconds: 30 });
    expect(await eventually(async () => (await rolloutNow(id))?.phase === 'baking', 90_000, 50)).toBe(true);
    const asked = await admin().admin('POST', `/v1/rollouts/${id}/rollback`, {});
    expect(asked.status).toBe(202);
    expect(await eventually(async () => (await rolloutNow(id))?.phase === 'rolling-back', 10_000, 20)).toBe(true);
    await kill();
    await startSidecar();
    const outcome = await ended(id);
    expect(outcome.phase).toBe('rolled-back');
    expect(outcome.reason).toMatch(/asked by an operator/);
    await expectWholePool(before);
    const log = await readFile(join(dir, 'sidecar.log'), 'utf8');
    expect(log).toMatch(/rolled back/);
  }, 300_000);
});
