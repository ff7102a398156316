// Scenario 2, drain completion latency: how long after the last connection on a draining server
// closes the drainer reports the drain complete. One slow request (/slow?s=N) is held on the only
// server; once HAProxy shows it there, the real drainer (sidecar/drain/drainer.ts) drains the
// server, reading sessions and queue from HAProxy's exporter and setting the state through the
// runtime socket. Measured: drain outcome time − the slow request's completion time, per trial,
// with the poll interval at its default and shorter, alternating per trial.
//
// Expected from the design: the drain needs two consecutive quiet readings, so the latency lies
// between one and two poll intervals plus two exporter scrapes.
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { createDrainer, type DrainOutcome } from '../../sidecar/drain/drainer.js';
import { silentLogger } from '../../sidecar/telemetry/logger.js';
import { addRuntimeServer, runtimeDrainPorts, runtimeOk, timedGet } from '../lib/haproxy.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { summarise } from '../lib/stats.js';

export interface DrainLatencyOptions {
  readonly trialsPerSetting: number;
  readonly pollSettingsMs: readonly number[];
  readonly slowSeconds: number;
  readonly log: (message: string) => void;
}

interface Trial {
  readonly pollMs: number;
  readonly outcome: DrainOutcome['outcome'];
  readonly slowStatus: number;
  /** Drain outcome − slow request completion, ms; negative would mean the drain ended early. */
  readonly latencyMs: number;
  readonly drainDurationMs: number;
}

const SERVER = 'hsc-drain-1';
const GOLDEN = (Math.sqrt(5) - 1) / 2;

export async function drainLatencyScenario(options: DrainLatencyOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  let container: TestContainer | undefined;
  let haproxy: LocalHaproxy | undefined;
  try {
    container = await startNginx({ owner: 'bench' });
    haproxy = await startLocalHaproxy({ purpose: 'bench', withDataplane: false });
    const local = haproxy;
    await addRuntimeServer(local, SERVER, container.hostPort);
    const ports = runtimeDrainPorts(local);
    const drainers = new Map(
      options.pollSettingsMs.map((pollMs) => [
        pollMs,
        createDrainer({
          ports,
          pollMs,
          deadlineMs: 30_000,
          now: () => Date.now(),
          sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
          logger: silentLogger,
        }),
      ]),
    );

    const trials: Trial[] = [];
    const total = options.trialsPerSetting * options.pollSettingsMs.length;
    for (let i = 0; i < total; i++) {
      const pollMs = options.pollSettingsMs[i % options.pollSettingsMs.length] ?? 500;
      const drainer = drainers.get(pollMs);
      if (drainer === undefined) throw new Error(`no drainer for ${pollMs} ms`);
      const slow = timedGet(`${local.frontendUrl}/slow?s=${options.slowSeconds}`);
      // The drain starts only once HAProxy counts the request on the server, as in a real
      // scale-down where the victim is busy.
      const deadline = Date.now() + 5_000;
      while (((await ports.readLoad(local.backend, SERVER))?.sessions ?? 0) < 1) {
        if (Date.now() > deadline) throw new Error('the slow request never showed on the server');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      // The request's end must fall at every phase of the poll cycle, not at one fixed phase
      // (the request lasts a whole number of poll intervals): the drain starts after a delay
      // spread over one interval by the golden-ratio sequence, deterministic and even.
      const trialOfSetting = Math.floor(i / options.pollSettingsMs.length);
      await new Promise((resolve) => setTimeout(resolve, (((trialOfSetting + 1) * GOLDEN) % 1) * pollMs));
      const started = performance.now();
      const outcome = await drainer.drain(local.backend, SERVER, { reason: `bench trial ${i + 1}` });
      const drainedAt = performance.now();
      const request = await slow;
      trials.push({
        pollMs,
        outcome: outcome.outcome,
        slowStatus: request.status,
        latencyMs: drainedAt - request.endedAt,
        drainDurationMs: drainedAt - started,
      });
      // Back in service for the next trial.
      await runtimeOk(local, `set server ${local.backend}/${SERVER} state ready`);
      if ((i + 1) % 10 === 0) options.log(`drain latency: ${i + 1}/${total} trials`);
    }

    const figures: Figure[] = [];
    const notes: string[] = [];
    for (const pollMs of options.pollSettingsMs) {
      const ofSetting = trials.filter((t) => t.pollMs === pollMs);
      const valid = ofSetting.filter((t) => t.outcome === 'drained' && t.slowStatus === 200);
      figures.push({
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
      `${options.trialsPerSetting} trials per poll interval (${options.pollSettingsMs.join(' ms and ')} ms, alternating), one nginx container as the only server, one /slow?s=${options.slowSeconds} request held on it per trial; HAProxy state set through the runtime socket (the Data Plane API's runtime endpoints send the same command), load read from HAProxy's exporter, both as the sidecar does.`,
      'Completion time of the slow request is when the client read its last byte (loopback); drain time is when drainer.drain() resolved.',
      'Each drain starts after a delay spread evenly over one poll interval (golden-ratio sequence), so the last connection closes at every phase of the poll cycle, as it does in a real drain; without it every trial would close at the same phase.',
    );
    return { id: 'drain', title: 'Drain completion latency after the last connection closes', status: 'measured', figures, notes, data: { trials } };
  } finally {
    await haproxy?.stop();
    await container?.remove();
  }
}
