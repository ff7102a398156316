// The stack's recording and alert rules on real data: a real Prometheus (devenv/prometheus.ts)
// scrapes a real HAProxy 2.6 (its built-in exporter) in front of two real nginx containers,
// under bounded load from the loopback. Every rule evaluates without error in the real engine,
// the HAProxy recording rules yield series, and "no healthy server" fires when both containers
// are gone and not before. Also: the stack's nginx-exporter discovery (docker_sd + relabelling
// from stack/prometheus/prometheus.yml) run against the real Docker Engine keeps exactly one
// target per application container.
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { docker, startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { startLocalPrometheus, type LocalPrometheus, type PromAlert } from '../../devenv/prometheus.js';
import { eventually } from '../support/http.js';
import { boundedLoad } from '../support/load.js';

const stackDir = fileURLToPath(new URL('../../stack/prometheus/', import.meta.url));

let first: TestContainer | undefined;
let second: TestContainer | undefined;
let haproxy: LocalHaproxy | undefined;
let prometheus: LocalPrometheus | undefined;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function running<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} did not start`);
  return value;
}

beforeAll(async () => {
  [first, second] = await Promise.all([startNginx(), startNginx()]);
  haproxy = await startLocalHaproxy({
    withDataplane: false,
    manualServers: [
      { name: 'web-1', address: '127.0.0.1', port: first.hostPort },
      { name: 'web-2', address: '127.0.0.1', port: second.hostPort },
    ],
  });
  prometheus = await startLocalPrometheus({
    // The stack's job name, which the alert rules match on.
    scrapeTargets: [{ job: 'haproxy', targets: [new URL(haproxy.metricsUrl).host] }],
    ruleFiles: ['stack/prometheus/rules/recording.yml', 'stack/prometheus/rules/alerts.yml'],
  });
});

afterAll(async () => {
  // Each step on its own: one failing must not leave the others running.
  await prometheus?.stop().catch(() => undefined);
  await haproxy?.stop().catch(() => undefined);
  await Promise.all([first, second].map((container) => container?.remove().catch(() => undefined) ?? Promise.resolve()));
});

/** Metric names (not recording rule names, which contain colons) that the rules use. */
function metricNamesInRules(prefix: string): string[] {
  const names = new Set<string>();
  const pattern = new RegExp(`(?<![:\\w])${prefix}[a-zA-Z0-9_]*(?![:\\w])`, 'g');
  for (const file of readdirSync(`${stackDir}rules`).filter((name) => /\.ya?ml$/.test(name))) {
    const document: unknown = parseYaml(readFileSync(`${stackDir}rules/${file}`, 'utf8'));
    const groups: unknown[] = isRecord(document) && Array.isArray(document.groups) ? document.groups : [];
    for (const group of groups.filter(isRecord)) {
      const rules: unknown[] = Array.isArray(group.rules) ? group.rules : [];
      for (const rule of rules.filter(isRecord)) {
        if (typeof rule.expr === 'string') for (const [name] of rule.expr.matchAll(pattern)) names.add(name);
      }
    }
  }
  return [...names].sort();
}

const noHealthyServer = (alerts: readonly PromAlert[]): PromAlert[] =>
  alerts.filter((alert) => alert.labels.alertname === 'HAProxyBackendNoHealthyServer');

describe('recording and alert rules on a real HAProxy', () => {
  it('scrapes HAProxy and evaluates every rule without error', async () => {
    const prom = running(prometheus, 'Prometheus');
    expect(await eventually(async () => (await prom.targets()).some((t) => t.job === 'haproxy' && t.health === 'up'), 15_000)).toBe(
      true,
    );
    // "unknown" until a rule's first evaluation; "err" would carry the engine's message.
    expect(await eventually(async () => (await prom.rules()).every((rule) => rule.health !== 'unknown'), 15_000)).toBe(true);
    const broken = (await prom.rules()).filter((rule) => rule.health !== 'ok').map((rule) => `${rule.name}: ${rule.lastError}`);
    expect(broken).toEqual([]);
  });

  it('uses only metric names that HAProxy 2.6 exports', async () => {
    const exported = new Set(
      (await (await fetch(running(haproxy, 'HAProxy').metricsUrl)).text())
        .split('\n')
        .map((line) => /^# TYPE (\S+) /.exec(line)?.[1])
        .filter((name) => name !== undefined),
    );
    const used = metricNamesInRules('haproxy_');
    expect(used.length).toBeGreaterThan(5);
    expect(used.filter((name) => !exported.has(name))).toEqual([]);
  });

  it('yields the HAProxy recording rules under load', async () => {
    const prom = running(prometheus, 'Prometheus');
    const load = await boundedLoad(`${running(haproxy, 'HAProxy').frontendUrl}/`, { requests: 1500, concurrency: 4, deadlineMs: 15_000 });
    expect(load.sent).toBeGreaterThan(100);
    expect([...load.statuses.keys()]).toEqual([200]);

    const positive = [
      'proxy:haproxy_backend_http_requests:rate1m{proxy="be_app"}',
      'proxy:haproxy_backend_http_requests:rate5m{proxy="be_app"}',
      'proxy:haproxy_frontend_http_requests:rate1m{proxy="fe_http"}',
      'proxy_code:haproxy_backend_http_responses:rate1m{proxy="be_app", code="2xx"}',
    ];
    for (const expr of positive) {
      const seen = await eventually(async () => (await prom.query(expr)).some((sample) => sample.value > 0), 15_000, 500);
      expect(seen, `${expr} has no positive sample`).toBe(true);
    }
    // Round robin spreads the load over both servers, and the distribution rule shows it.
    const perServer = await prom.query('proxy_server:haproxy_server_http_responses:rate1m{proxy="be_app"}');
    expect(perServer.map((sample) => sample.labels.server).sort()).toEqual(['web-1', 'web-2']);
    expect(perServer.every((sample) => sample.value > 0)).toBe(true);
    // No errors: the 5xx ratio is a real 0, not missing.
    for (const expr of [
      'proxy:haproxy_backend_http_responses_5xx:ratio_rate1m{proxy="be_app"}',
      'proxy:haproxy_backend_http_responses_5xx:ratio_rate5m{proxy="be_app"}',
    ]) {
      expect((await prom.query(expr)).map((sample) => sample.value), expr).toEqual([0]);
    }
    for (const expr of [
      'proxy:haproxy_backend_response_time_average_seconds:max{proxy="be_app"}',
      'proxy:haproxy_backend_current_sessions:sum{proxy="be_app"}',
      'proxy:haproxy_backend_current_queue:sum{proxy="be_app"}',
    ]) {
      expect(await prom.query(expr), expr).toHaveLength(1);
    }
  });

  it('fires HAProxyBackendNoHealthyServer when both nginx containers stop, and not before', async () => {
    const prom = running(prometheus, 'Prometheus');
    // The rule sees both servers (so quiet means "evaluated and false", not "no data") ...
    const servers = await prom.query('haproxy_backend_active_servers{proxy="be_app"} + haproxy_backend_backup_servers{proxy="be_app"}');
    expect(servers.map((sample) => sample.value)).toEqual([2]);
    // ... and stays quiet over several evaluations.
    for (let i = 0; i < 3; i += 1) {
      expect(noHealthyServer(await prom.alerts())).toEqual([]);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }

    await Promise.all([running(first, 'nginx 1').remove(), running(second, 'nginx 2').remove()]);
    // HAProxy answers 503 itself now; a few requests show the error ratio rule sees them.
    const failing = await boundedLoad(`${running(haproxy, 'HAProxy').frontendUrl}/`, { requests: 20, concurrency: 2, deadlineMs: 10_000 });
    expect(failing.statuses.get(503) ?? 0).toBeGreaterThan(0);

    expect(await eventually(async () => noHealthyServer(await prom.alerts()).length > 0, 20_000, 500)).toBe(true);
    const firing = await eventually(
      async () => noHealthyServer(await prom.alerts()).some((alert) => alert.state === 'firing'),
      60_000,
      1000,
    );
    expect(firing, 'the alert did not fire within 30 s of `for` plus a minute').toBe(true);
    const [alert] = noHealthyServer(await prom.alerts());
    expect(alert?.labels).toMatchObject({ backend: 'be_app', severity: 'critical', component: 'haproxy', proxy: 'be_app' });
    expect(alert?.annotations.summary).toBe('Backend be_app has no healthy server');
    const errors = await prom.query('proxy:haproxy_backend_http_responses_5xx:ratio_rate1m{proxy="be_app"}');
    expect(errors[0]?.value ?? 0).toBeGreaterThan(0);
  });
});

describe("the stack's nginx exporter discovery on the real Docker Engine", () => {
  const run = randomBytes(4).toString('hex');
  // Compose would name it <project>_app; the relabelling keeps only that network's address.
  const networkName = `hsc-test-${run}_app`;
  const containers: TestContainer[] = [];
  let networkId: string | undefined;
  let discovery: LocalPrometheus | undefined;

  afterAll(async () => {
    await discovery?.stop().catch(() => undefined);
    await Promise.all(containers.map((container) => container.remove().catch(() => undefined)));
    if (networkId !== undefined) await docker.getNetwork(networkId).remove().catch(() => undefined);
  });

  it('keeps one target per application container, on the app network, at the exporter port', async () => {
    const network = await docker.createNetwork({ Name: networkName, Labels: { 'hsc.owner': 'test' } });
    networkId = network.id;
    const runLabel = { 'hsc.monitoring-run': run };
    const compose = (service: string): Record<string, string> => ({ 'com.docker.compose.service': service, ...runLabel });
    const specs = [
      { name: `hsc-test-${run}-nginx-1`, labels: compose('nginx'), expected: true },
      { name: `hsc-test-${run}-nginx-2`, labels: compose('nginx'), expected: true },
      // Opted in by label, outside the Compose service.
      { name: `hsc-test-${run}-extra`, labels: { 'haproxy.enable': 'true', ...runLabel }, expected: true },
      // The Compose service, opted out.
      { name: `hsc-test-${run}-optout`, labels: { ...compose('nginx'), 'haproxy.enable': 'false' }, expected: false },
      // Another service.
      { name: `hsc-test-${run}-db`, labels: compose('mysql'), expected: false },
    ];
    for (const spec of specs) {
      const container = await startNginx({ name: spec.name, labels: spec.labels, waitHealthy: false });
      containers.push(container);
      // Each container is on Docker's default bridge and on the app network: two rows per port.
      await network.connect({ Container: container.id });
    }
    const addresses = new Map<string, string>();
    for (const container of containers) {
      const info = await docker.getContainer(container.id).inspect();
      addresses.set(info.Name.replace(/^\//, ''), info.NetworkSettings.Networks[networkName]?.IPAddress ?? '');
    }

    // The stack's nginx job as it is, reading this machine's Docker socket instead of the
    // stack's Docker API proxy, and only this run's containers.
    const stackConfig: unknown = parseYaml(readFileSync(`${stackDir}prometheus.yml`, 'utf8'));
    const jobs: unknown[] = isRecord(stackConfig) && Array.isArray(stackConfig.scrape_configs) ? stackConfig.scrape_configs : [];
    const nginxJob = jobs.filter(isRecord).find((job) => job.job_name === 'nginx');
    if (nginxJob === undefined) throw new Error('no nginx job in stack/prometheus/prometheus.yml');
    discovery = await startLocalPrometheus({
      scrapeTargets: [],
      extraScrapeConfigs: [
        {
          job_name: 'nginx',
          docker_sd_configs: [
            {
              host: `unix://${process.env.HSC_DOCKER_SOCKET ?? '/var/run/docker.sock'}`,
              refresh_interval: '1s',
              filters: [{ name: 'label', values: [`hsc.monitoring-run=${run}`] }],
            },
          ],
          relabel_configs: nginxJob.relabel_configs,
        },
      ],
    });
    const sd = discovery;
    const expected = specs
      .filter((spec) => spec.expected)
      .map((spec) => ({ instance: spec.name, address: `${addresses.get(spec.name) ?? '?'}:9113` }))
      .sort((a, b) => a.instance.localeCompare(b.instance));
    const found = async (): Promise<{ instance: string; address: string }[]> =>
      (await sd.targets())
        .filter((target) => target.job === 'nginx')
        .map((target) => ({ instance: target.labels.instance ?? '', address: new URL(target.scrapeUrl).host }))
        .sort((a, b) => a.instance.localeCompare(b.instance));
    await eventually(async () => (await found()).length >= expected.length, 15_000, 500);
    expect(await found()).toEqual(expected);
    // The Compose service becomes a label; a container opted in by label alone has none.
    const services = (await sd.targets()).map((target) => target.labels.service ?? '(none)');
    expect(services.sort()).toEqual(['(none)', 'nginx', 'nginx']);
  });
});
