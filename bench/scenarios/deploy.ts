// Deploys and the operator's own changes under load, once per HAProxy driver: what a user does to
// the pool while the sidecar manages it, each during its own closed-loop wrk run through HAProxy
// on 127.0.0.1. A real Compose project (docker-compose, its own file) runs four replicas of the
// test nginx; the sidecar (its own process, autoscaler off) manages them. Operations:
//
//   baseline        nothing (the p99 every other run is compared with)
//   docker stop     one replica, graceful (the image's SIGQUIT); started again afterwards
//   docker restart  one replica
//   docker kill     one replica (SIGKILL: a crash; its requests in flight may fail)
//   scale-in        docker-compose up -d --scale web=1, then back to 4
//   recreate        docker-compose up -d --force-recreate (a deploy of the same image)
//   recreate-env    docker-compose up -d after a change of the service's environment (a new version)
//   rollout         hsc rollout of the 4 replicas to a new image, one at a time (the sidecar's way)
//   rollback        hsc rollout to an image that answers 500: rolled back on its own (a 10 % canary)
//
// HAProxy reaches each replica at its address on the project's network, as in production
// (docker.addressMode network). With `staticServers`, no sidecar runs: the replicas are written in
// haproxy.cfg by hand, the comparison issue 26 sets for a plain recreate.
//
// Failed requests are wrk's socket errors plus its non-2xx answers; for the rollback the 500s
// the canary gave are counted on their own. Timings of the rollout and the rollback are from the
// admin API's POST to the end the record shows.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { docker, ensureNginxVariant, OWNER_LABEL } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { haproxyEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { readPinnedVersions } from '../../devenv/versions.js';
import { COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';
import { waitForServers } from '../lib/haproxy.js';
import { spread, type Figure, type ScenarioResult } from '../lib/report.js';
import { startSidecarProcess, type SidecarBuild, type SidecarProcess } from '../lib/sidecar-process.js';
import { summarise } from '../lib/stats.js';
import { runWrk, type WrkRun } from '../lib/wrk.js';

export const DEPLOY_TITLE = "deploys and operators' changes under load: failed requests and p99 per operation";

export const DEPLOY_OPERATIONS = ['baseline', 'docker stop', 'docker restart', 'docker kill', 'scale-in', 'recreate', 'recreate-env', 'rollout', 'rollback'] as const;
export type DeployOperation = (typeof DEPLOY_OPERATIONS)[number];

export interface DeployOptions {
  readonly build: SidecarBuild;
  readonly driver: DriverChoice;
  readonly runs: number;
  /** wrk's duration for the plain operations; the rollout's and the rollback's run until they end. */
  readonly seconds: number;
  /** When the operation starts within its wrk run. */
  readonly operationAtSeconds: number;
  readonly connections: number;
  readonly workDir: string;
  readonly log: (message: string) => void;
  /** Which operations (default: all, in DEPLOY_OPERATIONS' order). */
  readonly operations?: readonly DeployOperation[];
  /**
   * The pieces of zero downtime for the user's own changes, to measure what each does (default:
   * both on, as shipped): the sidecar's drain at Docker's `kill` event (docker.drainOnStop), and
   * HAProxy's retry settings for replicas that stop (devenv/localenv.ts retryOnStop).
   */
  readonly drainOnStop?: boolean;
  readonly retryOnStop?: boolean;
  /** Names the result (the pieces scenario runs this once per combination). */
  readonly variant?: string;
  /**
   * No sidecar: HAProxy runs the replicas' addresses written by hand (static servers), and only
   * the operations that need no sidecar and keep the replicas' addresses run (baseline, recreate,
   * recreate-env): what a recreate costs without the sidecar.
   */
  readonly staticServers?: boolean;
}

/** The operations a run with static servers and no sidecar measures. */
export const STATIC_OPERATIONS: readonly DeployOperation[] = ['baseline', 'recreate', 'recreate-env'];

interface Trial {
  readonly run: number;
  readonly operation: DeployOperation;
  readonly requests: number;
  readonly failed: number;
  /** Of `failed`, the 500 answers (the rollback's canary). */
  readonly answered500: number;
  /** Of `failed`: answers that were not 2xx/3xx, and wrk's socket errors (no answer). */
  readonly non2xx: number;
  readonly socketErrors: WrkRun['socketErrors'];
  readonly p99Ms: number;
  /** The rollout's or the rollback's duration (s); its outcome. */
  readonly seconds?: number;
  readonly outcome?: string;
}

const REPLICAS = 4;
const SERVICE = 'web';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const run = promisify(execFile);

export async function deployScenario(options: DeployOptions): Promise<Omit<ScenarioResult, 'seconds'>> {
  const { driver, log } = options;
  const project = `hsc-bench-deploy-${randomBytes(3).toString('hex')}`;
  const dir = await mkdtemp(join(tmpdir(), 'hsc-bench-deploy-'));
  const composeFile = join(dir, 'compose.yaml');
  const token = randomBytes(16).toString('hex');
  const base = readPinnedVersions().NGINX_IMAGE;
  let haproxy: LocalHaproxy | undefined;
  let sidecar: SidecarProcess | undefined;
  const writeCompose = (mark: number): Promise<void> =>
    writeFile(
      composeFile,
      [
        "version: '2.4'",
        'services:',
        `  ${SERVICE}:`,
        `    image: ${base}`,
        `    labels: { ${OWNER_LABEL}: bench }`,
        `    environment: { DEPLOY_MARK: '${mark}' }`,
        '',
      ].join('\n'),
    );
  const compose = async (...args: string[]): Promise<void> => {
    await run('docker-compose', ['-p', project, '-f', composeFile, ...args], { timeout: 120_000 });
  };
  const replicas = async (): Promise<Array<{ id: string; image: string }>> =>
    (await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`, `${COMPOSE_SERVICE}=${SERVICE}`] } })).map((c) => ({ id: c.Id, image: c.Image }));
  /** Four replicas, four servers UP, nothing else in HAProxy: the state every operation starts from. */
  const settled = async (what: string): Promise<void> => {
    if (haproxy === undefined) return;
    await waitForServers(haproxy, `${REPLICAS} servers UP (${what})`, (servers) => servers.length === REPLICAS && servers.every((s) => s.state === 'UP'), 120_000);
    const deadline = Date.now() + 60_000;
    while ((await replicas()).length !== REPLICAS) {
      if (Date.now() > deadline) throw new Error(`the service has ${(await replicas()).length} replicas, not ${REPLICAS} (${what})`);
      await sleep(250);
    }
  };
  const one = async (): Promise<string> => {
    const [first] = await replicas();
    if (first === undefined) throw new Error('no replica running');
    return first.id;
  };
  const network = `${project}_default`;
  /** The replicas' addresses on the project's network. */
  const addresses = async (): Promise<string[]> =>
    Promise.all(
      (await replicas()).map(async ({ id }) => {
        const address = (await docker.getContainer(id).inspect()).NetworkSettings.Networks[network]?.IPAddress;
        if (address === undefined || address === '') throw new Error(`replica ${id.slice(0, 12)} has no address on ${network}`);
        return address;
      }),
    );
  const admin = (): SidecarProcess => {
    if (sidecar === undefined) throw new Error('no sidecar');
    return sidecar;
  };
  /** POSTs a rollout and resolves with its duration and outcome once it ended. */
  const rollout = async (body: object): Promise<{ seconds: number; outcome: string }> => {
    const started = performance.now();
    const answer = await admin().admin('POST', '/v1/rollouts', body);
    if (answer.status !== 202) throw new Error(`POST /v1/rollouts: ${answer.status} ${JSON.stringify(answer.body)}`);
    const id = (answer.body as { id: string }).id;
    for (;;) {
      await sleep(200);
      const now = await admin().admin('GET', `/v1/rollouts/${id}`);
      const phase = (now.body as { phase?: string }).phase;
      if (phase === 'succeeded' || phase === 'rolled-back') return { seconds: (performance.now() - started) / 1000, outcome: phase };
      if (performance.now() - started > 300_000) throw new Error(`rollout ${id} did not end within 300 s`);
    }
  };
  let mark = 1;
  let nextImage = '';
  let brokenImage = '';

  /** What each operation does once its wrk run is under way; resolves with its timing where it has one. */
  const operations: Record<DeployOperation, () => Promise<{ seconds: number; outcome: string } | undefined>> = {
    baseline: () => Promise.resolve(undefined),
    'docker stop': async () => {
      await docker.getContainer(await one()).stop();
      return undefined;
    },
    'docker restart': async () => {
      await docker.getContainer(await one()).restart();
      return undefined;
    },
    'docker kill': async () => {
      await docker.getContainer(await one()).kill();
      return undefined;
    },
    'scale-in': async () => {
      await compose('up', '-d', '--scale', `${SERVICE}=1`);
      await sleep(6_000);
      await compose('up', '-d', '--scale', `${SERVICE}=${REPLICAS}`);
      return undefined;
    },
    recreate: async () => {
      await compose('up', '-d', '--force-recreate', '--scale', `${SERVICE}=${REPLICAS}`);
      return undefined;
    },
    'recreate-env': async () => {
      await writeCompose(++mark);
      await compose('up', '-d', '--scale', `${SERVICE}=${REPLICAS}`);
      return undefined;
    },
    rollout: () => rollout({ image: nextImage, batch: 1, bakeSeconds: 2 }),
    rollback: () => rollout({ image: brokenImage, batch: 1, canaryPercent: 10, bakeSeconds: 10 }),
  };
  /** Puts the pool back to four replicas serving after an operation that took one away. */
  const restore = async (operation: DeployOperation): Promise<void> => {
    if (operation === 'docker stop' || operation === 'docker kill') {
      const stopped = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`], status: ['exited'] } });
      for (const c of stopped) await docker.getContainer(c.Id).start();
    }
    await settled(`after ${operation}`);
  };

  try {
    [nextImage, brokenImage] = await Promise.all([ensureNginxVariant('next'), ensureNginxVariant('broken')]);
    await writeCompose(mark);
    await compose('up', '-d', '--scale', `${SERVICE}=${REPLICAS}`);
    const staticServers = options.staticServers === true ? (await addresses()).map((address, i) => ({ name: `static-${i + 1}`, address, port: 80 })) : [];
    haproxy = await startLocalHaproxy({
      purpose: 'bench',
      withDataplane: driver === 'dataplane' && options.staticServers !== true,
      retryOnStop: options.retryOnStop ?? true,
      manualServers: staticServers,
    });
    if (options.staticServers !== true) {
      sidecar = await startSidecarProcess(
        options.build,
        {
          ...haproxyEnv(haproxy, driver),
          HSC_DOCKER_ADDRESS_MODE: 'network',
          HSC_DOCKER_NETWORK: network,
          HSC_DOCKER_COMPOSE_SERVICE: SERVICE,
          HSC_DOCKER_COMPOSE_PROJECT: project,
          HSC_DOCKER_LABEL_PREFIX: `hsc-none-${project}`,
          HSC_DEFAULT_BACKEND: haproxy.backend,
          HSC_AUTOSCALE_ENABLED: 'false',
          HSC_DOCKER_DRAIN_ON_STOP: String(options.drainOnStop ?? true),
          HSC_AUTOSCALE_STATE_FILE: join(dir, 'state.json'),
          HSC_ADMIN_TOKEN: token,
          HSC_HTTP_PORT: String(await freePort()),
          HSC_LOG_LEVEL: 'debug',
        },
        join(options.workDir, `deploy-${driver}${options.variant === undefined ? '' : `-${options.variant.replace(/\W+/g, '-')}`}-sidecar.log`),
      );
    }
    await settled('start');

    const trials: Trial[] = [];
    const chosen = DEPLOY_OPERATIONS.filter(
      (o) => (options.operations === undefined || options.operations.includes(o)) && (options.staticServers !== true || STATIC_OPERATIONS.includes(o)),
    );
    const label = options.staticServers === true ? 'static servers, no sidecar' : options.variant === undefined ? driver : `${driver}, ${options.variant}`;
    for (let r = 1; r <= options.runs; r++) {
      for (const operation of chosen) {
        const timed = operation === 'rollout' || operation === 'rollback';
        // wrk has a fixed duration: the rollout's runs are long enough for it to end inside them.
        const seconds = timed ? 60 : options.seconds;
        const load = runWrk({
          url: `${haproxy.frontendUrl}/`,
          threads: 2,
          connections: options.connections,
          durationSeconds: seconds,
          maxRequests: 50_000_000,
          timeoutSeconds: 10,
        });
        await sleep(options.operationAtSeconds * 1000);
        const timing = await operations[operation]();
        const result: WrkRun = await load;
        const failed = result.non2xx3xx + result.socketErrors.connect + result.socketErrors.read + result.socketErrors.write + result.socketErrors.timeout;
        trials.push({
          run: r,
          operation,
          requests: result.requests,
          failed,
          // wrk counts status classes together: every non-2xx of the rollback is its canary's 500.
          answered500: operation === 'rollback' ? result.non2xx3xx : 0,
          non2xx: result.non2xx3xx,
          socketErrors: result.socketErrors,
          p99Ms: result.latency.p99 * 1000,
          ...(timing === undefined ? {} : { seconds: timing.seconds, outcome: timing.outcome }),
        });
        const errors = result.socketErrors;
        const breakdown = failed === 0 ? '' : ` (non-2xx ${result.non2xx3xx}, connect ${errors.connect}, read ${errors.read}, write ${errors.write}, timeout ${errors.timeout})`;
        log(`deploy (${label}) run ${r}: ${operation}: ${failed} failed${breakdown} of ${result.requests}, p99 ${(result.latency.p99 * 1000).toFixed(1)} ms${timing === undefined ? '' : `, ${timing.outcome} in ${timing.seconds.toFixed(1)} s`}`);
        await restore(operation);
      }
    }

    const figures: Figure[] = [];
    const baselineP99 = summarise(trials.filter((t) => t.operation === 'baseline').map((t) => t.p99Ms)).p50;
    for (const operation of chosen) {
      const of = trials.filter((t) => t.operation === operation);
      const failed = of.map((t) => t.failed - t.answered500);
      figures.push({
        key: `failed-${operation.replace(/ /g, '-')}`,
        metric: `${operation}: failed requests per run${operation === 'rollback' ? ' (beyond the canary\'s 500s)' : ''}`,
        unit: 'requests',
        ...spread(summarise(failed)),
        note: `of ${Math.round(summarise(of.map((t) => t.requests)).p50)} requests per run (p50)`,
      });
      figures.push({
        key: `p99-${operation.replace(/ /g, '-')}`,
        metric: `${operation}: p99 latency of the run`,
        unit: 'ms',
        ...spread(summarise(of.map((t) => t.p99Ms))),
        ...(operation === 'baseline' ? {} : { note: `${(summarise(of.map((t) => t.p99Ms)).p50 / baselineP99).toFixed(2)}× the baseline's p50` }),
      });
      if (operation === 'rollback') {
        figures.push({ key: 'canary-500s', metric: "rollback: requests the canary answered 500 before it was judged", unit: 'requests', ...spread(summarise(of.map((t) => t.answered500))) });
      }
      if (operation === 'rollout' || operation === 'rollback') {
        figures.push({
          key: `${operation}-seconds`,
          metric: `${operation}: time to ${operation === 'rollout' ? 'succeeded' : 'rolled-back'}`,
          unit: 's',
          ...spread(summarise(of.flatMap((t) => (t.seconds === undefined ? [] : [t.seconds])))),
          note: `outcomes: ${of.map((t) => t.outcome ?? '?').join(', ')}`,
        });
      }
    }
    const pieces =
      options.variant === undefined
        ? []
        : [
            `Variant: ${options.variant}: the sidecar's drain at Docker's kill event ${options.drainOnStop === false ? 'OFF (docker.drainOnStop=false)' : 'on'}; HAProxy's retry settings for stopping replicas ${options.retryOnStop === false ? 'OFF (no retry-on, timeout connect 2s)' : 'on (retry-on conn-failure empty-response, timeout connect 1s)'}.`,
          ];
    const notes = [
      ...pieces,
      options.staticServers === true
        ? `HAProxy ${haproxy.haproxyVersion} with the ${REPLICAS} replicas' addresses on ${network} written in haproxy.cfg by hand (check inter 1s fall 2 rise 1), no sidecar; a docker-compose (v1) service of ${base}.`
        : `HAProxy ${haproxy.haproxyVersion}, the ${driver === 'dataplane' ? 'Data Plane API' : 'runtime API'} driver; the sidecar as its own process, autoscaler off; ${REPLICAS} replicas of a docker-compose (v1) service of ${base}, reached at their addresses on ${network}.`,
      `wrk: 2 threads, ${options.connections} connections, closed loop on / through HAProxy on 127.0.0.1; ${options.seconds} s per plain operation, which starts ${options.operationAtSeconds} s in; 60 s for a rollout or a rollback; ${options.runs} run(s) of every operation.`,
      'Failed = wrk socket errors (connect, read, write, timeout) + non-2xx answers. p99 is over the whole wrk run, as in the table of issue 26.',
      `rollout: to ${nextImage}, one replica at a time, bake 2 s. rollback: to ${brokenImage} (answers 500, health check passes), one at a time, 10 % canary, bake 10 s; its 500s are counted apart.`,
    ];
    const id = options.staticServers === true ? 'deploy-static' : options.variant === undefined ? 'deploy' : `deploy-pieces: ${options.variant}`;
    return { id, driver, title: DEPLOY_TITLE, status: 'measured', figures, notes, data: { trials } };
  } finally {
    await sidecar?.stop();
    await compose('down', '--timeout', '5').catch(() => undefined);
    // The replicas a rollout started are no part of Compose's file: removed by their project label.
    const left = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await haproxy?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
