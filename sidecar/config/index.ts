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
  /** A container's server leaves rotation at Docker's stopping `kill` or an unhealthy verdict, not at the next pass. */
  readonly drainOnStop: boolean;
  /** How long the server of a backend's last replica is kept after its container is gone, for a replacement. */
  readonly holdLastServerMs: number;
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

/** The defaults of `hsc rollout` (each can be set per rollout); see sidecar/records/rollout.ts. */
export interface RolloutConfig {
  readonly batch: number;
  readonly canaryPercent: number;
  readonly bakeMs: number;
  readonly readyTimeoutMs: number;
  readonly maxErrorRatio: number;
  readonly maxLatencyRatio: number;
  readonly minAnswers: number;
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
  readonly rollout: RolloutConfig;
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

/**
 * Reads one key's raw value (text from the environment, any YAML value from the file) or throws a
 * ConfigError naming the key. Each reader also says what it accepts, for the configuration
 * reference (devenv/config-docs.ts), so the documented limits are the enforced ones.
 */
interface Reader<T> {
  (raw: unknown, key: string): T;
  /** The value's type as the reference names it. */
  readonly type: string;
  /** The values the reader accepts, where it restricts them. */
  readonly allowed?: string;
  /** The whole list, for a reader that takes one of a few words. */
  readonly choices?: readonly string[];
}

function reader<T>(type: string, allowed: string | undefined, read: (raw: unknown, key: string) => T): Reader<T> {
  return Object.assign(read, allowed === undefined ? { type } : { type, allowed });
}

const str: Reader<string> = reader('string', undefined, (raw, key) => {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number') return String(raw);
  throw new ConfigError(key, `expected a string, got ${JSON.stringify(raw)}`);
});

const nonEmpty: Reader<string> = reader('string', 'not empty', (raw, key) => {
  const value = str(raw, key);
  if (value.trim() === '') throw new ConfigError(key, 'must not be empty');
  return value;
});

const int = (min: number, max: number): Reader<number> =>
  reader('integer', `${min} to ${max}`, (raw, key) => {
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new ConfigError(key, `expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  });

const bool: Reader<boolean> = reader('boolean', 'true, false (also 1, 0)', (raw, key) => {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(key, `expected true or false, got ${JSON.stringify(raw)}`);
});

const decimal = (min: number, max: number): Reader<number> =>
  reader('number', `${min} to ${max}`, (raw, key) => {
    const value = typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : raw;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
      throw new ConfigError(key, `expected a number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    }
    return value;
  });

const oneOf = <T extends string>(...allowed: T[]): Reader<T> =>
  Object.assign(
    reader('string', allowed.join(', '), (raw, key) => {
      const value = str(raw, key);
      if (!(allowed as string[]).includes(value)) {
        throw new ConfigError(key, `expected one of ${allowed.join(', ')}, got ${JSON.stringify(raw)}`);
      }
      return value as T;
    }),
    { choices: allowed },
  );

/** A URL as it may be shown in an error: whatever stands before an "@" in its authority is hidden. */
const withoutUserinfo = (value: string): string => value.replace(/^([^:/?#]*:\/\/)[^/?#]*@/, '$1[redacted]@');

const url: Reader<string> = reader('URL', 'http:// or https://, without user:password@', (raw, key) => {
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
});

const BACKEND_NAME = 'letters, digits and _ . : -';

const backendName: Reader<string> = reader('string', `an HAProxy backend name: ${BACKEND_NAME}`, (raw, key) => {
  const value = nonEmpty(raw, key);
  if (!/^[A-Za-z0-9_.:-]+$/.test(value)) throw new ConfigError(key, `not a valid HAProxy backend name: ${value}`);
  return value;
});

const nameList: Reader<readonly string[]> = reader('list', `backend names (${BACKEND_NAME}); comma-separated in the variable`, (raw, key) => {
  const items = typeof raw === 'string' ? raw.split(',').map((s) => s.trim()).filter((s) => s !== '') : raw;
  if (!Array.isArray(items) || items.length === 0) throw new ConfigError(key, 'expected a non-empty list of names');
  return items.map((item, index) => backendName(item, `${key}[${index}]`));
});

const httpPath: Reader<string> = reader('string', 'a path starting with /, no spaces', (raw, key) => {
  const value = nonEmpty(raw, key);
  if (!value.startsWith('/') || /\s/.test(value)) throw new ConfigError(key, `expected a path starting with /, got ${value}`);
  return value;
});

interface KeySpec<T> {
  readonly env: string;
  readonly read: Reader<T>;
  /** Absent: the key is required. Present but undefined: derived from other keys (see defaultFrom). */
  readonly fallback?: T;
  /** For a key whose default is derived: where it comes from, as the reference says it. */
  readonly defaultFrom?: string;
  readonly secret?: boolean;
  /** What the key means, in one line of the reference (docs/configuration.md). */
  readonly doc: string;
}

const spec = {
  'dataplane.url': { env: 'HSC_DATAPLANE_URL', read: url, fallback: 'http://127.0.0.1:5555', doc: 'Root of the Data Plane API (the client adds /v3); used when haproxy.driver is dataplane.' },
  'dataplane.username': { env: 'HSC_DATAPLANE_USERNAME', read: nonEmpty, fallback: 'admin', doc: 'User of the Data Plane API\'s userlist.' },
  'dataplane.password': { env: 'HSC_DATAPLANE_PASSWORD', read: str, fallback: '', secret: true, doc: 'Password of that user; required when haproxy.driver is dataplane.' },
  'dataplane.timeoutMs': { env: 'HSC_DATAPLANE_TIMEOUT_MS', read: int(100, 600_000), fallback: 10_000, doc: 'Timeout of one Data Plane API request, per attempt.' },
  'dataplane.retries': { env: 'HSC_DATAPLANE_RETRIES', read: int(0, 20), fallback: 4, doc: 'Attempts after the first for transient failures (connection refused, 5xx, 429), with backoff.' },
  'dataplane.reloadTimeoutMs': { env: 'HSC_DATAPLANE_RELOAD_TIMEOUT_MS', read: int(100, 600_000), fallback: 30_000, doc: 'How long to wait for a reload the Data Plane API scheduled before the pass fails.' },
  'docker.mode': { env: 'HSC_DOCKER_MODE', read: oneOf<DockerMode>('compose', 'swarm'), fallback: 'compose', doc: 'compose: replicas are containers on this engine; swarm: tasks of a replicated service, through a manager.' },
  'docker.socketPath': { env: 'HSC_DOCKER_SOCKET', read: nonEmpty, fallback: '/var/run/docker.sock', doc: 'The Docker Engine API socket (or a proxy that allows what the sidecar needs).' },
  'docker.addressMode': { env: 'HSC_DOCKER_ADDRESS_MODE', read: oneOf<AddressMode>('published', 'network'), fallback: 'network', doc: 'published: HAProxy reaches a container through its port published on the loopback; network: through its address on docker.network.' },
  'docker.network': { env: 'HSC_DOCKER_NETWORK', read: str, fallback: '', doc: 'The Docker network HAProxy shares with the replicas; required when docker.addressMode is network.' },
  'docker.composeService': { env: 'HSC_DOCKER_COMPOSE_SERVICE', read: str, fallback: 'nginx', doc: 'Containers of this Compose service are managed without any label.' },
  'docker.composeProject': { env: 'HSC_DOCKER_COMPOSE_PROJECT', read: str, fallback: '', doc: 'Compose project of that service; empty matches it in any project.' },
  'docker.labelPrefix': { env: 'HSC_DOCKER_LABEL_PREFIX', read: nonEmpty, fallback: 'haproxy', doc: 'Prefix of the container labels the sidecar reads, as in haproxy.enable=true.' },
  'docker.eventsMinBackoffMs': { env: 'HSC_DOCKER_EVENTS_MIN_BACKOFF_MS', read: int(10, 600_000), fallback: 500, doc: 'First wait before the Docker event stream is reopened after a break.' },
  'docker.holdLastServerMs': { env: 'HSC_DOCKER_HOLD_LAST_SERVER_MS', read: int(0, 600_000), fallback: 5_000, doc: 'When every replica of a backend stops at once (a Compose recreate), the last one stays in rotation and its server is kept this long after its container is gone, for a replacement: HAProxy holds requests in its retries instead of answering 503 at once. 0: removed at the next pass.' },
  'docker.drainOnStop': { env: 'HSC_DOCKER_DRAIN_ON_STOP', read: bool, fallback: true, doc: 'A container that starts to stop (Docker\'s kill event with a stopping signal) or turns unhealthy leaves rotation at once, before it closes its listeners; off: only at the next pass.' },
  'docker.eventsMaxBackoffMs': { env: 'HSC_DOCKER_EVENTS_MAX_BACKOFF_MS', read: int(10, 3_600_000), fallback: 30_000, doc: 'Longest wait between reopenings of the event stream; not below docker.eventsMinBackoffMs.' },
  'backends.defaultBackend': { env: 'HSC_DEFAULT_BACKEND', read: backendName, fallback: 'be_app', doc: 'The backend a container joins when it carries no backend label; one of backends.managedBackends.' },
  'backends.managedBackends': { env: 'HSC_MANAGED_BACKENDS', read: nameList, fallback: undefined, defaultFrom: 'backends.defaultBackend', doc: 'Every backend the sidecar may manage; a label naming another one is rejected.' },
  'backends.port': { env: 'HSC_BACKEND_PORT', read: int(1, 65_535), fallback: 80, doc: 'The port the replicas serve on inside their container, when a container\'s port label names none.' },
  'backends.healthPath': { env: 'HSC_BACKEND_HEALTH_PATH', read: httpPath, fallback: '/healthz', doc: 'HTTP path of the readiness probe for a container without a Docker healthcheck.' },
  'backends.weight': { env: 'HSC_BACKEND_WEIGHT', read: int(0, 256), fallback: 100, doc: 'HAProxy weight of a server whose container\'s weight label names none.' },
  'backends.probeTimeoutMs': { env: 'HSC_BACKEND_PROBE_TIMEOUT_MS', read: int(50, 60_000), fallback: 1_000, doc: 'Timeout of that readiness probe.' },
  'reconcile.resyncIntervalMs': { env: 'HSC_RESYNC_INTERVAL_MS', read: int(1000, 3_600_000), fallback: 30_000, doc: 'A full relist of Docker and HAProxy and a new plan at least this often, whatever the events said.' },
  'reconcile.debounceMs': { env: 'HSC_RECONCILE_DEBOUNCE_MS', read: int(0, 60_000), fallback: 250, doc: 'Quiet time after the last Docker event before a reconcile starts.' },
  'reconcile.maxDebounceMs': { env: 'HSC_RECONCILE_MAX_DEBOUNCE_MS', read: int(0, 600_000), fallback: 2_000, doc: 'A reconcile starts at most this long after the first pending event, even while events keep coming.' },
  'reconcile.maxConflictRetries': { env: 'HSC_MAX_CONFLICT_RETRIES', read: int(0, 50), fallback: 5, doc: 'Re-reads and re-plans after a version conflict (another writer) before the pass gives up until the next one.' },
  'reconcile.readinessRetryMs': { env: 'HSC_RECONCILE_READINESS_RETRY_MS', read: int(50, 600_000), fallback: 1_000, doc: 'How soon containers that are still starting are looked at again.' },
  'reconcile.failureBackoffMs': { env: 'HSC_RECONCILE_FAILURE_BACKOFF_MS', read: int(50, 600_000), fallback: 1_000, doc: 'First retry after a failed pass; doubles up to reconcile.resyncIntervalMs.' },
  // No default: which writer to use is the operator's decision, not a guess.
  'haproxy.driver': { env: 'HSC_HAPROXY_DRIVER', read: oneOf<HaproxyDriverKind>('dataplane', 'runtime'), doc: 'How the sidecar writes to HAProxy: dataplane through the Data Plane API (transactions), runtime through the runtime API and the managed region of haproxy.configFile.' },
  'haproxy.metricsUrl': { env: 'HSC_HAPROXY_METRICS_URL', read: url, fallback: 'http://127.0.0.1:8404/metrics', doc: 'HAProxy\'s Prometheus exporter: sessions and queues for draining, signals for scaling.' },
  'haproxy.runtimeSocket': { env: 'HSC_HAPROXY_RUNTIME_SOCKET', read: str, fallback: '', doc: 'HAProxy\'s runtime API at level admin (/path, unix:/path, host:port, tcp:host:port, [v6]:port); required by the runtime driver, lets the dataplane driver add servers without a reload.' },
  'haproxy.configFile': { env: 'HSC_HAPROXY_CONFIG_FILE', read: str, fallback: '', doc: 'The configuration file HAProxy loads, whose managed-servers region the runtime driver keeps; required by it.' },
  'haproxy.socketTimeoutMs': { env: 'HSC_HAPROXY_SOCKET_TIMEOUT_MS', read: int(100, 600_000), fallback: 5_000, doc: 'Timeout of one runtime API command.' },
  'haproxy.metricsTimeoutMs': { env: 'HSC_HAPROXY_METRICS_TIMEOUT_MS', read: int(100, 600_000), fallback: 2_000, doc: 'Timeout of one scrape of haproxy.metricsUrl.' },
  'haproxy.check.intervalMs': { env: 'HSC_HAPROXY_CHECK_INTERVAL_MS', read: int(100, 3_600_000), fallback: 1_000, doc: 'Health-check interval (inter) of every server the sidecar adds.' },
  'haproxy.check.fall': { env: 'HSC_HAPROXY_CHECK_FALL', read: int(1, 100), fallback: 2, doc: 'Failed checks in a row that take such a server out of rotation.' },
  'haproxy.check.rise': { env: 'HSC_HAPROXY_CHECK_RISE', read: int(1, 100), fallback: 1, doc: 'Passed checks in a row that put it back.' },
  'drain.deadlineMs': { env: 'HSC_DRAIN_DEADLINE_MS', read: int(1_000, 86_400_000), fallback: 60_000, doc: 'A drain not complete by then puts the server in maintenance (a forced drain) and goes on.' },
  'drain.pollMs': { env: 'HSC_DRAIN_POLL_MS', read: int(50, 60_000), fallback: 500, doc: 'How often a drain reads the server\'s sessions and queue.' },
  'rollout.batch': { env: 'HSC_ROLLOUT_BATCH', read: int(1, 100), fallback: 1, doc: 'Old replicas a rollout replaces at a time; as many new ones run beside them (its surge).' },
  'rollout.canaryPercent': { env: 'HSC_ROLLOUT_CANARY_PERCENT', read: int(1, 100), fallback: 100, doc: 'Weight of the first batch\'s new replicas while they bake, in percent of a full replica\'s (100: no canary).' },
  'rollout.bakeMs': { env: 'HSC_ROLLOUT_BAKE_MS', read: int(0, 86_400_000), fallback: 30_000, doc: 'How long each batch\'s new replicas serve, watched, before the old ones leave.' },
  'rollout.readyTimeoutMs': { env: 'HSC_ROLLOUT_READY_TIMEOUT_MS', read: int(1_000, 3_600_000), fallback: 120_000, doc: 'New replicas not serving by then roll the rollout back.' },
  'rollout.maxErrorRatio': { env: 'HSC_ROLLOUT_MAX_ERROR_RATIO', read: decimal(0, 1), fallback: 0.01, doc: 'Errors (5xx, connection and response errors) per answer of the new replicas above which the rollout rolls back.' },
  'rollout.maxLatencyRatio': { env: 'HSC_ROLLOUT_MAX_LATENCY_RATIO', read: decimal(1, 1000), fallback: 2, doc: 'The new replicas\' mean response time above this many times the old ones\' (and 20 ms more) rolls the rollout back.' },
  'rollout.minAnswers': { env: 'HSC_ROLLOUT_MIN_ANSWERS', read: int(1, 1_000_000), fallback: 50, doc: 'Answers the new replicas must give before their error ratio can roll back a rollout before its bake ends.' },
  'autoscale.enabled': { env: 'HSC_AUTOSCALE_ENABLED', read: bool, fallback: true, doc: 'Run the autoscaler (off: the sidecar only reconciles and drains).' },
  'autoscale.dryRun': { env: 'HSC_AUTOSCALE_DRY_RUN', read: bool, fallback: false, doc: 'Decide and log, never act; also switchable at run time through the admin API.' },
  'autoscale.backend': { env: 'HSC_AUTOSCALE_BACKEND', read: backendName, fallback: undefined, defaultFrom: 'backends.defaultBackend', doc: 'The backend whose figures drive scaling; one of backends.managedBackends.' },
  'autoscale.service': { env: 'HSC_AUTOSCALE_SERVICE', read: nonEmpty, fallback: undefined, defaultFrom: 'docker.composeService', doc: 'The Compose (or Swarm) service whose replicas are scaled.' },
  'autoscale.project': { env: 'HSC_AUTOSCALE_PROJECT', read: str, fallback: undefined, defaultFrom: 'docker.composeProject', doc: 'Its Compose project; empty matches the service in any project.' },
  'autoscale.intervalMs': { env: 'HSC_AUTOSCALE_INTERVAL_MS', read: int(1_000, 3_600_000), fallback: 30_000, doc: 'Time between evaluations; also the rate-limit period, and three of them make a signal stale.' },
  'autoscale.stateFile': { env: 'HSC_AUTOSCALE_STATE_FILE', read: str, fallback: '', doc: 'Where scale-downs in progress, operator drains and the autoscaler\'s mode (paused, a count set by hand) are recorded so a restarted sidecar goes on with them; empty keeps them in memory only.' },
  'autoscale.stopTimeoutSeconds': { env: 'HSC_AUTOSCALE_STOP_TIMEOUT_S', read: int(0, 3_600), fallback: 30, doc: 'docker stop\'s grace period for a retired replica.' },
  'autoscale.minReplicas': { env: 'HSC_AUTOSCALE_MIN', read: int(0, 1_000), fallback: 2, doc: 'Fewest replicas the autoscaler keeps.' },
  'autoscale.maxReplicas': { env: 'HSC_AUTOSCALE_MAX', read: int(1, 1_000), fallback: 10, doc: 'Most replicas it starts; not below autoscale.minReplicas.' },
  'autoscale.cpu.target': { env: 'HSC_AUTOSCALE_CPU_TARGET', read: decimal(0.01, 64), fallback: 0.7, doc: 'Mean CPU per replica, as a fraction of one core, above which the CPU signal scales up.' },
  'autoscale.cpu.scaleDownBelow': { env: 'HSC_AUTOSCALE_CPU_DOWN', read: decimal(0, 64), fallback: 0.6, doc: 'CPU per replica below which the CPU signal allows fewer replicas; not above its target.' },
  'autoscale.requestRate.target': { env: 'HSC_AUTOSCALE_RPS_TARGET', read: decimal(0.01, 1e9), fallback: 100, doc: 'Requests per second per replica above which the request-rate signal scales up.' },
  'autoscale.requestRate.scaleDownBelow': { env: 'HSC_AUTOSCALE_RPS_DOWN', read: decimal(0, 1e9), fallback: 85, doc: 'Requests per second per replica below which it allows fewer replicas; not above its target.' },
  'autoscale.queue.target': { env: 'HSC_AUTOSCALE_QUEUE_TARGET', read: decimal(0.01, 1e9), fallback: 5, doc: 'Requests queued in HAProxy per replica above which the queue signal scales up.' },
  'autoscale.queue.scaleDownBelow': { env: 'HSC_AUTOSCALE_QUEUE_DOWN', read: decimal(0, 1e9), fallback: 1, doc: 'Queued requests per replica below which it allows fewer replicas; not above its target.' },
  'autoscale.responseTime.targetSeconds': { env: 'HSC_AUTOSCALE_RT_TARGET', read: decimal(0.001, 600), fallback: 0.5, doc: 'Mean response time of the backend, in seconds, above which the response-time signal scales up.' },
  'autoscale.responseTime.scaleDownBelowSeconds': { env: 'HSC_AUTOSCALE_RT_DOWN', read: decimal(0, 600), fallback: 0.25, doc: 'Mean response time below which it allows fewer replicas; not above its target.' },
  'autoscale.tolerance': { env: 'HSC_AUTOSCALE_TOLERANCE', read: decimal(0, 1), fallback: 0.1, doc: 'A signal within this fraction of its target holds the count (no change).' },
  'autoscale.scaleDownStabilisationMs': { env: 'HSC_AUTOSCALE_DOWN_WINDOW_MS', read: int(0, 86_400_000), fallback: 120_000, doc: 'A scale-down takes the highest recommendation of this window; scale-up acts at once.' },
  'autoscale.forecast': { env: 'HSC_AUTOSCALE_FORECAST', read: oneOf<'off' | 'shadow' | 'act'>('off', 'shadow', 'act'), fallback: 'act', doc: 'The request-rate forecast: act on it (scale up ahead of a ramp, never down), only record it (shadow), or off.' },
  'autoscale.startupMs': { env: 'HSC_AUTOSCALE_STARTUP_MS', read: int(0, 3_600_000), fallback: 20_000, doc: 'Time a new replica needs to serve: the forecast looks this far ahead (plus one interval), and a growing backlog is sized for it.' },
  'autoscale.breachCheckMs': { env: 'HSC_AUTOSCALE_BREACH_CHECK_MS', read: int(0, 3_600_000), fallback: 2_000, doc: 'Between evaluations, a check of HAProxy\'s figures this often for a saturated pool; 0: none.' },
  'autoscale.backlogDrainMs': { env: 'HSC_AUTOSCALE_BACKLOG_DRAIN_MS', read: int(0, 3_600_000), fallback: 30_000, doc: 'Requests in flight beyond what the pool holds are sized to be served within this time; 0 leaves the backlog out.' },
  'http.host': { env: 'HSC_HTTP_HOST', read: nonEmpty, fallback: '127.0.0.1', doc: 'Address of the admin API, /metrics, /healthz and /readyz; beyond the loopback http.adminToken is required.' },
  'http.port': { env: 'HSC_HTTP_PORT', read: int(0, 65_535), fallback: 9180, doc: 'Port of that listener (0: any free port).' },
  'http.adminToken': { env: 'HSC_ADMIN_TOKEN', read: str, fallback: '', secret: true, doc: 'Bearer token for the admin API\'s changing routes; empty: loopback only and read-only.' },
  logLevel: {
    env: 'HSC_LOG_LEVEL',
    read: oneOf<LogLevel>('fatal', 'error', 'warn', 'info', 'debug', 'trace'),
    fallback: 'info',
    doc: 'Lowest level of the JSON log lines written to stdout.',
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
      drainOnStop: v['docker.drainOnStop'],
      holdLastServerMs: v['docker.holdLastServerMs'],
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
    rollout: {
      batch: v['rollout.batch'],
      canaryPercent: v['rollout.canaryPercent'],
      bakeMs: v['rollout.bakeMs'],
      readyTimeoutMs: v['rollout.readyTimeoutMs'],
      maxErrorRatio: v['rollout.maxErrorRatio'],
      maxLatencyRatio: v['rollout.maxLatencyRatio'],
      minAnswers: v['rollout.minAnswers'],
    },
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

/** One key as the configuration reference (docs/configuration.md) shows it. */
export interface ConfigKeyReference {
  /** Dotted path: nested mappings in the YAML file. */
  readonly key: string;
  readonly env: string;
  /** For a secret, the variable naming a file to read it from (Docker and Compose secrets). */
  readonly fileEnv: string | undefined;
  readonly type: string;
  /** The default as JSON; undefined for a required key and for one derived from another key. */
  readonly default: string | undefined;
  /** The key whose value is the default, for a derived one. */
  readonly defaultFrom: string | undefined;
  readonly required: boolean;
  readonly allowed: string | undefined;
  /** For a key that takes one of a few words: those words. */
  readonly choices: readonly string[] | undefined;
  readonly meaning: string;
}

/** Every key the loader reads, in its order, from the same table it validates with. */
export function configurationReference(): readonly ConfigKeyReference[] {
  return Object.entries(spec).map(([key, entry]: [string, KeySpec<unknown>]) => ({
    key,
    env: entry.env,
    fileEnv: entry.secret === true ? `${entry.env}_FILE` : undefined,
    type: entry.read.type,
    default: entry.fallback === undefined ? undefined : JSON.stringify(entry.fallback),
    defaultFrom: entry.defaultFrom,
    required: !('fallback' in entry),
    allowed: entry.read.allowed,
    choices: entry.read.choices,
    meaning: entry.doc,
  }));
}
