// The stack's real application for the capacity scenario: stack/compose.yaml's `db1` (MariaDB,
// hsc/mariadb:local) and `nginx` (nginx + PHP-FPM, hsc/app:local) services, started by Compose
// under a project of the benchmark's own (hsc-bench-capacity-<tag>) with secrets generated for the
// run, exactly as stack/up.sh starts them, nothing else of the stack. An override file only adds
// an owner label (hsc.owner=bench-capacity): not `bench`, so that another bench run starting or
// ending on this shared machine (its sweep removes every hsc.owner=bench container) does not take
// this run's stack; sweepCapacityLeftovers(), at the start of every capacity run, removes a
// crashed run's containers, networks and volumes by their project's prefix.
//
// Also here: what the scenario reads from that stack: the replicas' addresses, each container's
// CPU time from its cgroup (cpuacct, v1 or v2), the database's status counters, and a timing of
// the application's database work run inside a replica with PHP itself.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { docker, OWNER_LABEL } from '../../devenv/containers.js';
import { COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../sidecar/docker/labels.js';

const run = promisify(execFile);
const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const COMPOSE_FILE = join(repoRoot, 'stack', 'compose.yaml');
/** Every Compose project, network, volume and temporary directory of this scenario starts with this. */
export const CAPACITY_PREFIX = 'hsc-bench-capacity-';
/** The owner label of the scenario's containers (see the top of this file). */
export const CAPACITY_OWNER = 'bench-capacity';
/** The services of stack/compose.yaml the scenario starts. */
export const APP_SERVICE = 'nginx';
export const DB_SERVICE = 'db1';
/** Every secret stack/compose.yaml declares (stack/up.sh generates the same). */
const SECRET_NAMES = [
  'db_admin_password',
  'db_replication_password',
  'db_backup_password',
  'db_app_password',
  'db_exporter_password',
  'dataplane_password',
  'haproxy_stats_password',
  'haproxy_cookie_key',
  'sidecar_admin_token',
  'grafana_admin_password',
] as const;

/** The images stack/compose.yaml runs for these services (devenv/setup.sh builds them). */
export const STACK_IMAGES = ['hsc/app:local', 'hsc/mariadb:local'] as const;

/** The images of STACK_IMAGES this Docker host does not have. */
export async function missingImages(): Promise<string[]> {
  const present = await Promise.all(STACK_IMAGES.map((image) => docker.getImage(image).inspect().then(() => true, () => false)));
  return STACK_IMAGES.filter((_, i) => present[i] !== true);
}

export interface AppReplica {
  readonly id: string;
  readonly name: string;
  /** Its address on the project's `app` network (what the sidecar gives HAProxy). */
  readonly ip: string;
}

export interface AppStack {
  readonly project: string;
  /** The Docker network HAProxy reaches the replicas on. */
  readonly appNetwork: string;
  /** Starts replicas until there are `replicas` (never fewer). */
  scaleTo(replicas: number): Promise<void>;
  replicas(): Promise<AppReplica[]>;
  dbContainerId(): Promise<string>;
  /** `docker exec` in a container; stdout. */
  exec(containerId: string, args: readonly string[], timeoutMs?: number): Promise<string>;
  down(): Promise<void>;
}

let composeCommand: readonly string[] | undefined;
/** Compose v2 where installed, else docker-compose (1.29 on Debian 12), as stack/lib.sh chooses. */
async function compose(): Promise<readonly string[]> {
  if (composeCommand !== undefined) return composeCommand;
  const v2 = await run('docker', ['compose', 'version'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
  composeCommand = v2 ? ['docker', 'compose'] : ['docker-compose'];
  return composeCommand;
}

/** The environment of a Compose call: the caller's, without any HSC_* setting of a developer. */
function composeEnv(project: string, secretsDir: string): NodeJS.ProcessEnv {
  const inherited = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('HSC_') && key !== 'COMPOSE_PROJECT_NAME'));
  return { ...inherited, COMPOSE_PROJECT_NAME: project, HSC_SECRETS_DIR: secretsDir };
}

export async function startAppStack(replicas: number): Promise<AppStack> {
  const tag = randomBytes(3).toString('hex');
  const project = `${CAPACITY_PREFIX}${tag}`;
  const dir = await mkdtemp(join(tmpdir(), `${CAPACITY_PREFIX}${tag}-`));
  for (const name of SECRET_NAMES) {
    // Letters and digits, as stack/up.sh makes them.
    await writeFile(join(dir, name), randomBytes(24).toString('base64').replace(/[^A-Za-z0-9]/g, '').slice(0, 32), { mode: 0o644 });
  }
  const override = join(dir, 'owner.yaml');
  await writeFile(
    override,
    `# The capacity scenario's owner label only (bench/lib/capacity-stack.ts).\nservices:\n  ${DB_SERVICE}:\n    labels:\n      ${OWNER_LABEL}: ${CAPACITY_OWNER}\n  ${APP_SERVICE}:\n    labels:\n      ${OWNER_LABEL}: ${CAPACITY_OWNER}\n`,
  );
  const command = await compose();
  const composeRun = async (...args: string[]): Promise<string> => {
    const [bin = 'docker-compose', ...pre] = command;
    const { stdout } = await run(bin, [...pre, '-p', project, '-f', COMPOSE_FILE, '-f', override, ...args], {
      env: composeEnv(project, dir),
      timeout: 180_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return stdout;
  };
  const containersOf = async (service: string): Promise<Array<{ Id: string; Names: string[] }>> =>
    docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`, `${COMPOSE_SERVICE}=${service}`] } });
  const appNetwork = `${project}_app`;
  const down = async (): Promise<void> => {
    await composeRun('down', '--volumes', '--remove-orphans', '--timeout', '5').catch(() => undefined);
    await removeProject(project);
    await rm(dir, { recursive: true, force: true });
  };
  const stack: AppStack = {
    project,
    appNetwork,
    async scaleTo(count) {
      // --no-recreate: replicas already running (and their CPU limits, set by the scenario) stay.
      await composeRun('up', '-d', '--no-build', '--no-recreate', '--scale', `${APP_SERVICE}=${count}`, DB_SERVICE, APP_SERVICE);
      await waitHealthy(project, count, 90_000);
    },
    async replicas() {
      const list = await containersOf(APP_SERVICE);
      const infos = await Promise.all(list.map((c) => docker.getContainer(c.Id).inspect()));
      return infos
        .map((i) => ({ id: i.Id, name: i.Name.replace(/^\//, ''), ip: i.NetworkSettings.Networks[appNetwork]?.IPAddress ?? '' }))
        .sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
    },
    async dbContainerId() {
      const [db] = await containersOf(DB_SERVICE);
      if (db === undefined) throw new Error(`no ${DB_SERVICE} container in ${project}`);
      return db.Id;
    },
    async exec(containerId, args, timeoutMs = 30_000) {
      const { stdout } = await run('docker', ['exec', containerId, ...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    },
    down,
  };
  try {
    await stack.scaleTo(replicas);
    return stack;
  } catch (error) {
    await down();
    throw error;
  }
}

/** Waits until the project's database and `replicas` application containers report healthy. */
async function waitHealthy(project: string, replicas: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const list = await docker.listContainers({ filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
    const healthy = (service: string): number => list.filter((c) => c.Labels[COMPOSE_SERVICE] === service && /\(healthy\)/.test(c.Status)).length;
    if (healthy(DB_SERVICE) >= 1 && healthy(APP_SERVICE) >= replicas) return;
    if (Date.now() > deadline) {
      throw new Error(`${project}: not healthy within ${timeoutMs} ms (${list.map((c) => `${c.Names[0] ?? c.Id}: ${c.Status}`).join(', ')})`);
    }
    await sleep(250);
  }
}

async function removeProject(project: string): Promise<void> {
  const containers = await docker.listContainers({ all: true, filters: { label: [`${COMPOSE_PROJECT}=${project}`] } });
  await Promise.all(containers.map((c) => docker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const networks = await docker.listNetworks();
  await Promise.all(networks.filter((n) => n.Name.startsWith(`${project}_`)).map((n) => docker.getNetwork(n.Id).remove().catch(() => undefined)));
  const volumes = (await docker.listVolumes()).Volumes ?? [];
  await Promise.all(volumes.filter((v) => v.Name.startsWith(`${project}_`)).map((v) => docker.getVolume(v.Name).remove().catch(() => undefined)));
}

/** Removes what a crashed capacity run left: its Compose projects' containers, networks, volumes and secrets. */
export async function sweepCapacityLeftovers(): Promise<number> {
  const containers = await docker.listContainers({ all: true, filters: { label: [COMPOSE_PROJECT] } });
  const projects = new Set(containers.map((c) => c.Labels[COMPOSE_PROJECT] ?? '').filter((p) => p.startsWith(CAPACITY_PREFIX)));
  for (const network of await docker.listNetworks()) {
    if (network.Name.startsWith(CAPACITY_PREFIX)) projects.add(network.Name.slice(0, network.Name.lastIndexOf('_')));
  }
  for (const project of projects) await removeProject(project);
  return projects.size;
}

/** Limits (or, with undefined, frees) a container's CPU: a CFS quota of `cpus` per 10 ms period. */
export async function limitCpu(containerId: string, cpus: number | undefined): Promise<void> {
  // A 10 ms period (Docker's --cpus uses 100 ms): a replica that used up its quota waits at most
  // the rest of 10 ms, not of 100 ms, so its latency shows a slower CPU rather than stalls.
  const period = 10_000;
  await docker.getContainer(containerId).update(cpus === undefined ? { CpuQuota: -1 } : { CpuPeriod: period, CpuQuota: Math.round(cpus * period) });
}

/** The cgroup file with a container's CPU time, cgroup v1 (cpuacct, ns) or v2 (cpu.stat usage_usec). */
function cgroupCpuFile(containerId: string): { readonly path: string; readonly v2: boolean } | undefined {
  const candidates = [
    { path: `/sys/fs/cgroup/cpuacct/docker/${containerId}/cpuacct.usage`, v2: false },
    { path: `/sys/fs/cgroup/cpu,cpuacct/docker/${containerId}/cpuacct.usage`, v2: false },
    { path: `/sys/fs/cgroup/system.slice/docker-${containerId}.scope/cpu.stat`, v2: true },
    { path: `/sys/fs/cgroup/docker/${containerId}/cpu.stat`, v2: true },
  ];
  return candidates.find((c) => existsSync(c.path));
}

/** CPU seconds a container has used since it started, from its cgroup; undefined where none is readable. */
export function containerCpuSeconds(containerId: string): number | undefined {
  const file = cgroupCpuFile(containerId);
  if (file === undefined) return undefined;
  try {
    const text = readFileSync(file.path, 'utf8');
    return file.v2 ? parseCpuStatUsage(text) : Number(text.trim()) / 1e9;
  } catch {
    return undefined;
  }
}

/** usage_usec of a cgroup v2 cpu.stat, in seconds. */
export function parseCpuStatUsage(text: string): number {
  const match = /^usage_usec (\d+)$/m.exec(text);
  if (match?.[1] === undefined) throw new Error('cpu.stat has no usage_usec');
  return Number(match[1]) / 1e6;
}

/** The machine's busy and total time from /proc/stat's first line (clock ticks). */
export function parseProcStatTotals(text: string): { readonly busy: number; readonly total: number } {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (line === undefined) throw new Error('/proc/stat has no cpu line');
  // user nice system idle iowait irq softirq steal (guest and guest_nice are inside user and nice)
  const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = fields.reduce((sum, v) => sum + v, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

export function machineCpu(): { readonly busy: number; readonly total: number } {
  return parseProcStatTotals(readFileSync('/proc/stat', 'utf8'));
}

/** `SHOW GLOBAL STATUS` for the named counters, as numbers. */
export async function dbStatus(stack: AppStack, names: readonly string[]): Promise<Record<string, number>> {
  const db = await stack.dbContainerId();
  // Root logs in over the container's unix socket (unix_socket authentication, as Debian sets it up).
  const out = await stack.exec(db, ['mariadb', '-N', '-B', '-e', `SHOW GLOBAL STATUS WHERE Variable_name IN (${names.map((n) => `'${n}'`).join(',')})`]);
  return Object.fromEntries(
    out
      .trim()
      .split('\n')
      .map((line) => line.split('\t'))
      .filter((cells) => cells.length === 2)
      .map(([k, v]) => [k ?? '', Number(v)]),
  );
}

/** Adds `rows` rows to the application's table (which the application itself created) in one statement. */
export async function seedRows(stack: AppStack, rows: number): Promise<number> {
  const db = await stack.dbContainerId();
  const sql = `INSERT INTO items (k, served_by) SELECT CONCAT('capacity-', seq), 'bench' FROM seq_1_to_${rows}; SELECT COUNT(*) FROM items;`;
  const out = await stack.exec(db, ['mariadb', '-N', '-B', 'app', '-e', sql]);
  return Number(out.trim().split('\n').pop());
}

export interface DbTiming {
  readonly iterations: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
}

// What index.php's read_summary() does against the database, timed with hrtime in a loop inside a
// replica: mysqli_init, a persistent connect ("p:", so the connection is reused and reset with a
// COM_CHANGE_USER, as a PHP-FPM worker's next request does), the same SELECT, fetch.
const DB_TIMING_PHP = `
$pw = rtrim((string) file_get_contents('/run/hsc-app/db_password'), "\\r\\n");
$host = getenv('HSC_DB_WRITER_HOST') ?: 'db1';
$n = (int) ($argv[1] ?? 200);
$t = [];
for ($i = 0; $i < $n + 10; $i++) {
  $s = hrtime(true);
  $db = mysqli_init();
  $db->options(MYSQLI_OPT_CONNECT_TIMEOUT, 2);
  $db->real_connect('p:' . $host, 'app', $pw, 'app', 3306);
  $row = $db->query('SELECT COUNT(*) AS n, COALESCE(MAX(id), 0) AS last_id FROM items')->fetch_assoc();
  $db->close();
  if ($i >= 10) $t[] = (hrtime(true) - $s) / 1e6;
}
sort($t);
echo json_encode(['n' => count($t), 'mean' => array_sum($t) / count($t), 'p50' => $t[(int) floor(0.5 * (count($t) - 1))], 'p99' => $t[(int) ceil(0.99 * count($t)) - 1]]), "\\n";
`;

/** The application's database work per request, timed inside `replicaId` (after 10 unmeasured rounds). */
export async function timeDbWork(stack: AppStack, replicaId: string, iterations: number): Promise<DbTiming> {
  const out = await stack.exec(replicaId, ['php', '-r', DB_TIMING_PHP, String(iterations)], 60_000);
  const parsed = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { n?: unknown; mean?: unknown; p50?: unknown; p99?: unknown };
  const num = (v: unknown): number => (typeof v === 'number' ? v : NaN);
  return { iterations: num(parsed.n), meanMs: num(parsed.mean), p50Ms: num(parsed.p50), p99Ms: num(parsed.p99) };
}
