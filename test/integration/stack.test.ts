// The Compose stack (stack/compose.yaml) on the real Docker Engine, brought up the way a user
// does it (`bash stack/up.sh`) under a project name of its own, with secrets generated for the
// run, and torn down by project afterwards, also when a test failed. Here HAProxy runs without
// the Data Plane API (it cannot be built on this machine) and Grafana is left out; everything
// else of the stack runs for real.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const stackDir = join(root, 'stack');
const project = `hsc-test-stack-${randomBytes(3).toString('hex')}`;
const OWNER = ['--label', 'hsc.owner=test'];

interface Ports {
  readonly http: number;
  readonly stats: number;
  readonly sidecar: number;
  readonly prometheus: number;
  readonly alertmanager: number;
}

let tempDir = '';
let secretsDir = '';
let ports: Ports | undefined;
let env: NodeJS.ProcessEnv = {};

function portsOrThrow(): Ports {
  if (ports === undefined) throw new Error('the stack was not started');
  return ports;
}

async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => done(port));
    });
  });
}

/** docker-compose for this test's project, with the same files and environment as stack/up.sh. */
async function compose(...args: string[]): Promise<string> {
  const { stdout } = await run('docker-compose', ['-p', project, '-f', join(stackDir, 'compose.yaml'), ...args], {
    env,
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

async function docker(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run('docker', args, { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

function secrets(): string[] {
  return readdirSync(secretsDir).map((name) => readFileSync(join(secretsDir, name), 'utf8').trim());
}

function secret(name: string): string {
  return readFileSync(join(secretsDir, name), 'utf8').trim();
}

async function containerIp(service: string, network: string): Promise<string> {
  const id = (await compose('ps', '-q', service)).trim().split('\n')[0] ?? '';
  const { stdout } = await docker('inspect', '-f', `{{ (index .NetworkSettings.Networks "${project}_${network}").IPAddress }}`, id);
  return stdout.trim();
}

describe('the Compose stack', () => {
  beforeAll(async () => {
    tempDir = await mkdtemp(join(tmpdir(), 'hsc-test-stack-'));
    secretsDir = join(tempDir, 'secrets');
    ports = {
      http: await freePort(),
      stats: await freePort(),
      sidecar: await freePort(),
      prometheus: await freePort(),
      alertmanager: await freePort(),
    };
    env = {
      ...process.env,
      COMPOSE_PROJECT_NAME: project,
      HSC_SECRETS_DIR: secretsDir,
      HSC_HTTP_PORT: String(ports.http),
      HSC_STATS_PORT: String(ports.stats),
      HSC_SIDECAR_PORT: String(ports.sidecar),
      HSC_PROMETHEUS_PORT: String(ports.prometheus),
      HSC_ALERTMANAGER_PORT: String(ports.alertmanager),
      HSC_UP_TIMEOUT: '180',
    };
    // The user's command, from nothing: setup, secrets, images, up, wait until every service is healthy.
    await run('bash', [join(stackDir, 'up.sh')], { env, maxBuffer: 64 * 1024 * 1024, timeout: 230_000 });
  }, 240_000);

  afterAll(async () => {
    // By project, whatever happened above: containers (the sidecar's too), networks, volumes.
    await compose('--profile', 'replica', 'down', '--volumes', '--remove-orphans', '--timeout', '5').catch(() => undefined);
    if (tempDir !== '') await rm(tempDir, { recursive: true, force: true });
  }, 120_000);

  it('validates with docker-compose 1.29 (and so the Compose Specification subset both versions read)', async () => {
    await expect(compose('config', '-q')).resolves.toBe('');
    await expect(compose('--profile', 'replica', 'config', '-q')).resolves.toBe('');
  });

  it('has every service running and healthy, the application at two replicas', async () => {
    const ids = (await compose('ps', '-q')).trim().split('\n');
    const { stdout } = await docker('inspect', '-f', '{{ index .Config.Labels "com.docker.compose.service" }} {{ .State.Health.Status }}', ...ids);
    const rows = stdout.trim().split('\n').sort();
    expect(rows).toEqual(
      [
        'alertmanager healthy',
        'db-backup healthy',
        'db-exporter healthy',
        'db1 healthy',
        'docker-api-proxy healthy',
        'haproxy healthy',
        'nginx healthy',
        'nginx healthy',
        'node-exporter healthy',
        'prometheus healthy',
        'sidecar healthy',
      ].sort(),
    );
  });

  it('answers through HAProxy: PHP writes to and reads from MariaDB, with a persistence cookie', async () => {
    const base = `http://127.0.0.1:${portsOrThrow().http}`;
    const write = await fetch(`${base}/api/write`, { method: 'POST', body: new URLSearchParams({ key: `stack-${project}` }) });
    expect(write.status).toBe(201);
    const read = await fetch(`${base}/api/read`);
    expect(read.status).toBe(200);
    expect(read.headers.get('set-cookie')).toMatch(/^SRVID=[0-9a-f]+;/);
    const body = (await read.json()) as { count: number };
    expect(body.count).toBeGreaterThanOrEqual(1);
  });

  it('keeps the database unreachable from the edge network', async () => {
    const dbIp = await containerIp('db1', 'db');
    expect(dbIp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    const probe = (network: string, host: string) =>
      docker('run', '--rm', ...OWNER, '--network', `${project}_${network}`, 'hsc/debian-base:bookworm', 'timeout', '3', 'bash', '-c', `</dev/tcp/${host}/3306`);
    // Control: the same probe from the database's own network connects.
    expect((await probe('db', dbIp)).code).toBe(0);
    expect((await probe('edge', dbIp)).code).not.toBe(0);
    expect((await probe('edge', 'db1')).code).not.toBe(0);
  });

  it('lets the sidecar make only its allowed Docker API calls, against the real socket', async () => {
    const script = [
      'call() {',
      '  if [ -n "${4:-}" ]; then set -- "$1" "$2" "$3" -H "Content-Type: application/json" -d "$4"; else set -- "$1" "$2" "$3"; fi',
      '  name=$1; method=$2; path=$3; shift 3',
      '  printf "%s %s\\n" "$name" "$(curl -s -o /dev/null -w "%{http_code}" --max-time 5 --unix-socket /s/docker.sock -X "$method" "$@" "http://docker$path")"',
      '}',
      'call list GET /containers/json',
      'call list-versioned GET /v1.41/containers/json',
      `call events GET "/events?since=0&until=1"`,
      'call ping GET /_ping',
      'call images-create POST "/images/create?fromImage=busybox"',
      'call secrets GET /secrets',
      'call exec POST /containers/nonexistent/exec \'{"Cmd":["id"]}\'',
      'call logs GET /containers/nonexistent/logs',
      'call kill POST /containers/nonexistent/kill',
      'call volumes GET /volumes',
      'call privileged POST /containers/create \'{"Image":"hsc/debian-base:bookworm","HostConfig":{"Privileged":true}}\'',
      'call docker-sock POST /containers/create \'{"Image":"hsc/debian-base:bookworm","HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}\'',
    ].join('\n');
    const result = await docker('run', '--rm', ...OWNER, '--network', 'none', '-v', `${project}_docker-api-socket:/s:ro`, '--entrypoint', 'sh', 'hsc/app:local', '-c', script);
    expect(result.code).toBe(0);
    const codes: Record<string, string> = Object.fromEntries(
      result.stdout
        .trim()
        .split('\n')
        .map((line): [string, string] => {
          const [name = '', code = ''] = line.split(' ');
          return [name, code];
        }),
    );
    expect(codes).toEqual({
      list: '200',
      'list-versioned': '200',
      events: '200',
      ping: '200',
      'images-create': '403',
      secrets: '403',
      exec: '403',
      logs: '403',
      kill: '403',
      volumes: '403',
      privileged: '403',
      'docker-sock': '403',
    });
    // Prometheus' listener on the docker-api network is read-only.
    const prometheus = (await compose('ps', '-q', 'prometheus')).trim();
    const tcp = await docker(
      'exec',
      prometheus,
      'sh',
      '-c',
      'for p in /containers/json /networks; do curl -s -o /dev/null -w "%{http_code} " http://docker-api-proxy:2375$p; done; curl -s -o /dev/null -w "%{http_code}" -X POST http://docker-api-proxy:2375/containers/create',
    );
    expect(tcp.stdout.trim()).toBe('200 200 403');
  });

  it('puts the HAProxy stats page behind authentication and serves the Prometheus endpoint', async () => {
    const stats = `http://127.0.0.1:${portsOrThrow().stats}`;
    expect((await fetch(`${stats}/haproxy-stats`)).status).toBe(401);
    const wrong = Buffer.from('admin:wrong').toString('base64');
    expect((await fetch(`${stats}/haproxy-stats`, { headers: { authorization: `Basic ${wrong}` } })).status).toBe(401);
    const right = Buffer.from(`admin:${secret('haproxy_stats_password')}`).toString('base64');
    const page = await fetch(`${stats}/haproxy-stats;csv`, { headers: { authorization: `Basic ${right}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/^be_app,/m);
    const metrics = await (await fetch(`${stats}/metrics`)).text();
    // Both application replicas are in service (found through Docker DNS here).
    expect(metrics).toMatch(/^haproxy_backend_active_servers\{proxy="be_app"\} 2$/m);
  });

  it('has Prometheus scraping every target: HAProxy, the sidecar, node exporter, Alertmanager, one nginx exporter per replica', async () => {
    const url = `http://127.0.0.1:${portsOrThrow().prometheus}/api/v1/targets`;
    let summary: string[] = [];
    for (let attempt = 0; attempt < 40; attempt++) {
      const body = (await (await fetch(url)).json()) as { data: { activeTargets: Array<{ labels: Record<string, string>; health: string }> } };
      summary = body.data.activeTargets.map((t) => `${t.labels['job'] ?? '?'} ${t.health}`).sort();
      if (summary.every((line) => line.endsWith(' up')) && summary.filter((line) => line.startsWith('nginx ')).length === 2) break;
      await sleep(1_500);
    }
    expect(summary).toEqual(['alertmanager up', 'haproxy up', 'mysql up', 'nginx up', 'nginx up', 'node up', 'prometheus up', 'sidecar up']);
  });

  it('keeps every secret out of the logs, the containers’ configuration and the images', async () => {
    const values = secrets();
    expect(values).toHaveLength(10);
    const logs = await compose('logs', '--no-color');
    const ids = (await compose('ps', '-q')).trim().split('\n');
    const containers = (await docker('inspect', ...ids)).stdout;
    const images = [...new Set((await docker('inspect', '-f', '{{ .Config.Image }}', ...ids)).stdout.trim().split('\n'))];
    const imageConfigs = (await docker('image', 'inspect', ...images)).stdout;
    const histories = (await Promise.all(images.map((image) => docker('history', '--no-trunc', image)))).map((h) => h.stdout).join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const value of values) {
      expect(value).toMatch(/^[A-Za-z0-9]{32}$/);
      expect(logs.includes(value)).toBe(false);
      expect(containers.includes(value)).toBe(false);
      expect(imageConfigs.includes(value)).toBe(false);
      expect(histories.includes(value)).toBe(false);
    }
  });

  it('degrades gracefully: with no application replica up, HAProxy serves the static fallback page', async () => {
    await compose('stop', '--timeout', '5', 'nginx');
    let last = { status: 0, body: '' };
    for (let attempt = 0; attempt < 40; attempt++) {
      const answer = await fetch(`http://127.0.0.1:${portsOrThrow().http}/api/read`);
      last = { status: answer.status, body: await answer.text() };
      if (last.status === 503) break;
      await sleep(500);
    }
    expect(last.status).toBe(503);
    expect(last.body).toContain('We will be right back');
  });
});
