// The sidecar's image and its way to Docker, as shipped: the images are built the way the stack
// builds them (stack/up.sh --build-only: rebuilt only when their inputs changed), then
//  - the image runs as a non-root user, and starts and serves /healthz (and its Docker
//    healthcheck turns healthy) with a read-only root filesystem, no capability, no new privilege;
//  - no layer and no history line carries a credential (generated for this run, or the stack's
//    own secrets where they exist) or a file that holds one (keys, .env, .npmrc, secrets/);
//  - Docker's API reaches the sidecar only through the filtering proxy: in the stack only the
//    proxy mounts Docker's socket; the real proxy image lets the real sidecar discover a
//    container through it, and refuses what the sidecar never needs (403).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { docker as dockerApi, startNginx, type TestContainer } from '../../devenv/containers.js';
import { freePort, startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { labelledContainersEnv } from '../../devenv/sidecar-env.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { cloneSpec } from '../../sidecar/docker/compose.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { silentLogger } from '../../sidecar/log/logger.js';
import { eventually } from '../support/http.js';
import { runtimeServerNames } from '../support/runtime.js';
import { dockerCli as docker } from '../support/docker-cli.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '../..');
const IMAGE = 'hsc/sidecar:local';
const PROXY_IMAGE = 'hsc/docker-api-proxy:local';
const OWNER = ['--label', 'hsc.owner=test'];

/** A body sent exactly as written (or chunked), to try what a JSON encoder would not produce. */
function overSocketRaw(socketPath: string, method: string, path: string, text: string, chunked = false): Promise<number> {
  return new Promise((done, fail) => {
    const headers = { host: 'docker', 'content-type': 'application/json', ...(chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': Buffer.byteLength(text) }) };
    const req = request({ socketPath, method, path, headers, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(text);
  });
}

/** One HTTP call over a unix socket (what the sidecar does with Docker's API). */
function overSocket(socketPath: string, method: string, path: string, body?: unknown): Promise<number> {
  return new Promise((done, fail) => {
    const text = body === undefined ? undefined : JSON.stringify(body);
    const req = request({ socketPath, method, path, headers: { host: 'docker', ...(text === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }) }, timeout: 10_000 }, (res) => {
      res.resume();
      res.on('end', () => done(res.statusCode ?? 0));
    });
    req.on('error', fail);
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(text);
  });
}

// Files that hold credentials by their name; the system's public CA certificates are not.
const SECRET_FILE = /(^|\/)(secrets?\/|\.env$|\.npmrc$|\.netrc$|\.git-credentials$|id_(rsa|dsa|ecdsa|ed25519)[^/]*$|[^/]+\.(pem|key|ppk|p12|pfx)$)/i;
const PUBLIC_CERTS = /^(etc\/ssl\/certs\/|usr\/share\/ca-certificates\/|usr\/local\/share\/ca-certificates\/|etc\/ca-certificates\/)/;

describe('the sidecar image and its way to Docker', () => {
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('base64url');
  let dir = '';
  const cleanups: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), `${prefix}-image-`));
    // The stack's builder, so this tests the image a user gets (and costs nothing when the stack
    // test built it already).
    await run('bash', [join(root, 'stack', 'up.sh'), '--build-only'], { env: { ...process.env }, timeout: 900_000, maxBuffer: 64 * 1024 * 1024 });
  }, 900_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  }, 60_000);

  it('runs as a user that is not root', async () => {
    const user = (await docker('image', 'inspect', '-f', '{{.Config.User}}', IMAGE)).stdout.trim();
    expect(user).not.toBe('');
    expect(user.split(':')[0]).not.toMatch(/^(root|0)$/);
    const id = await docker('run', '--rm', ...OWNER, '--entrypoint', 'id', IMAGE, '-u');
    expect(id.code).toBe(0);
    expect(Number(id.stdout.trim())).toBeGreaterThan(0);
  });

  it('starts and serves /healthz with a read-only root filesystem, no capability and no new privilege', async () => {
    const name = `${prefix}-readonly`;
    const started = await docker(
      'run', '-d', ...OWNER, '--name', name, '--read-only', '--cap-drop', 'ALL', '--security-opt', 'no-new-privileges', '-p', '127.0.0.1::9180',
      // Beyond the container's loopback (for the published port), so the token is required.
      '-e', 'HSC_HTTP_HOST=0.0.0.0', '-e', `HSC_ADMIN_TOKEN=${token}`,
      '-e', 'HSC_HAPROXY_DRIVER=runtime', '-e', 'HSC_HAPROXY_RUNTIME_SOCKET=/run/hsc-haproxy/haproxy.sock', '-e', 'HSC_HAPROXY_CONFIG_FILE=/run/hsc-haproxy/haproxy.cfg',
      '-e', 'HSC_DOCKER_NETWORK=app', '-e', 'HSC_AUTOSCALE_ENABLED=false',
      IMAGE,
    );
    cleanups.push(() => docker('rm', '-f', name));
    expect(started.code, started.stderr).toBe(0);
    const port = (await docker('port', name, '9180/tcp')).stdout.trim().split('\n')[0]?.split(':').at(-1) ?? '';
    expect(await eventually(async () => (await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(2_000) }).then((r) => r.status, () => 0)) === 200, 30_000, 250)).toBe(true);
    expect(await eventually(async () => (await docker('inspect', '-f', '{{.State.Health.Status}}', name)).stdout.trim() === 'healthy', 45_000, 500)).toBe(true);
    const inspected = (await docker('inspect', '-f', '{{.HostConfig.ReadonlyRootfs}} {{.State.Running}}', name)).stdout.trim();
    expect(inspected).toBe('true true');
    // Read-only indeed: nothing can be written, not even by the image's own user in its home.
    const write = await docker('exec', name, 'sh', '-c', 'touch /app/x || touch /tmp/x || touch "$HOME/x"');
    expect(write.code).not.toBe(0);
    // And its log says nothing of the token it was given.
    const logs = await docker('logs', name);
    expect(`${logs.stdout}${logs.stderr}`).toContain('sidecar started');
    expect(`${logs.stdout}${logs.stderr}`).not.toContain(token);
  }, 120_000);

  it('carries no credential and no file that holds one, in any layer or history line', async () => {
    const history = await docker('history', '--no-trunc', '--format', '{{.CreatedBy}}', IMAGE);
    expect(history.code).toBe(0);
    // Nothing assigned to a secret's variable at build time, no secret file copied in.
    expect(history.stdout).not.toMatch(/HSC_[A-Z_]*(TOKEN|PASSWORD)=\S/);
    expect(history.stdout).not.toMatch(/secrets\//);
    const env = (await docker('image', 'inspect', '-f', '{{json .Config.Env}}', IMAGE)).stdout;
    expect(env).not.toMatch(/TOKEN|PASSWORD|SECRET/i);

    const saved = join(dir, 'image.tar');
    expect((await docker('save', '-o', saved, IMAGE)).code).toBe(0);
    const unpacked = join(dir, 'image');
    await run('mkdir', ['-p', unpacked]);
    await run('tar', ['-xf', saved, '-C', unpacked]);
    await rm(saved);
    const manifest = JSON.parse(readFileSync(join(unpacked, 'manifest.json'), 'utf8')) as Array<{ Layers: string[] }>;
    const layers = manifest.flatMap((m) => m.Layers);
    expect(layers.length).toBeGreaterThan(0);
    const files: string[] = [];
    for (const layer of layers) files.push(...(await run('tar', ['-tf', join(unpacked, layer)], { maxBuffer: 256 * 1024 * 1024 })).stdout.split('\n').filter((f) => f !== ''));
    expect(files.length).toBeGreaterThan(1000);
    const suspicious = files.filter((f) => SECRET_FILE.test(f) && !PUBLIC_CERTS.test(f));
    expect(suspicious).toEqual([]);

    // The credentials of this run, and the stack's own generated secrets where this machine has
    // them, in no byte of any layer (the layers are plain tar: file contents are stored as is).
    const needles = [token];
    const stackSecrets = process.env.HSC_SECRETS_DIR ?? join(root, 'stack', 'secrets');
    if (existsSync(stackSecrets)) {
      for (const file of readdirSync(stackSecrets)) {
        const value = readFileSync(join(stackSecrets, file), 'utf8').trim();
        if (value.length >= 12) needles.push(value);
      }
    }
    const patterns = join(dir, 'needles');
    await writeFile(patterns, `${needles.join('\n')}\n`, { mode: 0o600 });
    const grep = await run('grep', ['-a', '-F', '-l', '-f', patterns, ...layers.map((l) => join(unpacked, l))]).then(
      ({ stdout }) => stdout.trim(),
      (error: { code?: number; stdout?: string }) => (error.code === 1 ? '' : `grep failed: ${String(error.code)}`),
    );
    expect(grep).toBe('');
    expect((await readdir(unpacked)).length).toBeGreaterThan(0);
  }, 300_000);

  it('in the stack, only the filtering proxy holds Docker’s socket; the sidecar reaches Docker through it', () => {
    const compose = parseYaml(readFileSync(join(root, 'stack', 'compose.yaml'), 'utf8')) as {
      services: Record<string, { volumes?: Array<string | { source?: string }>; environment?: Record<string, string> }>;
    };
    const mounts = (service: string): string[] =>
      (compose.services[service]?.volumes ?? []).map((v) => (typeof v === 'string' ? v.split(':')[0] ?? '' : v.source ?? ''));
    const holders = Object.keys(compose.services).filter((service) => mounts(service).some((source) => source.endsWith('docker.sock')));
    expect(holders).toEqual(['docker-api-proxy']);
    const sidecar = compose.services.sidecar;
    expect(sidecar?.environment?.HSC_DOCKER_SOCKET).toBe('/run/docker-api-proxy/docker.sock');
    expect(mounts('sidecar')).toContain('docker-api-socket');
  });

  it('the real proxy lets the real sidecar discover a container, and refuses what the sidecar never needs', async () => {
    const socketDir = join(dir, 'docker-api-proxy');
    await run('mkdir', ['-p', socketDir]);
    const name = `${prefix}-docker-api-proxy`;
    const started = await docker('run', '-d', ...OWNER, '--name', name, '--network', 'none', '-v', '/var/run/docker.sock:/var/run/docker.sock', '-v', `${socketDir}:/run/docker-api-proxy`, PROXY_IMAGE);
    cleanups.push(() => docker('rm', '-f', name));
    expect(started.code, started.stderr).toBe(0);
    const socket = join(socketDir, 'docker.sock');
    expect(await eventually(async () => existsSync(socket) && (await overSocket(socket, 'GET', '/_ping').catch(() => 0)) === 200, 20_000, 200)).toBe(true);

    const web: TestContainer = await startNginx({ name: `${prefix}-web`, labels: { [`${prefix}.enable`]: 'true' } });
    cleanups.push(() => web.remove());
    // Allowed: what the sidecar does.
    expect(await overSocket(socket, 'GET', '/v1.41/containers/json')).toBe(200);
    expect(await overSocket(socket, 'GET', `/containers/${web.id}/json`)).toBe(200);
    // Refused before Docker sees it.
    const refused: Record<string, number> = {
      'privileged container': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { Privileged: true } }),
      'host PID namespace': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { PidMode: 'host' } }),
      'Docker socket bind': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { Binds: ['/var/run/docker.sock:/s'] } }),
      'added capability': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { CapAdd: ['SYS_ADMIN'] } }),
      // Ways around a check on the body as written, each of which reached Docker before.
      'privileged, padded past the buffer': await overSocketRaw(socket, 'POST', '/containers/create', `{"Image":"hsc/debian-base:bookworm",${' '.repeat(70_000)}"HostConfig":{"Privileged":true}}`),
      'privileged, spaced': await overSocketRaw(socket, 'POST', '/containers/create', '{"Image":"hsc/debian-base:bookworm","HostConfig":{"Privileged" : true}}'),
      'privileged, escaped': await overSocketRaw(socket, 'POST', '/containers/create', '{"Image":"hsc/debian-base:bookworm","HostConfig":{"\\u0050rivileged":true}}'),
      'create, chunked': await overSocketRaw(socket, 'POST', '/containers/create', '{"Image":"hsc/debian-base:bookworm"}', true),
      'host root bind': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { Binds: ['/:/host'] } }),
      'host root mount': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { Mounts: [{ Type: 'bind', Source: '/', Target: '/host' }] } }),
      'unconfined seccomp': await overSocket(socket, 'POST', '/containers/create', { Image: 'hsc/debian-base:bookworm', HostConfig: { SecurityOpt: ['seccomp=unconfined'] } }),
      'privileges at start (old API)': await overSocket(socket, 'POST', `/v1.23/containers/${web.id}/start`, { Privileged: true }),
      exec: await overSocket(socket, 'POST', `/containers/${web.id}/exec`, { Cmd: ['id'] }),
      logs: await overSocket(socket, 'GET', `/containers/${web.id}/logs?stdout=1`),
      kill: await overSocket(socket, 'POST', `/containers/${web.id}/kill`),
      'image pull': await overSocket(socket, 'POST', '/images/create?fromImage=busybox'),
      'image removal': await overSocket(socket, 'DELETE', '/images/hsc/nginx:local'),
      volumes: await overSocket(socket, 'GET', '/volumes'),
      secrets: await overSocket(socket, 'GET', '/secrets'),
    };
    expect(refused).toEqual(Object.fromEntries(Object.keys(refused).map((k) => [k, 403])));
    // Nothing was created by the refused calls.
    const created = await docker('ps', '-a', '--filter', 'ancestor=hsc/debian-base:bookworm', '--filter', 'since=' + web.id, '-q');
    expect(created.stdout.trim()).toBe('');
    // What the sidecar sends to create a replica still passes (a named volume, an application
    // path bound, a healthcheck naming /dev/null); created, never started, removed.
    const replica = { Image: 'hsc/debian-base:bookworm', Cmd: ['true'], Labels: { 'hsc.owner': 'test' }, Healthcheck: { Test: ['CMD', 'curl', '-o', '/dev/null', 'http://127.0.0.1/'] }, HostConfig: { Binds: [`${prefix}-data:/data`, '/srv/app/static:/static:ro'] } };
    expect(await overSocket(socket, 'POST', `/containers/create?name=${prefix}-replica`, replica)).toBe(201);
    // And the very body the sidecar builds to scale up, from a real container's inspect (on a
    // cgroup v1 host it says CgroupnsMode "host", Docker's default there).
    const spec = cloneSpec(await dockerApi.getContainer(web.id).inspect(), 99);
    expect(await overSocket(socket, 'POST', `/containers/create?name=${prefix}-clone`, { ...spec.create, Labels: { ...spec.create.Labels, 'hsc.owner': 'test' } })).toBe(201);
    cleanups.push(() => docker('rm', '-f', `${prefix}-clone`));
    // Run in reverse: the container goes before its volume.
    cleanups.push(() => docker('volume', 'rm', '-f', `${prefix}-data`));
    cleanups.push(() => docker('rm', '-f', `${prefix}-replica`));

    // The sidecar itself, given only the proxy's socket, discovers the container and serves it.
    const haproxy: LocalHaproxy = await startLocalHaproxy({ withDataplane: false });
    cleanups.push(() => haproxy.stop());
    const sidecar: RunningSidecar = await startSidecar(
      loadConfig({
        env: {
          ...labelledContainersEnv(haproxy, 'runtime', prefix),
          HSC_DOCKER_SOCKET: socket,
          HSC_AUTOSCALE_ENABLED: 'false',
          HSC_RESYNC_INTERVAL_MS: '1000',
          HSC_HTTP_PORT: String(await freePort()),
        },
      }),
      { logger: silentLogger },
    );
    cleanups.push(() => sidecar.stop());
    expect(await eventually(async () => (await runtimeServerNames(haproxy)).includes(`hsc-${prefix}-web`), 30_000, 200)).toBe(true);
    const answer = await fetch(`${haproxy.frontendUrl}/`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('x-served-by')).toBe(web.hostname);
  }, 180_000);
});
