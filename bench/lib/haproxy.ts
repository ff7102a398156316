// HAProxy operations the benchmarks do themselves where the Data Plane API is missing: runtime
// `add server` / `del server` and server states, through the runtime socket, the way
// test/integration/drain-under-load.test.ts does. The Data Plane API's runtime endpoints issue
// these same commands; reads of sessions and states come from HAProxy's exporter, as in production.
import type { LocalHaproxy } from '../../devenv/localenv.js';
import type { AdminState, Result } from '../../sidecar/dataplane/index.js';
import type { DrainPorts } from '../../sidecar/drain/drainer.js';
import { backendSnapshot, createServerLoadReader, scrape, type ServerSnapshot } from '../../sidecar/haproxy-metrics/index.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A runtime command that must succeed; HAProxy answers errors as text, not as a status. */
export async function runtimeOk(haproxy: LocalHaproxy, command: string): Promise<string> {
  const answer = await haproxy.runtime(command);
  if (/unknown|not found|error|cannot|refused|no such/i.test(answer)) throw new Error(`${command}: ${answer.trim()}`);
  return answer;
}

/** The servers of the instance's backend as its exporter shows them now. */
export async function serverSnapshots(haproxy: LocalHaproxy): Promise<readonly ServerSnapshot[]> {
  const result = await scrape({ url: haproxy.metricsUrl, timeoutMs: 2_000 });
  if (!result.ok) throw new Error(result.message);
  return backendSnapshot(result.samples, haproxy.backend, result.at)?.servers ?? [];
}

/** Polls the exporter until `check` holds for the backend's servers; throws after `timeoutMs`. */
export async function waitForServers(
  haproxy: LocalHaproxy,
  what: string,
  check: (servers: readonly ServerSnapshot[]) => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check(await serverSnapshots(haproxy).catch(() => []))) return;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/**
 * Adds a server at run time with the health checks the sidecar gives its servers (every 1 s,
 * down after 2 failures, up after 1 success), and waits until HAProxy shows it UP.
 */
export async function addRuntimeServer(haproxy: LocalHaproxy, name: string, port: number): Promise<void> {
  const id = `${haproxy.backend}/${name}`;
  await runtimeOk(haproxy, `add server ${id} 127.0.0.1:${port} check inter 1s rise 1 fall 2`);
  await runtimeOk(haproxy, `enable health ${id}`);
  await runtimeOk(haproxy, `enable server ${id}`);
  await waitForServers(haproxy, `${id} UP`, (servers) => servers.some((s) => s.name === name && s.state === 'UP'));
}

/** Maintenance, then `del server`; retried while HAProxy still holds a connection to it. */
export async function removeRuntimeServer(haproxy: LocalHaproxy, name: string): Promise<void> {
  const id = `${haproxy.backend}/${name}`;
  await runtimeOk(haproxy, `set server ${id} state maint`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      await runtimeOk(haproxy, `del server ${id}`);
      return;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

/** The drainer's ports on the runtime socket (state) and the exporter (load). */
export function runtimeDrainPorts(haproxy: LocalHaproxy): DrainPorts {
  return {
    setAdminState: async (backend: string, server: string, state: AdminState): Promise<Result<void>> => {
      const answer = (await haproxy.runtime(`set server ${backend}/${server} state ${state}`)).trim();
      return answer === ''
        ? { ok: true, value: undefined }
        : { ok: false, error: { kind: 'invalid', message: answer, operation: 'runtime set server' } };
    },
    // Only resume() reads this, and the benchmarks never resume drains.
    listRuntimeServers: () => Promise.resolve({ ok: true, value: [] }),
    readLoad: createServerLoadReader({ url: haproxy.metricsUrl, timeoutMs: 2_000 }),
  };
}

/** One GET that reads the whole body and says when it ended (performance.now()); status 0 = no answer. */
export async function timedGet(url: string, timeoutMs = 30_000): Promise<{ status: number; bytes: number; endedAt: number; servedBy: string | null }> {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1') throw new Error(`requests may only go to the loopback, not ${host}`);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const bytes = (await response.arrayBuffer()).byteLength;
    return { status: response.status, bytes, endedAt: performance.now(), servedBy: response.headers.get('x-served-by') };
  } catch {
    return { status: 0, bytes: 0, endedAt: performance.now(), servedBy: null };
  }
}
