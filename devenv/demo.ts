// The README's run command (after setup): the product, live. A local HAProxy, a Compose-style
// pool of two nginx replicas (project hsc-demo, service web) and the sidecar, in this process,
// managing and scaling them; then a bounded open-loop load against HAProxy's frontend that ramps
// well past the scale-up threshold, holds, and drops, so the sidecar scales up and then drains and
// retires replicas one by one back to the minimum. One line per autoscaler evaluation, read from
// the sidecar's admin API, one line per pool event, and a summary at the end.
//
//   --once                 run the scenario, clean up, exit 0 only if no request failed and the
//                          pool went up and came back to the minimum
//   --driver runtime|dataplane
//                          how the sidecar writes to HAProxy (default: dataplane where the Data
//                          Plane API binary is, else runtime)
//   --prometheus           also a Prometheus with the stack's rules, scraping HAProxy and the sidecar
//
// Without --once the environment stays up after the scenario, for `hsc status|drain|undrain` and
// the stats page, until Ctrl-C. Either way everything it started is removed on exit.
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { destination, pino } from 'pino';
import { docker, removeOwnedContainers, startNginx } from './containers.js';
import { startOpenLoopLoad, type LoadPhase, type LoadTotals, type OpenLoopLoad } from './demo-load.js';
import { createObserver, DECISION_HEADER, decisionLine, eventLine, type Observation, type Observer } from './demo-watch.js';
import { startLocalHaproxy, sweepLeftovers, type LocalHaproxy } from './localenv.js';
import { startLocalPrometheus, STACK_RULE_FILES, type LocalPrometheus, type ScrapeTarget } from './prometheus.js';
import { haproxyEnv, type DriverChoice } from './sidecar-env.js';
import { dataplaneApiBinary, readPinnedVersions } from './versions.js';
import { ConfigError, loadConfig, type LogLevel, type SidecarConfig } from '../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../sidecar/main.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../sidecar/docker/labels.js';
import type { Logger } from '../sidecar/log/logger.js';
import { eventuallyServing } from './wait.js';

const PROJECT = 'hsc-demo';
const SERVICE = 'web';
/**
 * The replicas opt in with hsc-demo.enable=true (and their copies with them, labels are copied).
 * Discovery's Compose-service rule (HSC_DOCKER_COMPOSE_SERVICE) matches the service in every
 * Compose project on the host, so with it the demo's HAProxy took in another project's `web`
 * containers (a test's) and served from them while that test stopped them: the label keeps
 * discovery to this project's replicas. The scaling itself is by project and service.
 */
const LABEL_PREFIX = 'hsc-demo';
const MIN = 2;
const MAX = 6;

/** Demo timings: the same loop as production, faster, so a scale-up and a scale-down fit in two minutes. */
const DEMO_SETTINGS = {
  HSC_AUTOSCALE_MIN: String(MIN),
  HSC_AUTOSCALE_MAX: String(MAX),
  HSC_AUTOSCALE_INTERVAL_MS: '3000',
  HSC_AUTOSCALE_DOWN_WINDOW_MS: '9000',
  HSC_AUTOSCALE_STARTUP_MS: '3000',
  // Per instance: 2 replicas at the peak carry 55 req/s each, nearly 3 times the target (and above
  // what one nginx serves, 50 req/s); the low phase is far under the scale-down threshold.
  HSC_AUTOSCALE_RPS_TARGET: '20',
  HSC_AUTOSCALE_RPS_DOWN: '10',
  HSC_DRAIN_POLL_MS: '200',
  HSC_DRAIN_DEADLINE_MS: '15000',
} as const;

const PEAK_RPS = 110;
const LOW_RPS = 8;
const PHASES: readonly LoadPhase[] = [
  { name: 'baseline', durationMs: 8_000, fromRps: 12, toRps: 12 },
  { name: 'ramp', durationMs: 20_000, fromRps: 12, toRps: PEAK_RPS },
  { name: 'hold', durationMs: 24_000, fromRps: PEAK_RPS, toRps: PEAK_RPS },
  // Ends early, a few seconds after the pool is back at the minimum.
  { name: 'low', durationMs: 100_000, fromRps: LOW_RPS, toRps: LOW_RPS },
];
const MAX_IN_FLIGHT = 200;
const REQUEST_TIMEOUT_MS = 10_000;
const POLL_MS = 500;
/** Low load goes on this long once the pool is back at the minimum: it stays there. */
const SETTLE_MS = 3_000;

const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const seconds = (ms: number | undefined): string => (ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`);

interface Options {
  readonly once: boolean;
  readonly prometheus: boolean;
  readonly driver: DriverChoice;
}

function parseOptions(): Options {
  const { values } = parseArgs({
    options: {
      once: { type: 'boolean', default: false },
      prometheus: { type: 'boolean', default: false },
      driver: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help === true) {
    out('usage: bash devenv/run.sh [--once] [--driver runtime|dataplane] [--prometheus]');
    process.exit(0);
  }
  const driver = values.driver ?? (dataplaneApiBinary() === undefined ? 'runtime' : 'dataplane');
  if (driver !== 'runtime' && driver !== 'dataplane') throw new UsageError(`--driver must be runtime or dataplane, not ${driver}`);
  if (driver === 'dataplane' && dataplaneApiBinary() === undefined) {
    throw new UsageError(
      `--driver dataplane needs the Data Plane API binary (${readPinnedVersions().DATAPLANEAPI_RELEASE}), which is not on this machine (docs/drivers.md: Data Plane API availability); use --driver runtime`,
    );
  }
  return { once: values.once === true, prometheus: values.prometheus === true, driver };
}

class UsageError extends Error {}

/** The production defaults, from the one configuration loader, so the note below cannot go stale. */
function productionDefaults(): SidecarConfig {
  return loadConfig({
    env: { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg', HSC_DOCKER_ADDRESS_MODE: 'published' },
  });
}

/**
 * The sidecar's JSON log goes to a file (kept until the next run); its errors also to the
 * terminal, unless `quiet` (after Ctrl-C, which HAProxy gets too, its errors are expected).
 */
function sidecarLogger(file: string, level: LogLevel, quiet: () => boolean): { logger: Logger; errors: () => number } {
  const log = pino(
    {
      level,
      base: { service: 'haproxy-sidecar' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['password', 'token', 'authorization', '*.password', '*.token', '*.authorization', '*.adminToken'], censor: '[redacted]' },
    },
    destination({ dest: file, sync: true }),
  );
  let errors = 0;
  return {
    errors: () => errors,
    logger: {
      debug: (fields, message) => log.debug(fields, message),
      info: (fields, message) => log.info(fields, message),
      warn: (fields, message) => log.warn(fields, message),
      error: (fields, message) => {
        errors++;
        log.error(fields, message);
        if (!quiet()) out(`          !! sidecar error: ${message}${typeof fields.error === 'string' ? `: ${fields.error}` : ''}`);
      },
    },
  };
}

async function serviceContainers(): Promise<string[]> {
  const list = await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${PROJECT}`, `${COMPOSE_SERVICE}=${SERVICE}`] } });
  return list.map((c) => (c.Names[0] ?? c.Id).replace(/^\//, ''));
}

interface ScenarioResult {
  readonly totals: LoadTotals;
  readonly peakServing: number;
  readonly peakContainers: number;
  /** From the start of the ramp. */
  readonly firstScaleUpMs: number | undefined;
  readonly firstNewServingMs: number | undefined;
  readonly peakServingMs: number | undefined;
  /** From the drop to the low rate. */
  readonly backToMinimumMs: number | undefined;
  readonly durationMs: number;
  readonly interrupted: boolean;
}

async function runScenario(frontendUrl: string, observer: Observer, signal: AbortSignal): Promise<ScenarioResult> {
  const load: OpenLoopLoad = startOpenLoopLoad({
    url: `${frontendUrl}/work`,
    phases: PHASES,
    maxInFlight: MAX_IN_FLIGHT,
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  });
  const origin = load.startedAt;
  const rampAt = load.phaseStart('ramp');
  const dropAt = load.phaseStart('low');
  let ended = false;
  void load.done.then(() => {
    ended = true;
  });
  let phase: string | undefined;
  let serving = 0;
  let containers = 0;
  let peakServing = 0;
  let peakContainers = 0;
  let peakServingAt: number | undefined;
  let firstScaleUpAt: number | undefined;
  let firstNewServingAt: number | undefined;
  let backAt: number | undefined;

  const describePhase = (name: string): string => {
    const p = PHASES.find((x) => x.name === name);
    if (p === undefined) return name;
    if (name === 'low') return `load: drop to ${p.toRps} req/s until the pool is back at ${MIN} (at most ${p.durationMs / 1000} s)`;
    return p.fromRps === p.toRps
      ? `load: ${name}, ${p.toRps} req/s for ${p.durationMs / 1000} s`
      : `load: ${name}, ${p.fromRps} → ${p.toRps} req/s over ${p.durationMs / 1000} s`;
  };

  out(DECISION_HEADER);
  while (!signal.aborted && !ended) {
    const lines: Array<{ at: number; text: string }> = [];
    const seen: Observation | undefined = await observer.poll();
    // After the poll, so a phase that began before what the poll saw comes first.
    const current = load.currentPhase()?.name;
    if (current !== undefined && current !== phase) {
      phase = current;
      lines.push({ at: load.phaseStart(current), text: eventLine({ at: load.phaseStart(current), text: describePhase(current) }, origin) });
    }
    if (seen !== undefined) {
      serving = seen.serving;
      containers = seen.containers;
      lines.push(...seen.events.map((event) => ({ at: event.at, text: eventLine(event, origin) })));
      for (const decision of seen.decisions) {
        if (decision.at < origin) continue;
        if (firstScaleUpAt === undefined && decision.direction === 'up' && decision.applied && decision.at >= rampAt) firstScaleUpAt = decision.at;
        lines.push({ at: decision.at, text: decisionLine({ decision, origin, window: load.window(), serving, containers, failedSoFar: load.totals().failed }) });
      }
      if (serving > peakServing) {
        peakServing = serving;
        peakServingAt = seen.at;
      }
      peakContainers = Math.max(peakContainers, containers);
      if (firstNewServingAt === undefined && seen.at >= rampAt && serving > MIN) firstNewServingAt = seen.at;
      const atMinimum = containers === MIN && serving === MIN && seen.draining === 0;
      if (backAt === undefined && seen.at >= dropAt && peakServing > MIN && atMinimum) {
        backAt = seen.at;
        lines.push({ at: seen.at, text: eventLine({ at: seen.at, text: `back at the minimum of ${MIN}; low load goes on for ${SETTLE_MS / 1000} s` }, origin) });
      }
      if (backAt !== undefined && !atMinimum) backAt = undefined; // it did not stay there
    }
    for (const line of lines.sort((a, b) => a.at - b.at)) out(line.text);
    if (backAt !== undefined && Date.now() - backAt >= SETTLE_MS) break;
    await sleep(POLL_MS, undefined, { signal }).catch(() => undefined);
  }
  const totals = await load.stop();
  const since = (at: number | undefined, from: number): number | undefined => (at === undefined ? undefined : at - from);
  return {
    totals,
    peakServing,
    peakContainers,
    firstScaleUpMs: since(firstScaleUpAt, rampAt),
    firstNewServingMs: since(firstNewServingAt, rampAt),
    peakServingMs: since(peakServingAt, rampAt),
    backToMinimumMs: since(backAt, dropAt),
    durationMs: Date.now() - origin,
    interrupted: signal.aborted,
  };
}

/** When the ramp passes the rate at which the minimum pool is above the scale-up threshold, from the ramp's start. */
function thresholdCrossing(config: SidecarConfig): { rps: number; afterMs: number } | undefined {
  const target = config.autoscale.policy.signals.requestRate?.target;
  const ramp = PHASES.find((p) => p.name === 'ramp');
  if (target === undefined || ramp === undefined) return undefined;
  const rps = target * (1 + config.autoscale.policy.tolerance) * MIN;
  if (rps < ramp.fromRps || rps > ramp.toRps) return undefined;
  return { rps, afterMs: ((rps - ramp.fromRps) / (ramp.toRps - ramp.fromRps)) * ramp.durationMs };
}

function printSummary(result: ScenarioResult, config: SidecarConfig): boolean {
  const { totals } = result;
  const failures = Object.entries(totals.failures).map(([kind, n]) => `${n} × ${kind}`).join(', ');
  const ms = (n: number | undefined): string => (n === undefined ? '-' : `${Math.round(n)} ms`);
  const crossing = thresholdCrossing(config);
  const rows: Array<[string, string]> = [
    ['peak instances', `${result.peakServing} serving, ${result.peakContainers} containers (minimum ${MIN}, maximum ${MAX})`],
    ['load step → first scale-up decision', `${seconds(result.firstScaleUpMs)}${crossing === undefined ? '' : ` (the ramp passed the scale-up threshold, ${Math.round(crossing.rps)} req/s on ${MIN}, after ${seconds(crossing.afterMs)})`}`],
    ['load step → new capacity serving', `${seconds(result.firstNewServingMs)} (first added instance), ${seconds(result.peakServingMs)} (all ${result.peakServing})`],
    ['load drop → back to the minimum', seconds(result.backToMinimumMs)],
    ['requests', `${totals.sent} sent, ${totals.ok} answered 2xx${totals.notSent > 0 ? `, ${totals.notSent} not sent (${MAX_IN_FLIGHT} in flight)` : ''}`],
    ['failed requests', `${totals.failed}${failures === '' ? '' : ` (${failures})`}`],
    ['latency', `p50 ${ms(totals.p50Ms)}, p99 ${ms(totals.p99Ms)}, max ${ms(totals.maxMs)}`],
    ['scenario', seconds(result.durationMs)],
  ];
  out();
  out('Summary');
  for (const [name, value] of rows) out(`  ${name.padEnd(37)} ${value}`);
  const problems: string[] = [];
  if (result.interrupted) problems.push('interrupted');
  if (totals.failed > 0 || totals.notSent > 0) problems.push('requests failed');
  if (result.peakServing <= MIN) problems.push(`the pool never grew above the minimum of ${MIN}`);
  if (result.backToMinimumMs === undefined) problems.push(`the pool did not come back to the minimum of ${MIN}`);
  out(problems.length === 0 ? '  result                                PASS' : `  result                                FAIL: ${problems.join('; ')}`);
  return problems.length === 0;
}

async function main(): Promise<number> {
  const options = parseOptions();
  const defaults = productionDefaults();
  const stopping = new AbortController();
  let signals = 0;
  const onSignal = (): void => {
    signals++;
    if (signals === 1) out('\nstopping: removing everything this run started…');
    else out('still cleaning up…');
    stopping.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const started = Date.now();
  let haproxy: LocalHaproxy | undefined;
  let sidecar: RunningSidecar | undefined;
  let prometheus: LocalPrometheus | undefined;
  const cleanup = async (): Promise<void> => {
    await prometheus?.stop().catch(() => undefined);
    await sidecar?.stop().catch(() => undefined);
    await haproxy?.stop().catch(() => undefined);
    // A scale-up the sidecar had under way may create a container after its stop: look twice.
    await removeOwnedContainers('demo');
    await sleep(1_000);
    await removeOwnedContainers('demo');
  };

  try {
    await sweepLeftovers('demo');
    await removeOwnedContainers('demo');
    const logFile = join(tmpdir(), 'hsc-demo-sidecar.log');
    const level = (process.env.HSC_LOG_LEVEL ?? 'info') as LogLevel;
    const { logger, errors } = sidecarLogger(logFile, level, () => stopping.signal.aborted);

    // The Compose service's first two replicas, as `docker compose up` would label them; the
    // sidecar makes the others like the newest of these.
    await Promise.all(
      [1, 2].map((n) =>
        startNginx({
          owner: 'demo',
          name: `${PROJECT}-${SERVICE}-${n}`,
          labels: { [COMPOSE_PROJECT]: PROJECT, [COMPOSE_SERVICE]: SERVICE, [COMPOSE_NUMBER]: String(n), [`${LABEL_PREFIX}.enable`]: 'true' },
        }),
      ),
    );
    if (stopping.signal.aborted) return 130;
    haproxy = await startLocalHaproxy({ purpose: 'demo', withDataplane: options.driver === 'dataplane' });
    const adminToken = randomBytes(16).toString('hex');
    const config = loadConfig({
      env: {
        ...haproxyEnv(haproxy, options.driver),
        HSC_DOCKER_ADDRESS_MODE: 'published',
        HSC_DOCKER_LABEL_PREFIX: LABEL_PREFIX,
        // No Compose-service rule: the opt-in label selects (see LABEL_PREFIX).
        HSC_DOCKER_COMPOSE_SERVICE: '',
        HSC_DEFAULT_BACKEND: haproxy.backend,
        HSC_AUTOSCALE_SERVICE: SERVICE,
        HSC_AUTOSCALE_PROJECT: PROJECT,
        // Scale-downs in progress are durable records; beside HAProxy's files, removed with them.
        HSC_AUTOSCALE_STATE_FILE: join(haproxy.dir, 'sidecar-retirements.json'),
        ...DEMO_SETTINGS,
        HSC_HTTP_PORT: '0',
        HSC_ADMIN_TOKEN: adminToken,
        HSC_LOG_LEVEL: level,
      },
    });
    sidecar = await startSidecar(config, { logger });
    const adminUrl = `http://127.0.0.1:${sidecar.port}`;
    await eventuallyServing(haproxy.frontendUrl, MIN, 30_000);
    if (stopping.signal.aborted) return 130;
    if (options.prometheus) {
      // The stack's job names, which its rules and the dashboards select on; every 5 s (the stack
      // scrapes every 15 s) so graphs move while someone watches.
      const targets: ScrapeTarget[] = [
        { job: 'haproxy', targets: [new URL(haproxy.metricsUrl).host] },
        { job: 'sidecar', targets: [`127.0.0.1:${sidecar.port}`] },
      ];
      prometheus = await startLocalPrometheus({ purpose: 'demo', scrapeTargets: targets, ruleFiles: STACK_RULE_FILES, intervalSeconds: 5 });
    }

    const demo = config.autoscale;
    const rate = (c: SidecarConfig): string =>
      `${c.autoscale.policy.signals.requestRate?.target ?? '?'}/${c.autoscale.policy.signals.requestRate?.scaleDownBelow ?? '?'} req/s per instance`;
    out(`HAProxy ${haproxy.haproxyVersion}, the sidecar (${options.driver === 'dataplane' ? 'Data Plane API' : 'runtime API'} driver) and ${MIN} nginx replicas of ${PROJECT}/${SERVICE} are up (${seconds(Date.now() - started)})`);
    out(`  frontend      ${haproxy.frontendUrl}/work   (each nginx serves /work at up to 50 req/s: 10 ms of work, a 200-deep line)`);
    out(`  stats page    ${haproxy.statsUrl}   (user ${haproxy.statsUser}, password ${haproxy.statsPassword})`);
    out(`  sidecar       ${adminUrl}/v1/autoscaler   (metrics at /metrics, log in ${logFile})`);
    if (haproxy.dataplaneUrl !== undefined) out(`  Data Plane API ${haproxy.dataplaneUrl}/v3   (user ${haproxy.dataplaneUser}, password ${haproxy.dataplanePassword})`);
    if (prometheus !== undefined) out(`  Prometheus    ${prometheus.url}/   (scrapes HAProxy and the sidecar every 5 s, with the stack's rules)`);
    out(
      `Demo timings (production defaults in brackets): evaluation every ${demo.intervalMs / 1000} s [${defaults.autoscale.intervalMs / 1000} s], ` +
        `scale-down window ${demo.policy.scaleDownStabilisationMs / 1000} s [${defaults.autoscale.policy.scaleDownStabilisationMs / 1000} s], ` +
        `start-up ${Number(DEMO_SETTINGS.HSC_AUTOSCALE_STARTUP_MS) / 1000} s [${(defaults.autoscale.policy.forecast.horizonMs - defaults.autoscale.intervalMs) / 1000} s], ` +
        `drain poll ${config.drain.pollMs} ms [${defaults.drain.pollMs} ms], drain deadline ${config.drain.deadlineMs / 1000} s [${defaults.drain.deadlineMs / 1000} s], ` +
        `${MIN}..${MAX} instances [${defaults.autoscale.policy.minReplicas}..${defaults.autoscale.policy.maxReplicas}], ` +
        `scale up/down at ${rate(config)} [${rate(defaults)}].`,
    );
    out(`Load: open loop on GET /work, at most ${MAX_IN_FLIGHT} in flight, ${REQUEST_TIMEOUT_MS / 1000} s timeout; any non-2xx answer or socket error counts as failed.`);
    out();

    const observer = createObserver({ adminUrl, backend: haproxy.backend, containers: serviceContainers });
    await observer.poll(); // what is there before the load: not news
    const result = await runScenario(haproxy.frontendUrl, observer, stopping.signal);
    const passed = printSummary(result, config);
    if (errors() > 0) out(`  (the sidecar logged ${errors()} error(s); see ${logFile})`);
    if (options.once || stopping.signal.aborted) return passed ? 0 : 1;

    const env = `HSC_ADMIN_URL=${adminUrl} HSC_ADMIN_TOKEN=${adminToken}`;
    out();
    out('The environment stays up until Ctrl-C. Try:');
    out(`  ${env} npm run -s hsc -- status`);
    out(`  ${env} npm run -s hsc -- drain ${haproxy.backend}/hsc-${SERVICE}-1 --wait`);
    out(`  ${env} npm run -s hsc -- undrain ${haproxy.backend}/hsc-${SERVICE}-1`);
    out(`  curl -s ${adminUrl}/v1/autoscaler | head -c 600`);
    out(`  stats page ${haproxy.statsUrl}  (user ${haproxy.statsUser}, password ${haproxy.statsPassword})`);
    out(`  wrk -t2 -c20 -d60s ${haproxy.frontendUrl}/work   (load, loopback only: the pool grows to ${MAX}, then shrinks back)`);
    out();
    // From here on only what changes: scaling decisions and pool events.
    const origin = Date.now();
    const quiet = { seconds: 1, sent: 0, ok: 0, failed: 0, p99Ms: undefined };
    while (!stopping.signal.aborted) {
      const seen = await observer.poll();
      if (seen !== undefined) {
        const lines = seen.events.map((event) => ({ at: event.at, text: eventLine(event, origin) }));
        for (const decision of seen.decisions) {
          if (decision.direction === 'none' && decision.actions.length === 0) continue;
          lines.push({ at: decision.at, text: decisionLine({ decision, origin, window: quiet, serving: seen.serving, containers: seen.containers, failedSoFar: 0 }) });
        }
        for (const line of lines.sort((a, b) => a.at - b.at)) out(line.text);
      }
      await sleep(1_000, undefined, { signal: stopping.signal }).catch(() => undefined);
    }
    return passed ? 0 : 1;
  } finally {
    await cleanup();
    out(`removed: the sidecar, HAProxy and every container labelled hsc.owner=demo (${seconds(Date.now() - started)} in all)`);
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`${error instanceof UsageError || error instanceof ConfigError ? error.message : error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(error instanceof UsageError ? 2 : 1);
  },
);
