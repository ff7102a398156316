// Starts and stops isolated HAProxy + Data Plane API pairs for the tests and the demo.
//
// Each pair lives in its own temporary directory (configuration, sockets, pidfile, state,
// transactions) and listens on free loopback ports, so test files can each own one. stop()
// kills both processes and removes the directory; processes that a crashed run left behind
// are found by their directory prefix and killed by sweepLeftovers().
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, readdirSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { dataplaneApiBinary, haproxyBinary, haproxyVersion } from './versions.js';
import { killProcessesWhere, runningChildren } from './children.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
/**
 * Every instance directory starts with `hsc-<purpose>-`, which is how leftovers are recognised;
 * the test suite sweeps only its own (`hsc-test-`), never a demo that runs beside it.
 */
/** Who owns an instance: each kind of run sweeps only its own leftovers (a bench run never a running soak). */
export type InstancePurpose = 'test' | 'demo' | 'bench' | 'soak';
export const instancePrefix = (purpose: InstancePurpose): string => `hsc-${purpose}-`;

export interface ManualServer {
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface LocalHaproxyOptions {
  /** Who owns the instance; decides which sweep may clean it up (default test). */
  readonly purpose?: InstancePurpose;
  /** Name of the backend the nginx pool goes into (default be_app). */
  readonly backend?: string;
  /** Servers written into haproxy.cfg by hand, which the sidecar must never touch. */
  readonly manualServers?: readonly ManualServer[];
  /** Delay the Data Plane API waits before reloading after a commit (default 200 ms). */
  readonly reloadDelayMs?: number;
  /** Start the Data Plane API beside HAProxy (default true). */
  readonly withDataplane?: boolean;
  /**
   * The template's retry settings for replicas that stop (`retry-on conn-failure empty-response`,
   * `timeout connect 1s`; default true). False writes HAProxy's defaults of before (no retry-on,
   * `timeout connect 2s`): the deploy benchmark measures what the settings do.
   */
  readonly retryOnStop?: boolean;
}

export interface LocalHaproxy {
  readonly dir: string;
  readonly backend: string;
  readonly frontendUrl: string;
  readonly statsUrl: string;
  readonly metricsUrl: string;
  /** Undefined when the instance was started without the Data Plane API. */
  readonly dataplaneUrl: string | undefined;
  readonly dataplaneUser: string;
  readonly dataplanePassword: string;
  readonly statsUser: string;
  readonly statsPassword: string;
  readonly runtimeSocket: string;
  readonly masterSocket: string;
  readonly configFile: string;
  /** The HAProxy binary this instance runs (devenv/versions.ts haproxyBinary()) and its version, e.g. "3.0.11". */
  readonly haproxyBinary: string;
  readonly haproxyVersion: string;
  /** Sends a command to HAProxy's runtime API (admin level) and returns its answer. */
  runtime(command: string): Promise<string>;
  /** The master CLI's `show proc` worker count of reloads, for asserting reload behaviour. */
  reloadCount(): Promise<number>;
  stop(): Promise<void>;
}

// A test runner that dies must not leave these running (devenv/children.ts).
const running = runningChildren();

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not allocate a free port'));
      });
    });
  });
}

function secret(): string {
  return randomBytes(18).toString('base64url');
}

function render(template: string, values: Readonly<Record<string, string>>): string {
  return template.replace(/\{\{(\w+)\}\}/g, (whole, key: string) => {
    const value = values[key];
    if (value === undefined) throw new Error(`template placeholder ${whole} has no value`);
    return value;
  });
}

function dataplaneConfig(dir: string, port: number, reloadDelaySeconds: number, haproxyBin: string): string {
  // config_version 2 is the Data Plane API v3 file format. The reload and restart commands
  // are executables without arguments (they are not run through a shell). No master_runtime:
  // with it the API reloads HAProxy 2.7+ through the master CLI instead of the reload command,
  // which saves the server state first (haproxy/reload.sh): drain states were lost at reloads.
  return `config_version: 2
name: ${JSON.stringify(`hsc-${port}`)}
dataplaneapi:
  host: 127.0.0.1
  port: ${port}
  userlist:
    userlist: dataplaneapi
  transaction:
    transaction_dir: ${dir}/transactions
    backups_number: 0
  resources:
    maps_dir: ${dir}/maps
    ssl_certs_dir: ${dir}/ssl
    general_storage_dir: ${dir}/general
    spoe_dir: ${dir}/spoe
    spoe_transaction_dir: ${dir}/spoe-transactions
    dataplane_storage_dir: ${dir}/storage
haproxy:
  config_file: ${dir}/haproxy.cfg
  haproxy_bin: ${haproxyBin}
  master_worker_mode: true
  reload:
    reload_delay: ${reloadDelaySeconds}
    reload_strategy: custom
    reload_cmd: ${dir}/reload
    restart_cmd: ${dir}/reload
    reload_retention: 1
log:
  log_to: stdout
  log_level: info
`;
}

function spawnLogged(command: string, args: readonly string[], logFile: string, env?: NodeJS.ProcessEnv): ChildProcess {
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  running.add(child);
  child.once('exit', () => running.delete(child));
  return child;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(100);
  }
  const tail = existsSync(logFile) ? (await readFile(logFile, 'utf8')).split('\n').slice(-20).join('\n') : '';
  throw new Error(`${what} did not become ready within ${timeoutMs} ms\n${tail}`);
}

async function unixCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = createConnection(socketPath, () => socket.end(`${command}\n`));
    socket.setTimeout(5000, () => socket.destroy(new Error(`runtime command timed out: ${command}`)));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

/**
 * A command to HAProxy's master CLI. HAProxy 2.6's master executes itself again on a reload and
 * refuses connections meanwhile (seen: about 75 ms); 3.0 and later keep answering. A refusal is
 * therefore asked again for a short while rather than taken for a master that is gone.
 */
async function masterCommand(socketPath: string, command: string): Promise<string> {
  const deadline = Date.now() + 3_000;
  for (;;) {
    try {
      return await unixCommand(socketPath, command);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ECONNREFUSED' && code !== 'ENOENT') || Date.now() >= deadline) throw error;
      await sleep(50);
    }
  }
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

export async function startLocalHaproxy(options: LocalHaproxyOptions = {}): Promise<LocalHaproxy> {
  const backend = options.backend ?? 'be_app';
  const haproxyBin = haproxyBinary();
  const version = haproxyVersion(haproxyBin);
  const dir = await mkdtemp(join(tmpdir(), instancePrefix(options.purpose ?? 'test')));
  for (const sub of ['transactions', 'maps', 'ssl', 'general', 'spoe', 'spoe-transactions', 'storage']) {
    await mkdir(join(dir, sub), { recursive: true });
  }
  const [frontendPort, statsPort, dataplanePort] = [await freePort(), await freePort(), await freePort()];
  const credentials = {
    dataplaneUser: 'dataplane',
    dataplanePassword: secret(),
    statsUser: 'stats',
    statsPassword: secret(),
  };
  const manualServers = (options.manualServers ?? [])
    .map((s) => `    server ${s.name} ${s.address}:${s.port} check inter 1s fall 2 rise 1`)
    .join('\n');
  const fullTemplate = await readFile(join(repoRoot, 'haproxy', 'haproxy.local.cfg.tmpl'), 'utf8');
  const template =
    options.retryOnStop === false ? fullTemplate.replace(/^\s*retry-on .*\n/m, '').replace(/^(\s*)timeout connect 1s$/m, '$1timeout connect 2s') : fullTemplate;
  if (options.retryOnStop === false && (template.includes('retry-on') || !template.includes('timeout connect 2s'))) throw new Error('the template changed: retryOnStop=false no longer finds its lines');
  const configFile = join(dir, 'haproxy.cfg');
  await writeFile(
    configFile,
    render(template, {
      dir,
      backend,
      listenAddress: '127.0.0.1',
      frontendPort: String(frontendPort),
      statsPort: String(statsPort),
      manualServers,
      cookieKey: secret(),
      ...credentials,
    }),
    { mode: 0o600 },
  );
  await writeFile(join(dir, 'server-state'), '');
  // reload_delay is in whole seconds; CI_DATAPLANE_RELOAD_DELAY_OVERRIDE (ms) below takes precedence.
  await writeFile(join(dir, 'dataplaneapi.yml'), dataplaneConfig(dir, dataplanePort, 1, haproxyBin), { mode: 0o600 });
  const reloadScript = join(dir, 'reload');
  // The reload's configuration check runs the same HAProxy as the master.
  await writeFile(reloadScript, `#!/bin/sh\nexec ${join(repoRoot, 'haproxy', 'reload.sh')} ${dir} ${haproxyBin}\n`);
  await chmod(reloadScript, 0o755);

  const masterSocket = join(dir, 'master.sock');
  const runtimeSocket = join(dir, 'haproxy.sock');
  const haproxyLog = join(dir, 'haproxy.log');
  const dataplaneLog = join(dir, 'dataplaneapi.log');
  const children: ChildProcess[] = [];

  const stop = async (): Promise<void> => {
    // The Data Plane API first, so it does not try to reload a stopping HAProxy.
    for (const child of [...children].reverse()) await stopChild(child, 'SIGTERM');
    await rm(dir, { recursive: true, force: true });
  };

  try {
    children.push(spawnLogged(haproxyBin, ['-W', '-S', `${masterSocket},mode,600`, '-f', configFile], haproxyLog));
    await waitFor(
      'HAProxy',
      async () => (await unixCommand(masterSocket, 'show proc')).includes('worker'),
      10_000,
      haproxyLog,
    );

    let dataplaneUrl: string | undefined;
    if (options.withDataplane ?? true) {
      const binary = dataplaneApiBinary();
      if (binary === undefined) {
        throw new Error('no Data Plane API binary: pin DATAPLANEAPI_GO_VERSION in devenv/versions.env and run devenv/setup.sh');
      }
      children.push(
        spawnLogged(binary, ['-f', join(dir, 'dataplaneapi.yml')], dataplaneLog, {
          ...process.env,
          CI_DATAPLANE_RELOAD_DELAY_OVERRIDE: String(options.reloadDelayMs ?? 200),
        }),
      );
      const url = `http://127.0.0.1:${dataplanePort}`;
      const authorization = `Basic ${Buffer.from(`${credentials.dataplaneUser}:${credentials.dataplanePassword}`).toString('base64')}`;
      await waitFor(
        'Data Plane API',
        async () => (await fetch(`${url}/v3/info`, { headers: { authorization } })).ok,
        20_000,
        dataplaneLog,
      );
      dataplaneUrl = url;
    }

    return {
      dir,
      backend,
      frontendUrl: `http://127.0.0.1:${frontendPort}`,
      statsUrl: `http://127.0.0.1:${statsPort}/haproxy-stats`,
      metricsUrl: `http://127.0.0.1:${statsPort}/metrics`,
      dataplaneUrl,
      ...credentials,
      runtimeSocket,
      masterSocket,
      configFile,
      haproxyBinary: haproxyBin,
      haproxyVersion: version,
      runtime: (command) => unixCommand(runtimeSocket, command),
      reloadCount: async () => {
        const master = (await masterCommand(masterSocket, 'show proc')).split('\n').find((l) => /\smaster\s/.test(l));
        const count = master?.trim().split(/\s+/)[2];
        if (count === undefined) throw new Error('master CLI did not report its reload count');
        return Number(count);
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Kills HAProxy, Data Plane API, Prometheus and Alertmanager processes left by an earlier run that crashed, and removes
 * their directories. Only processes whose command line names an instance directory are touched.
 */
export async function sweepLeftovers(purpose: InstancePurpose = 'test'): Promise<number> {
  const prefix = instancePrefix(purpose);
  const killed = killProcessesWhere(
    (cmdline) =>
      cmdline.includes(join(tmpdir(), prefix)) &&
      // Prometheus and Alertmanager too: devenv/prometheus.ts keeps their instances in
      // directories with the same prefix.
      /(^|\/)(haproxy|dataplaneapi|prometheus|prometheus-alertmanager)\s/.test(cmdline),
  );
  for (const entry of readdirSync(tmpdir()).filter((name) => name.startsWith(prefix))) {
    await rm(join(tmpdir(), entry), { recursive: true, force: true });
  }
  return killed;
}
