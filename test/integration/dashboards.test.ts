// The Grafana dashboards (grafana/dashboards/*.json), checked without Grafana, which cannot be
// installed here: structurally (what Grafana's provisioning needs and what keeps a dashboard
// portable), and on real data, by running every query of every panel, variable and annotation
// through the HTTP API of a real Prometheus (devenv/prometheus.ts) that scrapes a real HAProxy
// 2.6 in front of two real nginx containers, and the real sidecar's /metrics, with the stack's
// recording and alert rules, under bounded load from the loopback.
//
// What fails the test: a query Prometheus rejects; a query built on HAProxy's metrics (directly
// or through a recording rule) that returns nothing under load; a metric name that nothing
// exports. "Exported" means one of: a name Prometheus has actually scraped here, a recording
// rule Prometheus loaded, the sidecar's contract (docs/metrics.md), or the allow-list below for
// the exporters this environment does not run, each name checked against the real binary.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { startLocalPrometheus, STACK_RULE_FILES, type LocalPrometheus } from '../../devenv/prometheus.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { eventually } from '../support/http.js';
import { startLoad, type LoadReport, type RunningLoad } from '../support/load.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dashboardsDir = join(root, 'grafana', 'dashboards');
const rulesDir = join(root, 'stack', 'prometheus', 'rules');

/**
 * Metrics of exporters that the local environment does not run (the Compose stack does), by
 * exporter. Only names the dashboards use, directly or through a recording rule, belong here:
 * a test below fails on an entry nothing uses. Every name was read from the real exporter of
 * the version the stack runs, started once on the loopback:
 */
const NOT_RUN_HERE: Readonly<Record<string, readonly string[]>> = {
  // prometheus-node-exporter 1.5.0 (Debian 12 package 1.5.0-1+b6; `apt-get download`, the binary
  // run from the unpacked .deb on 127.0.0.1, its /metrics read).
  'node exporter 1.5.0': ['node_cpu_seconds_total', 'node_memory_MemAvailable_bytes', 'node_memory_MemTotal_bytes'],
  // prometheus-nginx-exporter 0.11.0 (Debian 12 package, installed here), run on 127.0.0.1 against
  // a stub_status page. Plain nginx exposes no cache counters: the cache panel uses HAProxy's.
  'nginx exporter 0.11.0': ['nginx_http_requests_total', 'nginx_connections_active', 'nginx_up'],
  // prometheus-mysqld-exporter 0.14.0 (Debian 12 package, in stack/images/mariadb) run with the
  // stack's collectors (--collect.global_status, global_variables, slave_status) against that
  // image's MariaDB. Global status variables become mysql_global_status_<lower-case name>, except
  // the Com_* family, which becomes mysql_global_status_commands_total{command}. The slave_status
  // series exist only on a replica (test/integration/datatier.test.ts reads them from one).
  'mysqld exporter 0.14.0': [
    'mysql_up',
    'mysql_global_status_queries',
    'mysql_global_status_slow_queries',
    'mysql_global_status_commands_total',
    'mysql_global_status_threads_connected',
    'mysql_global_status_threads_running',
    'mysql_global_status_innodb_buffer_pool_reads',
    'mysql_global_status_innodb_buffer_pool_read_requests',
    'mysql_global_variables_max_connections',
    'mysql_slave_status_seconds_behind_master',
  ],
};

/**
 * Queries built on HAProxy's metrics that may rightly be empty under plain load, keyed
 * "<dashboard uid> / <panel title> / <refId>", with the reason. Everything else built on
 * HAProxy's metrics must return data.
 */
const MAY_BE_EMPTY_UNDER_LOAD: Readonly<Record<string, string>> = {
  'hsc-application / HTTP cache hit rate / A': 'no cache section in the local haproxy.cfg, so no lookups: the ratio is empty by design',
};

/**
 * Queries on the sidecar's process metrics (prom-client's defaults, there from its start), which
 * must show data because the real sidecar runs here. The sidecar's own hsc_* series depend on
 * what it has done, so for them only "no error" is required.
 */
const MUST_SHOW_FROM_SIDECAR: readonly string[] = [
  'hsc-autoscaling / Sidecar CPU / A',
  'hsc-autoscaling / Sidecar memory and event loop / A',
  'hsc-autoscaling / Sidecar memory and event loop / B',
  'hsc-autoscaling / Sidecar memory and event loop / C',
];

/** What Grafana substitutes for its built-in variables, as it would with the stack's 15 s scrape interval. */
const BUILTIN_VARIABLES: Readonly<Record<string, string>> = {
  __rate_interval: '1m',
  __interval: '15s',
  __range: '1h',
};

// ---------------------------------------------------------------------------------------------
// Reading the dashboards

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

interface Dashboard {
  readonly file: string;
  readonly uid: string;
  readonly json: Record<string, unknown>;
}

interface Query {
  /** "<dashboard uid> / <panel title or variable or annotation> / <refId>". */
  readonly key: string;
  readonly expr: string;
  /** How Grafana runs it: a range query for graphs and annotations, an instant one for stat-like panels. */
  readonly kind: 'range' | 'instant';
  readonly datasource: unknown;
}

interface Variable {
  readonly name: string;
  readonly metric: string;
  readonly label: string;
  readonly allValue: string | undefined;
}

const dashboards: Dashboard[] = readdirSync(dashboardsDir)
  .filter((name) => name.endsWith('.json'))
  .sort()
  .map((file) => {
    const json: unknown = JSON.parse(readFileSync(join(dashboardsDir, file), 'utf8'));
    if (!isRecord(json)) throw new Error(`${file} is not a JSON object`);
    return { file, uid: text(json.uid), json };
  });

/** Every panel, rows' nested panels included (a collapsed row keeps its panels inside it). */
function panelsOf(dashboard: Dashboard): Record<string, unknown>[] {
  return list(dashboard.json.panels)
    .filter(isRecord)
    .flatMap((panel) => [panel, ...list(panel.panels).filter(isRecord)]);
}

function queriesOf(dashboard: Dashboard): Query[] {
  const queries: Query[] = [];
  for (const panel of panelsOf(dashboard)) {
    if (panel.type === 'row') continue;
    for (const target of list(panel.targets).filter(isRecord)) {
      queries.push({
        key: `${dashboard.uid} / ${text(panel.title)} / ${text(target.refId)}`,
        expr: text(target.expr),
        kind: target.instant === true && target.range !== true ? 'instant' : 'range',
        datasource: target.datasource,
      });
    }
  }
  for (const annotation of list(isRecord(dashboard.json.annotations) ? dashboard.json.annotations.list : undefined).filter(isRecord)) {
    queries.push({
      key: `${dashboard.uid} / annotation ${text(annotation.name)} / expr`,
      expr: text(annotation.expr),
      kind: 'range',
      datasource: annotation.datasource,
    });
  }
  return queries;
}

function variablesOf(dashboard: Dashboard): Variable[] {
  const templating = isRecord(dashboard.json.templating) ? dashboard.json.templating.list : undefined;
  return list(templating)
    .filter(isRecord)
    .map((variable) => {
      const query = isRecord(variable.query) ? text(variable.query.query) : text(variable.query);
      // Grafana's Prometheus variable function, which it runs as a label-values API call.
      const parsed = /^label_values\(\s*(.+?)\s*,\s*([a-zA-Z_]\w*)\s*\)$/.exec(query);
      if (parsed?.[1] === undefined || parsed[2] === undefined) {
        throw new Error(`${dashboard.file}: variable ${text(variable.name)} is not label_values(metric, label): ${query}`);
      }
      return {
        name: text(variable.name),
        metric: parsed[1],
        label: parsed[2],
        allValue: variable.includeAll === true ? text(variable.allValue) || '.*' : undefined,
      };
    });
}

/** The uid the provisioned datasource has; every query must name it. */
function provisionedDatasourceUid(): string {
  const document: unknown = parseYaml(readFileSync(join(root, 'grafana', 'provisioning', 'datasources', 'prometheus.yml'), 'utf8'));
  const sources = list(isRecord(document) ? document.datasources : undefined).filter(isRecord);
  const prometheus = sources.filter((source) => source.type === 'prometheus');
  if (prometheus.length !== 1) throw new Error('grafana/provisioning/datasources/prometheus.yml must provision exactly one Prometheus');
  return text(prometheus[0]?.uid);
}

// ---------------------------------------------------------------------------------------------
// Metric names in PromQL

// Words that look like identifiers in PromQL but are not metric names (function calls are
// recognised by their parenthesis instead).
const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'start', 'end']);

/** The metric names (and recording rule names) a PromQL expression selects. */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  for (const match of bare.matchAll(/(?<![\w:.])[a-zA-Z_:][\w:]*(?![\w:]|\s*\()/g)) {
    if (!PROMQL_WORDS.has(match[0].toLowerCase())) names.add(match[0]);
  }
  return [...names].sort();
}

/** Recording rules of the stack: name → the metric names its expression uses. */
function recordingRules(): Map<string, string[]> {
  const rules = new Map<string, string[]>();
  for (const file of readdirSync(rulesDir).filter((name) => /\.ya?ml$/.test(name))) {
    const document: unknown = parseYaml(readFileSync(join(rulesDir, file), 'utf8'));
    for (const group of list(isRecord(document) ? document.groups : undefined).filter(isRecord)) {
      for (const rule of list(group.rules).filter(isRecord)) {
        if (typeof rule.record === 'string') rules.set(rule.record, metricNames(text(rule.expr)));
      }
    }
  }
  return rules;
}

/** A name and, through recording rules, the raw metrics beneath it. */
function expand(name: string, rules: ReadonlyMap<string, readonly string[]>, seen = new Set<string>()): string[] {
  if (seen.has(name)) return [];
  seen.add(name);
  const beneath = rules.get(name);
  return beneath === undefined ? [name] : [name, ...beneath.flatMap((inner) => expand(inner, rules, seen))];
}

/** The sidecar's contract: every metric in docs/metrics.md's table, histograms with their series. */
function contractNames(): Set<string> {
  const names = new Set<string>();
  for (const line of readFileSync(join(root, 'docs', 'metrics.md'), 'utf8').split('\n')) {
    const cells = line.split('|').map((cell) => cell.trim());
    const [first, type] = [cells[1] ?? '', cells[2] ?? ''];
    for (const [, name] of first.matchAll(/`(hsc_\w+)`/g)) {
      if (name === undefined) continue;
      names.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(`${name}${suffix}`);
    }
  }
  return names;
}

// ---------------------------------------------------------------------------------------------
// Prometheus' HTTP API

interface Evaluation {
  readonly error: string | undefined;
  /** Series with at least one value. */
  readonly series: number;
}

async function prometheusApi(base: string, path: string, params: Record<string, string>): Promise<{ data: unknown; error: string | undefined }> {
  const form = new URLSearchParams(params).toString();
  // Queries go as POST forms, as the provisioned datasource sends them (httpMethod: POST); the
  // label endpoints answer GET only.
  const response = path.startsWith('/api/v1/query')
    ? await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form,
        signal: AbortSignal.timeout(10_000),
      })
    : await fetch(`${base}${path}?${form}`, { signal: AbortSignal.timeout(10_000) });
  const body: unknown = await response.json().catch(() => undefined);
  if (!isRecord(body)) return { data: undefined, error: `HTTP ${response.status} without a JSON body` };
  if (body.status !== 'success') return { data: undefined, error: `${text(body.errorType)}: ${text(body.error)}` };
  return { data: body.data, error: undefined };
}

/** Runs a query the way Grafana would: a range query over the last two minutes, or an instant one. */
async function evaluate(base: string, expr: string, kind: Query['kind']): Promise<Evaluation> {
  const now = Date.now() / 1000;
  const { data, error } =
    kind === 'instant'
      ? await prometheusApi(base, '/api/v1/query', { query: expr, time: String(now) })
      : await prometheusApi(base, '/api/v1/query_range', { query: expr, start: String(now - 120), end: String(now), step: '2' });
  if (error !== undefined) return { error, series: 0 };
  const result = isRecord(data) ? list(data.result) : [];
  // A range query's series carry `values`; an instant vector's carry one `value`; a scalar
  // (e.g. `time()`) is [timestamp, "value"] itself.
  if (isRecord(data) && data.resultType === 'scalar') return { error: undefined, series: 1 };
  const series = result.filter(isRecord).filter((item) => (kind === 'range' ? list(item.values).length > 0 : Array.isArray(item.value)));
  return { error: undefined, series: series.length };
}

function escapeRegex(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Replaces $name, ${name} and Grafana's built-ins; what is left over is a test failure. */
function substitute(expr: string, values: Readonly<Record<string, string>>): string {
  return expr.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole: string, braced: string | undefined, plain: string | undefined) => {
    const name = braced ?? plain ?? '';
    return values[name] ?? BUILTIN_VARIABLES[name] ?? whole;
  });
}

// ---------------------------------------------------------------------------------------------
// Structure

describe('dashboards: structure', () => {
  const uid = provisionedDatasourceUid();
  const datasource = { type: 'prometheus', uid };

  it('has the three dashboards of the design, each provisionable', () => {
    expect(dashboards.map((dashboard) => dashboard.uid).sort()).toEqual(['hsc-application', 'hsc-autoscaling', 'hsc-overview']);
    for (const { file, json } of dashboards) {
      // Provisioning matches by uid; a fixed numeric id would clash with Grafana's own.
      expect(json.id ?? null, `${file}: id`).toBeNull();
      expect(typeof json.title === 'string' && json.title !== '', `${file}: title`).toBe(true);
      expect(json.schemaVersion, `${file}: schemaVersion`).toBe(39);
    }
    const provider: unknown = parseYaml(readFileSync(join(root, 'grafana', 'provisioning', 'dashboards', 'dashboards.yml'), 'utf8'));
    const providers = list(isRecord(provider) ? provider.providers : undefined).filter(isRecord);
    expect(providers.map((entry) => entry.type)).toEqual(['file']);
    expect(isRecord(providers[0]?.options) && typeof providers[0].options.path === 'string').toBe(true);
  });

  it.each(dashboards.map((dashboard) => [dashboard.file, dashboard] as const))('%s: panels, targets and datasources', (file, dashboard) => {
    const panels = panelsOf(dashboard);
    const ids = panels.map((panel) => panel.id);
    expect(ids.every((id) => typeof id === 'number'), `${file}: every panel has a numeric id`).toBe(true);
    expect(new Set(ids).size, `${file}: panel ids are unique`).toBe(ids.length);
    // Titles name the queries in this test's messages and exception lists, and a reader's eye.
    const titles = panels.map((panel) => text(panel.title));
    expect(new Set(titles).size, `${file}: panel titles are unique`).toBe(titles.length);
    for (const panel of panels) {
      const where = `${file}: panel ${String(panel.id)} "${text(panel.title)}"`;
      expect(text(panel.title), `${where}: title`).not.toBe('');
      const grid = isRecord(panel.gridPos) ? panel.gridPos : {};
      const [x, w] = [Number(grid.x), Number(grid.w)];
      expect(x >= 0 && w > 0 && x + w <= 24 && Number(grid.h) > 0 && Number(grid.y) >= 0, `${where}: gridPos inside the 24 columns`).toBe(true);
      if (panel.type === 'row') continue;
      expect(['timeseries', 'stat', 'bargauge'], `${where}: panel type`).toContain(panel.type);
      expect(panel.datasource, `${where}: panel datasource`).toEqual(datasource);
      const targets = list(panel.targets).filter(isRecord);
      expect(targets.length, `${where}: has queries`).toBeGreaterThan(0);
      const refIds = targets.map((target) => text(target.refId));
      expect(new Set(refIds).size, `${where}: refIds unique`).toBe(refIds.length);
      for (const target of targets) {
        expect(target.datasource, `${where} ${text(target.refId)}: datasource`).toEqual(datasource);
        expect(text(target.expr).trim(), `${where} ${text(target.refId)}: expr`).not.toBe('');
      }
    }
    for (const query of queriesOf(dashboard)) expect(query.datasource, `${query.key}: datasource`).toEqual(datasource);
    const templating = isRecord(dashboard.json.templating) ? list(dashboard.json.templating.list).filter(isRecord) : [];
    for (const variable of templating) expect(variable.datasource, `${file}: variable ${text(variable.name)}`).toEqual(datasource);
    // Every variable a query uses is defined (or one of Grafana's built-ins).
    const defined = new Set([...variablesOf(dashboard).map((variable) => variable.name), ...Object.keys(BUILTIN_VARIABLES)]);
    for (const query of queriesOf(dashboard)) {
      for (const [, braced, plain] of query.expr.matchAll(/\$\{(\w+)\}|\$(\w+)/g)) {
        expect(defined, `${query.key}: $${braced ?? plain ?? ''} is not defined`).toContain(braced ?? plain);
      }
    }
  });

  it.each(dashboards.map((dashboard) => [dashboard.file, dashboard] as const))('%s: no hard-coded instance or address', (file, dashboard) => {
    const raw = JSON.stringify(dashboard.json);
    // Targets come and go with scaling and differ between the local environment and Compose:
    // a dashboard selects by job and by HAProxy's proxy/server names, never by an address.
    expect(raw, `${file}: an IPv4 address`).not.toMatch(/\b\d{1,3}(?:\.\d{1,3}){3}\b/);
    expect(raw.toLowerCase(), `${file}: localhost`).not.toContain('localhost');
    for (const query of queriesOf(dashboard)) {
      expect(query.expr, `${query.key}: instance matcher`).not.toMatch(/\binstance\s*(?:=|!=|=~|!~)/);
      expect(query.expr, `${query.key}: host:port`).not.toMatch(/"[\w.-]+:\d{2,5}"/);
    }
  });

  it('finds every metric name in a PromQL expression', () => {
    const table: [string, string[]][] = [
      ['sum by (proxy) (rate(haproxy_backend_http_requests_total{proxy=~"a|b"}[1m]))', ['haproxy_backend_http_requests_total']],
      ['a:b:rate1m / ignoring (server) group_left () sum by (proxy) (other_metric)', ['a:b:rate1m', 'other_metric']],
      ['histogram_quantile(0.9, sum by (le) (rate(x_seconds_bucket[$__rate_interval])))', ['x_seconds_bucket']],
      ['time() - max(y_timestamp_seconds)', ['y_timestamp_seconds']],
      ['1 - rate(m1[1m] offset 5m) / (rate(m2[1m]) > 0) and on (job) up == bool 1', ['m1', 'm2', 'up']],
      ['count by (service) (nginx_up{job="nginx", x="rate(fake[1m])"} == 0)', ['nginx_up']],
      ['max by (source) (time() - hsc_autoscaler_last_sample_timestamp_seconds)', ['hsc_autoscaler_last_sample_timestamp_seconds']],
    ];
    for (const [expr, names] of table) expect(metricNames(expr), expr).toEqual(names);
  });
});

// ---------------------------------------------------------------------------------------------
// On real data

describe('dashboards: every query on a real Prometheus scraping a real HAProxy under load', () => {
  let containers: TestContainer[] = [];
  let haproxy: LocalHaproxy | undefined;
  let sidecar: RunningSidecar | undefined;
  let prometheus: LocalPrometheus | undefined;
  let load: RunningLoad | undefined;
  let loadReport: LoadReport | undefined;

  function running<T>(value: T | undefined, what: string): T {
    if (value === undefined) throw new Error(`${what} did not start`);
    return value;
  }

  beforeAll(async () => {
    containers = await Promise.all([startNginx(), startNginx()]);
    haproxy = await startLocalHaproxy({
      withDataplane: false,
      manualServers: containers.map((container, i) => ({ name: `web-${i + 1}`, address: '127.0.0.1', port: container.hostPort })),
    });
    // The real sidecar, for its real /metrics: no Data Plane API runs here, so it is pointed at
    // a closed loopback port (its reconcile passes fail, which it counts), and it selects
    // containers by a label nothing carries, so it would manage none even if it could.
    const run = `hsc-dashboards-${process.pid}`;
    sidecar = await startSidecar(
      loadConfig({
        env: {
          HSC_HAPROXY_DRIVER: 'dataplane',
          HSC_DATAPLANE_URL: 'http://127.0.0.1:9',
          HSC_DATAPLANE_PASSWORD: 'unused',
          HSC_DATAPLANE_RETRIES: '0',
          HSC_DOCKER_LABEL_PREFIX: run,
          HSC_DOCKER_COMPOSE_SERVICE: run,
          HSC_DOCKER_ADDRESS_MODE: 'published',
          ...(process.env.HSC_DOCKER_SOCKET === undefined ? {} : { HSC_DOCKER_SOCKET: process.env.HSC_DOCKER_SOCKET }),
          HSC_HAPROXY_METRICS_URL: haproxy.metricsUrl,
          HSC_HTTP_HOST: '127.0.0.1',
          HSC_HTTP_PORT: '0',
          HSC_LOG_LEVEL: 'fatal',
        },
      }),
    );
    prometheus = await startLocalPrometheus({
      // The stack's job names: the rules and the dashboards select on them.
      scrapeTargets: [
        { job: 'haproxy', targets: [new URL(haproxy.metricsUrl).host] },
        { job: 'sidecar', targets: [`127.0.0.1:${sidecar.port}`] },
      ],
      ruleFiles: STACK_RULE_FILES,
    });
    const prom = prometheus;
    const up = await eventually(async () => {
      const targets = await prom.targets();
      return ['haproxy', 'sidecar'].every((job) => targets.some((target) => target.job === job && target.health === 'up'));
    }, 20_000);
    if (!up) throw new Error(`targets not up: ${JSON.stringify(await prom.targets())}`);
    // Load until the evaluation is over (stopped in the last test or afterAll), bounded anyway.
    load = startLoad(`${haproxy.frontendUrl}/`, { concurrency: 4, maxDurationMs: 60_000, maxRequests: 200_000 });
    // The 1 minute rates need two samples of traffic on every server.
    const flowing = await eventually(async () => {
      const perServer = await prom.query('proxy_server:haproxy_server_http_responses:rate1m');
      return perServer.filter((sample) => sample.value > 0).length === containers.length;
    }, 20_000, 250);
    if (!flowing) throw new Error('no per-server request rate in Prometheus after 20 s of load');
  });

  afterAll(async () => {
    // Each step on its own: one failing must not leave the others running.
    await load?.stop().catch(() => undefined);
    await prometheus?.stop().catch(() => undefined);
    await sidecar?.stop().catch(() => undefined);
    await haproxy?.stop().catch(() => undefined);
    await Promise.all(containers.map((container) => container.remove().catch(() => undefined)));
  });

  it('uses only metric names that something exports', async () => {
    const prom = running(prometheus, 'Prometheus');
    const sources = new Map<string, string>();
    const add = (names: Iterable<string>, source: string): void => {
      for (const name of names) if (!sources.has(name)) sources.set(name, source);
    };
    const scraped = await prometheusApi(prom.url, '/api/v1/label/__name__/values', {});
    expect(scraped.error).toBeUndefined();
    add(list(scraped.data).map(text), 'scraped here');
    add((await prom.rules()).filter((rule) => rule.type === 'recording').map((rule) => rule.name), 'recording rule');
    add(contractNames(), 'docs/metrics.md');
    for (const [exporter, names] of Object.entries(NOT_RUN_HERE)) add(names, exporter);

    // The scrape really happened: HAProxy's and the sidecar's own names are among them.
    expect(sources.get('haproxy_backend_http_requests_total')).toBe('scraped here');
    expect(sources.get('process_resident_memory_bytes')).toBe('scraped here');

    const rules = recordingRules();
    const used = new Set<string>();
    const missing: string[] = [];
    for (const dashboard of dashboards) {
      const exprs = [...queriesOf(dashboard).map((query) => [query.key, query.expr] as const), ...variablesOf(dashboard).map((v) => [`${dashboard.uid} / variable ${v.name}`, v.metric] as const)];
      for (const [key, expr] of exprs) {
        // Through recording rules down to the raw metrics: a rule over a metric nobody exports
        // is as empty as that metric.
        for (const name of metricNames(expr).flatMap((direct) => expand(direct, rules))) {
          used.add(name);
          if (!sources.has(name)) missing.push(`${key}: ${name}`);
        }
      }
    }
    expect(missing, 'metrics that nothing exports').toEqual([]);
    const unusedAllowed = Object.values(NOT_RUN_HERE)
      .flat()
      .filter((name) => !used.has(name));
    expect(unusedAllowed, 'allow-list entries no dashboard uses').toEqual([]);
  });

  it('evaluates every query without error, and the HAProxy-based ones return data under load', async () => {
    const prom = running(prometheus, 'Prometheus');
    const rules = recordingRules();
    const fromHaproxy = (expr: string): boolean => {
      const raw = metricNames(expr)
        .flatMap((name) => expand(name, rules))
        .filter((name) => !rules.has(name));
      return raw.length > 0 && raw.every((name) => name.startsWith('haproxy_'));
    };
    const allKeys = new Set(dashboards.flatMap((dashboard) => queriesOf(dashboard).map((query) => query.key)));
    expect(Object.keys(MAY_BE_EMPTY_UNDER_LOAD).filter((key) => !allKeys.has(key)), 'stale exceptions').toEqual([]);
    expect(MUST_SHOW_FROM_SIDECAR.filter((key) => !allKeys.has(key)), 'stale sidecar keys').toEqual([]);

    const errors: string[] = [];
    const empty: string[] = [];
    let evaluated = 0;
    let withData = 0;
    for (const dashboard of dashboards) {
      // Each variable as "All" and as the first value Prometheus knows (when it knows any),
      // as a user would pick them; the values come from the same API call Grafana makes.
      const all: Record<string, string> = {};
      const first: Record<string, string> = {};
      for (const variable of variablesOf(dashboard)) {
        const values = await prometheusApi(prom.url, `/api/v1/label/${variable.label}/values`, { 'match[]': variable.metric });
        if (values.error !== undefined) errors.push(`${dashboard.uid} / variable ${variable.name}: ${values.error}`);
        const known = list(values.data).map(text).sort();
        if (variable.name === 'backend') expect(known, 'the backend variable lists the local backend').toContain(running(haproxy, 'HAProxy').backend);
        all[variable.name] = variable.allValue ?? escapeRegex(known[0] ?? '');
        first[variable.name] = known[0] === undefined ? all[variable.name] ?? '' : escapeRegex(known[0]);
      }
      for (const query of queriesOf(dashboard)) {
        const mustShowData =
          (fromHaproxy(query.expr) && MAY_BE_EMPTY_UNDER_LOAD[query.key] === undefined) || MUST_SHOW_FROM_SIDECAR.includes(query.key);
        const variants = [...new Set([substitute(query.expr, all), substitute(query.expr, first)])];
        for (const expr of variants) {
          expect(expr, `${query.key}: unsubstituted variable`).not.toMatch(/\$/);
          evaluated += 1;
          let result = await evaluate(prom.url, expr, query.kind);
          // A moment without samples (a `> 0` guard at a scrape boundary) is not an empty panel.
          if (result.error === undefined && result.series === 0 && mustShowData) {
            await eventually(async () => {
              result = await evaluate(prom.url, expr, query.kind);
              return result.error !== undefined || result.series > 0;
            }, 10_000, 500);
          }
          if (result.error !== undefined) errors.push(`${query.key}: ${result.error}\n    ${expr}`);
          else if (result.series > 0) withData += 1;
          else if (mustShowData) empty.push(`${query.key}\n    ${expr}`);
        }
      }
    }
    loadReport = await running(load, 'load').stop();
    expect({ rejected: errors, emptyButMustShowData: empty }).toEqual({ rejected: [], emptyButMustShowData: [] });
    // The load was real and clean, so "data under load" means what it says.
    expect(loadReport.ok).toBeGreaterThan(500);
    expect(loadReport.failures).toEqual({});
    expect(evaluated).toBeGreaterThan(80);
    expect(withData).toBeGreaterThan(40);
  });
});
