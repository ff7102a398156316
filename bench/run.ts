// npm run bench [-- --only id,id] [--quick] [--out dir] [--keep-logs]
// Runs the benchmarks on the real local environment (HAProxy, nginx containers, wrk, the sidecar
// as its own process), prints a table and writes latest.json and latest.md. Every load is bounded
// in time and count and goes to 127.0.0.1 only; every process and container it starts is removed
// at the end, and leftovers of a crashed run (owner "bench") at the start. Scenarios that need the
// Data Plane API report "not measured" where its binary is missing; nothing is estimated.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { docker, OWNER_LABEL, removeOwnedContainers } from '../devenv/containers.js';
import { sweepLeftovers } from '../devenv/localenv.js';
import { availableDrivers, type DriverChoice } from '../devenv/sidecar-env.js';
import { dataplaneApiBinary, FLOOR_HAPROXY_BINARY, haproxyBinary, haproxyVersion, readPinnedVersions } from '../devenv/versions.js';
import { startPool, type BenchPool } from './lib/pool.js';
import { markdownReport, NEEDS_DATAPLANE, textTable, type RunReport, type ScenarioResult, type SummaryRow } from './lib/report.js';
import { buildSidecar, sweepSidecarProcesses, type SidecarBuild } from './lib/sidecar-process.js';
import { CAPACITY_TITLE, capacityScenario } from './scenarios/capacity.js';
import { deployScenario, DEPLOY_TITLE } from './scenarios/deploy.js';
import { drainLatencyScenario } from './scenarios/drain-latency.js';
import { LOAD_STEP_TITLE, loadStepScenario } from './scenarios/load-step.js';
import { overheadScenario } from './scenarios/overhead.js';
import { reconcileScaleScenario } from './scenarios/reconcile-scale.js';
import { resourcesScenario } from './scenarios/resources.js';
import { scaleEventsScenario } from './scenarios/scale-events.js';
import { VARYING_LOAD_TITLE, varyingLoadScenario } from './scenarios/varying-load.js';

const SCENARIOS = ['overhead', 'resources', 'drain', 'scale-events', 'deploy', 'deploy-static', 'deploy-pieces', 'scale', 'load-step', 'varying', 'capacity'] as const;
type ScenarioId = (typeof SCENARIOS)[number];
const ALL_DRIVERS: readonly DriverChoice[] = ['dataplane', 'runtime'];

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: SCENARIOS.join(',') },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
    // Keep the sidecars' debug logs after a run that passed too (a failed run always keeps them).
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'usage: npm run bench [-- --only id,id] [--quick] [--out dir] [--keep-logs]',
      `  --only       scenarios to run, of: ${SCENARIOS.join(', ')} (default: all)`,
      '  --quick      a smoke run: fewer rounds, trials and probes',
      '  --out        where latest.json and latest.md go (default: bench/results)',
      "  --keep-logs  keep the sidecars' debug logs after a run that passed too",
      'The Data Plane API scenarios run where HSC_DATAPLANEAPI_BIN (or a dataplaneapi on PATH) is; HSC_HAPROXY_SERIES (2.6, 3.0, 3.2, 3.4) or HSC_HAPROXY_BIN chooses HAProxy.',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const selected = new Set(values.only.split(',').map((s) => s.trim()).filter((s) => s !== ''));
for (const id of selected) {
  if (!(SCENARIOS as readonly string[]).includes(id)) {
    process.stderr.write(`unknown scenario ${id}; known: ${SCENARIOS.join(', ')}\n`);
    process.exit(2);
  }
}
const quick = values.quick;
const outDir = resolve(values.out);

const runStarted = performance.now();
const log = (message: string): void => {
  process.stderr.write(`[bench ${((performance.now() - runStarted) / 1000).toFixed(0).padStart(3)} s] ${message}\n`);
};

/** Sizes of every scenario: the full run fits in about fifteen minutes on 2 cores; --quick is a smoke run. */
const sizes = quick
  ? { rounds: 2, wrkSeconds: 3, idle: 5, churn: 8, churnStarts: 8, drainTrials: 3, cycles: 2, bursts: 2, stepTrials: 1, deployRuns: 1, deploySeconds: 12 }
  : { rounds: 5, wrkSeconds: 5, idle: 60, churn: 30, churnStarts: 30, drainTrials: 10, cycles: 10, bursts: 5, stepTrials: 2, deployRuns: 2, deploySeconds: 20 };
/** The capacity scenario: pool sizes, seconds per probe, probes per search, its time budget (s). */
const capacitySizes = quick
  ? { sizes: [2, 4], probeSeconds: 3, maxProbes: 4, budgetSeconds: 120 }
  : { sizes: [2, 4, 6, 8, 10], probeSeconds: 5, maxProbes: 5, budgetSeconds: 330 };
/** The autoscaler's interval and scale-down window in the load step (defaults: 30 s and 120 s). */
const STEP_INTERVAL_MS = 5_000;
const STEP_DOWN_WINDOW_MS = 10_000;

function firstLine(command: string, args: readonly string[], pattern = /./): string {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 10_000 });
  return `${result.stdout}${result.stderr}`.split('\n').find((l) => pattern.test(l))?.trim() ?? 'unknown';
}

/** Which HAProxy runs and why, without a machine-specific path. */
function haproxyDescription(): string {
  const binary = haproxyBinary();
  const series = process.env.HSC_HAPROXY_SERIES ?? '';
  const source =
    process.env.HSC_HAPROXY_BIN !== undefined && process.env.HSC_HAPROXY_BIN !== ''
      ? `HSC_HAPROXY_BIN${binary === FLOOR_HAPROXY_BINARY ? ` (${FLOOR_HAPROXY_BINARY}, Debian 12's package)` : ''}`
      : series !== ''
        ? `HSC_HAPROXY_SERIES=${series}, ${binary === FLOOR_HAPROXY_BINARY ? `${FLOOR_HAPROXY_BINARY}, Debian 12's package` : "setup.sh's cached build"}`
        : binary === FLOOR_HAPROXY_BINARY
          ? `${FLOOR_HAPROXY_BINARY} (Debian 12's package; setup.sh has not cached 3.0)`
          : `setup.sh's cached ${readPinnedVersions().HAPROXY_SUITE} build`;
  return `${haproxyVersion(binary)} (devenv/versions.ts haproxyBinary(): ${source})`;
}

/** Whether a Data Plane API binary is there and what it says it is; never its path. */
function dataplaneDescription(): string {
  const binary = dataplaneApiBinary();
  if (binary === undefined) return 'none (the dataplane driver is not measured here)';
  const how = process.env.HSC_DATAPLANEAPI_BIN !== undefined && process.env.HSC_DATAPLANEAPI_BIN !== '' ? 'HSC_DATAPLANEAPI_BIN' : 'PATH or setup.sh cache';
  return `available (${how}); it reports "${firstLine(binary, ['--version'], /Data Plane API/)}"`;
}

async function environment(drivers: readonly DriverChoice[]): Promise<Record<string, string | number>> {
  const gitHead = (() => {
    try {
      const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
      const dirty = execFileSync('git', ['status', '--porcelain'], { encoding: 'utf8' }).trim() !== '';
      return `${head}${dirty ? ' (with uncommitted changes)' : ''}`;
    } catch {
      return 'unknown';
    }
  })();
  const cpuList = cpus();
  return {
    commit: gitHead,
    cpus: `${cpuList.length} × ${cpuList[0]?.model.trim() ?? 'unknown'}`,
    'load average at start (1 min)': loadavg()[0]?.toFixed(2) ?? 'unknown',
    "other containers running at start (not the benchmark's)": await othersContainers(),
    node: process.version,
    haproxy: haproxyDescription(),
    'Data Plane API': dataplaneDescription(),
    'HAProxy drivers measured': drivers.join(', '),
    docker: (await docker.version()).Version,
    wrk: firstLine('wrk', ['-v']),
    'nginx image': readPinnedVersions().NGINX_IMAGE,
    mode: quick ? 'quick (smoke sizes; not for quoting)' : 'full',
  };
}

/** Containers on this Docker host that are not the benchmark's: a sign the machine is shared right now. */
async function othersContainers(): Promise<number> {
  const running = await docker.listContainers();
  return running.filter((c) => c.Labels[OWNER_LABEL] !== 'bench').length;
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

async function cleanLeftovers(): Promise<void> {
  sweepSidecarProcesses();
  await sweepLeftovers('bench');
  await removeOwnedContainers('bench');
}

let build: SidecarBuild | undefined;
let pool: BenchPool | undefined;
let cleaning: Promise<void> | undefined;
const cleanUp = (): Promise<void> =>
  (cleaning ??= (async () => {
    await pool?.stop().catch(() => undefined);
    await build?.remove().catch(() => undefined);
    await cleanLeftovers().catch(() => undefined);
  })());

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    log(`${signal}: cleaning up`);
    void cleanUp().finally(() => process.exit(130));
  });
}

/** The key figures per driver, against the goals they are measured for. */
const SUMMARY: ReadonlyArray<{ readonly scenario: ScenarioId; readonly key: string; readonly figure: string; readonly goal: string; readonly show: 'spread' | 'value' }> = [
  { scenario: 'scale-events', key: 'reloads-up', figure: 'HAProxy reloads per scale-up', goal: '0', show: 'spread' },
  { scenario: 'scale-events', key: 'reloads-down', figure: 'HAProxy reloads per scale-down (one server per batch)', goal: '≤ 1', show: 'spread' },
  { scenario: 'scale-events', key: 'ready-to-served', figure: 'container healthy → first request served (ms)', goal: 'p95 ≤ 1000', show: 'spread' },
  { scenario: 'scale-events', key: 'failed-up', figure: 'failed requests per scale-up', goal: '0', show: 'spread' },
  { scenario: 'scale-events', key: 'failed-down', figure: 'failed requests per scale-down', goal: '0', show: 'spread' },
  { scenario: 'scale-events', key: 'failed-all', figure: 'failed requests, whole scale-events run', goal: '0', show: 'value' },
  { scenario: 'deploy', key: 'failed-docker-stop', figure: 'deploy: failed requests per docker stop of a replica', goal: '0', show: 'spread' },
  { scenario: 'deploy', key: 'failed-docker-restart', figure: 'deploy: failed requests per docker restart of a replica', goal: '0', show: 'spread' },
  { scenario: 'deploy', key: 'failed-docker-kill', figure: 'deploy: failed requests per docker kill of a replica', goal: 'its requests in flight', show: 'spread' },
  { scenario: 'deploy', key: 'failed-recreate', figure: 'deploy: failed requests per docker-compose up -d --force-recreate', goal: '≤ static servers, no sidecar (deploy-static)', show: 'spread' },
  { scenario: 'deploy', key: 'failed-rollout', figure: 'deploy: failed requests per hsc rollout of 4 replicas', goal: '0', show: 'spread' },
  { scenario: 'deploy', key: 'canary-500s', figure: "deploy: a rollback's canary 500s (10 % weight)", goal: 'bounded', show: 'spread' },
  { scenario: 'drain', key: 'drain-default', figure: 'drain done after the last connection closed, poll 500 ms (ms)', goal: '500–1000 + scrapes', show: 'spread' },
  { scenario: 'load-step', key: 'step-decision', figure: 'load step → first scale-up decision (ms; autoscaler interval 5 s)', goal: '', show: 'spread' },
  { scenario: 'load-step', key: 'step-serving', figure: 'load step → new capacity serving (ms)', goal: '', show: 'spread' },
  { scenario: 'load-step', key: 'drop-minimum', figure: 'load dropped → back to the minimum through drains (ms; window 10 s)', goal: 'within 240 s', show: 'spread' },
  { scenario: 'load-step', key: 'step-reloads-up', figure: 'load step: reloads while scaling up', goal: '0', show: 'spread' },
  { scenario: 'load-step', key: 'step-reloads-down', figure: 'load step: reloads per retirement', goal: '≤ 1', show: 'spread' },
  { scenario: 'load-step', key: 'step-failed', figure: 'load step: failed requests, all trials', goal: '0', show: 'value' },
  { scenario: 'load-step', key: 'sim-serving-error', figure: 'load step replayed in the simulator: mean |simulated − real| servers in rotation', goal: '', show: 'spread' },
  { scenario: 'varying', key: 'sim-serving-error', figure: 'varying load replayed in the simulator: mean |simulated − real| servers in rotation', goal: '', show: 'value' },
];

function summaryRows(results: readonly ScenarioResult[]): SummaryRow[] {
  const text = (n: number | undefined): string => (n === undefined ? '' : Number.isInteger(n) ? String(n) : n < 10 ? n.toFixed(2) : n.toFixed(0));
  return SUMMARY.map((row) => {
    const byDriver: Record<string, string> = {};
    for (const driver of ALL_DRIVERS) {
      const result = results.find((r) => r.id === row.scenario && r.driver === driver);
      if (result === undefined) continue;
      if (result.status !== 'measured') {
        byDriver[driver] = result.status === 'failed' ? `FAILED: ${result.reason ?? ''}` : (result.reason ?? '');
        continue;
      }
      const figure = result.figures.find((f) => f.key === row.key);
      if (figure === undefined) continue;
      byDriver[driver] =
        row.show === 'value'
          ? text(figure.value)
          : figure.n === 0
            ? 'no samples'
            : `p50 ${text(figure.p50)} / p95 ${text(figure.p95)} / max ${text(figure.max)} (n ${figure.n ?? '?'})`;
    }
    return { figure: row.figure, goal: row.goal, byDriver };
  });
}

async function main(): Promise<number> {
  await checkPrerequisites();
  await cleanLeftovers();
  const drivers = availableDrivers();
  const env = await environment(drivers);
  // Not under the `hsc-bench-` prefix, which the leftover sweep removes: a failed run keeps its
  // sidecars' logs here.
  const workDir = await mkdtemp(join(tmpdir(), 'hsc-benchrun-'));
  const results: ScenarioResult[] = [];
  const run = async (
    id: ScenarioId,
    driver: DriverChoice | undefined,
    title: string,
    scenario: () => Promise<Omit<ScenarioResult, 'seconds'>>,
  ): Promise<void> => {
    if (!selected.has(id)) return;
    const label = driver === undefined ? id : `${id} (${driver})`;
    log(`${label}: ${title}`);
    const started = performance.now();
    try {
      results.push({ ...(await scenario()), seconds: (performance.now() - started) / 1000 });
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
      log(`${label} FAILED: ${error instanceof Error ? error.stack : String(error)}`);
      results.push({ id, ...(driver === undefined ? {} : { driver }), title, status: 'failed', reason, figures: [], notes: [], seconds: (performance.now() - started) / 1000 });
    }
  };
  /** Runs `scenario` once per driver; a driver that cannot run here is reported, never estimated. */
  const perDriver = async (id: ScenarioId, title: string, scenario: (driver: DriverChoice) => Promise<Omit<ScenarioResult, 'seconds'>>): Promise<void> => {
    if (!selected.has(id)) return;
    for (const driver of ALL_DRIVERS) {
      if (drivers.includes(driver)) await run(id, driver, title, () => scenario(driver));
      else results.push({ id, driver, title, status: 'not-measured', reason: NEEDS_DATAPLANE, figures: [], notes: ['No Data Plane API binary was found (HSC_DATAPLANEAPI_BIN, PATH, setup.sh cache): see docs/drivers.md, "Data Plane API availability".'], seconds: 0 });
    }
  };

  let keepWorkDir = false;
  try {
    log('compiling the sidecar (tsconfig.build.json) for its own process');
    const sidecarBuild = (build = await buildSidecar());
    // The data-path and resource figures are the sidecar's cost, not a driver's: one driver,
    // the one every machine has.
    const sharedPool = async (): Promise<BenchPool> => (pool ??= await startPool(sidecarBuild, 2, 'runtime'));

    await run('overhead', undefined, 'data-path overhead', async () =>
      overheadScenario(await sharedPool(), {
        rounds: sizes.rounds,
        seconds: sizes.wrkSeconds,
        connections: 16,
        threads: 2,
        settleSeconds: 2,
        workDir,
        log,
      }),
    );
    await run('resources', undefined, 'sidecar RSS and CPU', async () =>
      resourcesScenario(await sharedPool(), {
        // Long enough for the first evaluations and the breach checks' allocations to have sized
        // V8's heap, and an idle phase of two production intervals: what a sidecar left alone shows.
        settleSeconds: quick ? 5 : 30,
        idleSeconds: sizes.idle,
        churnSeconds: sizes.churn,
        maxChurnStarts: sizes.churnStarts,
        churnAlive: 2,
        workDir,
        log,
      }),
    );
    await pool?.stop();
    pool = undefined;

    await perDriver('drain', 'drain completion latency through the admin API', (driver) =>
      drainLatencyScenario({ build: sidecarBuild, driver, trialsPerSetting: sizes.drainTrials, pollSettingsMs: [500, 100], slowSeconds: 1, workDir, log }),
    );
    await perDriver('scale-events', 'scale-up and scale-down through the sidecar under load', (driver) =>
      scaleEventsScenario({ build: sidecarBuild, driver, cycles: sizes.cycles, ratePerSecond: 200, slowRequests: 4, intervalMs: 1_000, workDir, log }),
    );
    await perDriver('deploy', DEPLOY_TITLE, (driver) =>
      deployScenario({ build: sidecarBuild, driver, runs: sizes.deployRuns, seconds: sizes.deploySeconds, operationAtSeconds: 4, connections: 16, workDir, log }),
    );
    // The comparison issue 26 sets for a plain recreate: the same replicas written in haproxy.cfg
    // by hand, no sidecar (one HAProxy, no driver).
    await run('deploy-static', undefined, `${DEPLOY_TITLE}: static servers, no sidecar`, () =>
      deployScenario({ build: sidecarBuild, driver: 'runtime', runs: sizes.deployRuns, seconds: sizes.deploySeconds, operationAtSeconds: 4, connections: 16, staticServers: true, workDir, log }),
    );
    // What each piece of zero downtime for the user's own changes does: the operations Docker
    // does behind the sidecar's back, with each piece on and off (one driver: neither piece is
    // the driver's).
    for (const [variant, drainOnStop, retryOnStop] of [
      ['both pieces (as shipped)', true, true],
      ['drain at kill only', true, false],
      ['HAProxy retries only', false, true],
      ['neither', false, false],
    ] as const) {
      await run('deploy-pieces', 'runtime', `${DEPLOY_TITLE}: ${variant}`, () =>
        deployScenario({
          build: sidecarBuild,
          driver: 'runtime',
          // One run per combination: four of them would double the whole bench otherwise.
          runs: 1,
          seconds: sizes.deploySeconds,
          operationAtSeconds: 4,
          connections: 16,
          operations: ['baseline', 'docker stop', 'docker restart', 'docker kill', 'scale-in'],
          drainOnStop,
          retryOnStop,
          variant,
          workDir,
          log,
        }),
      );
    }
    await run('scale', undefined, 'reconcile at scale', () =>
      reconcileScaleScenario({ backends: 10, serversPerBackend: 50, replacedPerBurst: 100, bursts: sizes.bursts, burstSpreadMs: 500, log }),
    );
    await perDriver('load-step', LOAD_STEP_TITLE, (driver) =>
      loadStepScenario({
        build: sidecarBuild,
        driver,
        trials: sizes.stepTrials,
        intervalMs: STEP_INTERVAL_MS,
        downWindowMs: STEP_DOWN_WINDOW_MS,
        stepClients: 12,
        backgroundRate: 5,
        workDir,
        recordTo: join(outDir, 'fidelity'),
        log,
      }),
    );
    await perDriver('varying', VARYING_LOAD_TITLE, (driver) =>
      varyingLoadScenario({
        build: sidecarBuild,
        driver,
        // Four and a half minutes (a smoke run: a third of it) of an open loop that rises, falls and rises again.
        segments: [15, 40, 90, 150, 100, 40, 120, 15, 15].map((rate) => ({ rate, seconds: quick ? 10 : 30 })),
        intervalMs: STEP_INTERVAL_MS,
        downWindowMs: 20_000,
        workDir,
        recordTo: join(outDir, 'fidelity'),
        log,
      }),
    );
    await run('capacity', undefined, CAPACITY_TITLE, () =>
      capacityScenario({ build: sidecarBuild, ...capacitySizes, cpusPerInstance: 0.2, rows: 1000, workDir, log }),
    );
  } finally {
    await cleanUp();
    keepWorkDir = values['keep-logs'] || results.some((r) => r.status === 'failed');
    if (keepWorkDir) log(`kept the sidecars' logs of this run in ${workDir}`);
    else await rm(workDir, { recursive: true, force: true });
  }

  const seconds = (performance.now() - runStarted) / 1000;
  const report: RunReport = {
    generatedAt: new Date().toISOString(),
    seconds,
    environment: {
      ...env,
      'load average at end (1 min)': loadavg()[0]?.toFixed(2) ?? 'unknown',
      "other containers running at end (not the benchmark's)": await othersContainers().catch(() => 'unknown'),
    },
    summary: {
      drivers: ALL_DRIVERS,
      rows: summaryRows(results),
      notes: [
        `Measured on HAProxy ${haproxyVersion(haproxyBinary())} with each driver the sidecar has; every server change went through a sidecar process (compiled sidecar/), nothing through a test helper.`,
        'Figures are p50 / p95 / max over the events (n = how many); "not measured here" means the driver could not run on this machine, and no figure stands in for it.',
      ],
    },
    scenarios: results,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.md'), markdownReport(report));
  process.stdout.write(`\n${textTable(results)}\n\n`);
  for (const result of results) {
    for (const note of result.notes) process.stdout.write(`${result.driver === undefined ? result.id : `${result.id} (${result.driver})`}: ${note}\n`);
  }
  process.stdout.write(`\nwhole run: ${seconds.toFixed(0)} s; reports in ${join(outDir, 'latest.md')} and latest.json\n`);
  return results.some((r) => r.status === 'failed') ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (error: unknown) => {
    process.stderr.write(`bench failed: ${error instanceof Error ? error.stack : String(error)}\n`);
    await cleanUp();
    process.exit(1);
  },
);
