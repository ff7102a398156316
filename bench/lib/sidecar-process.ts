// The sidecar as its own process, compiled to JavaScript the way `npm run build` does, so that
// its RSS and CPU are the product's alone: not the benchmark's, and not tsx's (whose loader runs
// in an extra thread and transpiles at start-up).
import { execFile, spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { createWriteStream, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parsePrometheusText, type PromSample } from '../../sidecar/haproxy-metrics/exporter.js';
import { killProcessesWhere, runningChildren } from '../../devenv/children.js';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
/**
 * Build directories start with this, under the OS temporary directory (see sweepSidecarProcesses);
 * a test's builds start with `hsc-test-sidecar-`, so a benchmark's sweep never takes a running
 * test's sidecar, nor the other way round.
 */
const BUILD_PREFIX = 'hsc-bench-sidecar-';
const buildPrefix = (purpose: 'bench' | 'test' | 'soak'): string => (purpose === 'bench' ? BUILD_PREFIX : `hsc-${purpose}-sidecar-`);

export interface SidecarBuild {
  readonly dir: string;
  readonly entry: string;
  remove(): Promise<void>;
}

/** Compiles sidecar/ (tsconfig.build.json) into a private directory; a few seconds. */
export async function buildSidecar(purpose: 'bench' | 'test' | 'soak' = 'bench'): Promise<SidecarBuild> {
  const dir = await mkdtemp(join(tmpdir(), buildPrefix(purpose)));
  await promisify(execFile)(join(repoRoot, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.build.json', '--outDir', dir], { cwd: repoRoot });
  // main.js reads ../package.json (its version) and is an ES module; dependencies resolve
  // through the repository's node_modules.
  await copyFile(join(repoRoot, 'package.json'), join(dir, 'package.json'));
  await symlink(join(repoRoot, 'node_modules'), join(dir, 'node_modules'));
  return { dir, entry: join(dir, 'sidecar', 'main.js'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * The node flags of the sidecar's image: the Dockerfile's `CMD ["node", <flags>..., "dist/sidecar/main.js"]`.
 * Every sidecar process started here runs with them, so that what the benchmarks measure (its
 * memory above all: the flags size V8's young generation and its compiler tiers) is what the
 * image runs, from one place.
 */
export function imageNodeFlags(dockerfile: string = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8')): string[] {
  const line = dockerfile.split('\n').find((l) => l.startsWith('CMD ['));
  const command: unknown = line === undefined ? undefined : JSON.parse(line.slice('CMD '.length));
  if (!Array.isArray(command) || !command.every((part): part is string => typeof part === 'string') || command[0] !== 'node' || command.at(-1) !== 'dist/sidecar/main.js') {
    throw new Error('the Dockerfile has no CMD ["node", ..., "dist/sidecar/main.js"] line');
  }
  return command.slice(1, -1);
}

export interface SidecarProcess {
  readonly pid: number;
  readonly adminUrl: string;
  /** The sidecar's /metrics, parsed. */
  metrics(): Promise<PromSample[]>;
  /** Its JSON log lines so far. */
  logLines(): Promise<string[]>;
  /** An admin API call, with the bearer token of HSC_ADMIN_TOKEN; the status and the JSON body. */
  admin(method: 'GET' | 'POST' | 'PUT', path: string, body?: unknown, timeoutMs?: number): Promise<{ status: number; body: unknown }>;
  stop(): Promise<void>;
}

// The benchmark must not leave a sidecar behind when it dies (devenv/children.ts).
const started = runningChildren();

/**
 * Starts `node <image flags> <build>/sidecar/main.js` configured only by `env` (HSC_* variables of the
 * caller's environment are dropped, so a developer's settings cannot change a figure) and
 * waits for /healthz.
 */
export async function startSidecarProcess(build: SidecarBuild, env: Readonly<Record<string, string>>, logFile: string): Promise<SidecarProcess> {
  const port = env.HSC_HTTP_PORT;
  if (port === undefined || port === '0') throw new Error('give the sidecar a fixed HSC_HTTP_PORT, so the benchmark can reach it');
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HSC_')));
  const child = spawn(process.execPath, [...imageNodeFlags(), build.entry], { env: { ...inherited, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  started.add(child);
  const log = createWriteStream(logFile, { flags: 'a' });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  void exited.then(() => started.delete(child));
  const adminUrl = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => log.end(resolve));
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    const healthy = await fetch(`${adminUrl}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (healthy) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      const tail = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').slice(-10).join('\n');
      throw new Error(`the sidecar did not answer /healthz within 20 s\n${tail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  if (child.pid === undefined) throw new Error('the sidecar process has no pid');
  return {
    pid: child.pid,
    adminUrl,
    metrics: async () => parsePrometheusText(await (await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(5_000) })).text()),
    logLines: async () => (await readFile(logFile, 'utf8')).split('\n').filter((line) => line.trim() !== ''),
    admin: async (method, path, body, timeoutMs = 10_000) => {
      const response = await fetch(`${adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${env.HSC_ADMIN_TOKEN ?? ''}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // Not JSON: the text itself is the body.
      }
      return { status: response.status, body: parsed };
    },
    stop,
  };
}

/** Sum of every series of `name` whose labels include `match`. */
export function metricSum(samples: readonly PromSample[], name: string, match: Readonly<Record<string, string>> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

/**
 * Kills sidecar processes a crashed benchmark left running: only node processes whose command
 * line is a sidecar build of ours (the build directory's prefix), found by their pid.
 */
export function sweepSidecarProcesses(): number {
  const marker = join(tmpdir(), BUILD_PREFIX);
  return killProcessesWhere((cmdline) => cmdline.includes(marker) && cmdline.includes('/sidecar/main.js'));
}
