// The one configuration loader: a YAML file (optional) and HSC_* environment variables
// become one validated, frozen object with defaults. A bad value stops start-up with a
// message that names the key; secrets never appear in logs (see redactConfig).
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { DEFAULT_POLICY, validatePolicy, type ScalingPolicy } from '../autoscale/policy.js';
import { parseSocketAddress } from '../runtime/socket.js';

export interface DataplaneConfig {
  readonly url: string;
  readonly username: string;
  readonly password: string;
  /** Per-request timeout. */
  readonly timeoutMs: number;
  /** Attempts after the first one for transient failures (connection refused, 5xx, 429). */
  readonly retries: number;
  /** How long to wait for a reload the Data Plane API scheduled. */
  readonly reloadTimeoutMs: number;
}

import type { AddressMode } from '../discovery/parse.js';
import type { LogLevel } from '../log/logger.js';
export type { AddressMode, LogLevel };

/** `compose`: containers on this engine; `swarm`: tasks of Swarm services, through a manager. */
export type DockerMode = 'compose' | 'swarm';

export interface DockerConfig {
  /**
   * `compose`: replicas are containers on the engine at socketPath, started and stopped by the
   * sidecar. `swarm`: the engine is a Swarm manager; replicas are the tasks of a replicated
   * service, scaled through its replica count (sidecar/docker/swarm.ts).
   */
  readonly mode: DockerMode;
  readonly socketPath: string;
  /**
   * `published`: HAProxy runs on the host and reaches a container through the port it
   * publishes on the loopback. `network`: HAProxy shares a Docker network with the
   * containers and uses the container's address on it.
   */
  readonly addressMode: AddressMode;
  /** The Docker network whose address is used in `network` mode. */
  readonly network: string;
  /** Containers of this Compose service are managed without any label. */
  readonly composeService: string;
  /** Its Compose project; empty matches the service in any project. */
  readonly composeProject: string;
  /** Label prefix, as in `haproxy.enable=true`. */
  readonly labelPrefix: string;
  /** The event stream is reopened after a break with a backoff between these two. */
  readonly eventsMinBackoffMs: number;
  readonly eventsMaxBackoffMs: number;
}

export interface BackendDefaults {
  /** The backend containers join when they carry no backend label. */
  readonly defaultBackend: string;
  /** Every backend the sidecar may manage; a label naming another one is rejected. */
  readonly managedBackends: readonly string[];
  readonly port: number;
  readonly healthPath: string;
  readonly weight: number;
  /** How long the readiness probe of a container without a Docker healthcheck waits. */
  readonly probeTimeoutMs: number;
}

export interface ReconcileConfig {
  /** Full relist and re-plan at least this often, whatever the events said. */
  readonly resyncIntervalMs: number;
  /** Quiet time after the last Docker event before a reconcile starts. */
  readonly debounceMs: number;
  /** A reconcile starts at most this long after the first pending event, even if events keep coming. */
  readonly maxDebounceMs: number;
  /** Re-reads and re-plans after a 409 version conflict before giving up this round. */
  readonly maxConflictRetries: number;
  /** How soon containers still starting are looked at again. */
  readonly readinessRetryMs: number;
  /** First retry after a failed pass; doubles up to the resync interval. */
  readonly failureBackoffMs: number;
}

export type HaproxyDriverKind = 'dataplane' | 'runtime';

export interface HaproxyConfig {
  /**
   * How the sidecar writes to HAProxy: `dataplane` through the Data Plane API (transactions),
   * `runtime` through HAProxy's runtime API and the managed region of its configuration file.
   */
  readonly driver: HaproxyDriverKind;
  /** HAProxy's own Prometheus endpoint: server sessions and queues for draining, signals for scaling. */
  readonly metricsUrl: string;
  /**
   * HAProxy's runtime API: a unix socket path or host:port. Required by the runtime driver; with
   * the Data Plane API driver it is optional and lets servers join without a reload.
   */
  readonly runtimeSocket: string;
  /** The configuration file whose managed region the runtime driver keeps (required by it). */
  readonly configFile: string;
  /** Per-command timeout on the runtime socket. */
  readonly socketTimeoutMs: number;
  /** Per-scrape timeout on the metrics endpoint. */
  readonly metricsTimeoutMs: number;
  /** Health checks on every server the sidecar adds. */
  readonly check: { readonly intervalMs: number; readonly fall: number; readonly rise: number };
}

export interface DrainConfig {
  /** After this, a drain that has not completed puts the server in maintenance (a forced drain). */
  readonly deadlineMs: number;
  /** How often a drain reads the server's sessions and queue. */
  readonly pollMs: number;
}

export interface AutoscaleConfig {
  readonly enabled: boolean;
  /** Decide and log, never act (also switchable at run time through the admin API). */
  readonly dryRun: boolean;
  readonly backend: string;
  /** The Compose service whose containers are scaled. */
  readonly service: string;
  /** Its Compose project; empty matches the service in any project. */
  readonly project: string;
  readonly intervalMs: number;
  /** Between evaluations, a breach check (HAProxy's figures only) every this many ms; 0: none. */
  readonly breachCheckMs: number;
  /**
   * Where scale-downs in progress are recorded so that a restarted sidecar finishes them; empty
   * keeps them in memory only (a restart then leaves the victim drained and running).
   */
  readonly stateFile: string;
  /** docker stop's grace period for a retired replica. */
  readonly stopTimeoutSeconds: number;
  /** The scaling policy, in the policy's own terms (see sidecar/autoscale/policy.ts). */
  readonly policy: ScalingPolicy;
}

export interface HttpConfig {
  readonly host: string;
  readonly port: number;
  /** Bearer token for mutating admin routes; empty means loopback-only and read-only. */
  readonly adminToken: string;
}


export interface SidecarConfig {
  /** Present when haproxy.driver is dataplane. */
  readonly dataplane: DataplaneConfig | undefined;
  readonly docker: DockerConfig;
  readonly backends: BackendDefaults;
  readonly reconcile: ReconcileConfig;
  readonly haproxy: HaproxyConfig;
  readonly drain: DrainConfig;
  readonly autoscale: AutoscaleConfig;
  readonly http: HttpConfig;
  readonly logLevel: LogLevel;
}

export class ConfigError extends Error {
  constructor(
    readonly key: string,
    message: string,
  ) {
    super(`configuration key ${key}: ${message}`);
    this.name = 'ConfigError';
  }
}

/** Every key, its environment variable and how to read it. Paths are dotted. */
type Reader<T> = (raw: unknown, key: string) => T;

const str: Reader<string> = (raw, key) => {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number') return String(raw);
  throw new ConfigError(key, `expected a string, got ${JSON.stringify(raw)}`);
};

const nonEmpty: Reader<string> = (raw, key) => {
  const value = str(raw, key);
  if (value.trim() === '') throw new ConfigError(key, 'must not be empty');
  return value;
};

const int =
  (min: number, max: number): Reader<number> =>
  (raw, key) => {
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(key, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };

const bool: Reader<boolean> = (raw, key) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(key, `expected true or false, got ${JSON.stringify(raw)}`);
};

const decimal =
  (min: number, max: number): Reader<number> =>
  (raw, key) => {
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw new ConfigError(key, `expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  };

const oneOf =
  <T extends string>(...allowed: T[]): Reader<T> =>
  (raw, key) => {
    const value = str(raw, key);
    if (!(allowed as string[]).includes(value)) {
      throw new ConfigError(key, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
    }
    return value as T;
  };

/** A URL as it may be shown in an error: whatever stands before an "@" in its authority is hidden. */
const withoutUserinfo = (value: string): string => value.replace(/^([^:/?#]*:\/\/)[^/?#]*@/, '$1[redacted]@');

const url: Reader<string> = (raw, key) => {
  const value = nonEmpty(raw, key);
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(key, `expected an http(s) URL, got ${JSON.stringify(withoutUserinfo(value))}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new ConfigError(key, `expected an http(s) URL, got ${JSON.stringify(withoutUserinfo(value))}`);
  }
  // A password in a URL would be in every log line and error that names the URL (requests, retries,
  // the start-up line): credentials have keys of their own, read from a file if need be.
  if (parsed.username !== '' || parsed.password !== '') {
    throw new ConfigError(key, 'must not carry credentials (user:password@); the Data Plane API\'s go in dataplane.username and dataplane.password (HSC_DATAPLANE_PASSWORD_FILE), and HAProxy\'s metrics endpoint needs none');
  }
  return value.replace(/\/+$/, '');
};

const backendName: Reader<string> = (raw, key) => {
  const value = nonEmpty(raw, key);
  if (!/^[A-Za-z0-9_.:-]+$/.test(value)) throw new ConfigError(key, `not a valid HAProxy backend name: ${value}`);
  return value;
};

const nameList: Reader<readonly string[]> = (raw, key) => {
  const items = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '') : raw;
  if (!Array.isArray(items) || items.length === 0) throw new ConfigError(key, 'expected a non-empty list of names');
  return items.map((item, index) => backendName(item, `${key}[${index}]`));
};

const httpPath: Reader<string> = (raw, key) => {
  const value = nonEmpty(raw, key);
  if (!value.startsWith('/') || /\s/.test(value)) throw new ConfigError(key, `expected a path starting with /, got ${value}`);
  return value;
};

interface KeySpec<T> {
  readonly env: string;
  readonly read: Reader<T>;
  /** undefined: the key is required. */
  readonly fallback?: T;
  readonly secret?: boolean;
}

const spec = {
  'dataplane.url': { env: 'HSC_DATAPLANE_URL', read: url, fallback: 'http://127.0.0.1:5555' },
  'dataplane.username': { env: 'HSC_DATAPLANE_USERNAME', read: nonEmpty, fallback: 'admin' },
  'dataplane.password': { env: 'HSC_DATAPLANE_PASSWORD', read: str, fallback: '', secret: true },
  'dataplane.timeoutMs': { env: 'HSC_DATAPLANE_TIMEOUT_MS', read: int(100, 600_000), fallback: 10_000 },
  'dataplane.retries': { env: 'HSC_DATAPLANE_RETRIES', read: int(0, 20), fallback: 4 },
  'dataplane.reloadTimeoutMs': { env: 'HSC_DATAPLANE_RELOAD_TIMEOUT_MS', read: int(100, 600_000), fallback: 30_000 },
  'docker.mode': { env: 'HSC_DOCKER_MODE', read: oneOf<DockerMode>('compose', 'swarm'), fallback: 'compose' },
  'docker.socketPath': { env: 'HSC_DOCKER_SOCKET', read: nonEmpty, fallback: '/var/run/docker.sock' },
  'docker.addressMode': { env: 'HSC_DOCKER_ADDRESS_MODE', read: oneOf<AddressMode>('published', 'network'), fallback: 'network' },
  'docker.network': { env: 'HSC_DOCKER_NETWORK', read: str, fallback: '' },
  'docker.composeService': { env: 'HSC_DOCKER_COMPOSE_SERVICE', read: str, fallback: 'nginx' },
  'docker.composeProject': { env: 'HSC_DOCKER_COMPOSE_PROJECT', read: str, fallback: '' },
  'docker.labelPrefix': { env: 'HSC_DOCKER_LABEL_PREFIX', read: nonEmpty, fallback: 'haproxy' },
  'docker.eventsMinBackoffMs': { env: 'HSC_DOCKER_EVENTS_MIN_BACKOFF_MS', read: int(10, 600_000), fallback: 500 },
  'docker.eventsMaxBackoffMs': { env: 'HSC_DOCKER_EVENTS_MAX_BACKOFF_MS', read: int(10, 3_600_000), fallback: 30_000 },
  'backends.defaultBackend': { env: 'HSC_DEFAULT_BACKEND', read: backendName, fallback: 'be_app' },
  'backends.managedBackends': { env: 'HSC_MANAGED_BACKENDS', read: nameList, fallback: undefined },
  'backends.port': { env: 'HSC_BACKEND_PORT', read: int(1, 65_535), fallback: 80 },
  'backends.healthPath': { env: 'HSC_BACKEND_HEALTH_PATH', read: httpPath, fallback: '/healthz' },
  'backends.weight': { env: 'HSC_BACKEND_WEIGHT', read: int(0, 256), fallback: 100 },
  'backends.probeTimeoutMs': { env: 'HSC_BACKEND_PROBE_TIMEOUT_MS', read: int(50, 60_000), fallback: 1_000 },
  'reconcile.resyncIntervalMs': { env: 'HSC_RESYNC_INTERVAL_MS', read: int(1000, 3_600_000), fallback: 30_000 },
  'reconcile.debounceMs': { env: 'HSC_RECONCILE_DEBOUNCE_MS', read: int(0, 60_000), fallback: 250 },
  'reconcile.maxDebounceMs': { env: 'HSC_RECONCILE_MAX_DEBOUNCE_MS', read: int(0, 600_000), fallback: 2_000 },
  'reconcile.maxConflictRetries': { env: 'HSC_MAX_CONFLICT_RETRIES', read: int(0, 50), fallback: 5 },
  'reconcile.readinessRetryMs': { env: 'HSC_RECONCILE_READINESS_RETRY_MS', read: int(50, 600_000), fallback: 1_000 },
  'reconcile.failureBackoffMs': { env: 'HSC_RECONCILE_FAILURE_BACKOFF_MS', read: int(50, 600_000), fallback: 1_000 },
  // No default: which writer to use is the operator's decision, not a guess.
  'haproxy.driver': { env: 'HSC_HAPROXY_DRIVER', read: oneOf<HaproxyDriverKind>('dataplane', 'runtime') },
  'haproxy.metricsUrl': { env: 'HSC_HAPROXY_METRICS_URL', read: url, fallback: 'http://127.0.0.1:8404/metrics' },
  'haproxy.runtimeSocket': { env: 'HSC_HAPROXY_RUNTIME_SOCKET', read: str, fallback: '' },
  'haproxy.configFile': { env: 'HSC_HAPROXY_CONFIG_FILE', read: str, fallback: '' },
  'haproxy.socketTimeoutMs': { env: 'HSC_HAPROXY_SOCKET_TIMEOUT_MS', read: int(100, 600_000), fallback: 5_000 },
  'haproxy.metricsTimeoutMs': { env: 'HSC_HAPROXY_METRICS_TIMEOUT_MS', read: int(100, 600_000), fallback: 2_000 },
  'haproxy.check.intervalMs': { env: 'HSC_HAPROXY_CHECK_INTERVAL_MS', read: int(100, 3_600_000), fallback: 1_000 },
  'haproxy.check.fall': { env: 'HSC_HAPROXY_CHECK_FALL', read: int(1, 100), fallback: 2 },
  'haproxy.check.rise': { env: 'HSC_HAPROXY_CHECK_RISE', read: int(1, 100), fallback: 1 },
  'drain.deadlineMs': { env: 'HSC_DRAIN_DEADLINE_MS', read: int(1_000, 86_400_000), fallback: 60_000 },
  'drain.pollMs': { env: 'HSC_DRAIN_POLL_MS', read: int(50, 60_000), fallback: 500 },
  'autoscale.enabled': { env: 'HSC_AUTOSCALE_ENABLED', read: bool, fallback: true },
  'autoscale.dryRun': { env: 'HSC_AUTOSCALE_DRY_RUN', read: bool, fallback: false },
  'autoscale.backend': { env: 'HSC_AUTOSCALE_BACKEND', read: backendName, fallback: undefined },
  'autoscale.service': { env: 'HSC_AUTOSCALE_SERVICE', read: nonEmpty, fallback: undefined },
  'autoscale.project': { env: 'HSC_AUTOSCALE_PROJECT', read: str, fallback: undefined },
  'autoscale.intervalMs': { env: 'HSC_AUTOSCALE_INTERVAL_MS', read: int(1_000, 3_600_000), fallback: 30_000 },
  'autoscale.stateFile': { env: 'HSC_AUTOSCALE_STATE_FILE', read: str, fallback: '' },
  'autoscale.stopTimeoutSeconds': { env: 'HSC_AUTOSCALE_STOP_TIMEOUT_S', read: int(0, 3_600), fallback: 30 },
  'autoscale.minReplicas': { env: 'HSC_AUTOSCALE_MIN', read: int(0, 1_000), fallback: 2 },
  'autoscale.maxReplicas': { env: 'HSC_AUTOSCALE_MAX', read: int(1, 1_000), fallback: 10 },
  'autoscale.cpu.target': { env: 'HSC_AUTOSCALE_CPU_TARGET', read: decimal(0.01, 64), fallback: 0.7 },
  'autoscale.cpu.scaleDownBelow': { env: 'HSC_AUTOSCALE_CPU_DOWN', read: decimal(0, 64), fallback: 0.6 },
  'autoscale.requestRate.target': { env: 'HSC_AUTOSCALE_RPS_TARGET', read: decimal(0.01, 1e9), fallback: 100 },
  'autoscale.requestRate.scaleDownBelow': { env: 'HSC_AUTOSCALE_RPS_DOWN', read: decimal(0, 1e9), fallback: 85 },
  'autoscale.queue.target': { env: 'HSC_AUTOSCALE_QUEUE_TARGET', read: decimal(0.01, 1e9), fallback: 5 },
  'autoscale.queue.scaleDownBelow': { env: 'HSC_AUTOSCALE_QUEUE_DOWN', read: decimal(0, 1e9), fallback: 1 },
  'autoscale.responseTime.targetSeconds': { env: 'HSC_AUTOSCALE_RT_TARGET', read: decimal(0.001, 600), fallback: 0.5 },
  'autoscale.responseTime.scaleDownBelowSeconds': { env: 'HSC_AUTOSCALE_RT_DOWN', read: decimal(0, 600), fallback: 0.25 },
  'autoscale.tolerance': { env: 'HSC_AUTOSCALE_TOLERANCE', read: decimal(0, 1), fallback: 0.1 },
  'autoscale.scaleDownStabilisationMs': { env: 'HSC_AUTOSCALE_DOWN_WINDOW_MS', read: int(0, 86_400_000), fallback: 120_000 },
  'autoscale.forecast': { env: 'HSC_AUTOSCALE_FORECAST', read: oneOf<'off' | 'shadow' | 'act'>('off', 'shadow', 'act'), fallback: 'act' },
  'autoscale.startupMs': { env: 'HSC_AUTOSCALE_STARTUP_MS', read: int(0, 3_600_000), fallback: 20_000 },
  'autoscale.breachCheckMs': { env: 'HSC_AUTOSCALE_BREACH_CHECK_MS', read: int(0, 3_600_000), fallback: 2_000 },
  'autoscale.backlogDrainMs': { env: 'HSC_AUTOSCALE_BACKLOG_DRAIN_MS', read: int(0, 3_600_000), fallback: 30_000 },
  'http.host': { env: 'HSC_HTTP_HOST', read: nonEmpty, fallback: '127.0.0.1' },
  'http.port': { env: 'HSC_HTTP_PORT', read: int(0, 65_535), fallback: 9180 },
  'http.adminToken': { env: 'HSC_ADMIN_TOKEN', read: str, fallback: '', secret: true },
  logLevel: {
    env: 'HSC_LOG_LEVEL',
    read: oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace'),
    fallback: 'info',
  },
} satisfies Record<string, KeySpec<unknown>>;

type Spec = typeof spec;
type Key = keyof Spec;

function lookup(tree: unknown, path: string): unknown {
  let node = tree;
  for (const part of path.split('.')) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** Every dotted key the file may contain, so a typo is an error rather than silently ignored. */
function checkUnknownKeys(tree: unknown, prefix = ''): void {
  if (tree === null || typeof tree !== 'object' || Array.isArray(tree)) return;
  const known = Object.keys(spec);
  for (const [name, value] of Object.entries(tree as Record<string, unknown>)) {
    const path = prefix === '' ? name : `${prefix}.${name}`;
    if (known.includes(path)) continue;
    if (known.some((key) => key.startsWith(`${path}.`))) {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new ConfigError(path, 'expected a section (a mapping of keys)');
      }
      checkUnknownKeys(value, path);
      continue;
    }
    throw new ConfigError(path, 'unknown key');
  }
}

export interface ConfigSources {
  readonly env?: NodeJS.ProcessEnv;
  /** YAML text of the configuration file, if one is used. */
  readonly fileText?: string;
  readonly fileName?: string;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/**
 * A secret can come from a file named by <VARIABLE>_FILE (Docker and Compose secrets are files),
 * so it never has to sit in the environment. Trailing newlines are not part of it.
 */
function secretFromFile(key: string, entry: KeySpec<unknown>, env: NodeJS.ProcessEnv): string | undefined {
  const variable = `${entry.env}_FILE`;
  const path = env[variable];
  if (entry.secret !== true || path === undefined || path === '') return undefined;
  try {
    return readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
  } catch (error) {
    throw new ConfigError(key, `cannot read ${variable}=${path}: ${(error as Error).message}`);
  }
}

export function loadConfig(sources: ConfigSources = {}): SidecarConfig {
  const env = sources.env ?? {};
  let fileTree: unknown = {};
  if (sources.fileText !== undefined) {
    try {
      // Warnings are errors here: the parser would print them on stderr and go on with a value
      // other than the one written (an unknown tag is dropped; found by a property test).
      const document = parseDocument(sources.fileText, { logLevel: 'silent' });
      const problem = document.errors[0] ?? document.warnings[0];
      if (problem !== undefined) throw problem;
      fileTree = (document.toJS() as unknown) ?? {};
    } catch (error) {
      throw new ConfigError(sources.fileName ?? 'file', `not valid YAML: ${(error as Error).message}`);
    }
    // A number, a text or a list at the top sets nothing; loading it as an empty file would
    // start the sidecar on defaults the operator never chose (found by a property test).
    if (typeof fileTree !== 'object' || Array.isArray(fileTree)) {
      throw new ConfigError(sources.fileName ?? 'file', `expected a mapping of keys at the top, got ${Array.isArray(fileTree) ? 'a list' : `a ${typeof fileTree}`}`);
    }
    checkUnknownKeys(fileTree);
  }
  const values = {} as { [K in Key]: unknown };
  for (const key of Object.keys(spec) as Key[]) {
    const entry: KeySpec<unknown> = spec[key];
    const fromEnv = env[entry.env] ?? secretFromFile(key, entry, env);
    const raw = fromEnv !== undefined ? fromEnv : lookup(fileTree, key);
    if (raw === undefined || raw === null) {
      if (!('fallback' in entry)) {
        throw new ConfigError(key, `is required (set it in the file or with ${entry.env})`);
      }
      values[key] = entry.fallback;
      continue;
    }
    const named = fromEnv !== undefined ? `${key} (${entry.env})` : key;
    try {
      values[key] = entry.read(raw, named);
    } catch (error) {
      // A reader's message shows the value it refused; never a secret's.
      if (entry.secret === true && error instanceof ConfigError) throw new ConfigError(named, 'expected a string (the value is a secret and is not shown)');
      throw error;
    }
  }
  const v = values as { [K in Key]: ReturnType<Spec[K]['read']> };
  const defaultBackend = v['backends.defaultBackend'];
  const managedBackends = (v['backends.managedBackends'] as readonly string[] | undefined) ?? [defaultBackend];
  if (!managedBackends.includes(defaultBackend)) {
    throw new ConfigError('backends.defaultBackend', `${defaultBackend} is not one of backends.managedBackends`);
  }
  const addressMode = v['docker.addressMode'];
  if (addressMode === 'network' && v['docker.network'] === '') {
    throw new ConfigError('docker.network', 'is required when docker.addressMode is network');
  }
  // A Swarm task publishes no port of its own (published ports go through the routing mesh to
  // any task): HAProxy must reach each task on an overlay network it shares with them.
  if (v['docker.mode'] === 'swarm' && addressMode !== 'network') {
    throw new ConfigError('docker.addressMode', 'must be network when docker.mode is swarm (HAProxy reaches each task on a shared overlay network)');
  }
  const minReplicas = v['autoscale.minReplicas'];
  const maxReplicas = v['autoscale.maxReplicas'];
  if (maxReplicas < minReplicas) throw new ConfigError('autoscale.maxReplicas', `${maxReplicas} is below autoscale.minReplicas (${minReplicas})`);
  const target = (name: 'cpu' | 'requestRate' | 'queue', down: number, up: number) => {
    if (down > up) throw new ConfigError(`autoscale.${name}.scaleDownBelow`, `${down} is above autoscale.${name}.target (${up})`);
    return { target: up, scaleDownBelow: down };
  };
  const rtUp = v['autoscale.responseTime.targetSeconds'];
  const rtDown = v['autoscale.responseTime.scaleDownBelowSeconds'];
  if (rtDown > rtUp) throw new ConfigError('autoscale.responseTime.scaleDownBelowSeconds', `${rtDown} is above autoscale.responseTime.targetSeconds (${rtUp})`);
  const autoscaleBackend = (v['autoscale.backend'] as string | undefined) ?? defaultBackend;
  if (!managedBackends.includes(autoscaleBackend)) {
    throw new ConfigError('autoscale.backend', `${autoscaleBackend} is not one of backends.managedBackends`);
  }
  const autoscaleService = (v['autoscale.service'] as string | undefined) ?? v['docker.composeService'];
  if (v['autoscale.enabled'] && autoscaleService === '') {
    throw new ConfigError('autoscale.service', 'is required when autoscale.enabled is true (or set docker.composeService)');
  }
  const intervalMs = v['autoscale.intervalMs'];
  const policy: ScalingPolicy = {
    ...DEFAULT_POLICY,
    minReplicas,
    maxReplicas,
    signals: {
      cpu: target('cpu', v['autoscale.cpu.scaleDownBelow'], v['autoscale.cpu.target']),
      requestRate: target('requestRate', v['autoscale.requestRate.scaleDownBelow'], v['autoscale.requestRate.target']),
      queue: target('queue', v['autoscale.queue.scaleDownBelow'], v['autoscale.queue.target']),
      responseTime: { target: rtUp, scaleDownBelow: rtDown },
    },
    tolerance: v['autoscale.tolerance'],
    // Three missed evaluations make a signal stale.
    maxSampleAgeMs: intervalMs * 3,
    scaleDownStabilisationMs: v['autoscale.scaleDownStabilisationMs'],
    scaleUp: { ...DEFAULT_POLICY.scaleUp, periodMs: intervalMs },
    scaleDown: { ...DEFAULT_POLICY.scaleDown, periodMs: intervalMs },
    // Look ahead by the time a new container needs, plus one evaluation.
    forecast: { ...DEFAULT_POLICY.forecast, mode: v['autoscale.forecast'], horizonMs: v['autoscale.startupMs'] + intervalMs },
    demand: { startupMs: v['autoscale.startupMs'], backlogDrainMs: v['autoscale.backlogDrainMs'] },
  };
  validatePolicy(policy);
  if (v['docker.eventsMaxBackoffMs'] < v['docker.eventsMinBackoffMs']) {
    throw new ConfigError('docker.eventsMaxBackoffMs', `${v['docker.eventsMaxBackoffMs']} is below docker.eventsMinBackoffMs (${v['docker.eventsMinBackoffMs']})`);
  }
  const host = v['http.host'];
  const loopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  if (!loopback && v['http.adminToken'] === '') {
    throw new ConfigError('http.adminToken', `is required to listen on ${host}, beyond the loopback`);
  }
  const driver = v['haproxy.driver'];
  if (driver === 'dataplane' && v['dataplane.password'] === '') {
    throw new ConfigError('dataplane.password', 'is required when haproxy.driver is dataplane (set it in the file, with HSC_DATAPLANE_PASSWORD or HSC_DATAPLANE_PASSWORD_FILE)');
  }
  const runtimeSocket = v['haproxy.runtimeSocket'].trim();
  if (runtimeSocket !== '' && parseSocketAddress(runtimeSocket) === undefined) {
    throw new ConfigError('haproxy.runtimeSocket', `expected a unix socket path (/path, unix:/path) or host:port (tcp:host:port, [v6]:port), got ${JSON.stringify(runtimeSocket)}`);
  }
  if (driver === 'runtime') {
    if (v['haproxy.runtimeSocket'].trim() === '') {
      throw new ConfigError('haproxy.runtimeSocket', 'is required when haproxy.driver is runtime (a unix socket path or host:port of HAProxy\'s runtime API, level admin)');
    }
    if (v['haproxy.configFile'].trim() === '') {
      throw new ConfigError('haproxy.configFile', 'is required when haproxy.driver is runtime (the HAProxy configuration file that holds the managed-servers region)');
    }
  }
  return deepFreeze({
    dataplane:
      driver === 'dataplane'
        ? {
            url: v['dataplane.url'],
            username: v['dataplane.username'],
            password: v['dataplane.password'],
            timeoutMs: v['dataplane.timeoutMs'],
            retries: v['dataplane.retries'],
            reloadTimeoutMs: v['dataplane.reloadTimeoutMs'],
          }
        : undefined,
    docker: {
      mode: v['docker.mode'],
      socketPath: v['docker.socketPath'],
      addressMode,
      network: v['docker.network'],
      composeService: v['docker.composeService'],
      composeProject: v['docker.composeProject'],
      labelPrefix: v['docker.labelPrefix'],
      eventsMinBackoffMs: v['docker.eventsMinBackoffMs'],
      eventsMaxBackoffMs: v['docker.eventsMaxBackoffMs'],
    },
    backends: {
      defaultBackend,
      managedBackends,
      port: v['backends.port'],
      healthPath: v['backends.healthPath'],
      weight: v['backends.weight'],
      probeTimeoutMs: v['backends.probeTimeoutMs'],
    },
    reconcile: {
      resyncIntervalMs: v['reconcile.resyncIntervalMs'],
      debounceMs: v['reconcile.debounceMs'],
      maxDebounceMs: v['reconcile.maxDebounceMs'],
      maxConflictRetries: v['reconcile.maxConflictRetries'],
      readinessRetryMs: v['reconcile.readinessRetryMs'],
      failureBackoffMs: v['reconcile.failureBackoffMs'],
    },
    haproxy: {
      driver,
      metricsUrl: v['haproxy.metricsUrl'],
      runtimeSocket: v['haproxy.runtimeSocket'].trim(),
      configFile: v['haproxy.configFile'].trim(),
      socketTimeoutMs: v['haproxy.socketTimeoutMs'],
      metricsTimeoutMs: v['haproxy.metricsTimeoutMs'],
      check: { intervalMs: v['haproxy.check.intervalMs'], fall: v['haproxy.check.fall'], rise: v['haproxy.check.rise'] },
    },
    drain: { deadlineMs: v['drain.deadlineMs'], pollMs: v['drain.pollMs'] },
    autoscale: {
      enabled: v['autoscale.enabled'],
      dryRun: v['autoscale.dryRun'],
      backend: autoscaleBackend,
      service: autoscaleService,
      project: (v['autoscale.project'] as string | undefined) ?? v['docker.composeProject'],
      intervalMs,
      breachCheckMs: v['autoscale.breachCheckMs'],
      stateFile: v['autoscale.stateFile'].trim(),
      stopTimeoutSeconds: v['autoscale.stopTimeoutSeconds'],
      policy,
    },
    http: { host, port: v['http.port'], adminToken: v['http.adminToken'] },
    logLevel: v.logLevel,
  });
}

/** Reads HSC_CONFIG_FILE (if set) and the environment. */
export function loadConfigFromProcess(env: NodeJS.ProcessEnv = process.env): SidecarConfig {
  const fileName = env.HSC_CONFIG_FILE;
  if (fileName === undefined || fileName === '') return loadConfig({ env });
  let fileText: string;
  try {
    fileText = readFileSync(fileName, 'utf8');
  } catch (error) {
    throw new ConfigError('HSC_CONFIG_FILE', `cannot read ${fileName}: ${(error as Error).message}`);
  }
  return loadConfig({ env, fileText, fileName });
}

/** The configuration as it may be logged: every secret replaced. */
export function redactConfig(config: SidecarConfig): unknown {
  return {
    ...config,
    dataplane: config.dataplane === undefined ? undefined : { ...config.dataplane, password: '[redacted]' },
    http: { ...config.http, adminToken: config.http.adminToken === '' ? '' : '[redacted]' },
  };
}
