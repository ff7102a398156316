import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { backtest, parseDuration, parseTime, queryRange } from '../../../sidecar/cli/backtest.js';
import { run } from '../../../sidecar/cli/hsc.js';

const NOW = Date.UTC(2026, 4, 1, 12, 0, 0);
const dir = await mkdtemp(join(tmpdir(), 'hsc-unit-backtest-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Prometheus' query_range answer: a matrix of [seconds, "value"] pairs per series. */
const matrix = (...series: Array<Array<[number, number]>>) => ({
  status: 'success',
  data: { resultType: 'matrix', result: series.map((values, i) => ({ metric: { proxy: 'be_app', instance: `h${i}` }, values: values.map(([t, v]) => [t, String(v)]) })) },
});

/** A fake Prometheus: answers each query_range by the query's metric name, and records the URLs. */
function prometheus(answers: Record<string, unknown>, status = 200) {
  const urls: URL[] = [];
  const doFetch = (input: string | URL | Request): Promise<Response> => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    urls.push(url);
    const query = url.searchParams.get('query') ?? '';
    const key = Object.keys(answers).find((name) => query.includes(name));
    return Promise.resolve(new Response(JSON.stringify(key === undefined ? matrix() : answers[key]), { status, headers: { 'content-type': 'application/json' } }));
  };
  return { fetch: doFetch, urls };
}

async function hsc(args: string[], doFetch: typeof fetch, env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await backtest(args, { out: (l) => out.push(l), err: (l) => err.push(l), fetch: doFetch, env, now: () => NOW });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('hsc backtest: arguments', () => {
  it.each([
    { text: '90', seconds: 90 },
    { text: '15s', seconds: 15 },
    { text: '2m', seconds: 120 },
    { text: '1.5h', seconds: 5400 },
    { text: '1d', seconds: 86_400 },
    { text: '500ms', seconds: 0.5 },
    { text: 'soon', seconds: undefined },
  ])('duration $text', ({ text, seconds }) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each([
    { text: 'now', seconds: 1000 },
    { text: '-2m', seconds: 880 },
    { text: '1700000000', seconds: 1_700_000_000 },
    { text: '2026-05-01T12:00:00Z', seconds: NOW / 1000 },
    { text: 'yesterday', seconds: undefined },
  ])('time $text', ({ text, seconds }) => {
    expect(parseTime(text, 1000)).toBe(seconds);
  });

  it.each([
    { args: [], err: /--prometheus \(or HSC_PROMETHEUS_URL\) is required/ },
    { args: ['--prometheus', 'http://127.0.0.1:9', '--start', 'now', '--end=-1h'], err: /start before end/ },
    { args: ['--prometheus', 'http://127.0.0.1:9', '--step', '0.5s'], err: /--step must be/ },
    { args: ['--prometheus', 'http://127.0.0.1:9', '--start=-30d', '--step', '15s'], err: /more than Prometheus' 11 000 points/ },
    { args: ['--prometheus', 'http://127.0.0.1:9', '--backend', 'be app'], err: /--backend must be/ },
    { args: ['--prometheus', 'http://127.0.0.1:9', '--capacity', '0'], err: /--capacity must be/ },
    { args: ['--bogus'], err: /Unknown option/ },
  ])('$args: usage error', async ({ args, err }) => {
    const result = await hsc(args, prometheus({}).fetch);
    expect(result.code).toBe(2);
    expect(result.err).toMatch(err);
  });

  it('names the configuration key a bad setting is under', async () => {
    const result = await hsc(['--prometheus', 'http://127.0.0.1:9'], prometheus({}).fetch, { HSC_AUTOSCALE_RPS_TARGET: 'lots' });
    expect(result).toMatchObject({ code: 2, err: expect.stringMatching(/your configuration: .*autoscale.requestRate.target/) as unknown });
  });
});

describe('queryRange (the Prometheus edge)', () => {
  const range = { base: 'http://prom:9090/', query: 'up', start: 100, end: 200, stepSeconds: 15 };
  it('asks query_range for the range and step, and sums the series per point in time', async () => {
    const fake = prometheus({ up: matrix([[100, 1], [115, 2]], [[100, 10], [130, 5]]) });
    expect(await queryRange(fake.fetch, range)).toEqual({ ok: true, value: [{ t: 100, rate: 11 }, { t: 115, rate: 2 }, { t: 130, rate: 5 }] });
    const url = fake.urls[0];
    expect(url?.pathname).toBe('/api/v1/query_range');
    expect(Object.fromEntries(url?.searchParams ?? [])).toEqual({ query: 'up', start: '100', end: '200', step: '15s' });
  });

  it('an error answer, an unreachable Prometheus and a wrong result type are values, not exceptions', async () => {
    const refused = prometheus({ up: { status: 'error', errorType: 'bad_data', error: 'parse error at char 3' } }, 400);
    expect(await queryRange(refused.fetch, range)).toMatchObject({ ok: false, error: { kind: 'invalid', message: 'parse error at char 3', status: 400 } });
    const down = (() => Promise.reject(new TypeError('fetch failed'))) as typeof fetch;
    expect(await queryRange(down, range)).toMatchObject({ ok: false, error: { kind: 'network' } });
    const vector = prometheus({ up: { status: 'success', data: { resultType: 'vector', result: [] } } });
    expect(await queryRange(vector.fetch, range)).toMatchObject({ ok: false, error: { kind: 'malformed' } });
  });
});

describe('hsc backtest on a recorded history', () => {
  // 20 min at 15 s steps: 150 req/s, a step to 700 req/s from minute 6 to 12, then back; two servers recorded throughout.
  const start = NOW / 1000 - 1200;
  const points = Array.from({ length: 81 }, (_, i): [number, number] => [start + i * 15, i >= 24 && i < 48 ? 700 : 150]);
  const servers = points.map(([t]): [number, number] => [t, 2]);
  const answers = { haproxy_backend_http_requests_total: matrix(points), haproxy_backend_active_servers: matrix(servers) };

  it('replays it through every policy with the user’s settings, prints the table and the summary lines, suggests settings and writes the chart', async () => {
    const fake = prometheus(answers);
    const out = join(dir, 'chart.svg');
    const result = await hsc(['--prometheus', 'http://prom:9090', '--start=-20m', '--out', out], fake.fetch, { HSC_AUTOSCALE_RPS_TARGET: '100' });
    expect(result.err).toBe('');
    expect(result.code).toBe(0);
    const query = fake.urls.map((u) => u.searchParams.get('query'));
    expect(query).toEqual(['sum(rate(haproxy_backend_http_requests_total{proxy="be_app"}[60s]))', 'sum(haproxy_backend_active_servers{proxy="be_app"})']);
    const lines = result.out.split('\n');
    expect(lines[0]).toBe('backtest of be_app: 20.0 min from 2026-05-01T11:40:00.000Z (81 points, step 15 s) from http://prom:9090');
    expect(lines.find((l) => l.startsWith('model:'))).toBe('model: an instance serves 143 req/s at saturation (your request-rate target / 0.7; --capacity to say), starts in 20 s; SLO: p99 <= 0.5 s, no failed request');
    for (const policy of ['bash rule', 'HPA rule', 'ours, reactive', 'ours, predictive']) {
      expect(lines.some((l) => l.startsWith(`${policy}  `))).toBe(true);
      expect(lines.some((l) => l.startsWith(`${policy}: `) && /SLO-violation min, .* instance-hours over 1 trace; × HPA rule: /.test(l))).toBe(true);
    }
    // The recorded pool: 2 servers for 20 min is 0.67 instance-hours.
    expect(lines.find((l) => l.startsWith('actual (recorded servers)'))).toMatch(/^actual \(recorded servers\)\s+-\s+0\.67\s+-\s+2/);
    expect(lines.find((l) => l.startsWith('suggested: '))).toMatch(/^suggested: HSC_AUTOSCALE_RPS_TARGET=\d+(\.\d+)? HSC_AUTOSCALE_DOWN_WINDOW_MS=\d+ HSC_AUTOSCALE_FORECAST=(act|off) \(.* settings tried/);
    expect(lines.at(-1)).toBe(`chart: ${out}`);
    const svg = await readFile(out, 'utf8');
    expect(svg).toMatch(/^<svg /);
    for (const panel of ['Load', 'Serving instances', 'SLO violations', 'actual (recorded)', 'ours, predictive']) expect(svg).toContain(panel);
  });

  it('is reachable as hsc backtest', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['backtest', '--prometheus', 'http://prom:9090', '--out', join(dir, 'via-hsc.svg')], { out: (l) => out.push(l), err: (l) => err.push(l), fetch: prometheus(answers).fetch, env: {} });
    expect({ code, err }).toEqual({ code: 0, err: [] });
  });

  it('exits 3 when Prometheus cannot be read or has no data for the range', async () => {
    const down = (() => Promise.reject(new TypeError('fetch failed'))) as typeof fetch;
    expect(await hsc(['--prometheus', 'http://127.0.0.1:9'], down)).toMatchObject({ code: 3, err: expect.stringMatching(/^Prometheus at http:\/\/127\.0\.0\.1:9: http:\/\/127\.0\.0\.1:9: fetch failed/) as unknown });
    expect(await hsc(['--prometheus', 'http://prom:9090'], prometheus({}).fetch)).toMatchObject({ code: 3, err: expect.stringMatching(/has fewer than two points/) as unknown });
  });
});
