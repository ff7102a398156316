// Starts and stops a real Prometheus and Alertmanager (Debian's binaries) beside the local
// environment: for the monitoring tests, the dashboard test, and the run command's Prometheus
// option.
//
// Each instance lives in its own temporary directory (generated configuration, TSDB, log)
// named like the HAProxy instances (`hsc-<purpose>-`), listens on a free loopback port, and
// stop() kills it and removes the directory; sweepLeftovers() in localenv.ts finds the
// processes a crashed run left behind by that directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { freePort, instancePrefix, type InstancePurpose } from './localenv.js';
import { runningChildren } from './children.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

/** The stack's rule files (recording and alert rules), as the Compose stack loads them. */
export const STACK_RULE_FILES: readonly string[] = [join(repoRoot, 'stack', 'prometheus', 'rules', '*.yml')];

export interface ScrapeTarget {
  /** The job label; the stack's rules match on it (haproxy, sidecar, node, nginx). */
  readonly job: string;
  /** host:port pairs, e.g. "127.0.0.1:8404". */
  readonly targets: readonly string[];
  readonly metricsPath?: string;
  /** Extra labels put on every series of this job. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface LocalPrometheusOptions {
  readonly scrapeTargets: readonly ScrapeTarget[];
  /** Rule files or globs, absolute or relative to the repository (default: none). */
  readonly ruleFiles?: readonly string[];
  /** Who owns the instance; decides which sweep may clean it up (default test). */
  readonly purpose?: InstancePurpose;
  /** Scrape and rule evaluation interval; short, so tests see data within seconds (default 1). */
  readonly intervalSeconds?: number;
  /** Where Prometheus listens (default 127.0.0.1). */
  readonly listenAddress?: string;
  /**
   * Scrape configurations passed through as they are, for what static targets cannot express
   * (service discovery, relabelling), e.g. a job taken from stack/prometheus/prometheus.yml.
   */
  readonly extraScrapeConfigs?: readonly Readonly<Record<string, unknown>>[];
}

export interface PromSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export type AlertState = 'pending' | 'firing' | 'inactive';

export interface PromAlert {
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly state: AlertState;
  readonly value: number;
}

export interface PromRule {
  readonly group: string;
  readonly name: string;
  readonly type: 'recording' | 'alerting';
  /** "unknown" until the first evaluation. */
  readonly health: 'ok' | 'err' | 'unknown';
  readonly lastError: string;
}

export interface PromTarget {
  readonly job: string;
  /** Labels after relabelling (job, instance, and what relabel_configs added). */
  readonly labels: Readonly<Record<string, string>>;
  readonly scrapeUrl: string;
  readonly health: 'up' | 'down' | 'unknown';
  readonly lastError: string;
}

export interface LocalPrometheus {
  readonly url: string;
  readonly dir: string;
  readonly configFile: string;
  /** An instant query; a query Prometheus rejects throws with its error message. */
  query(expr: string): Promise<PromSample[]>;
  /** Active alerts (pending and firing). */
  alerts(): Promise<PromAlert[]>;
  rules(): Promise<PromRule[]>;
  targets(): Promise<PromTarget[]>;
  stop(): Promise<void>;
}

// A test runner that dies must not leave these running (devenv/children.ts).
const running = runningChildren();

function prometheusConfig(options: LocalPrometheusOptions, intervalSeconds: number): string {
  const interval = `${intervalSeconds}s`;
  return stringify({
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    rule_files: (options.ruleFiles ?? []).map((file) => (file.startsWith('/') ? file : join(repoRoot, file))),
    scrape_configs: [
      ...options.scrapeTargets.map((target) => ({
        job_name: target.job,
        metrics_path: target.metricsPath ?? '/metrics',
        static_configs: [{ targets: [...target.targets], ...(target.labels === undefined ? {} : { labels: { ...target.labels } }) }],
      })),
      ...(options.extraScrapeConfigs ?? []),
    ],
  });
}

// The HTTP API's envelope: {"status":"success","data":...} or {"status":"error","error":"..."}.
async function apiGet(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  const body: unknown = await response.json();
  if (!isRecord(body)) throw new Error(`Prometheus answered ${response.status} without a JSON object: ${url}`);
  if (body.status !== 'success') {
    throw new Error(`Prometheus ${url}: ${typeof body.error === 'string' ? body.error : `status ${response.status}`}`);
  }
  return body.data;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringMap(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (!isRecord(value)) return out;
  for (const [key, entry] of Object.entries(value)) if (typeof entry === 'string') out[key] = entry;
  return out;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** The value if it is one of the allowed strings, else the fallback. */
function oneOf<T extends string>(value: unknown, allowed: readonly T[], fallback: T): T {
  return allowed.find((candidate) => candidate === value) ?? fallback;
}

function parseVector(data: unknown, expr: string): PromSample[] {
  if (!isRecord(data) || !Array.isArray(data.result)) throw new Error(`unexpected query answer for ${expr}`);
  // A scalar (e.g. `time()`) comes as [timestamp, "value"] rather than a list of series.
  if (data.resultType === 'scalar') return [{ labels: {}, value: Number((data.result as unknown[])[1]) }];
  if (data.resultType !== 'vector') throw new Error(`query ${expr} gave a ${String(data.resultType)}, not an instant vector`);
  return data.result.map((item: unknown) => {
    const sample = isRecord(item) && Array.isArray(item.value) ? (item.value as unknown[]) : [];
    return { labels: stringMap(isRecord(item) ? item.metric : undefined), value: Number(sample[1]) };
  });
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

interface Daemon {
  readonly url: string;
  readonly dir: string;
  readonly stop: () => Promise<void>;
}

/**
 * Starts `command` with the arguments `args(dir, listen)` in a fresh instance directory, after
 * `prepare(dir)` wrote its configuration, and waits for `<url>/-/ready` (Prometheus and
 * Alertmanager both serve it). On failure everything is undone and the error carries the
 * log's tail.
 */
async function startDaemon(spec: {
  readonly name: string;
  readonly command: string;
  readonly purpose: InstancePurpose;
  readonly listenAddress: string;
  readonly prepare: (dir: string) => Promise<void>;
  readonly args: (dir: string, listen: string) => readonly string[];
}): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), `${instancePrefix(spec.purpose)}${spec.name}-`));
  const logFile = join(dir, `${spec.name}.log`);
  const listen = `${spec.listenAddress}:${await freePort()}`;
  const url = `http://${listen}`;
  let child: ChildProcess | undefined;

  const stop = async (): Promise<void> => {
    if (child !== undefined) await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await spec.prepare(dir);
    const log = createWriteStream(logFile, { flags: 'a' });
    const started = spawn(spec.command, [...spec.args(dir, listen)], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = started;
    started.stdout?.pipe(log);
    started.stderr?.pipe(log);
    running.add(started);
    started.once('exit', () => running.delete(started));

    const deadline = Date.now() + 20_000;
    for (;;) {
      if (started.exitCode !== null || started.signalCode !== null) throw new Error(`${spec.name} exited during start-up`);
      const ready = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2000) })
        .then((response) => response.ok)
        .catch(() => false);
      if (ready) break;
      if (Date.now() > deadline) throw new Error(`${spec.name} did not become ready within 20 s`);
      await sleep(100);
    }
  } catch (error) {
    const tail = existsSync(logFile) ? (await readFile(logFile, 'utf8')).split('\n').slice(-20).join('\n') : '';
    await stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}\n${tail}`);
  }
  return { url, dir, stop };
}

export async function startLocalPrometheus(options: LocalPrometheusOptions): Promise<LocalPrometheus> {
  const intervalSeconds = options.intervalSeconds ?? 1;
  let configFile = '';
  const { url, dir, stop } = await startDaemon({
    name: 'prometheus',
    command: 'prometheus',
    purpose: options.purpose ?? 'test',
    listenAddress: options.listenAddress ?? '127.0.0.1',
    prepare: async (instanceDir) => {
      configFile = join(instanceDir, 'prometheus.yml');
      await writeFile(configFile, prometheusConfig(options, intervalSeconds));
    },
    args: (instanceDir, listen) => [
      `--config.file=${join(instanceDir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(instanceDir, 'data')}`,
      // A test or a demo needs minutes of data, never more than a day.
      '--storage.tsdb.retention.time=1d',
      `--web.listen-address=${listen}`,
      '--log.level=warn',
    ],
  });

  return {
    url,
    dir,
    configFile,
    query: async (expr) => parseVector(await apiGet(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`), expr),
    alerts: async () => {
      const data = await apiGet(`${url}/api/v1/alerts`);
      const list = isRecord(data) && Array.isArray(data.alerts) ? (data.alerts as unknown[]) : [];
      return list.filter(isRecord).map((alert) => ({
        labels: stringMap(alert.labels),
        annotations: stringMap(alert.annotations),
        state: oneOf<AlertState>(alert.state, ['pending', 'firing', 'inactive'], 'inactive'),
        value: Number(alert.value),
      }));
    },
    rules: async () => {
      const data = await apiGet(`${url}/api/v1/rules`);
      const groups = isRecord(data) && Array.isArray(data.groups) ? (data.groups as unknown[]) : [];
      return groups.filter(isRecord).flatMap((group) =>
        (Array.isArray(group.rules) ? (group.rules as unknown[]) : []).filter(isRecord).map((rule) => ({
          group: text(group.name),
          name: text(rule.name),
          type: rule.type === 'alerting' ? ('alerting' as const) : ('recording' as const),
          health: oneOf<PromRule['health']>(rule.health, ['ok', 'err', 'unknown'], 'unknown'),
          lastError: text(rule.lastError),
        })),
      );
    },
    targets: async () => {
      const data = await apiGet(`${url}/api/v1/targets?state=active`);
      const list = isRecord(data) && Array.isArray(data.activeTargets) ? (data.activeTargets as unknown[]) : [];
      return list.filter(isRecord).map((target) => ({
        job: text(stringMap(target.labels).job),
        labels: stringMap(target.labels),
        scrapeUrl: text(target.scrapeUrl),
        health: oneOf<PromTarget['health']>(target.health, ['up', 'down', 'unknown'], 'unknown'),
        lastError: text(target.lastError),
      }));
    },
    stop,
  };
}

export interface LocalAlertmanagerOptions {
  /** The configuration's YAML text (e.g. stack/alertmanager/alertmanager.yml with local receivers). */
  readonly config: string;
  readonly purpose?: InstancePurpose;
  readonly listenAddress?: string;
}

export interface AmAlert {
  readonly labels: Readonly<Record<string, string>>;
  /** active, suppressed (inhibited or silenced) or unprocessed. */
  readonly state: string;
  /** Fingerprints of the alerts that inhibit this one. */
  readonly inhibitedBy: readonly string[];
  readonly fingerprint: string;
  readonly receivers: readonly string[];
}

export interface AmGroup {
  readonly labels: Readonly<Record<string, string>>;
  readonly receiver: string;
  readonly alertCount: number;
}

export interface LocalAlertmanager {
  readonly url: string;
  readonly dir: string;
  /** Sends alerts as Prometheus would (API v2), labels only; they start now. */
  post(alerts: readonly Readonly<Record<string, string>>[]): Promise<void>;
  alerts(): Promise<AmAlert[]>;
  groups(): Promise<AmGroup[]>;
  stop(): Promise<void>;
}

async function getJson(url: string): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!response.ok) throw new Error(`Alertmanager answered ${response.status}: ${url}`);
  return response.json();
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];
}

/** A real Alertmanager (Debian's prometheus-alertmanager), alone: clustering off. */
export async function startLocalAlertmanager(options: LocalAlertmanagerOptions): Promise<LocalAlertmanager> {
  const { url, dir, stop } = await startDaemon({
    name: 'alertmanager',
    command: 'prometheus-alertmanager',
    purpose: options.purpose ?? 'test',
    listenAddress: options.listenAddress ?? '127.0.0.1',
    prepare: (instanceDir) => writeFile(join(instanceDir, 'alertmanager.yml'), options.config),
    args: (instanceDir, listen) => [
      `--config.file=${join(instanceDir, 'alertmanager.yml')}`,
      `--storage.path=${join(instanceDir, 'data')}`,
      `--web.listen-address=${listen}`,
      // An empty address disables the gossip cluster, which would otherwise listen on every
      // interface on :9094.
      '--cluster.listen-address=',
      '--log.level=warn',
    ],
  });
  return {
    url,
    dir,
    post: async (alerts) => {
      const response = await fetch(`${url}/api/v2/alerts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts.map((labels) => ({ labels }))),
        signal: AbortSignal.timeout(10_000),
      });
      if (!response.ok) throw new Error(`Alertmanager refused the alerts: ${response.status} ${await response.text()}`);
    },
    alerts: async () => {
      const list = await getJson(`${url}/api/v2/alerts`);
      return (Array.isArray(list) ? (list as unknown[]) : []).filter(isRecord).map((alert) => {
        const status = isRecord(alert.status) ? alert.status : {};
        const receivers = Array.isArray(alert.receivers) ? (alert.receivers as unknown[]) : [];
        return {
          labels: stringMap(alert.labels),
          state: text(status.state),
          inhibitedBy: strings(status.inhibitedBy),
          fingerprint: text(alert.fingerprint),
          receivers: receivers.filter(isRecord).map((receiver) => text(receiver.name)),
        };
      });
    },
    groups: async () => {
      const list = await getJson(`${url}/api/v2/alerts/groups`);
      return (Array.isArray(list) ? (list as unknown[]) : []).filter(isRecord).map((group) => ({
        labels: stringMap(group.labels),
        receiver: isRecord(group.receiver) ? text(group.receiver.name) : '',
        alertCount: Array.isArray(group.alerts) ? group.alerts.length : 0,
      }));
    },
    stop,
  };
}
