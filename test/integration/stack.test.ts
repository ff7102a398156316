// The Compose stack (stack/compose.yaml) on the real Docker Engine, brought up the way a user
// does it (`bash stack/up.sh`) under a project name of its own, with secrets generated for the
// run, and torn down by project afterwards, also when a test failed. Here HAProxy runs without
// the Data Plane API (it cannot be built on this machine), so the sidecar writes through
// HAProxy's runtime API (the runtime driver), and Grafana is left out; everything else of the
// stack runs for real, and the sidecar scales the application for real.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadReport } from '../support/load.js';
import { startPacedLoad } from '../support/paced-load.js';
import { dockerCli as docker } from '../support/docker-cli.js';

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

function secrets(): string[] {
  return readdirSync(secretsDir).map((name) => readFileSync(join(secretsDir, name), 'utf8').trim());
}

function secret(name: string): string {
  return readFileSync(join(secretsDir, name), 'utf8').trim();
}

/** One application server as HAProxy's stats page shows it. */
interface StatsRow {
  readonly name: string;
  readonly status: string;
  /** address:port */
  readonly addr: string;
}

/** The servers of be_app that stand for application replicas, from HAProxy's stats page (CSV). */
async function appServers(): Promise<StatsRow[]> {
  const auth = Buffer.from(`admin:${secret('haproxy_stats_password')}`).toString('base64');
  const answer = await fetch(`http://127.0.0.1:${portsOrThrow().stats}/haproxy-stats;csv`, {
    headers: { authorization: `Basic ${auth}` },
    signal: AbortSignal.timeout(5_000),
  });
  const [head = '', ...rows] = (await answer.text()).trim().split('\n');
  const columns = head.replace(/^# /, '').split(',');
  const column = (name: string): number => columns.indexOf(name);
  return rows
    .map((row) => row.split(','))
    .filter((cells) => cells[column('pxname')] === 'be_app' && (cells[column('svname')] ?? '').startsWith('hsc-'))
    .map((cells) => ({ name: cells[column('svname')] ?? '', status: cells[column('status')] ?? '', addr: cells[column('addr')] ?? '' }));
}

/** A running application container: its host name (what X-Served-By says) and its address on the app network. */
interface Replica {
  readonly hostname: string;
  readonly ip: string;
}

/** One GET on a new connection (no keep-alive pool), its status and body. */
function freshGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      response.on('error', reject);
    });
    request.setTimeout(15_000, () => request.destroy(new Error(`GET ${url}: no answer within 15 s`)));
    request.on('error', reject);
  });
}

async function appReplicas(): Promise<Replica[]> {
  const ids = (await docker('ps', '-q', '--filter', `label=com.docker.compose.project=${project}`, '--filter', 'label=com.docker.compose.service=nginx')).stdout
    .trim()
    .split('\n')
    .filter((id) => id !== '');
  if (ids.length === 0) return [];
  // A container retired between the two calls is missing from the answer, not an error here.
  const { stdout } = await docker('inspect', '-f', `{{ .Config.Hostname }} {{ (index .NetworkSettings.Networks "${project}_app").IPAddress }}`, ...ids);
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.split(' '))
    .filter((fields) => fields.length === 2 && fields[1] !== '')
    .map(([hostname = '', ip = '']) => ({ hostname, ip }));
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
      // A policy this test can exceed within seconds (the stack's defaults are the original
      // design's 100 req/s per instance, every 30 s, a 2-minute scale-down window): scale up
      // above 8 req/s per instance, down below 3, evaluated every 3 s, 2 to 5 replicas.
      HSC_AUTOSCALE_INTERVAL_MS: '3000',
      HSC_AUTOSCALE_RPS_TARGET: '8',
      HSC_AUTOSCALE_RPS_DOWN: '3',
      HSC_AUTOSCALE_DOWN_WINDOW_MS: '10000',
      HSC_AUTOSCALE_MIN: '2',
      HSC_AUTOSCALE_MAX: '5',
      HSC_DRAIN_DEADLINE_MS: '10000',
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
    expect(metrics).toMatch(/^haproxy_backend_active_servers\{proxy="be_app"\} 2$/m);
    // Both application replicas are in service as the sidecar's servers (no DNS server-template),
    // at the addresses Docker gave them.
    const servers = await appServers();
    const replicas = await appReplicas();
    expect(servers.map((s) => s.status)).toEqual(['UP', 'UP']);
    expect(servers.map((s) => s.addr).sort()).toEqual(replicas.map((r) => `${r.ip}:80`).sort());
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

  it('scales the application for real through the sidecar: up under a load step, every replica serving, back to the minimum after it, no failed request, a sticky client kept on its server', async () => {
    const url = `http://127.0.0.1:${portsOrThrow().http}/api/read`;
    const began = Date.now();
    const seconds = (from: number, to = Date.now()): number => Math.round((to - from) / 100) / 10;

    // HAProxy's view of the pool twice a second for the whole test (bounded: 4 minutes at most).
    const polls: Array<{ at: number; servers: StatsRow[] }> = [];
    let polling = true;
    const poller = (async () => {
      while (polling && Date.now() - began < 240_000) {
        const at = Date.now();
        const servers = await appServers().catch(() => undefined);
        if (servers !== undefined) polls.push({ at, servers });
        await sleep(500);
      }
    })();

    // A sticky client: its first answer's persistence cookie, then 4 requests a second with it.
    const first = await fetch(url);
    await first.arrayBuffer();
    expect(first.status).toBe(200);
    const cookie = (first.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    expect(cookie).toMatch(/^SRVID=[0-9a-f]+$/);
    const stickyHost = first.headers.get('x-served-by') ?? '';
    const stickyReplica = (await appReplicas()).find((r) => r.hostname === stickyHost);
    expect(stickyReplica).toBeDefined();
    const stickyAddr = `${stickyReplica?.ip ?? ''}:80`;
    const stickyAnswers: Array<{ at: number; host: string }> = [];
    const sticky = startPacedLoad(url, {
      ratePerSecond: 4,
      maxDurationMs: 200_000,
      maxRequests: 800,
      headers: { cookie },
      onServedBy: (host) => stickyAnswers.push({ at: Date.now(), host: host ?? '' }),
    });

    // The load step: 48 requests a second, 24 per replica at the start, three times the target.
    let peak: Replica[] = [];
    let peakAt = 0;
    const servedSincePeak = new Map<string, number>();
    const load = startPacedLoad(url, {
      ratePerSecond: 48,
      maxDurationMs: 75_000,
      maxRequests: 48 * 75,
      onServedBy: (host) => {
        if (peakAt > 0 && host !== null) servedSincePeak.set(host, (servedSincePeak.get(host) ?? 0) + 1);
      },
    });
    let loadReport: LoadReport;
    let scaledUpAfter = 0;
    try {
      // Until the pool grew and every replica Docker runs is UP in HAProxy and has answered
      // through it; the count settles (the rate limit lets it jump) before the load stops.
      const deadline = Date.now() + 70_000;
      while (Date.now() < deadline) {
        const [running, servers] = await Promise.all([appReplicas(), appServers()]);
        const up = new Set(servers.filter((s) => s.status === 'UP').map((s) => s.addr));
        if (running.length > Math.max(2, peak.length) && running.every((r) => up.has(`${r.ip}:80`))) {
          if (peak.length === 0) scaledUpAfter = seconds(began);
          peak = running;
          peakAt = Date.now();
          servedSincePeak.clear();
        }
        const allServed = peak.length > 0 && peak.every((r) => (servedSincePeak.get(r.hostname) ?? 0) >= 5);
        if (allServed && Date.now() - peakAt >= 8_000) break;
        await sleep(1_000);
      }
    } finally {
      loadReport = await load.stop();
    }
    const loadStopped = Date.now();

    // The load dropped to the sticky client alone: drains and retirements back to the minimum.
    let final: Replica[] = [];
    let finalServers: StatsRow[] = [];
    let stickyReport: LoadReport;
    try {
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        [final, finalServers] = await Promise.all([appReplicas(), appServers()]);
        if (final.length === 2 && finalServers.length === 2 && finalServers.every((s) => s.status === 'UP')) break;
        await sleep(1_000);
      }
    } finally {
      stickyReport = await sticky.stop();
      polling = false;
      await poller;
    }
    const scaledDownAfter = seconds(loadStopped);

    const stickyStates = polls.map((p) => ({ at: p.at, status: p.servers.find((s) => s.addr === stickyAddr)?.status ?? 'removed' }));
    const firstMove = stickyAnswers.find((a) => a.host !== stickyHost);
    const stickyServerLeft = stickyStates.some((s) => s.status !== 'UP');
    console.info(
      `[stack] peak ${peak.length} replicas (scaled up ${scaledUpAfter} s into the step), every one served ` +
        `${JSON.stringify(Object.fromEntries(servedSincePeak))}; load ${loadReport.sent} sent, failures ${JSON.stringify(loadReport.failures)}; ` +
        `back to ${final.length} replicas ${scaledDownAfter} s after the load stopped; sticky client ${stickyReport.sent} sent, ` +
        `failures ${JSON.stringify(stickyReport.failures)}, ${stickyAnswers.filter((a) => a.host === stickyHost).length} answered by its server, ` +
        `${stickyServerLeft ? `its server left the pool (first answer elsewhere ${firstMove === undefined ? 'never' : `${seconds(began, firstMove.at)} s in`})` : 'its server stayed in the pool'}`,
    );

    // Scaled up: more replicas than the two it started with, each in HAProxy and answering.
    expect(peak.length).toBeGreaterThan(2);
    expect(peak.length).toBeLessThanOrEqual(5);
    for (const replica of peak) expect(servedSincePeak.get(replica.hostname) ?? 0).toBeGreaterThanOrEqual(5);
    // Back to the minimum: two containers, two servers in HAProxy, the same ones.
    expect(final).toHaveLength(2);
    expect(finalServers.map((s) => s.status)).toEqual(['UP', 'UP']);
    expect(finalServers.map((s) => s.addr).sort()).toEqual(final.map((r) => `${r.ip}:80`).sort());
    // Not one failed request, through the scale-up and every drain and retirement.
    expect(loadReport.failures).toEqual({});
    expect(loadReport.ok).toBeGreaterThan(200);
    expect(stickyReport.failures).toEqual({});
    expect(stickyAnswers.length).toBe(stickyReport.sent);
    // Stickiness: the client stayed on its server while that server was in service, through the
    // servers that joined and left; if it was retired, the client moved only once it was out of
    // service (no poll after the first answer elsewhere still saw it UP).
    if (firstMove === undefined) {
      expect(stickyAnswers.every((a) => a.host === stickyHost)).toBe(true);
    } else {
      expect(stickyServerLeft).toBe(true);
      expect(stickyStates.filter((s) => s.at > firstMove.at && s.status === 'UP')).toEqual([]);
    }
  }, 240_000);

  it('keeps every secret out of the logs, the containers’ configuration, the images and HAProxy’s shared configuration file', async () => {
    const values = secrets();
    expect(values).toHaveLength(10);
    const logs = await compose('logs', '--no-color');
    const ids = (await compose('ps', '-q')).trim().split('\n');
    const containers = (await docker('inspect', ...ids)).stdout;
    const images = [...new Set((await docker('inspect', '-f', '{{ .Config.Image }}', ...ids)).stdout.trim().split('\n'))];
    const imageConfigs = (await docker('image', 'inspect', ...images)).stdout;
    const histories = (await Promise.all(images.map((image) => docker('history', '--no-trunc', image)))).map((h) => h.stdout).join('\n');
    // HAProxy's configuration on the volume it shares with the sidecar: the sidecar's servers, no secret.
    const haproxy = (await compose('ps', '-q', 'haproxy')).trim();
    const sharedConfig = (await docker('exec', haproxy, 'cat', '/run/hsc-haproxy/haproxy.cfg')).stdout;
    expect(sharedConfig).toMatch(/# hsc:managed-servers begin be_app\n(.*\n)* {4}server hsc-nginx-\d+ /);
    expect(logs.length).toBeGreaterThan(0);
    for (const value of values) {
      expect(sharedConfig.includes(value)).toBe(false);
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
      // Each attempt on a connection of its own, as a visitor's first request. While the last
      // replica's server is held (docker.holdLastServerMs), HAProxy holds a request in its
      // retries; when they run out on connect timeouts, it answers a client's first request on a
      // connection with the 503 page, but closes a kept-alive connection's later request without
      // an answer, for the client to retry it (measured on HAProxy 3.0 by hand; the same with
      // static servers). That closing is HAProxy's keep-alive contract, not the page under test.
      last = await freshGet(`http://127.0.0.1:${portsOrThrow().http}/api/read`);
      if (last.status === 503) break;
      await sleep(500);
    }
    expect(last.status).toBe(503);
    expect(last.body).toContain('We will be right back');
  });
});
