// Reads HAProxy's own Prometheus endpoint (the built-in exporter) and turns it into per-backend
// and per-server snapshots with a timestamp, and counter pairs into rates. A scrape that fails is
// a value (the caller marks its signals stale), never zeros.
import { compareNames } from '../driver/port.js';
import { httpGet, type HttpGet } from '../edge/http-get.js';
import { errorMessage, fail, ok, type Result } from '../edge/result.js';

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition format (what HAProxy's exporter writes). */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parsed = parseLine(line);
    if (parsed !== undefined) samples.push(parsed);
  }
  return samples;
}

function parseLine(line: string): PromSample | undefined {
  const brace = line.indexOf('{');
  const space = line.indexOf(' ');
  let name: string;
  let labels: Record<string, string> = {};
  let rest: string;
  if (brace >= 0 && (space < 0 || brace < space)) {
    name = line.slice(0, brace);
    const end = findLabelsEnd(line, brace + 1);
    if (end < 0) return undefined;
    labels = parseLabels(line.slice(brace + 1, end));
    rest = line.slice(end + 1).trim();
  } else {
    if (space < 0) return undefined;
    name = line.slice(0, space);
    rest = line.slice(space + 1).trim();
  }
  const valueText = rest.split(/\s+/)[0] ?? '';
  const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : Number(valueText);
  if (valueText === '' || Number.isNaN(value) && valueText !== 'NaN') return undefined;
  return { name, labels, value };
}

function findLabelsEnd(line: string, from: number): number {
  let quoted = false;
  for (let i = from; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && quoted) i++;
    else if (c === '"') quoted = !quoted;
    else if (c === '}' && !quoted) return i;
  }
  return -1;
}

function parseLabels(text: string): Record<string, string> {
  const labels: Record<string, string> = {};
  const pattern = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
  for (const match of text.matchAll(pattern)) {
    const [, key, raw] = match;
    if (key === undefined || raw === undefined) continue;
    labels[key] = raw.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
  }
  return labels;
}

export type ServerState = 'UP' | 'DOWN' | 'MAINT' | 'DRAIN' | 'NOLB' | 'unknown';

export interface ServerSnapshot {
  readonly name: string;
  readonly currentSessions: number;
  readonly currentQueue: number;
  readonly state: ServerState;
}

export interface BackendSnapshot {
  readonly backend: string;
  /** When the scrape was answered, ms since the epoch. */
  readonly at: number;
  readonly httpRequestsTotal: number;
  readonly currentSessions: number;
  readonly currentQueue: number;
  /** HAProxy's average over the last 1024 requests, in seconds. */
  readonly responseTimeAverageSeconds: number;
  readonly queueTimeAverageSeconds: number;
  readonly activeServers: number;
  readonly servers: readonly ServerSnapshot[];
}

/** The backend's figures from one scrape; undefined when the exporter does not list it. */
export function backendSnapshot(samples: readonly PromSample[], backend: string, at: number): BackendSnapshot | undefined {
  const ofBackend = samples.filter((s) => s.labels.proxy === backend);
  const one = (name: string): number | undefined => ofBackend.find((s) => s.name === name && s.labels.server === undefined)?.value;
  const requests = one('haproxy_backend_http_requests_total');
  if (requests === undefined) return undefined;
  const servers = new Map<string, { currentSessions: number; currentQueue: number; state: ServerState }>();
  const server = (name: string) => {
    let entry = servers.get(name);
    if (entry === undefined) {
      entry = { currentSessions: 0, currentQueue: 0, state: 'unknown' };
      servers.set(name, entry);
    }
    return entry;
  };
  for (const s of ofBackend) {
    const name = s.labels.server;
    if (name === undefined) continue;
    if (s.name === 'haproxy_server_current_sessions') server(name).currentSessions = s.value;
    else if (s.name === 'haproxy_server_current_queue') server(name).currentQueue = s.value;
    else if (s.name === 'haproxy_server_status' && s.value === 1) server(name).state = toState(s.labels.state);
  }
  return {
    backend,
    at,
    httpRequestsTotal: requests,
    currentSessions: one('haproxy_backend_current_sessions') ?? 0,
    currentQueue: one('haproxy_backend_current_queue') ?? 0,
    responseTimeAverageSeconds: one('haproxy_backend_response_time_average_seconds') ?? 0,
    queueTimeAverageSeconds: one('haproxy_backend_queue_time_average_seconds') ?? 0,
    activeServers: one('haproxy_backend_active_servers') ?? 0,
    servers: [...servers.entries()].map(([name, v]) => ({ name, ...v })).sort((a, b) => compareNames(a.name, b.name)),
  };
}

function toState(state: string | undefined): ServerState {
  return state === 'UP' || state === 'DOWN' || state === 'MAINT' || state === 'DRAIN' || state === 'NOLB' ? state : 'unknown';
}

/**
 * Per-second rate between two readings of a counter. A counter that went down was reset (an
 * HAProxy reload starts a new worker with fresh counters), so it counted from zero since: the
 * rate is the new value over the interval, as Prometheus's rate() treats a reset.
 */
export function counterRate(previous: { value: number; at: number }, current: { value: number; at: number }): number | undefined {
  const seconds = (current.at - previous.at) / 1000;
  if (!(seconds > 0)) return undefined;
  const increase = current.value >= previous.value ? current.value - previous.value : current.value;
  return increase / seconds;
}

/** A scrape: the exposition parsed, and when it was read; failures are edge errors like every adapter's. */
export type ScrapeResult = Result<{ readonly samples: PromSample[]; readonly at: number }>;

export interface ScrapeOptions {
  readonly url: string;
  readonly timeoutMs: number;
  /** node:http by default (edge/http-get.ts says why not fetch). */
  readonly get?: HttpGet;
  readonly now?: () => number;
}

/**
 * The exporter's URL asking only for what the sidecar reads: backend and server figures (the
 * exporter's `scope` parameter, HAProxy 2.4+; measured on 2.6.12 and 3.0.11: 26 of 47 KB). A
 * breach check scrapes every two seconds, and the frontend and process families it skips were
 * half of what each scrape allocated. A URL that names its own scopes is left as it is.
 */
export function scopedUrl(url: string): string {
  if (/[?&]scope=/.test(url)) return url;
  return `${url}${url.includes('?') ? '&' : '?'}scope=backend&scope=server`;
}

export async function scrape(options: ScrapeOptions): Promise<ScrapeResult> {
  const get = options.get ?? httpGet;
  const now = options.now ?? Date.now;
  const url = scopedUrl(options.url);
  let lastError: unknown;
  // A reload closes the old worker's kept-alive connections; a GET on one of them fails at once
  // and the same GET on a fresh connection succeeds, so a connection failure is retried once.
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const response = await get(url, { timeoutMs: options.timeoutMs });
      if (response.status < 200 || response.status >= 300) return fail(`scrape ${options.url}`, 'unavailable', `${options.url} answered ${response.status}`, response.status);
      return ok({ samples: parsePrometheusText(response.body), at: now() });
    } catch (error) {
      lastError = error;
      if (error instanceof Error && error.name === 'TimeoutError') break;
    }
  }
  const cause = lastError instanceof Error && lastError.cause instanceof Error ? ` (${lastError.cause.message})` : '';
  const timedOut = lastError instanceof Error && lastError.name === 'TimeoutError';
  return fail(`scrape ${options.url}`, timedOut ? 'timeout' : 'network', `${options.url}: ${errorMessage(lastError)}${cause}`);
}

/** Reads one backend's figures from the exporter; undefined when the exporter cannot be read. */
export function createBackendLoadReader(options: ScrapeOptions): (backend: string) => Promise<BackendSnapshot | undefined> {
  return async (backend) => {
    const result = await scrape(options);
    return result.ok ? backendSnapshot(result.value.samples, backend, result.value.at) : undefined;
  };
}

/**
 * What one server answered since HAProxy started (its counters) and how fast: what a rollout's
 * bake compares between the new replicas and the old ones.
 */
export interface ServerFigures {
  /** HTTP answers of every class. */
  readonly answers: number;
  /** 5xx answers, plus connections that failed and answers that broke off. */
  readonly errors: number;
  /** HAProxy's average over the server's last 1024 answers, in seconds (0 before any). */
  readonly responseTimeAverageSeconds: number;
}

/** Every server's figures in `backend` from one scrape. */
export function serverFigures(samples: readonly PromSample[], backend: string): Map<string, ServerFigures> {
  const figures = new Map<string, { answers: number; errors: number; responseTimeAverageSeconds: number }>();
  for (const s of samples) {
    const server = s.labels.server;
    if (server === undefined || s.labels.proxy !== backend) continue;
    let entry = figures.get(server);
    if (entry === undefined) {
      entry = { answers: 0, errors: 0, responseTimeAverageSeconds: 0 };
      figures.set(server, entry);
    }
    if (s.name === 'haproxy_server_http_responses_total') {
      entry.answers += s.value;
      if (s.labels.code === '5xx') entry.errors += s.value;
    } else if (s.name === 'haproxy_server_connection_errors_total' || s.name === 'haproxy_server_response_errors_total') {
      entry.errors += s.value;
    } else if (s.name === 'haproxy_server_response_time_average_seconds') {
      entry.responseTimeAverageSeconds = s.value;
    }
  }
  return figures;
}

/** Reads one backend's per-server figures; undefined when the exporter cannot be read. */
export function createServerFiguresReader(options: ScrapeOptions): (backend: string) => Promise<Map<string, ServerFigures> | undefined> {
  return async (backend) => {
    const result = await scrape(options);
    return result.ok ? serverFigures(result.value.samples, backend) : undefined;
  };
}

/** One server's open sessions and queued requests: what decides whether a drain is complete. */
export interface ServerLoad {
  readonly sessions: number;
  readonly queue: number;
}

export function createServerLoadReader(options: ScrapeOptions): (backend: string, server: string) => Promise<ServerLoad | undefined> {
  return async (backend, server) => {
    const result = await scrape(options);
    if (!result.ok) return undefined;
    const snapshot = backendSnapshot(result.value.samples, backend, result.value.at);
    const found = snapshot?.servers.find((s) => s.name === server);
    return found === undefined ? undefined : { sessions: found.currentSessions, queue: found.currentQueue };
  };
}
