// The data tier on real MariaDB in containers (stack/images/mariadb, stack/images/app):
// GTID replication with its metrics, point-in-time recovery, backups that fail verification
// never being restored, and a failover under write load that loses no acknowledged write.
//
// One topology serves the whole file, built in beforeAll on a private Docker network:
//   db-primary (server 1) ── semi-sync GTID replication ──> db-replica (server 2, read-only)
//   app (nginx + PHP-FPM), publishing 127.0.0.1:<port>, writes to the writer and reads from the
//     reader named by the topology file on a shared volume
//   exporter (mysqld exporter for db-replica), publishing 127.0.0.1:<port>
//   db-restore-a, db-restore-c: empty servers that restores go into
// The commands under test (hsc-backup, hsc-restore, hsc-failover, hsc-topology) run as
// one-shot containers of the MariaDB image with the backup volume, as an operator runs them.
// The failover test kills the primary, so only tests that do not need it follow. Credentials
// are generated per run.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { docker, OWNER_LABEL } from '../../devenv/containers.js';
import { eventually } from '../support/http.js';

const TEST_PREFIX = 'hsc-test-datatier-';

function pinnedImage(key: 'MARIADB_IMAGE' | 'APP_IMAGE'): string {
  const text = readFileSync(new URL('../../devenv/versions.env', import.meta.url), 'utf8');
  const value = new RegExp(`^${key}=(\\S+)$`, 'm').exec(text)?.[1];
  if (value === undefined) throw new Error(`${key} is not set in devenv/versions.env`);
  return value;
}
const MARIADB_IMAGE = pinnedImage('MARIADB_IMAGE');
const APP_IMAGE = pinnedImage('APP_IMAGE');
const SECRETS = ['db_admin_password', 'db_replication_password', 'db_backup_password', 'db_app_password', 'db_exporter_password'];

interface Output {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Splits Docker's multiplexed stream format (8-byte frame headers) into stdout and stderr. */
function demux(buffer: Buffer): { stdout: string; stderr: string } {
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const stream = buffer[offset];
    const size = buffer.readUInt32BE(offset + 4);
    const payload = buffer.subarray(offset + 8, offset + 8 + size);
    (stream === 2 ? err : out).push(payload);
    offset += 8 + size;
  }
  return { stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Everything the file creates, removed in afterAll whatever happened. */
const created = { containers: [] as Docker.Container[], networks: [] as string[], volumes: [] as string[], dirs: [] as string[] };

interface Topology {
  readonly network: string;
  readonly secretsDir: string;
  readonly backupVolume: string;
  readonly topologyVolume: string;
  readonly primary: Docker.Container;
  readonly replica: Docker.Container;
  readonly restoreA: Docker.Container;
  readonly restoreC: Docker.Container;
  readonly appUrl: string;
  readonly exporterUrl: string;
}
let env: Topology | undefined;
function topology(): Topology {
  if (env === undefined) throw new Error('the data tier did not start (see beforeAll)');
  return env;
}

interface ContainerSpec {
  readonly name: string;
  readonly image: string;
  readonly cmd?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  readonly binds?: readonly string[];
  readonly alias?: string;
  readonly publish?: string;
  readonly healthcheck?: boolean;
}

async function createContainer(network: string, spec: ContainerSpec): Promise<Docker.Container> {
  const container = await docker.createContainer({
    name: spec.name,
    Image: spec.image,
    ...(spec.cmd === undefined ? {} : { Cmd: [...spec.cmd] }),
    Env: Object.entries(spec.env ?? {}).map(([key, value]) => `${key}=${value}`),
    Labels: { [OWNER_LABEL]: 'test' },
    ...(spec.healthcheck === false ? { Healthcheck: { Test: ['NONE'] } } : {}),
    ...(spec.publish === undefined ? {} : { ExposedPorts: { [spec.publish]: {} } }),
    HostConfig: {
      NetworkMode: network,
      Binds: [...(spec.binds ?? [])],
      ...(spec.publish === undefined ? {} : { PortBindings: { [spec.publish]: [{ HostIp: '127.0.0.1', HostPort: '' }] } }),
    },
    NetworkingConfig: { EndpointsConfig: { [network]: spec.alias === undefined ? {} : { Aliases: [spec.alias] } } },
  });
  created.containers.push(container);
  return container;
}

/** A container's output (its last 40 lines, or all of it). */
async function logsOf(container: Docker.Container, tail: number | 'all' = 40): Promise<string> {
  const options = { stdout: true, stderr: true, ...(tail === 'all' ? {} : { tail }) };
  const raw = await container.logs(options).catch(() => Buffer.alloc(0));
  const { stdout, stderr } = demux(raw);
  return stdout + stderr;
}

async function waitHealthy(container: Docker.Container, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const info = await container.inspect();
    if (info.State.Health?.Status === 'healthy') return;
    if (!info.State.Running || Date.now() > deadline) {
      throw new Error(`${info.Name} is not healthy (${info.State.Status}):\n${await logsOf(container)}`);
    }
    await sleep(250);
  }
}

async function publishedUrl(container: Docker.Container, port: string): Promise<string> {
  const info = await container.inspect();
  const hostPort = info.NetworkSettings.Ports[port]?.[0]?.HostPort;
  if (hostPort === undefined) throw new Error(`${info.Name} publishes no ${port}`);
  return `http://127.0.0.1:${hostPort}`;
}

/** Runs a command inside a running container (no shell). */
async function execIn(container: Docker.Container, cmd: readonly string[], timeoutMs = 30_000): Promise<Output> {
  const exec = await container.exec({ Cmd: [...cmd], AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  const chunks: Buffer[] = [];
  stream.on('data', (chunk: Buffer) => chunks.push(chunk));
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      stream.on('end', () => resolve());
      stream.on('error', reject);
    }),
    timeoutMs,
    cmd.join(' '),
  );
  const { ExitCode } = await exec.inspect();
  return { exitCode: ExitCode ?? -1, ...demux(Buffer.concat(chunks)) };
}

/** SQL as root over the server's unix socket; rows of tab-separated columns. */
async function sql(container: Docker.Container, statement: string): Promise<string[][]> {
  const result = await execIn(container, ['mariadb', '--batch', '--skip-column-names', '--execute', statement]);
  if (result.exitCode !== 0) throw new Error(`SQL failed (${result.exitCode}): ${statement}\n${result.stderr}`);
  return result.stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => line.split('\t'));
}

async function column(container: Docker.Container, statement: string): Promise<string[]> {
  return (await sql(container, statement)).map((row) => row[0] ?? '');
}

/** Everything the commands under test printed, checked for leaked credentials at the end. */
const transcripts: string[] = [];

/**
 * Runs one of the image's commands as a one-shot container, as an operator would, with the
 * backup volume (or another one) at /backups and the topology volume at /run/hsc-db.
 */
async function tool(
  cmd: readonly string[],
  extraEnv: Readonly<Record<string, string>> = {},
  backupVolume = topology().backupVolume,
): Promise<Output> {
  const t = topology();
  const container = await createContainer(t.network, {
    name: `${TEST_PREFIX}tool-${randomBytes(4).toString('hex')}`,
    image: MARIADB_IMAGE,
    cmd,
    env: { HSC_BACKUP_SOURCE_HOST: 'db-primary', ...extraEnv },
    binds: [`${t.secretsDir}:/run/secrets:ro`, `${backupVolume}:/backups`, `${t.topologyVolume}:/run/hsc-db`],
    healthcheck: false,
  });
  try {
    await container.start();
    const result: unknown = await withTimeout(container.wait(), 90_000, cmd.join(' '));
    const exitCode = typeof result === 'object' && result !== null && 'StatusCode' in result ? Number(result.StatusCode) : -1;
    const output = { exitCode, ...demux(await container.logs({ stdout: true, stderr: true })) };
    transcripts.push(output.stdout + output.stderr);
    return output;
  } finally {
    await container.remove({ force: true, v: true }).catch(() => undefined);
  }
}

function describeOutput(output: Output): string {
  return `exit ${output.exitCode}\n--- stdout\n${output.stdout}--- stderr\n${output.stderr}`;
}

async function expectTool(cmd: readonly string[], extraEnv: Readonly<Record<string, string>> = {}, backupVolume?: string): Promise<Output> {
  const output = await tool(cmd, extraEnv, backupVolume);
  expect(output.exitCode, describeOutput(output)).toBe(0);
  return output;
}

/** Inserts each key as its own transaction (its own binary-log event group). */
async function insertKeys(container: Docker.Container, table: string, keys: readonly string[]): Promise<void> {
  await sql(container, keys.map((key) => `INSERT INTO ${table} (k) VALUES ('${key}');`).join(' '));
}

/**
 * A restore target time between two batches of writes: binary-log events carry whole seconds,
 * so the time is the next whole second after the writes before it, and the caller's next
 * writes start after it. Returns unix seconds.
 */
async function markTime(): Promise<number> {
  const t = Math.floor(Date.now() / 1000) + 1;
  while (Date.now() < t * 1000 + 300) await sleep(50);
  return t;
}

function keys(prefix: string, from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `${prefix}${from + i}`);
}

/** The backup id from hsc-backup's "backup <id> verified" line. */
function backupId(output: Output): string {
  const id = /backup (\S+) verified/.exec(output.stderr)?.[1];
  if (id === undefined) throw new Error(`no verified backup in the output:\n${describeOutput(output)}`);
  return id;
}

/** One scrape of an exporter, by metric name (the first series of each); empty when it fails. */
async function metrics(url: string): Promise<Map<string, number>> {
  const text = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) })
    .then((response) => response.text())
    .catch(() => '');
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    const match = /^([a-z_]+)(?:\{[^}]*\})? (\S+)$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined && !values.has(match[1])) values.set(match[1], Number(match[2]));
  }
  return values;
}

/**
 * Networks and volumes a crashed run of this file left (the suite's global setup removes the
 * containers, which must go first). Skipped with HSC_TEST_SWEEP=0, like the global sweep.
 */
async function sweepLeftovers(): Promise<void> {
  if (process.env.HSC_TEST_SWEEP === '0') return;
  const networks = await docker.listNetworks({ filters: { name: [TEST_PREFIX] } });
  for (const network of networks.filter((n) => n.Name.startsWith(TEST_PREFIX))) {
    await docker.getNetwork(network.Id).remove().catch(() => undefined);
  }
  const { Volumes: volumes } = await docker.listVolumes({ filters: { name: [TEST_PREFIX] } });
  for (const volume of volumes.filter((v) => v.Name.startsWith(TEST_PREFIX))) {
    await docker.getVolume(volume.Name).remove().catch(() => undefined);
  }
}

beforeAll(async () => {
  await sweepLeftovers();
  for (const image of [MARIADB_IMAGE, APP_IMAGE]) {
    await docker
      .getImage(image)
      .inspect()
      .catch(() => {
        throw new Error(`image ${image} is missing: run bash devenv/setup.sh`);
      });
  }
  const run = randomBytes(4).toString('hex');
  const name = (what: string): string => `${TEST_PREFIX}${run}-${what}`;

  const secretsDir = await mkdtemp(join(tmpdir(), TEST_PREFIX));
  created.dirs.push(secretsDir);
  for (const secret of SECRETS) {
    const file = join(secretsDir, secret);
    await writeFile(file, `${randomBytes(18).toString('base64url')}\n`, { mode: 0o600 });
    await chmod(file, 0o600);
  }

  const network = name('net');
  await docker.createNetwork({ Name: network, Driver: 'bridge', Labels: { [OWNER_LABEL]: 'test' } });
  created.networks.push(network);
  const backupVolume = name('backups');
  const topologyVolume = name('topology');
  for (const volume of [backupVolume, topologyVolume]) {
    await docker.createVolume({ Name: volume, Labels: { [OWNER_LABEL]: 'test' } });
    created.volumes.push(volume);
  }

  const secrets = `${secretsDir}:/run/secrets:ro`;
  const server = (what: string, alias: string, serverId: number, extra: Record<string, string> = {}, binds: string[] = []): Promise<Docker.Container> =>
    createContainer(network, {
      name: name(what),
      image: MARIADB_IMAGE,
      alias,
      env: { HSC_DB_SERVER_ID: String(serverId), HSC_DB_SELF_HOST: alias, ...extra },
      binds: [secrets, ...binds],
    });
  const primary = await server('primary', 'db-primary', 1, { HSC_DB_TOPOLOGY_FILE: '/run/hsc-db/topology.json' }, [`${topologyVolume}:/run/hsc-db:ro`]);
  const replica = await server('replica', 'db-replica', 2, { HSC_DB_ROLE: 'replica', HSC_DB_PRIMARY_HOST: 'db-primary' });
  const restoreA = await server('restore-a', 'db-restore-a', 11);
  const restoreC = await server('restore-c', 'db-restore-c', 12);
  const app = await createContainer(network, {
    name: name('app'),
    image: APP_IMAGE,
    alias: 'app',
    binds: [`${join(secretsDir, 'db_app_password')}:/run/secrets/db_app_password:ro`, `${topologyVolume}:/run/hsc-db:ro`],
    publish: '80/tcp',
  });
  const exporter = await createContainer(network, {
    name: name('exporter'),
    image: MARIADB_IMAGE,
    cmd: ['hsc-mysqld-exporter'],
    env: { HSC_EXPORTER_DB_HOST: 'db-replica' },
    binds: [secrets],
    publish: '9104/tcp',
    healthcheck: false,
  });
  // The replica waits for its primary by itself (bounded), so everything starts at once.
  const servers = [primary, replica, restoreA, restoreC];
  await Promise.all([...servers, app, exporter].map((c) => c.start()));
  env = {
    network,
    secretsDir,
    backupVolume,
    topologyVolume,
    primary,
    replica,
    restoreA,
    restoreC,
    appUrl: await publishedUrl(app, '80/tcp'),
    exporterUrl: await publishedUrl(exporter, '9104/tcp'),
  };
  await expectTool(['hsc-topology', 'set', '--writer', 'db-primary', '--reader', 'db-replica', '--reason', 'initial']);
  await Promise.all([...servers, app].map((c) => waitHealthy(c)));
  // The primary acknowledges commits only once the replica has them (semi-sync).
  const semiSync = await eventually(
    async () => (await sql(primary, "SHOW GLOBAL STATUS LIKE 'Rpl_semi_sync_master_clients'"))[0]?.[1] === '1',
    30_000,
    250,
  );
  expect(semiSync, 'the replica never connected as a semi-synchronous replica').toBe(true);
});

afterAll(async () => {
  await Promise.all(created.containers.map((c) => c.remove({ force: true, v: true }).catch(() => undefined)));
  for (const network of created.networks) await docker.getNetwork(network).remove().catch(() => undefined);
  for (const volume of created.volumes) await docker.getVolume(volume).remove().catch(() => undefined);
  for (const dir of created.dirs) await rm(dir, { recursive: true, force: true });
});

describe('data tier on MariaDB', () => {
  it('replicates by GTID to a read-only replica and exports its replication state', async () => {
    const { primary, replica, exporterUrl } = topology();
    await sql(primary, 'CREATE TABLE app.repl (k VARCHAR(32) PRIMARY KEY)');
    await insertKeys(primary, 'app.repl', ['r1', 'r2']);
    // Semi-sync means the replica has received a commit, not yet applied it.
    const applied = await eventually(async () => (await column(replica, 'SELECT COUNT(*) FROM app.repl'))[0] === '2', 10_000, 100);
    expect(applied).toBe(true);
    expect(await column(replica, 'SELECT k FROM app.repl ORDER BY k')).toEqual(['r1', 'r2']);
    expect(await sql(replica, 'SELECT @@read_only, @@server_id')).toEqual([['1', '2']]);
    const status = await sql(replica, 'SELECT @@gtid_slave_pos, @@gtid_binlog_pos');
    // log_slave_updates: the replica's own binary log carries the primary's transactions.
    expect(status[0]?.[0]).toMatch(/^0-1-\d+$/);
    expect(status[0]?.[1]).toBe(status[0]?.[0]);

    // The names the alert rules use (stack/prometheus/rules/data-tier.yml), from the real exporter.
    const running = await eventually(async () => (await metrics(exporterUrl)).get('mysql_slave_status_slave_sql_running') === 1, 20_000, 250);
    expect(running).toBe(true);
    const healthy = await metrics(exporterUrl);
    expect(healthy.get('mysql_up')).toBe(1);
    expect(healthy.get('mysql_slave_status_slave_io_running')).toBe(1);
    expect(healthy.get('mysql_slave_status_seconds_behind_master')).toBeLessThanOrEqual(5);
    expect(healthy.get('mysql_global_variables_read_only')).toBe(1);
    expect(healthy.has('mysql_global_status_rpl_semi_sync_master_clients')).toBe(true);
    await sql(replica, 'STOP SLAVE SQL_THREAD');
    try {
      const stopped = await eventually(async () => (await metrics(exporterUrl)).get('mysql_slave_status_slave_sql_running') === 0, 20_000, 250);
      expect(stopped, 'the exporter should report the stopped SQL thread').toBe(true);
    } finally {
      await sql(replica, 'START SLAVE SQL_THREAD');
    }
  });

  it('restores to a point in time: exactly the rows written before it', async () => {
    const { primary, restoreA } = topology();
    await sql(primary, 'CREATE TABLE app.pitr (k VARCHAR(32) PRIMARY KEY)');
    await insertKeys(primary, 'app.pitr', keys('a', 1, 5));
    const full = await expectTool(['hsc-backup', 'full']);
    const backup = backupId(full);
    await insertKeys(primary, 'app.pitr', keys('b', 1, 5));
    const target = await markTime();
    await insertKeys(primary, 'app.pitr', keys('c', 1, 5));
    // Changes after the target time must not appear either.
    await sql(primary, "DELETE FROM app.pitr WHERE k = 'a1'; UPDATE app.pitr SET k = 'b5x' WHERE k = 'b5'");
    // The binary logs written since the backup go to the archive (the job does this every 5 min).
    await expectTool(['hsc-backup', 'binlogs']);

    // Before the first backup there is nothing to start from.
    const tooEarly = await tool(['hsc-restore', '--to', `@${target - 3600}`, '--target-host', 'db-restore-a']);
    expect(tooEarly.exitCode, describeOutput(tooEarly)).toBe(3);
    expect(tooEarly.stderr).toContain('no full backup completed at or before');

    const restored = await expectTool(['hsc-restore', '--to', `@${target}`, '--target-host', 'db-restore-a']);
    expect(restored.stdout).toContain(`RESTORED backup ${backup}`);
    expect(await column(restoreA, 'SELECT k FROM app.pitr ORDER BY k')).toEqual([...keys('a', 1, 5), ...keys('b', 1, 5)]);
    // The restored rows are the new server's starting point, not transactions of its own.
    expect(await column(restoreA, "SELECT CONCAT('[', @@gtid_binlog_pos, ']')")).toEqual(['[]']);

    // A server that already holds data is not overwritten without --force.
    const again = await tool(['hsc-restore', '--to', `@${target}`, '--target-host', 'db-restore-a']);
    expect(again.exitCode, describeOutput(again)).toBe(5);
  });

  it('detects corrupted, truncated and unfinished backups, reports them and never restores from them', async () => {
    const { primary, restoreC } = topology();
    await sql(primary, 'CREATE TABLE app.verify (k VARCHAR(32) PRIMARY KEY)');
    const ids: string[] = [];
    for (let round = 0; round < 4; round += 1) {
      await insertKeys(primary, 'app.verify', keys(`v${round}-`, 1, 3));
      ids.push(backupId(await expectTool(['hsc-backup', 'full'])));
    }
    const [good, truncated, corrupted, unfinished] = ids;
    if (good === undefined || truncated === undefined || corrupted === undefined || unfinished === undefined) throw new Error('four backups expected');
    const target = await markTime();
    await insertKeys(primary, 'app.verify', ['late']);
    await expectTool(['hsc-backup', 'binlogs']);

    // Damage three of them the ways storage and crashes do. The unfinished one stays
    // self-consistent (its manifest matches the shortened file), as a dump cut short by a crash
    // of the dump itself would be, so only the completion marker gives it away.
    await expectTool([
      'bash',
      '-euo',
      'pipefail',
      '-c',
      `cd /backups/full
       size=$(stat -c %s "${truncated}/dump.sql.gz")
       truncate -s $((size / 2)) "${truncated}/dump.sql.gz"
       size=$(stat -c %s "${corrupted}/dump.sql.gz")
       printf 'garbage!' | dd of="${corrupted}/dump.sql.gz" bs=1 seek=$((size / 2)) conv=notrunc status=none
       gzip -dc "${unfinished}/dump.sql.gz" | head -n -3 | gzip > /tmp/cut.gz
       mv /tmp/cut.gz "${unfinished}/dump.sql.gz"
       jq --argjson size "$(stat -c %s "${unfinished}/dump.sql.gz")" \
          --arg sha "$(sha256sum "${unfinished}/dump.sql.gz" | cut -d' ' -f1)" \
          '.files[0].size = $size | .files[0].sha256 = $sha' "${unfinished}/manifest.json" > /tmp/m.json
       mv /tmp/m.json "${unfinished}/manifest.json"`,
    ]);

    // Verification reports each one, with its reason, and fails.
    const verify = await tool(['hsc-backup', 'verify']);
    expect(verify.exitCode, describeOutput(verify)).toBe(1);
    expect(verify.stdout).toContain(`OK      full ${good}`);
    expect(verify.stdout).toMatch(new RegExp(`FAILED  full ${truncated}: .*truncated`));
    expect(verify.stdout).toMatch(new RegExp(`FAILED  full ${corrupted}: .*corrupted`));
    expect(verify.stdout).toMatch(new RegExp(`FAILED  full ${unfinished}: .*did not finish`));
    expect(verify.stdout).not.toMatch(/FAILED {2}binlog/);

    // The metrics say so, and the "last success" is the newest backup that still verifies.
    const prom = await expectTool(['bash', '-c', 'cat /backups/metrics/hsc_backup.prom; echo; jq .completed_at_epoch /backups/full/' + good + '/manifest.json']);
    const values = new Map(
      [...prom.stdout.matchAll(/^(hsc_backup_[a-z_]+(?:\{[^}]*\})?) (\S+)$/gm)].map((m) => [m[1] ?? '', Number(m[2])]),
    );
    const goodCompleted = Number(prom.stdout.trim().split('\n').at(-1));
    expect(values.get('hsc_backup_verify_failures_total')).toBeGreaterThanOrEqual(3);
    expect(values.get('hsc_backup_backups{status="failed"}')).toBe(3);
    expect(values.get('hsc_backup_last_success_timestamp_seconds')).toBe(goodCompleted);
    expect(values.get('hsc_backup_last_size_bytes')).toBeGreaterThan(0);

    // Asked for a damaged backup by name, restore refuses and leaves the target untouched.
    for (const id of [truncated, corrupted, unfinished]) {
      const refused = await tool(['hsc-restore', '--to', `@${target}`, '--backup', id, '--target-host', 'db-restore-c']);
      expect(refused.exitCode, describeOutput(refused)).toBe(3);
      expect(refused.stderr).toContain(`refusing to restore from backup ${id}`);
    }
    expect(await column(restoreC, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'app'")).toEqual(['0']);

    // Left to choose, it skips all three, newest first, and falls back to the good one; the
    // binary logs since then bring the result to the target time all the same.
    const restored = await expectTool(['hsc-restore', '--to', `@${target}`, '--target-host', 'db-restore-c']);
    const rejected = [...restored.stdout.matchAll(/^REJECTED backup (\S+):/gm)].map((m) => m[1]);
    expect(rejected).toEqual([unfinished, corrupted, truncated]);
    expect(restored.stdout).toContain(`RESTORED backup ${good}`);
    const expected = [0, 1, 2, 3].flatMap((round) => keys(`v${round}-`, 1, 3));
    expect(await column(restoreC, 'SELECT k FROM app.verify ORDER BY k')).toEqual(expected.sort());

    // A damaged archived binary log stops a restore too: it cannot be skipped.
    const manifest = await expectTool(['jq', '-r', '"\\(.instance)/\\(.binlog.file)"', `/backups/full/${good}/manifest.json`]);
    const firstLog = manifest.stdout.trim();
    await expectTool(['bash', '-c', `printf 'garbage!' | dd of="/backups/binlogs/${firstLog}" bs=1 seek=200 conv=notrunc status=none`]);
    const plan = await tool(['hsc-restore', '--to', `@${target}`, '--dry-run']);
    expect(plan.exitCode, describeOutput(plan)).toBe(4);
    expect(plan.stderr).toContain('does not match its archived sha256');
  });

  it('runs the backup job on a schedule and applies retention to backups and binary logs', async () => {
    const t = topology();
    const volume = `${t.backupVolume}-schedule`;
    await docker.createVolume({ Name: volume, Labels: { [OWNER_LABEL]: 'test' } });
    created.volumes.push(volume);
    const job = await createContainer(t.network, {
      name: `${TEST_PREFIX}schedule-${randomBytes(4).toString('hex')}`,
      image: MARIADB_IMAGE,
      cmd: ['hsc-backup', 'schedule'],
      env: { HSC_BACKUP_SOURCE_HOST: 'db-primary', HSC_BACKUP_FULL_INTERVAL_SECONDS: '60', HSC_BACKUP_BINLOG_INTERVAL_SECONDS: '10' },
      binds: [`${t.secretsDir}:/run/secrets:ro`, `${volume}:/backups`],
      healthcheck: false,
    });
    await job.start();
    // A volume without a verified backup gets a full backup at once, then binary logs every 10 s.
    const ran = async (kind: string): Promise<boolean> => {
      const file = await execIn(job, ['cat', '/backups/metrics/hsc_backup.prom']);
      return file.stdout.includes(`hsc_backup_last_run_success{kind="${kind}"} 1`);
    };
    expect(await eventually(() => ran('full'), 30_000, 500), await logsOf(job)).toBe(true);
    await insertKeys(t.primary, 'app.repl', ['scheduled']);
    expect(await eventually(() => ran('binlogs'), 30_000, 500), await logsOf(job)).toBe(true);
    // SIGTERM ends it at once, even in the middle of its sleep.
    const stopping = Date.now();
    await job.stop({ t: 20 });
    expect(Date.now() - stopping).toBeLessThan(10_000);
    expect((await job.inspect()).State.ExitCode).toBe(0);
    transcripts.push(await logsOf(job, 'all'));

    // Retention: with HSC_BACKUP_KEEP=2, three more full backups leave the newest two, and the
    // archived binary logs from before the older of them are gone.
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) ids.push(backupId(await expectTool(['hsc-backup', 'full'], { HSC_BACKUP_KEEP: '2' }, volume)));
    const listing = await expectTool(
      ['bash', '-c', 'ls /backups/full; echo --; cd /backups/binlogs/*/ && ls *.json; echo --; jq -r .binlog.file "/backups/full/$(ls /backups/full | head -n 1)/manifest.json"'],
      {},
      volume,
    );
    const [backups = '', binlogs = '', oldestStart = ''] = listing.stdout.split('--\n').map((part) => part.trim());
    expect(backups.split('\n')).toEqual(ids.slice(1));
    const archived = binlogs.split('\n').map((name) => name.replace(/\.json$/, ''));
    expect(archived[0]).toBe(oldestStart);
  });

  it('fails over under write load: reads go on, writes resume on the promoted replica, no acknowledged write is lost', async () => {
    const { primary, replica, appUrl } = topology();

    // Promoting while the primary still answers would make two writers: refused.
    const refused = await tool(['hsc-failover', '--promote', 'db-replica', '--old-primary', 'db-primary']);
    expect(refused.exitCode, describeOutput(refused)).toBe(3);
    expect(refused.stderr).toContain('still answers');

    interface Attempt {
      readonly key: string;
      readonly status: number;
      /** When the request was sent and when its answer came. */
      readonly sent: number;
      readonly at: number;
      readonly writer: string;
    }
    const writes: Attempt[] = [];
    const reads: { status: number; at: number }[] = [];
    let stop = false;
    const hardDeadline = Date.now() + 90_000;
    const post = async (key: string): Promise<Attempt> => {
      const sent = Date.now();
      try {
        const response = await fetch(`${appUrl}/api/write`, {
          method: 'POST',
          body: new URLSearchParams({ key }),
          signal: AbortSignal.timeout(10_000),
        });
        const body: unknown = await response.json().catch(() => ({}));
        const writer = typeof body === 'object' && body !== null && 'writer' in body ? String(body.writer) : '';
        return { key, status: response.status, sent, at: Date.now(), writer };
      } catch {
        return { key, status: 0, sent, at: Date.now(), writer: '' };
      }
    };
    const writer = async (worker: number): Promise<void> => {
      for (let i = 0; !stop && i < 3000 && Date.now() < hardDeadline; i += 1) {
        writes.push(await post(`w${worker}-${i}`));
        await sleep(15);
      }
    };
    const reader = async (): Promise<void> => {
      for (let i = 0; !stop && i < 5000 && Date.now() < hardDeadline; i += 1) {
        let status = 0;
        try {
          const response = await fetch(`${appUrl}/api/read`, { signal: AbortSignal.timeout(10_000) });
          status = response.status;
          await response.arrayBuffer();
        } catch {
          status = 0;
        }
        reads.push({ status, at: Date.now() });
        await sleep(15);
      }
    };
    const acked = (from: number, to = Infinity): Attempt[] => writes.filter((w) => w.status === 201 && w.at >= from && w.at < to);

    const load = Promise.all([writer(0), writer(1), writer(2), reader(), reader()]);
    let killedAt = 0;
    let promotedAt = 0;
    try {
      expect(await eventually(() => Promise.resolve(acked(0).length >= 30), 30_000, 50)).toBe(true);
      // The primary is lost: no shutdown, no goodbye to the replica.
      await primary.kill();
      killedAt = Date.now();
      await sleep(1_500);
      const failover = await expectTool(['hsc-failover', '--promote', 'db-replica', '--old-primary', 'db-primary']);
      promotedAt = Date.now();
      expect(failover.stdout).toContain('PROMOTED db-replica');
      expect(await eventually(() => Promise.resolve(acked(promotedAt).length >= 30), 30_000, 50)).toBe(true);
    } finally {
      stop = true;
      await load;
    }

    // Reads never stopped: the replica served them throughout.
    expect(reads.filter((r) => r.status !== 200)).toEqual([]);
    expect(reads.filter((r) => r.at > killedAt && r.at < promotedAt).length).toBeGreaterThan(0);
    // Writes went to the primary before, and to the promoted replica after.
    expect(acked(0, killedAt).length).toBeGreaterThan(0);
    expect(new Set(acked(0, killedAt).map((w) => w.writer))).toEqual(new Set(['db-primary']));
    expect(new Set(acked(promotedAt).map((w) => w.writer))).toEqual(new Set(['db-replica']));
    // Writes aimed at the lost primary failed (a connect timeout of 2 s at most), and nothing
    // was reported as stored on it once it was gone (in flight at the kill: 200 ms).
    expect(writes.filter((w) => w.at > killedAt && w.status !== 201).length).toBeGreaterThan(0);
    expect(writes.filter((w) => w.status === 201 && w.writer === 'db-primary' && w.at > killedAt + 200)).toEqual([]);

    // Every write the application acknowledged is on the promoted replica.
    const stored = new Set(await column(replica, 'SELECT k FROM app.items'));
    const lost = acked(0).filter((w) => !stored.has(w.key));
    expect(lost.map((w) => `${w.key} (sent ${w.sent - killedAt} ms after the kill)`)).toEqual([]);
    expect(await column(replica, 'SELECT @@read_only')).toEqual(['0']);

    // The old primary, started again, finds the topology naming another writer and stays
    // read-only instead of becoming a second primary.
    await primary.start();
    await waitHealthy(primary);
    expect(await column(primary, 'SELECT @@read_only')).toEqual(['1']);

    // Recovery: the old server is rebuilt from nothing as a replica of the new primary
    // (docs/data-tier.md, "Rebuild the old primary"); it seeds itself, catches up, and the new
    // primary's commits are protected by a semi-synchronous replica again.
    transcripts.push(await logsOf(primary, 'all'));
    await primary.remove({ force: true, v: true });
    const rebuilt = await createContainer(topology().network, {
      name: `${TEST_PREFIX}rebuilt-${randomBytes(4).toString('hex')}`,
      image: MARIADB_IMAGE,
      alias: 'db-rebuilt',
      env: { HSC_DB_SERVER_ID: '3', HSC_DB_SELF_HOST: 'db-rebuilt', HSC_DB_ROLE: 'replica', HSC_DB_PRIMARY_HOST: 'db-replica' },
      binds: [`${topology().secretsDir}:/run/secrets:ro`],
    });
    await rebuilt.start();
    await waitHealthy(rebuilt);
    const count = async (c: Docker.Container): Promise<string | undefined> => (await column(c, 'SELECT COUNT(*) FROM app.items'))[0];
    expect((await post('after-rebuild')).status).toBe(201);
    expect(await eventually(async () => (await count(rebuilt)) === (await count(replica)), 20_000, 200)).toBe(true);
    expect(await column(rebuilt, "SELECT k FROM app.items WHERE k = 'after-rebuild'")).toEqual(['after-rebuild']);
    expect(await column(replica, "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'Rpl_semi_sync_master_clients'")).toEqual(['1']);
  });

  it('keeps the credentials out of every log and out of the images', async () => {
    const t = topology();
    const secrets = SECRETS.map((name) => readFileSync(join(t.secretsDir, name), 'utf8').trim());
    const logs = await Promise.all(created.containers.map((c) => logsOf(c, 'all')));
    const everything = [...logs, ...transcripts].join('\n');
    expect(everything.length).toBeGreaterThan(0);
    for (const secret of secrets) expect(everything.includes(secret)).toBe(false);
    for (const image of [MARIADB_IMAGE, APP_IMAGE]) {
      const info = await docker.getImage(image).inspect();
      const config = JSON.stringify(info.Config);
      for (const secret of secrets) expect(config.includes(secret)).toBe(false);
      expect(config).not.toMatch(/PASSWORD=/i);
    }
  });
});
