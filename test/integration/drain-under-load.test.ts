// Draining under load, through the product, once per HAProxy driver: a real sidecar discovers
// labelled nginx containers and adds them to a real HAProxy; then, for ten cycles, one server is
// drained through the sidecar's admin API (POST …/drain with wait) while short requests, slow
// ones (seconds) and rate-limited large downloads are in flight; its container is stopped
// gracefully, the sidecar removes its server, a fresh labelled container is started and the
// sidecar adds it. Not one request may fail, every drain must end as `drained` (never forced)
// and every long request must complete in full. The Data Plane API run is reported as skipped,
// never passed, where its binary is not available.
//
// HAProxy's state is read straight from its runtime socket (test/support/runtime.ts), never
// through the code under test.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { labelledContainersEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { dataplaneApiBinary } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { eventually, get } from '../support/http.js';
import { download, startLoad } from '../support/load.js';
import { runtimeServerNames, runtimeServerStates } from '../support/runtime.js';
import { adminClient, sidecarLogger, type AdminClient } from '../support/sidecar.js';

const CYCLES = 10;
const binary = dataplaneApiBinary();

interface DrainAnswer {
  readonly progress: { readonly state: string; readonly server: string } | null;
  readonly outcome?: { readonly outcome: string; readonly durationMs?: number; readonly sessionsCut?: number };
}

describe.each<DriverChoice>(['runtime', 'dataplane'])('draining under load through the sidecar (%s driver)', (driver) => {
  const skip = driver === 'dataplane' && binary === undefined;
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('hex');
  let haproxy: LocalHaproxy;
  let sidecar: RunningSidecar | undefined;
  let admin: AdminClient;
  /** Server name → its container, in the order they joined. */
  const pool = new Map<string, TestContainer>();
  const retired: TestContainer[] = [];
  /** Statuses of the probe requests the test sends itself to see a new server serve. */
  const probes = new Map<number, number>();
  let serial = 0;

  /** Starts a labelled container, waits until the sidecar made it a server that is UP, ready and answering. */
  async function addContainer(): Promise<string> {
    const name = `${prefix}-web-${++serial}`;
    const container = await startNginx({ name, labels: { [`${prefix}.enable`]: 'true' } });
    const server = `hsc-${name}`;
    pool.set(server, container);
    let last: unknown;
    const up = await eventually(async () => {
      const state = (await runtimeServerStates(haproxy)).find((s) => s.name === server);
      last = state;
      return state?.operational === 2 && state.admin === 'ready' && state.port === container.hostPort;
    }, 30_000, 100);
    if (!up) throw new Error(`the sidecar did not make ${server} an UP, ready server within 30 s (HAProxy shows ${JSON.stringify(last)})`);
    const serving = await eventually(async () => {
      const answer = await get(`${haproxy.frontendUrl}/`);
      probes.set(answer.status, (probes.get(answer.status) ?? 0) + 1);
      return answer.servedBy === container.hostname;
    }, 10_000, 20);
    if (!serving) throw new Error(`${server} is UP but no request reached ${container.hostname} within 10 s`);
    return server;
  }

  beforeAll(async () => {
    if (skip) return;
    haproxy = await startLocalHaproxy({ withDataplane: driver === 'dataplane' });
    sidecar = await startSidecar(
      loadConfig({
        env: {
          ...labelledContainersEnv(haproxy, driver, prefix),
          HSC_AUTOSCALE_ENABLED: 'false',
          HSC_ADMIN_TOKEN: token,
          HSC_DRAIN_POLL_MS: '100',
          HSC_DRAIN_DEADLINE_MS: '30000',
          HSC_RECONCILE_DEBOUNCE_MS: '100',
          HSC_RESYNC_INTERVAL_MS: '2000',
          HSC_HTTP_PORT: '0',
        },
      }),
      { logger: sidecarLogger(`drain-under-load-${driver}`) },
    );
    admin = adminClient(sidecar.port, token);
    for (let i = 0; i < 3; i++) await addContainer();
  });

  afterAll(async () => {
    if (skip) return;
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all([...pool.values(), ...retired].map((c) => c.remove()));
  });

  it.skipIf(skip)(
    `drains, removes and replaces servers for ${CYCLES} cycles without failing a request`,
    async () => {
      const load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 6, maxDurationMs: 300_000, maxRequests: 2_000_000 });
      const answers: Array<{ server: string; status: number; body: DrainAnswer }> = [];
      const statesAfterDrain: string[] = [];
      const longRequests: Array<Promise<{ status: number; bytes: number }>> = [];
      // A failed step ends the cycles; the load and the long requests are still reported first.
      let failure: Error | undefined;
      try {
        for (let cycle = 0; cycle < CYCLES; cycle++) {
          const [victim, container] = [...pool.entries()][0] ?? [];
          if (victim === undefined || container === undefined) throw new Error('empty pool');
          // Long requests go in first, spread over the pool, so the victim very likely holds some.
          for (let i = 0; i < 3; i++) longRequests.push(download(`${haproxy.frontendUrl}/slow?s=2`));
          if (cycle % 3 === 0) longRequests.push(download(`${haproxy.frontendUrl}/download/16m.bin?rate=8m`));
          await new Promise((resolve) => setTimeout(resolve, 300));

          const drained = await admin.post(`/v1/backends/${haproxy.backend}/servers/${victim}/drain`, { wait: true }, 60_000);
          answers.push({ server: victim, status: drained.status, body: drained.body as unknown as DrainAnswer });
          statesAfterDrain.push((await runtimeServerStates(haproxy)).find((s) => s.name === victim)?.admin ?? 'absent');

          // nginx's STOPSIGNAL is SIGQUIT: a graceful quit. The sidecar sees the container go.
          await docker.getContainer(container.id).stop();
          pool.delete(victim);
          retired.push(container);
          const removed = await eventually(async () => !(await runtimeServerNames(haproxy)).includes(victim), 30_000, 100);
          if (!removed) {
            throw new Error(`cycle ${cycle + 1}: the sidecar did not remove ${victim} within 30 s of its container stopping`);
          }
          await container.remove();

          await addContainer();
        }
      } catch (error) {
        failure = error instanceof Error ? error : new Error(JSON.stringify(error));
      }
      const report = await load.stop();
      const finished = await Promise.all(longRequests);
      const durations = answers.map((a) => a.body.outcome?.durationMs ?? NaN).sort((a, b) => a - b);
      console.info(
        `[drain-under-load ${driver}, HAProxy ${haproxy.haproxyVersion}] ${report.sent} requests (${report.ok} 2xx, failures ${JSON.stringify(report.failures)}), ` +
          `${finished.filter((r) => r.status === 200).length}/${finished.length} long requests complete, ` +
          `drains ${answers.length}: ${JSON.stringify(answers.map((a) => a.body.outcome?.outcome ?? a.status))}, ` +
          `durations ms: min ${durations[0]}, median ${durations[Math.floor(durations.length / 2)]}, max ${durations.at(-1)}`,
      );
      if (failure !== undefined) throw failure;
      expect(answers.map((a) => [a.status, a.body.outcome?.outcome])).toEqual(new Array(CYCLES).fill([200, 'drained']));
      // The server was in drain in HAProxy itself when the API said the drain ended.
      expect(statesAfterDrain).toEqual(new Array<string>(CYCLES).fill('drain'));
      expect(report.failures).toEqual({});
      expect(report.ok).toBeGreaterThan(1_000);
      expect([...probes.keys()].filter((status) => status !== 200)).toEqual([]);
      expect(finished.filter((r) => r.status !== 200)).toEqual([]);
      // The 16 MiB downloads arrived whole, the slow answers too.
      expect(finished.filter((r) => r.bytes === 16 * 1024 * 1024)).toHaveLength(Math.ceil(CYCLES / 3));
      expect(finished.filter((r) => r.bytes !== 16 * 1024 * 1024).every((r) => r.bytes > 0)).toBe(true);
      // The pool ends as it began: three servers, the sidecar's, every one of them serving.
      expect(await runtimeServerNames(haproxy)).toEqual([...pool.keys()].sort());
    },
    360_000,
  );
});
