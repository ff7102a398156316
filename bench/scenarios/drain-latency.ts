// Drain completion latency through the product, once per HAProxy driver: how long after the last
// connection on a draining server closes the sidecar answers that the drain is complete. One
// slow request (/slow?s=N) is held on the only server; once HAProxy shows it there, the drain is
// asked of the sidecar's admin API (POST …/drain with wait and force: it is the backend's only
// server), which sets the state through its driver and reads sessions and queue from HAProxy's
// exporter every poll period. Measured: the admin API's answer − the slow request's completion,
// per trial; the server is put back with POST …/undrain after each trial. The poll period is
// the configuration's (HSC_DRAIN_POLL_MS): one sidecar per setting, one block of trials each.
//
// Expected from the design: the drain needs two consecutive quiet readings, so the latency lies
// between one and two poll intervals plus two exporter scrapes.
import { join } from 'node:path';
import type { DriverChoice } from '../../devenv/sidecar-env.js';
import { serverSnapshots, timedGet, waitForServers } from '../lib/haproxy.js';
import { startPool, type BenchPool } from '../lib/pool.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import type { SidecarBuild, SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';

export interface DrainLatencyOptions {
  readonly build: SidecarBuild;
  readonly driver: DriverChoice;
  readonly trialsPerSetting: number;
  readonly pollSettingsMs: readonly number[];
  readonly slowSeconds: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
}

interface Trial {
  readonly pollMs: number;
  readonly outcome: string;
  readonly slowStatus: number;
  /** Admin API answer − slow request completion, ms; negative would mean the drain ended early. */
  readonly latencyMs: number;
  /** The drainer's own duration, from its answer. */
  readonly drainDurationMs: number | undefined;
}

interface DrainAnswer {
  readonly outcome?: { readonly outcome: string; readonly durationMs?: number };
}

const GOLDEN = (Math.sqrt(5) - 1) / 2;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export async function drainLatencyScenario(options: DrainLatencyOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { driver } = options;
  let pool: BenchPool | undefined;
  let sidecar: SidecarProcess | undefined;
  try {
    pool = await startPool(options.build, 1, driver);
    const local = pool.haproxy;
    const [server] = (await serverSnapshots(local)).map((s) => s.name);
    if (server === undefined) throw new Error('the pool has no server');
    const path = `/v1/backends/${local.backend}/servers/${server}`;
    const sessions = async (): Promise<number> => (await serverSnapshots(local)).find((s) => s.name === server)?.currentSessions ?? 0;

    const trials: Trial[] = [];
    for (const pollMs of options.pollSettingsMs) {
      sidecar = await pool.startSidecar(join(options.workDir, `drain-${driver}-${pollMs}-sidecar.log`), {
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_DRAIN_POLL_MS: String(pollMs),
      });
      const side = sidecar;
      for (let i = 0; i < options.trialsPerSetting; i++) {
        const slow = timedGet(`${local.frontendUrl}/slow?s=${options.slowSeconds}`);
        // The drain starts only once HAProxy counts the request on the server, as in a real
        // scale-down where the victim is busy.
        const deadline = Date.now() + 5_000;
        while ((await sessions()) < 1) {
          if (Date.now() > deadline) throw new Error('the slow request never showed on the server');
          await sleep(20);
        }
        // The request's end must fall at every phase of the poll cycle, not at one fixed phase
        // (the request lasts a whole number of poll intervals): the drain starts after a delay
        // spread over one interval by the golden-ratio sequence, deterministic and even.
        await sleep((((i + 1) * GOLDEN) % 1) * pollMs);
        const answer = await side.admin('POST', `${path}/drain`, { wait: true, force: true }, 60_000);
        const answeredAt = performance.now();
        const request = await slow;
        if (answer.status !== 200) throw new Error(`POST ${path}/drain: ${answer.status} ${JSON.stringify(answer.body)}`);
        const outcome = (answer.body as DrainAnswer).outcome;
        trials.push({
          pollMs,
          outcome: outcome?.outcome ?? 'none',
          slowStatus: request.status,
          latencyMs: answeredAt - request.endedAt,
          drainDurationMs: outcome?.durationMs,
        });
        // Back in service for the next trial.
        const undrained = await side.admin('POST', `${path}/undrain`);
        if (undrained.status !== 200) throw new Error(`POST ${path}/undrain: ${undrained.status} ${JSON.stringify(undrained.body)}`);
        await waitForServers(local, `${server} UP again`, (s) => s.some((x) => x.name === server && x.state === 'UP'), 10_000);
      }
      options.log(`drain latency (${driver}): ${options.trialsPerSetting} trials at ${pollMs} ms`);
      await side.stop();
      sidecar = undefined;
    }

    const figures: Figure[] = [];
    const notes: string[] = [];
    for (const pollMs of options.pollSettingsMs) {
      const ofSetting = trials.filter((t) => t.pollMs === pollMs);
      const valid = ofSetting.filter((t) => t.outcome === 'drained' && t.slowStatus === 200);
      figures.push({
        ...(pollMs === 500 ? { key: 'drain-default' } : {}),
        metric: `drain done after last connection closed, pollMs ${pollMs}${pollMs === 500 ? ' (default)' : ''}`,
        unit: 'ms',
        ...spread(summarise(valid.map((t) => t.latencyMs))),
        note: `expected between ${pollMs} and ${2 * pollMs} ms plus two scrapes (two quiet readings in a row)`,
      });
      const invalid = ofSetting.length - valid.length;
      if (invalid > 0) notes.push(`pollMs ${pollMs}: ${invalid} trial(s) left out because the drain did not end as drained or the slow request failed.`);
      const early = valid.filter((t) => t.latencyMs < 0).length;
      if (early > 0) notes.push(`pollMs ${pollMs}: in ${early} trial(s) the drain ended BEFORE the slow request completed.`);
    }
    notes.unshift(
      `HAProxy ${local.haproxyVersion}, the ${driver === 'dataplane' ? "Data Plane API driver (drain state through the API's runtime endpoint)" : 'runtime API driver (drain state through the stats socket)'}; the sidecar as its own process.`,
      `${options.trialsPerSetting} trials per poll interval (${options.pollSettingsMs.join(' ms, then ')} ms, one sidecar each), one nginx container as the only server (added by the sidecar), one /slow?s=${options.slowSeconds} request held on it per trial; the drain asked of the admin API with wait (it answers when the drain ended) and force (the only server), the server put back with POST …/undrain.`,
      "Completion time of the slow request is when the client read its last byte (loopback); drain time is when the admin API's answer arrived, so it includes one loopback HTTP round trip.",
      'Each drain starts after a delay spread evenly over one poll interval (golden-ratio sequence), so the last connection closes at every phase of the poll cycle, as it does in a real drain.',
    );
    return { id: 'drain', driver, title: 'Drain completion latency after the last connection closes, through the admin API', status: 'measured', figures, notes, data: { trials } };
  } finally {
    await sidecar?.stop();
    await pool?.stop();
  }
}
