// npm run bench [-- --only id,id] [--quick] [--out dir]
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
import { dataplaneApiBinary, readPinnedVersions } from '../devenv/versions.js';
import { startPool, type BenchPool } from './lib/pool.js';
import { markdownReport, textTable, type RunReport, type ScenarioResult } from './lib/report.js';
import { buildSidecar, sweepSidecarProcesses, type SidecarBuild } from './lib/sidecar-process.js';
import { dataplaneAvailable, loadStepScenario, notMeasured, readyToServedScenario, type DataplaneOptions } from './scenarios/dataplane.js';
import { drainLatencyScenario } from './scenarios/drain-latency.js';
import { overheadScenario } from './scenarios/overhead.js';
import { reconcileScaleScenario } from './scenarios/reconcile-scale.js';
import { resourcesScenario } from './scenarios/resources.js';
import { scaleEventsScenario } from './scenarios/scale-events.js';

const SCENARIOS = ['overhead', 'resources', 'drain', 'scale-events', 'scale', 'ready-to-served', 'load-step'] as const;
type ScenarioId = (typeof SCENARIOS)[number];

const { values } = parseArgs({
  options: {
    only: { type: 'string', default: SCENARIOS.join(',') },
    quick: { type: 'boolean', default: false },
    out: { type: 'string', default: 'bench/results' },
  },
});
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

/** Sizes of every scenario: the full run fits in about five minutes on 2 cores; --quick is a smoke run. */
const sizes = quick
  ? { rounds: 2, wrkSeconds: 3, idle: 5, churn: 8, churnStarts: 8, drainTrials: 4, cycles: 2, bursts: 2, readyTrials: 3, stepTrials: 1 }
  : { rounds: 6, wrkSeconds: 6, idle: 20, churn: 30, churnStarts: 30, drainTrials: 20, cycles: 5, bursts: 5, readyTrials: 20, stepTrials: 3 };

function firstLine(command: string, args: readonly string[]): string {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  return `${result.stdout}${result.stderr}`.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'unknown';
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
  const cpuList = cpus();
  return {
    commit: gitHead,
    cpus: `${cpuList.length} × ${cpuList[0]?.model.trim() ?? 'unknown'}`,
    'load average at start (1 min)': loadavg()[0]?.toFixed(2) ?? 'unknown',
    "other containers running at start (not the benchmark's)": await othersContainers(),
    node: process.version,
    haproxy: firstLine('haproxy', ['-v']),
    docker: (await docker.version()).Version,
    wrk: firstLine('wrk', ['-v']),
    'nginx image': readPinnedVersions().NGINX_IMAGE,
    'Data Plane API binary': dataplaneApiBinary() ?? 'not available here (see README, "Data Plane API availability")',
    mode: quick ? 'quick (smoke sizes; not for quoting)' : 'full',
  };
}

/** Containers on this Docker host that are not the benchmark's: a sign the machine is shared right now. */
async function othersContainers(): Promise<number> {
  const running = await docker.listContainers();
  return running.filter((c) => c.Labels[OWNER_LABEL] !== 'bench').length;
}

async function checkPrerequisites(): Promise<void> {
  for (const [command, args] of [['wrk', ['-v']], ['haproxy', ['-v']]] as const) {
    if (spawnSync(command, args).error !== undefined) throw new Error(`${command} is not installed: run devenv/setup.sh`);
  }
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

async function main(): Promise<number> {
  await checkPrerequisites();
  await cleanLeftovers();
  const env = await environment();
  const workDir = await mkdtemp(join(tmpdir(), 'hsc-bench-run-'));
  const results: ScenarioResult[] = [];
  const run = async (id: ScenarioId, title: string, scenario: () => Promise<Omit<ScenarioResult, 'seconds'>>): Promise<void> => {
    if (!selected.has(id)) return;
    log(`${id}: ${title}`);
    const started = performance.now();
    try {
      results.push({ ...(await scenario()), seconds: (performance.now() - started) / 1000 });
    } catch (error) {
      const reason = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
      log(`${id} FAILED: ${error instanceof Error ? error.stack : String(error)}`);
      results.push({ id, title, status: 'failed', reason, figures: [], notes: [], seconds: (performance.now() - started) / 1000 });
    }
  };

  try {
    log('compiling the sidecar (tsconfig.build.json) for its own process');
    const sidecarBuild = (build = await buildSidecar());
    const withDataplane = dataplaneAvailable();
    const sharedPool = async (): Promise<BenchPool> => (pool ??= await startPool(sidecarBuild, 2, withDataplane));

    await run('overhead', 'data-path overhead', async () =>
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
    await run('resources', 'sidecar RSS and CPU', async () =>
      resourcesScenario(await sharedPool(), {
        settleSeconds: 5,
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

    await run('drain', 'drain completion latency', () =>
      drainLatencyScenario({ trialsPerSetting: sizes.drainTrials, pollSettingsMs: [500, 100], slowSeconds: 2, log }),
    );
    await run('scale-events', 'failed requests per scale-up and scale-down', () =>
      scaleEventsScenario({ cycles: sizes.cycles, concurrency: 4, slowRequests: 4, log }),
    );
    await run('scale', 'reconcile at scale', () =>
      reconcileScaleScenario({ backends: 10, serversPerBackend: 50, replacedPerBurst: 100, bursts: sizes.bursts, burstSpreadMs: 500, log }),
    );

    const dataplaneOptions: DataplaneOptions = {
      build: sidecarBuild,
      readyTrials: sizes.readyTrials,
      stepTrials: sizes.stepTrials,
      stepIntervalMs: 5_000,
      workDir,
      log,
    };
    if (withDataplane) {
      await run('ready-to-served', 'ready container → first request served', () => readyToServedScenario(dataplaneOptions));
      await run('load-step', 'load step → decision → capacity', () => loadStepScenario(dataplaneOptions));
    } else {
      for (const result of notMeasured()) {
        if (!selected.has(result.id)) continue;
        log(`${result.id}: ${result.reason ?? ''}`);
        results.push({ ...result, seconds: 0 });
      }
    }
  } finally {
    await cleanUp();
    await rm(workDir, { recursive: true, force: true });
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
    scenarios: results,
  };
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(join(outDir, 'latest.md'), markdownReport(report));
  process.stdout.write(`\n${textTable(results)}\n\n`);
  for (const result of results) {
    for (const note of result.notes) process.stdout.write(`${result.id}: ${note}\n`);
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
