// Credentials never leave the sidecar: the admin token, the Data Plane API's password and the
// HAProxy stats page's password, all generated for this run, are looked for in everything the
// sidecar process printed (stdout and stderr, at debug level), in its /metrics, and in every
// answer body of a realistic session that includes errors: a sidecar against a real HAProxy and a
// real container, once per driver (drain, undrain, wrong tokens, bad bodies, HAProxy stopped under
// it; the Data Plane API one where its binary is), and a Data Plane API-driver sidecar against an
// API that refuses its credentials, fails and answers garbage (failures a real one will not
// produce on demand). Also: the admin API refuses to start beyond the loopback without a token, and
// a credential put into a URL is refused at start-up without being shown.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { availableDrivers, labelledContainersEnv, type DriverChoice } from '../../devenv/sidecar-env.js';
import { eventually } from '../support/http.js';
import { runtimeServerNames } from '../support/runtime.js';

const root = resolve(import.meta.dirname, '../..');

interface SidecarProcess {
  readonly child: ChildProcess;
  readonly port: number;
  output(): string;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** The sidecar as operators run it: its own process, configured by the environment. */
async function runSidecar(env: Record<string, string>): Promise<SidecarProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', 'sidecar/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', HSC_LOG_LEVEL: 'debug', HSC_HTTP_PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  const up = await eventually(async () => child.exitCode === null && (await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)), 60_000, 200);
  if (!up) {
    child.kill('SIGKILL');
    throw new Error(`the sidecar did not start: ${Buffer.concat(chunks).toString('utf8').slice(-3000)}`);
  }
  return {
    child,
    port,
    output: () => Buffer.concat(chunks).toString('utf8'),
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** Runs the sidecar expecting it to refuse to start; its exit code and output. */
async function refusedStart(env: Record<string, string>): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'sidecar/main.ts'], {
    cwd: root,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/root', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const chunks: Buffer[] = [];
  child.stdout?.on('data', (chunk: Buffer) => chunks.push(chunk));
  child.stderr?.on('data', (chunk: Buffer) => chunks.push(chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((done) => child.once('exit', (c) => done(c)));
  clearTimeout(timer);
  return { code, output: Buffer.concat(chunks).toString('utf8') };
}

/** Every form a credential could leak in: as is, URL-encoded, and inside a Basic header. */
function forms(secrets: Record<string, string>, basic: ReadonlyArray<readonly [string, string]>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [name, value] of Object.entries(secrets)) {
    out.push([name, value], [`${name} (URL-encoded)`, encodeURIComponent(value)]);
  }
  for (const [user, password] of basic) out.push([`basic ${user}`, Buffer.from(`${user}:${password}`).toString('base64')]);
  return out;
}

function expectNoneIn(where: string, text: string, secrets: Array<[string, string]>): void {
  for (const [name, value] of secrets) expect(text.includes(value), `${name} found in ${where}`).toBe(false);
}

const RUNTIME_BASE = { HSC_DOCKER_ADDRESS_MODE: 'published', HSC_AUTOSCALE_ENABLED: 'false', HSC_RESYNC_INTERVAL_MS: '1000', HSC_RECONCILE_DEBOUNCE_MS: '100' };

describe('the sidecar never shows a credential', () => {
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  const adminToken = randomBytes(24).toString('base64url');
  const dataplanePassword = `dp-${randomBytes(18).toString('base64url')}`;
  let haproxy: LocalHaproxy | undefined;
  let container: TestContainer | undefined;
  let dir = '';
  let fake: Server | undefined;
  const sidecars: SidecarProcess[] = [];
  /** Every answer body the sessions got, with the request that produced it. */
  const bodies: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${prefix}-security-`));
    haproxy = await startLocalHaproxy({ withDataplane: false });
    container = await startNginx({ name: `${prefix}-web`, labels: { [`${prefix}.enable`]: 'true' } });
  });

  /** The sessions' own HAProxy instances (stopped again if a session failed before it did). */
  const owned: LocalHaproxy[] = [];

  afterAll(async () => {
    for (const sidecar of sidecars) await sidecar.stop();
    for (const instance of owned) await instance.stop();
    await new Promise<void>((done) => (fake === undefined ? done() : fake.close(() => done())));
    await haproxy?.stop();
    await container?.remove();
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  const call = async (port: number, method: string, path: string, authorization?: string, body?: string): Promise<{ status: number; text: string }> => {
    const response = await fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
      ...(body === undefined ? {} : { body }),
      signal: AbortSignal.timeout(20_000),
    });
    const text = await response.text();
    bodies.push(`${method} ${path} → ${response.status} ${text}`);
    return { status: response.status, text };
  };

  it('refuses to listen beyond the loopback without an admin token, naming the key', async () => {
    for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
      const { code, output } = await refusedStart({ ...RUNTIME_BASE, HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/nonexistent.sock', HSC_HAPROXY_CONFIG_FILE: '/nonexistent.cfg', HSC_HTTP_HOST: host, HSC_ADMIN_TOKEN: '' });
      expect(code, output).toBe(2);
      expect(output).toContain(`configuration error: configuration key http.adminToken: is required to listen on ${host}, beyond the loopback`);
    }
  }, 120_000);

  it('refuses a credential put into a URL at start-up, without showing it', async () => {
    const { code, output } = await refusedStart({
      ...RUNTIME_BASE,
      HSC_HAPROXY_DRIVER: 'runtime',
      HSC_HAPROXY_RUNTIME_SOCKET: '/nonexistent.sock',
      HSC_HAPROXY_CONFIG_FILE: '/nonexistent.cfg',
      HSC_HAPROXY_METRICS_URL: `http://stats:${haproxy?.statsPassword ?? ''}@127.0.0.1:1/metrics`,
    });
    expect(code).toBe(2);
    expect(output).toContain('configuration key haproxy.metricsUrl (HSC_HAPROXY_METRICS_URL): must not carry credentials');
    expectNoneIn('the start-up error', output, forms({ stats: haproxy?.statsPassword ?? '' }, []));
  }, 60_000);

  const drivers: readonly DriverChoice[] = ['dataplane', 'runtime'];
  for (const driver of drivers) {
    it.skipIf(!availableDrivers().includes(driver))(`${driver} driver, real HAProxy: drains, undrains, wrong tokens, bad bodies, HAProxy gone; no credential anywhere`, async () => {
      // Its own HAProxy: the session ends by stopping it under the sidecar.
      let own: LocalHaproxy | undefined = await startLocalHaproxy({ withDataplane: driver === 'dataplane' });
      owned.push(own);
      const h = own;
      const sidecar = await runSidecar({
        ...labelledContainersEnv(h, driver, prefix),
        ...RUNTIME_BASE,
        HSC_DRAIN_DEADLINE_MS: '1000',
        HSC_DRAIN_POLL_MS: '100',
        HSC_ADMIN_TOKEN: adminToken,
      });
      sidecars.push(sidecar);
      const server = `hsc-${prefix}-web`;
      expect(await eventually(async () => (await runtimeServerNames(h)).includes(server), 30_000, 200)).toBe(true);
      const bearer = `Bearer ${adminToken}`;
      const path = `/v1/backends/${h.backend}/servers/${server}`;
      expect((await call(sidecar.port, 'GET', '/v1/backends')).status).toBe(200);
      expect((await call(sidecar.port, 'POST', `${path}/drain`, bearer, '{"force":true,"wait":true}')).status).toBe(200);
      expect((await call(sidecar.port, 'POST', `${path}/undrain`, bearer, '{}')).status).toBe(200);
      for (const wrong of [`Bearer ${adminToken}x`, `Bearer ${adminToken.slice(0, -1)}`, `Basic ${Buffer.from(`admin:${adminToken}`).toString('base64')}`, adminToken, `Bearer  ${adminToken}`]) {
        expect((await call(sidecar.port, 'POST', '/v1/resync', wrong, '{}')).status).toBe(401);
      }
      expect((await call(sidecar.port, 'POST', `${path}/drain`, bearer, '{not json')).status).toBe(400);
      expect((await call(sidecar.port, 'POST', `${path}/drain`, bearer, `{"token":"${adminToken}"}`)).status).toBe(400);
      expect((await call(sidecar.port, 'POST', '/v1/backends/be_nope/servers/x/drain', bearer, '{}')).status).toBe(404);
      expect((await call(sidecar.port, 'PUT', '/v1/autoscaler/replicas', bearer, '{"replicas":3}')).status).toBe(404);
      // HAProxy gone: every pass fails, the admin API answers 502.
      await own.stop();
      own = undefined;
      expect((await call(sidecar.port, 'POST', '/v1/resync', bearer, '{}')).status).toBe(202);
      expect((await call(sidecar.port, 'GET', '/v1/backends')).status).toBe(502);
      expect((await call(sidecar.port, 'POST', `${path}/drain`, bearer, '{}')).status).toBe(502);
      await new Promise((done) => setTimeout(done, 3_000));
      const metrics = (await call(sidecar.port, 'GET', '/metrics')).text;
      expect(metrics).toContain('hsc_reconcile_runs_total');
      expect(await sidecar.stop()).toBe(0);
      const output = sidecar.output();
      // A realistic session: it started, worked, and logged the failures.
      expect(output).toContain('sidecar started');
      expect(output).toMatch(/"level":50/);
      const secrets = forms({ 'admin token': adminToken, 'stats password': h.statsPassword, 'Data Plane API password': h.dataplanePassword }, [
        ['stats', h.statsPassword],
        [h.dataplaneUser, h.dataplanePassword],
      ]);
      expectNoneIn('stdout/stderr', output, secrets);
      expectNoneIn('/metrics', metrics, secrets);
      expectNoneIn('the answers', bodies.join('\n'), secrets);
    }, 180_000);
  }

  it('Data Plane API driver against an API that refuses, fails and answers garbage: no credential anywhere', async () => {
    const fakePort = await freePort();
    const seen: string[] = [];
    let answered = 0;
    fake = createServer((request, response) => {
      seen.push(request.headers.authorization ?? '');
      answered++;
      // First it refuses the credentials (as after a rotation), then it fails, then garbage.
      if (answered <= 5) {
        response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Basic realm="dataplaneapi"' });
        response.end(JSON.stringify({ code: 401, message: `invalid credentials for ${request.url ?? ''}` }));
      } else if (answered % 2 === 0) {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end('{"code":500,"message":"runtime error"}');
      } else {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end('{"_version": 7, "data": [ {"name": "be_app"');
      }
    });
    await new Promise<void>((done) => fake?.listen(fakePort, '127.0.0.1', () => done()));
    const passwordFile = join(dir, 'dataplane_password');
    await writeFile(passwordFile, `${dataplanePassword}\n`, { mode: 0o600 });
    const sidecar = await runSidecar({
      HSC_HAPROXY_DRIVER: 'dataplane',
      HSC_DATAPLANE_URL: `http://127.0.0.1:${fakePort}`,
      HSC_DATAPLANE_USERNAME: 'admin',
      HSC_DATAPLANE_PASSWORD_FILE: passwordFile,
      HSC_DATAPLANE_RETRIES: '1',
      HSC_DATAPLANE_TIMEOUT_MS: '2000',
      HSC_HAPROXY_METRICS_URL: `http://127.0.0.1:${await freePort()}/metrics`,
      HSC_DOCKER_LABEL_PREFIX: prefix,
      HSC_DOCKER_COMPOSE_SERVICE: `none-${prefix}`,
      HSC_ADMIN_TOKEN: adminToken,
      ...RUNTIME_BASE,
    });
    sidecars.push(sidecar);
    const bearer = `Bearer ${adminToken}`;
    await call(sidecar.port, 'GET', '/v1/backends');
    await call(sidecar.port, 'GET', '/v1/backends/be_app/servers/x');
    await call(sidecar.port, 'POST', '/v1/backends/be_app/servers/x/drain', bearer, '{"force":true}');
    await call(sidecar.port, 'POST', '/v1/resync', bearer, '{}');
    await call(sidecar.port, 'POST', '/v1/resync', `Bearer ${dataplanePassword}`, '{}');
    await new Promise((done) => setTimeout(done, 4_000));
    const metrics = (await call(sidecar.port, 'GET', '/metrics')).text;
    expect(await sidecar.stop()).toBe(0);
    // The password was really in use: the API saw it, in the Basic header.
    const basic = `Basic ${Buffer.from(`admin:${dataplanePassword}`).toString('base64')}`;
    expect(seen.filter((h) => h === basic).length).toBeGreaterThan(3);
    const output = sidecar.output();
    expect(output).toContain('sidecar started');
    expect(output).toMatch(/"level":(40|50)/);
    const secrets = forms({ 'admin token': adminToken, 'Data Plane API password': dataplanePassword }, [['admin', dataplanePassword]]);
    expectNoneIn('stdout/stderr', output, secrets);
    expectNoneIn('/metrics', metrics, secrets);
    expectNoneIn('the answers', bodies.join('\n'), secrets);
  }, 120_000);
});
