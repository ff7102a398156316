// npm run soak [-- --minutes N] [--driver runtime|dataplane|both] [--rate R] [--seed S] [--bound S] [--events K,K] [--report PATH]
// A chaos soak against the real components, once per HAProxy driver: a local HAProxy, four
// Compose-style nginx replicas, the sidecar as its own process with the autoscaler on, a paced
// load through HAProxy on 127.0.0.1 plus a few long requests, and every 10–30 s one chaos event
// (bench/lib/soak-chaos.ts). Every second an invariant checker compares HAProxy, Docker and the
// sidecar (bench/lib/soak-checker.ts); a disagreement that outlasts the bound is a violation.
// Failed requests are counted from the client's side and excused only where HAProxy's own log
// puts them on a container the soak killed (bench/lib/soak-load.ts). At the end the load stops
// by itself, the soak checks that nothing is left over, removes everything it started, prints
// a verdict table per driver, writes the report and exits non-zero on any failure or violation.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { docker } from '../devenv/containers.js';
import { availableDrivers, type DriverChoice } from '../devenv/sidecar-env.js';
import { haproxyBinary, haproxyVersion, readPinnedVersions } from '../devenv/versions.js';
import { textTable, type Figure, type ScenarioResult } from './lib/report.js';
import { buildSidecar, type SidecarBuild } from './lib/sidecar-process.js';
import { EVENT_KINDS, startChaos, type ChaosEvent, type EventKind, type Ledger } from './lib/soak-chaos.js';
import { disagreements, observe, startChecker, type Observation, type Problem, type Violation } from './lib/soak-checker.js';
import { attribute, startSoakLoad, tailErrorLog, type Attribution } from './lib/soak-load.js';
import { seededRng } from './lib/soak-rng.js';
import { createSoakWorld, type SoakWorld } from './lib/soak-world.js';
import { summarise } from './lib/stats.js';

const USAGE = [
  'usage: npm run soak [-- --minutes N] [--driver runtime|dataplane|both] [--rate R] [--seed S] [--bound S] [--events K,K] [--report PATH]',
  '  --minutes  how long the load and the chaos run, per driver (default 30)',
  '  --driver   runtime, dataplane or both (default: both where a Data Plane API binary is, else runtime)',
  '  --rate     paced requests per second through HAProxy on GET / (default 1000)',
  '  --seed     the seed of the chaos schedule, its targets and the long requests (default: from the clock; printed)',
  '  --bound    seconds a disagreement may last after a change before it is a violation (default 15)',
  `  --events   only these kinds of event, comma-separated (default: all that apply): ${EVENT_KINDS.join(', ')}`,
  '  --report   where the report goes: .md (a .json beside it) or .json (default bench/results/soak-<driver>-<timestamp>.md)',
  'Exits 0 only when no request failed that a killed container does not explain, no invariant was violated and nothing was left over.',
  'HSC_DATAPLANEAPI_BIN selects the Data Plane API binary, HSC_HAPROXY_BIN the HAProxy one.',
  '',
].join('\n');

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    driver: { type: 'string' },
    rate: { type: 'string', default: '1000' },
    seed: { type: 'string' },
    bound: { type: 'string', default: '15' },
    report: { type: 'string' },
    events: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const usageError = (message: string): never => {
  process.stderr.write(`${message}\n${USAGE}`);
  process.exit(2);
};
const positive = (name: string, text: string): number => {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) usageError(`--${name} must be a positive number, not ${JSON.stringify(text)}`);
  return n;
};
const minutes = positive('minutes', values.minutes);
const rate = positive('rate', values.rate);
const boundMs = positive('bound', values.bound) * 1000;
const seed = values.seed === undefined ? Date.now() % 1_000_000 : Math.trunc(positive('seed', values.seed));
const available = availableDrivers();
const driverOption = values.driver ?? (available.includes('dataplane') ? 'both' : 'runtime');
if (!['runtime', 'dataplane', 'both'].includes(driverOption)) usageError(`--driver must be runtime, dataplane or both, not ${driverOption}`);
const drivers: DriverChoice[] = driverOption === 'both' ? ['runtime', 'dataplane'] : [driverOption as DriverChoice];
if (drivers.includes('dataplane') && !available.includes('dataplane')) {
  usageError('the dataplane driver needs a Data Plane API binary (HSC_DATAPLANEAPI_BIN, a dataplaneapi on PATH, or setup.sh cache)');
}
const isKind = (kind: string): kind is EventKind => (EVENT_KINDS as readonly string[]).includes(kind);
const kinds: EventKind[] | undefined =
  values.events === undefined
    ? undefined
    : values.events
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k !== '')
        .map((k) => (isKind(k) ? k : usageError(`unknown event kind ${k}; known: ${EVENT_KINDS.join(', ')}`)));
if (minutes < 1) usageError('--minutes must be at least 1: the chaos needs room before the end');

/** The pool the soak starts with, the autoscaler's bounds, the sidecar's drain settings. */
const REPLICAS = 4;
const MIN_REPLICAS = 2;
const MAX_REPLICAS = 6;
const DRAIN_DEADLINE_MS = 10_000;
const POLL_MS = 500;
/** No event starts this long before the load ends, so the end is checked under load after quiet. */
const QUIET_END_MS = 25_000;
/** The longest the soak waits for agreement at the start, and for nothing left over at the end. */
const SETTLE_MS = 60_000;

const runStarted = Date.now();
let currentDriver = '';
const log = (message: string): void => {
  const t = ((Date.now() - runStarted) / 1000).toFixed(1).padStart(6);
  process.stdout.write(`[soak ${currentDriver.padEnd(9)} +${t} s] ${message}\n`);
};

interface DriverResult {
  readonly driver: DriverChoice;
  readonly seconds: number;
  readonly events: readonly ChaosEvent[];
  /** Per injected event: ms from its end until everything agreed, and went on agreeing for 3 s (null: never). */
  readonly agreeMs: ReadonlyArray<{ readonly index: number; readonly kind: EventKind; readonly ms: number | null }>;
  readonly attribution: Attribution | undefined;
  readonly violations: readonly Violation[];
  /** Left over at the end, after the settle time. */
  readonly leftovers: readonly string[];
  readonly ticks: number;
  readonly failures: readonly string[];
  readonly logDir: string | undefined;
}

const injected = (events: readonly ChaosEvent[]): ChaosEvent[] => events.filter((e) => e.skipped === undefined && e.error === undefined);

function passed(result: DriverResult): boolean {
  return result.failures.length === 0 && result.violations.length === 0 && result.leftovers.length === 0 && (result.attribution?.unexcused ?? 1) === 0;
}

/** What is left over beside the disagreements: leftovers the end must not have. */
async function leftovers(world: SoakWorld, observation: Observation): Promise<string[]> {
  const found: string[] = [];
  for (const c of observation.containers ?? []) if (c.state !== 'running') found.push(`container ${c.name} is ${c.state} (nobody started or removed it)`);
  for (const id of observation.transactions ?? []) found.push(`Data Plane API transaction ${id} left open`);
  for (const r of observation.sidecar?.records ?? []) found.push(`the sidecar still has a ${r.kind} record (${r.stage}) of ${r.server}`);
  if (observation.sidecar === undefined) found.push('the sidecar does not answer');
  else {
    const ready = await fetch(`${world.adminUrl}/readyz`, { signal: AbortSignal.timeout(5_000) }).then((r) => r.status, () => 0);
    if (ready !== 200) found.push(`the sidecar's /readyz answers ${ready}`);
  }
  return found;
}

async function soakDriver(build: SidecarBuild, driver: DriverChoice, rng: () => number): Promise<DriverResult> {
  currentDriver = driver;
  const started = Date.now();
  const failures: string[] = [];
  log(`setting up: HAProxy ${haproxyVersion(haproxyBinary())}, ${REPLICAS} nginx replicas, the sidecar (${driver} driver, autoscaler ${MIN_REPLICAS}..${MAX_REPLICAS})`);
  const world = await createSoakWorld(build, {
    driver,
    replicas: REPLICAS,
    minReplicas: MIN_REPLICAS,
    maxReplicas: MAX_REPLICAS,
    ratePerSecond: rate,
    drainDeadlineMs: DRAIN_DEADLINE_MS,
    pollMs: POLL_MS,
  });
  activeWorld = world;
  const ledger: Ledger = { operatorDrains: new Set(), foreignServers: new Set(), foreignTransactions: new Set(), sidecarDownOnPurpose: false, crashes: [] };
  const expectations = () => ({
    operatorDrains: ledger.operatorDrains,
    foreignServers: ledger.foreignServers,
    foreignTransactions: ledger.foreignTransactions,
    sidecarDownOnPurpose: ledger.sidecarDownOnPurpose,
  });
  const observeWorld = (): Promise<Observation> =>
    observe({
      containers: () => world.containers(),
      servers: () => world.servers(),
      sidecar: () => world.sidecarView(),
      configured: () => world.configuredServers(),
      transactions: () => world.openTransactions(),
    });
  let keepLogs = true;
  try {
    await world.startSidecar();
    log(`the sidecar runs (admin API ${world.adminUrl}, logs in ${world.dir})`);
    // Agreement before any chaos: otherwise every figure after it means nothing.
    const settleStart = Date.now();
    let problems: Problem[] = [];
    for (;;) {
      const observation = await observeWorld();
      problems = disagreements(observation, expectations(), observation.sidecar?.records ?? []);
      const servers = observation.servers?.filter((s) => s.operational === 2).length ?? 0;
      if (problems.length === 0 && servers >= REPLICAS && Object.keys(observation.errors).length === 0) break;
      if (Date.now() - settleStart > SETTLE_MS) throw new Error(`no agreement before the chaos within ${SETTLE_MS / 1000} s: ${problems.map((p) => p.text).join('; ')}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    log(`HAProxy, Docker and the sidecar agree (${REPLICAS} servers UP) after ${((Date.now() - settleStart) / 1000).toFixed(1)} s; load and chaos for ${minutes} min`);

    const tail = tailErrorLog(join(world.haproxy.dir, 'haproxy.log'));
    const loadUntil = Date.now() + minutes * 60_000;
    const checker = startChecker({ observe: observeWorld, expectations, boundMs, intervalMs: 1_000, log });
    const load = startSoakLoad({
      url: world.haproxy.frontendUrl,
      ratePerSecond: rate,
      until: loadUntil,
      segmentSeconds: 30,
      longConcurrency: 3,
      rng,
      log,
    });
    const chaos = startChaos({
      world,
      rng,
      dockerProxy: world.dockerProxy,
      ledger,
      minReplicas: MIN_REPLICAS,
      maxReplicas: MAX_REPLICAS,
      ...(kinds === undefined ? {} : { kinds }),
      until: loadUntil - QUIET_END_MS,
      minGapMs: 10_000,
      maxGapMs: 30_000,
      log,
    });
    await chaos.done;
    log(`chaos over (${injected(chaos.events).length} events injected); the load runs to its end`);
    await load.done;
    // No load now: the autoscaler would retire replicas for that, which is no leftover of the
    // chaos. Paused, it decides nothing more; what it started goes on to its end.
    const paused = await world.admin('POST', '/v1/autoscaler/pause');
    if (paused.status !== 200) failures.push(`POST /v1/autoscaler/pause at the end: ${paused.status} ${JSON.stringify(paused.body)}`);
    log('load over by itself; autoscaler paused; waiting for agreement and nothing left over');

    // The end: agreement, and nothing left over, within the settle time.
    const endStart = Date.now();
    let left: string[] = [];
    for (;;) {
      const observation = await observeWorld();
      const now = disagreements(observation, expectations(), observation.sidecar?.records ?? []).map((p) => p.text);
      const errors = Object.entries(observation.errors).map(([source, error]) => `cannot read ${source}: ${error}`);
      left = [...now, ...errors, ...(await leftovers(world, observation))];
      if (left.length === 0 || Date.now() - endStart > SETTLE_MS) break;
      await new Promise((resolve) => setTimeout(resolve, 1_000));
    }
    await checker.stop();
    await tail.stop();
    if (left.length === 0) log(`nothing left over (${((Date.now() - endStart) / 1000).toFixed(1)} s after the load)`);
    else for (const item of left) log(`LEFT OVER after ${SETTLE_MS / 1000} s: ${item}`);

    /** The event in progress or last ended within 20 s before `at`: what a failure then may be about. */
    const context = (at: number): string => {
      const before = chaos.events.filter((e) => e.skipped === undefined && e.startedAt <= at && at - e.endedAt <= 20_000);
      const last = before[before.length - 1];
      if (last === undefined) return '(no event in the 20 s before)';
      return at <= last.endedAt ? `(during event #${last.index} ${last.kind})` : `(${((at - last.endedAt) / 1000).toFixed(1)} s after event #${last.index} ${last.kind})`;
    };
    const attribution = attribute(load, tail.entries(), ledger.crashes, context);
    for (const event of chaos.events) if (event.error !== undefined) failures.push(`event ${event.index} ${event.kind} failed: ${event.error}`);
    failures.push(...attribution.wrkErrors.map((e) => `the load generator failed: ${e}`));
    const agreeMs = injected(chaos.events).map((e) => {
      const at = checker.firstAgreementAfter(e.endedAt);
      return { index: e.index, kind: e.kind, ms: at === undefined ? null : at - e.endedAt };
    });
    const result: DriverResult = {
      driver,
      seconds: (Date.now() - started) / 1000,
      events: chaos.events,
      agreeMs,
      attribution,
      violations: checker.violations,
      leftovers: left,
      ticks: checker.ticks(),
      failures,
      logDir: world.dir,
    };
    keepLogs = !passed(result);
    return keepLogs ? result : { ...result, logDir: undefined };
  } catch (error) {
    failures.push(`the soak itself failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    log(failures[failures.length - 1] ?? '');
    return { driver, seconds: (Date.now() - started) / 1000, events: [], agreeMs: [], attribution: undefined, violations: [], leftovers: [], ticks: 0, failures, logDir: world.dir };
  } finally {
    log('tearing down: sidecar, HAProxy, containers');
    await world.close();
    activeWorld = undefined;
    if (!keepLogs) rmSync(world.dir, { recursive: true, force: true });
    else log(`kept the sidecar's and HAProxy's logs in ${world.dir}`);
  }
}

// ---- the verdict table and the report ----

const seconds = (ms: number | null | undefined): string => (ms === null || ms === undefined ? 'never' : `${(ms / 1000).toFixed(1)} s`);

function maxAgree(result: DriverResult): string {
  if (result.agreeMs.length === 0) return '–';
  const never = result.agreeMs.filter((a) => a.ms === null);
  if (never.length > 0) return `never after ${never.length} event(s): ${never.map((a) => `#${a.index} ${a.kind}`).join(', ')}`;
  const worst = result.agreeMs.reduce((a, b) => ((b.ms ?? 0) > (a.ms ?? 0) ? b : a));
  return `${seconds(worst.ms)} (#${worst.index} ${worst.kind})`;
}

function verdictRows(results: readonly DriverResult[]): string[][] {
  const column = (f: (r: DriverResult) => string): string[] => results.map(f);
  const rows: string[][] = [];
  const add = (label: string, f: (r: DriverResult) => string): void => void rows.push([label, ...column(f)]);
  add('events injected', (r) => String(injected(r.events).length));
  for (const kind of EVENT_KINDS) {
    if (!results.some((r) => r.events.some((e) => e.kind === kind))) continue;
    add(`  ${kind}`, (r) => {
      const all = r.events.filter((e) => e.kind === kind);
      const done = injected(all).length;
      const skipped = all.filter((e) => e.skipped !== undefined).length;
      const failed = all.filter((e) => e.error !== undefined).length;
      return `${done}${skipped > 0 ? ` (+${skipped} skipped)` : ''}${failed > 0 ? ` (+${failed} FAILED)` : ''}`;
    });
  }
  add('requests sent (paced + long)', (r) => (r.attribution === undefined ? '–' : `${r.attribution.sent} (${r.attribution.sent - r.attribution.longSent} + ${r.attribution.longSent})`));
  add('requests failed', (r) => (r.attribution === undefined ? '–' : String(r.attribution.failed)));
  add('  on a container the soak killed', (r) => (r.attribution === undefined ? '–' : String(r.attribution.excused)));
  add('  not excused', (r) => (r.attribution === undefined ? '–' : String(r.attribution.unexcused)));
  add('long requests failed', (r) => (r.attribution === undefined ? '–' : `${r.attribution.longFailed} of ${r.attribution.longSent}`));
  add('paced sends late (> 10 ms)', (r) => (r.attribution === undefined ? '–' : String(r.attribution.lateSends)));
  add(`invariant violations (> ${boundMs / 1000} s)`, (r) => String(r.violations.length));
  add('left over at the end', (r) => String(r.leftovers.length));
  add('max time to agree after an event', maxAgree);
  add('checker ticks', (r) => String(r.ticks));
  add('verdict', (r) => (passed(r) ? 'PASS' : 'FAIL'));
  return rows;
}

function table(header: readonly string[], rows: readonly string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** The figures in the benchmark report's shape (bench/lib/report.ts), one scenario per driver. */
function scenarioResult(result: DriverResult): ScenarioResult {
  const a = result.attribution;
  const agree = result.agreeMs.filter((x) => x.ms !== null).map((x) => x.ms ?? 0);
  const spreadOf = summarise(agree);
  const figures: Figure[] = [
    { metric: 'events injected', unit: 'count', value: injected(result.events).length },
    ...(a === undefined
      ? []
      : [
          { metric: 'requests sent', unit: 'count', value: a.sent },
          { metric: 'requests failed', unit: 'count', value: a.failed },
          { metric: 'failed on a container the soak killed', unit: 'count', value: a.excused },
          { metric: 'failed, not excused', unit: 'count', value: a.unexcused },
        ]),
    { metric: `invariant violations (> ${boundMs / 1000} s)`, unit: 'count', value: result.violations.length },
    { metric: 'left over at the end', unit: 'count', value: result.leftovers.length },
    { metric: 'time to agree after an event', unit: 'ms', n: spreadOf.n, p50: spreadOf.p50, p95: spreadOf.p95, max: spreadOf.max },
  ];
  return {
    id: 'soak',
    driver: result.driver,
    title: 'chaos soak',
    status: result.attribution === undefined ? 'failed' : 'measured',
    ...(result.failures.length > 0 ? { reason: result.failures[0] } : {}),
    figures,
    notes: [],
    seconds: result.seconds,
    data: {
      events: result.events,
      agreeMs: result.agreeMs,
      violations: result.violations,
      leftovers: result.leftovers,
      failures: result.failures,
      attribution: a,
    },
  };
}

function markdown(results: readonly DriverResult[], environment: Record<string, string | number>, generatedAt: string, totalSeconds: number): string {
  const escape = (text: string): string => text.replaceAll('|', '\\|');
  const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);
  const header = ['', ...results.map((r) => r.driver)];
  const lines = [
    '# Chaos soak',
    '',
    `Written by \`npm run soak\` on ${generatedAt} in ${totalSeconds.toFixed(0)} s (${minutes} min of load and chaos per driver, ${rate} req/s paced, seed ${seed}).`,
    'Failed requests are counted from the client; a failure is excused only where HAProxy\'s log puts it on a container the soak killed',
    `(SIGKILL), in flight then or sent before HAProxy took it out. A disagreement between HAProxy, Docker and the sidecar that lasts more than ${boundMs / 1000} s is a violation.`,
    'Time to agree: from the end of an event until the first check (one a second) from which they agreed for at least 3 s.',
    '',
    '## Environment',
    '',
    ...Object.entries(environment).map(([k, v]) => `- ${k}: ${escape(String(v))}`),
    '',
    '## Verdict',
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...verdictRows(results).map((row) => `| ${row.map(escape).join(' | ')} |`),
    '',
  ];
  for (const r of results) {
    lines.push(`## ${r.driver} driver`, '');
    if (r.failures.length > 0) lines.push('Failures:', '', ...r.failures.map((f) => `- ${escape(f.split('\n')[0] ?? f)}`), '');
    if (r.violations.length > 0) {
      lines.push('Violations (first seen, how long, what):', '');
      for (const v of r.violations) lines.push(`- ${clock(v.since)} UTC, ${v.until === undefined ? 'still at the end' : `for ${seconds(v.until - v.since)}`}: ${escape(v.text)}`);
      lines.push('');
    }
    if (r.leftovers.length > 0) lines.push('Left over at the end:', '', ...r.leftovers.map((l) => `- ${escape(l)}`), '');
    const a = r.attribution;
    if (a !== undefined && (a.failedSegments.length > 0 || a.unexplainedLog.length > 0 || a.longFailures.length > 0)) {
      lines.push('Failed requests by load segment (wrk) and the failed requests in HAProxy\'s log that no killed container explains:', '');
      for (const s of a.failedSegments) {
        const during = r.events.filter((e) => e.skipped === undefined && e.endedAt >= s.from - 20_000 && e.startedAt <= s.to).map((e) => `#${e.index} ${e.kind}`);
        lines.push(`- segment ${s.index}, ${clock(s.from)}–${clock(s.to)} UTC: ${s.failed} failed of ${s.sent} (${escape(s.detail)}); events then or in the 20 s before: ${during.join(', ') || 'none'}`);
      }
      for (const l of a.unexplainedLog) lines.push(`- HAProxy log: ${escape(l)}`);
      for (const l of a.longFailures) lines.push(`- long request ${escape(l)}`);
      lines.push('');
    }
    lines.push('Events:', '', '| # | at (UTC) | kind | what | agreed after |', '|---|---|---|---|---|');
    for (const e of r.events) {
      const agreed = r.agreeMs.find((x) => x.index === e.index);
      const what = e.skipped !== undefined ? `skipped: ${e.skipped}` : e.error !== undefined ? `FAILED: ${e.error}` : e.description;
      lines.push(`| ${e.index} | ${clock(e.startedAt)} | ${e.kind} | ${escape(what)} | ${agreed === undefined ? '' : seconds(agreed.ms)} |`);
    }
    lines.push('');
    if (r.logDir !== undefined) lines.push(`Logs (sidecar, HAProxy) kept in \`${r.logDir}\`.`, '');
  }
  lines.push('## Figures', '', '```', textTable(results.map(scenarioResult)), '```', '');
  return lines.join('\n');
}

async function environment(): Promise<Record<string, string | number>> {
  const gitHead = (() => {
    try {
      const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim() !== '';
      return `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
    } catch {
      return 'unknown';
    }
  })();
  return {
    commit: gitHead,
    cpus: `${cpus().length} × ${cpus()[0]?.model.trim() ?? 'unknown'}`,
    'load average at start (1 min)': loadavg()[0]?.toFixed(2) ?? 'unknown',
    node: process.version,
    haproxy: haproxyVersion(haproxyBinary()),
    docker: (await docker.version()).Version,
    'nginx image': readPinnedVersions().NGINX_IMAGE,
    drivers: drivers.join(', '),
    seed,
    'rate (req/s)': rate,
    'minutes per driver': minutes,
    'bound (s)': boundMs / 1000,
  };
}

async function checkPrerequisites(): Promise<void> {
  if (spawnSync('wrk', ['-v']).error !== undefined) throw new Error('wrk is not installed: run devenv/setup.sh');
  haproxyVersion(haproxyBinary());
  await docker.ping().catch(() => {
    throw new Error('no Docker daemon answers: run devenv/setup.sh');
  });
  const image = readPinnedVersions().NGINX_IMAGE;
  await docker
    .getImage(image)
    .inspect()
    .catch(() => {
      throw new Error(`the image ${image} is missing: run devenv/setup.sh`);
    });
}

let build: SidecarBuild | undefined;
let activeWorld: SoakWorld | undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: tearing down`);
    void (async () => {
      await activeWorld?.close().catch(() => undefined);
      await build?.remove().catch(() => undefined);
      process.exit(130);
    })();
  });
}

async function main(): Promise<number> {
  await checkPrerequisites();
  const env = await environment();
  log(`seed ${seed}, ${rate} req/s, ${minutes} min per driver, drivers ${drivers.join(', ')}; compiling the sidecar`);
  build = await buildSidecar('soak');
  const rng = seededRng(seed);
  const results: DriverResult[] = [];
  try {
    for (const driver of drivers) results.push(await soakDriver(build, driver, rng));
  } finally {
    await build.remove();
  }
  currentDriver = '';
  const generatedAt = new Date().toISOString();
  const totalSeconds = (Date.now() - runStarted) / 1000;
  process.stdout.write(`\nChaos soak verdict (seed ${seed}, ${rate} req/s, ${minutes} min per driver)\n\n${table(['', ...results.map((r) => r.driver)], verdictRows(results))}\n\n`);
  for (const r of results) {
    for (const f of r.failures) process.stdout.write(`${r.driver}: FAILURE: ${f.split('\n')[0] ?? f}\n`);
    for (const v of r.violations) process.stdout.write(`${r.driver}: VIOLATION${v.until === undefined ? ' (still at the end)' : ` (${seconds(v.until - v.since)})`}: ${v.text}\n`);
    for (const l of r.leftovers) process.stdout.write(`${r.driver}: LEFT OVER: ${l}\n`);
    for (const g of r.attribution?.failedSegments ?? []) {
      const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);
      process.stdout.write(`${r.driver}: load segment ${g.index} (${clock(g.from)}–${clock(g.to)} UTC): ${g.failed} failed of ${g.sent} (${g.detail})\n`);
    }
    for (const l of r.attribution?.unexplainedLog ?? []) process.stdout.write(`${r.driver}: HAProxy log, not excused: ${l}\n`);
    for (const l of r.attribution?.longFailures ?? []) process.stdout.write(`${r.driver}: long request failed: ${l}\n`);
  }
  const stamp = generatedAt.replace(/[:.]/g, '-').slice(0, 19);
  const reportPath = resolve(values.report ?? join('bench', 'results', `soak-${driverOption}-${stamp}.md`));
  mkdirSync(dirname(reportPath), { recursive: true });
  const json = { generatedAt, seconds: totalSeconds, environment: env, scenarios: results.map(scenarioResult) };
  if (reportPath.endsWith('.json')) writeFileSync(reportPath, `${JSON.stringify(json, null, 2)}\n`);
  else {
    writeFileSync(reportPath, markdown(results, env, generatedAt, totalSeconds));
    writeFileSync(reportPath.replace(/(\.md)?$/, '.json'), `${JSON.stringify(json, null, 2)}\n`);
  }
  process.stdout.write(`\nreport: ${reportPath}\n`);
  return results.every(passed) ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    process.stderr.write(`soak failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    await activeWorld?.close().catch(() => undefined);
    await build?.remove().catch(() => undefined);
    process.exit(1);
  },
);
