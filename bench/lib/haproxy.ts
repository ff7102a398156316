// What the benchmarks read from HAProxy and Docker to time the sidecar's work. Nothing here
// writes to HAProxy: every server change in a benchmark is the sidecar's own, through its HAProxy
// driver. Server states and sessions come from HAProxy's exporter (as the sidecar reads them),
// reloads from the master CLI (LocalHaproxy.reloadCount).
import { docker } from '../../devenv/containers.js';
import type { LocalHaproxy } from '../../devenv/localenv.js';
import { backendSnapshot, scrape, type ServerSnapshot } from '../../sidecar/haproxy-metrics/exporter.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The servers of the instance's backend as its exporter shows them now. */
export async function serverSnapshots(haproxy: LocalHaproxy): Promise<readonly ServerSnapshot[]> {
  const result = await scrape({ url: haproxy.metricsUrl, timeoutMs: 2_000 });
  if (!result.ok) throw new Error(result.error.message);
  return backendSnapshot(result.value.samples, haproxy.backend, result.value.at)?.servers ?? [];
}

/** Polls the exporter until `check` holds for the backend's servers; throws after `timeoutMs`. */
export async function waitForServers(
  haproxy: LocalHaproxy,
  what: string,
  check: (servers: readonly ServerSnapshot[]) => boolean,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: readonly ServerSnapshot[] = [];
  for (;;) {
    last = await serverSnapshots(haproxy).catch(() => last);
    if (check(last)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what}: not reached within ${timeoutMs} ms (HAProxy shows ${last.map((s) => `${s.name}=${s.state}`).join(' ') || 'no server'})`);
    }
    await sleep(50);
  }
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

/** When Docker's healthcheck first passed: the end of the first successful probe, ms since the epoch. */
export async function healthyAt(containerId: string): Promise<number> {
  const info = await docker.getContainer(containerId).inspect();
  const log = (info.State.Health as { Log?: Array<{ ExitCode: number; End: string }> } | undefined)?.Log ?? [];
  const first = log.find((entry) => entry.ExitCode === 0);
  if (first === undefined) throw new Error(`container ${containerId.slice(0, 12)} has no passing healthcheck yet`);
  // Docker writes nanoseconds; Date.parse wants at most milliseconds.
  const at = Date.parse(first.End.replace(/(\.\d{3})\d+/, '$1'));
  if (Number.isNaN(at)) throw new Error(`cannot read the healthcheck time ${first.End}`);
  return at;
}
