// The drainer under load on the real HAProxy, with real nginx containers: servers are drained one
// by one while short requests, slow ones (seconds) and rate-limited large downloads are in flight,
// removed once HAProxy shows no session and no queue on them, their containers stopped gracefully,
// and fresh ones added back, for ten cycles. Not one request may fail and every long request that
// was in flight when its server's drain began must complete in full.
//
// The drainer's HAProxy-state port is HAProxy's runtime socket here (set server … state), and
// servers are added and deleted with the runtime `add server` / `del server`: the Data Plane API
// binary is not available on this workplace (README). Its runtime endpoints issue these same
// commands; the drain's completion is read from HAProxy's exporter exactly as in production.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import type { AdminState, Result } from '../../sidecar/dataplane/index.js';
import { createDrainer, type Drainer, type DrainOutcome } from '../../sidecar/drain/drainer.js';
import { createServerLoadReader } from '../../sidecar/haproxy-metrics/index.js';
import { silentLogger } from '../../sidecar/telemetry/logger.js';
import { eventually } from '../support/http.js';
import { download, startLoad } from '../support/load.js';

const CYCLES = 10;

describe('draining under load on the real HAProxy', () => {
  let haproxy: LocalHaproxy;
  let drainer: Drainer;
  const pool = new Map<string, TestContainer>();
  let serial = 0;

  const runtimeOk = async (command: string): Promise<string> => {
    const answer = await haproxy.runtime(command);
    if (/unknown|not found|error|cannot|refused/i.test(answer)) throw new Error(`${command}: ${answer.trim()}`);
    return answer;
  };

  async function addServer(): Promise<string> {
    const container = await startNginx();
    const name = `hsc-web-${++serial}`;
    await runtimeOk(`add server ${haproxy.backend}/${name} 127.0.0.1:${container.hostPort} check inter 500 rise 1 fall 2`);
    await runtimeOk(`enable health ${haproxy.backend}/${name}`);
    await runtimeOk(`enable server ${haproxy.backend}/${name}`);
    pool.set(name, container);
    const up = await eventually(async () => /\s2\s/.test((await haproxy.runtime(`show servers state ${haproxy.backend}`)).split('\n').find((l) => l.includes(` ${name} `)) ?? ''), 10_000, 100);
    if (!up) throw new Error(`${name} did not come up`);
    return name;
  }

  async function removeServer(name: string): Promise<void> {
    await runtimeOk(`set server ${haproxy.backend}/${name} state maint`);
    await runtimeOk(`del server ${haproxy.backend}/${name}`);
    const container = pool.get(name);
    pool.delete(name);
    // nginx's STOPSIGNAL is SIGQUIT: a graceful quit.
    await docker.getContainer(container?.id ?? '').stop({ t: 10 });
    await container?.remove();
  }

  beforeAll(async () => {
    haproxy = await startLocalHaproxy({ withDataplane: false });
    const readLoad = createServerLoadReader({ url: haproxy.metricsUrl, timeoutMs: 2_000 });
    drainer = createDrainer({
      ports: {
        setAdminState: async (backend: string, server: string, state: AdminState): Promise<Result<void>> => {
          const answer = await haproxy.runtime(`set server ${backend}/${server} state ${state}`);
          return answer.trim() === ''
            ? { ok: true, value: undefined }
            : { ok: false, error: { kind: 'invalid', message: answer.trim(), operation: 'runtime set server' } };
        },
        listRuntimeServers: () => Promise.resolve({ ok: true, value: [] }),
        readLoad,
      },
      pollMs: 200,
      deadlineMs: 30_000,
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      logger: silentLogger,
    });
    for (let i = 0; i < 3; i++) await addServer();
  });

  afterAll(async () => {
    await haproxy?.stop();
    await Promise.all([...pool.values()].map((c) => c.remove()));
  });

  it(`drains, removes and replaces servers for ${CYCLES} cycles without failing a request`, async () => {
    const load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 6, maxDurationMs: 240_000, maxRequests: 2_000_000 });
    const outcomes: DrainOutcome[] = [];
    const longRequests: Array<Promise<{ status: number; bytes: number }>> = [];
    try {
      for (let cycle = 0; cycle < CYCLES; cycle++) {
        const victim = [...pool.keys()][0];
        if (victim === undefined) throw new Error('empty pool');
        // Long requests go in first, spread over the pool, so the victim very likely holds some.
        for (let i = 0; i < 3; i++) longRequests.push(download(`${haproxy.frontendUrl}/slow?s=2`));
        if (cycle % 3 === 0) longRequests.push(download(`${haproxy.frontendUrl}/download/16m.bin?rate=8m`));
        await new Promise((resolve) => setTimeout(resolve, 300));
        outcomes.push(await drainer.drain(haproxy.backend, victim, { reason: `cycle ${cycle + 1}` }));
        await removeServer(victim);
        await addServer();
      }
    } finally {
      const report = await load.stop();
      const finished = await Promise.all(longRequests);
      const durations = outcomes.map((o) => ('durationMs' in o ? o.durationMs : NaN)).sort((a, b) => a - b);
      console.info(
        `[drain-under-load] ${report.sent} requests (${report.ok} 2xx), ${finished.length} long requests, ` +
          `drain durations ms: min ${durations[0]}, median ${durations[Math.floor(durations.length / 2)]}, max ${durations.at(-1)}`,
      );
      expect(outcomes.map((o) => o.outcome)).toEqual(new Array<string>(CYCLES).fill('drained'));
      expect(report.failures).toEqual({});
      expect(report.ok).toBeGreaterThan(1_000);
      expect(finished.filter((r) => r.status !== 200)).toEqual([]);
      // The 16 MiB downloads arrived whole, the slow answers too.
      expect(finished.filter((r) => r.bytes === 16 * 1024 * 1024)).toHaveLength(Math.ceil(CYCLES / 3));
    }
  });
});
