// hsc backtest against a real Prometheus that scraped a real HAProxy (its built-in exporter) in
// front of two real nginx containers, under a varying, bounded load from the loopback: the
// history it reads back through query_range is the load that was sent, and it prints the table,
// the summary lines and a suggestion and writes the chart.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { startLocalPrometheus, type LocalPrometheus } from '../../devenv/prometheus.js';
import { backtest, queryRange } from '../../sidecar/cli/backtest.js';
import { eventually } from '../support/http.js';
import { startPacedLoad } from '../support/paced-load.js';

let containers: TestContainer[] = [];
let haproxy: LocalHaproxy | undefined;
let prometheus: LocalPrometheus | undefined;
let dir = '';

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hsc-test-backtest-'));
  containers = await Promise.all([startNginx(), startNginx()]);
  haproxy = await startLocalHaproxy({
    withDataplane: false,
    manualServers: containers.map((c, i) => ({ name: `web-${i + 1}`, address: '127.0.0.1', port: c.hostPort })),
  });
  prometheus = await startLocalPrometheus({ scrapeTargets: [{ job: 'haproxy', targets: [new URL(haproxy.metricsUrl).host] }] });
});

afterAll(async () => {
  await prometheus?.stop().catch(() => undefined);
  await haproxy?.stop().catch(() => undefined);
  await Promise.all(containers.map((c) => c.remove().catch(() => undefined)));
  if (dir !== '') await rm(dir, { recursive: true, force: true });
});

function running<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} did not start`);
  return value;
}

describe('hsc backtest on a real Prometheus', () => {
  it('reads back the load HAProxy counted, replays it through every policy, and writes the chart', async () => {
    const prom = running(prometheus, 'Prometheus');
    const local = running(haproxy, 'HAProxy');
    expect(await eventually(async () => (await prom.targets()).some((t) => t.job === 'haproxy' && t.health === 'up'), 15_000)).toBe(true);

    // A varying load: 15 s at 20 req/s, 15 s at 80, 15 s at 30 (bounded, loopback only).
    const startedAt = Date.now();
    const segments = [20, 80, 30];
    let sent = 0;
    for (const rate of segments) {
      const load = startPacedLoad(`${local.frontendUrl}/`, { ratePerSecond: rate, maxDurationMs: 15_000, maxRequests: rate * 15 });
      const report = await load.finished();
      expect(report.failures).toEqual({});
      sent += report.sent;
    }
    const endedAt = Date.now();
    // Two more scrapes, so the last seconds of the load are in Prometheus.
    await sleep(3_000);

    const range = { base: prom.url, start: startedAt / 1000 - 5, end: Date.now() / 1000, stepSeconds: 1 };
    const history = await queryRange(fetch, { ...range, query: 'sum(rate(haproxy_backend_http_requests_total{proxy="be_app"}[4s]))' });
    if (!history.ok) throw new Error(history.error.message);
    // What Prometheus recorded is what was sent: about the number of requests, and the busy segment at about 80 req/s.
    const counted = history.value.reduce((sum, p) => sum + p.rate, 0);
    expect(counted).toBeGreaterThan(sent * 0.8);
    expect(counted).toBeLessThan(sent * 1.2);
    const busy = history.value.filter((p) => p.t * 1000 > startedAt + 20_000 && p.t * 1000 < startedAt + 28_000).map((p) => p.rate);
    expect(busy.reduce((a, b) => a + b, 0) / busy.length).toBeGreaterThan(60);
    expect(busy.reduce((a, b) => a + b, 0) / busy.length).toBeLessThan(100);

    const out: string[] = [];
    const err: string[] = [];
    const chart = join(dir, 'backtest.svg');
    const code = await backtest(
      ['--prometheus', prom.url, `--start=${new Date(startedAt - 5_000).toISOString()}`, `--end=${new Date(endedAt + 3_000).toISOString()}`, '--step', '1s', '--rate-window', '4s', '--out', chart],
      // The user's settings: 20 req/s per instance (so the busy segment needs four), 10 s to start.
      { out: (l) => out.push(l), err: (l) => err.push(l), fetch, env: { HSC_AUTOSCALE_RPS_TARGET: '20', HSC_AUTOSCALE_RPS_DOWN: '10', HSC_AUTOSCALE_STARTUP_MS: '10000' } },
    );
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const text = out.join('\n');
    process.stdout.write(`${text}\n`);
    expect(out[0]).toMatch(/^backtest of be_app: \d+\.\d min from .* \(\d+ points, step 1 s\) from http:\/\/127\.0\.0\.1:\d+$/);
    const lines = text.split('\n');
    const row = (policy: string): string[] => (lines.find((l) => l.startsWith(`${policy}  `)) ?? '').split(/\s{2,}/);
    for (const policy of ['bash rule', 'HPA rule', 'ours, reactive', 'ours, predictive']) {
      expect(row(policy)).toHaveLength(7);
      expect(lines.some((l) => l.startsWith(`${policy}: `) && l.includes('× HPA rule:'))).toBe(true);
    }
    // At 20 req/s per instance the busy segment (80 req/s) makes ours scale the pool of 2 to at least 4.
    expect(Number(row('ours, predictive')[4])).toBeGreaterThanOrEqual(4);
    // HAProxy had the two servers throughout, and Prometheus says so.
    expect(row('actual (recorded servers)')[4]).toBe('2');
    expect(lines.some((l) => l.startsWith('suggested: HSC_AUTOSCALE_RPS_TARGET='))).toBe(true);
    expect(out.at(-1)).toBe(`chart: ${chart}`);
    const svg = await readFile(chart, 'utf8');
    for (const panel of ['Load', 'Serving instances', 'SLO violations', 'actual (recorded)', 'ours, predictive']) expect(svg).toContain(panel);
  }, 150_000);
});
