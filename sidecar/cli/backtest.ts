// hsc backtest: what each policy would have done on the user's own history. Reads a range of
// HAProxy's backend request counter from the user's Prometheus (its HTTP API's query_range, the
// exporter's metric names), replays it through the bash rule, the HPA rule and ours with the
// user's autoscale settings (the sidecar's configuration: HSC_CONFIG_FILE and HSC_* variables),
// prints the table and the summary lines, writes a chart (SVG) of load, pool and violations, and
// suggests the settings that would have met the SLO at the lowest cost on that history.
//
//   hsc backtest --prometheus URL [--backend be_app] [--start=-1h] [--end=now] [--step 15s]
//                [--rate-window 1m] [--query PROMQL] [--capacity REQ/S] [--slo-p99 S]
//                [--slo-budget MIN] [--out backtest.svg]
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { errorMessage, fail, ok, type Result } from '../edge/result.js';
import { loadConfig, type AutoscaleConfig } from '../config/index.js';
import { runBacktest } from '../simulation/backtest.js';
import { traceChart } from '../simulation/chart.js';
import { summaryLine, textTable, totals } from '../simulation/compare.js';
import { NON_SCALING_SETTINGS } from '../simulation/policies.js';
import { resample, type RatePoint } from '../simulation/trace.js';

export const BACKTEST_USAGE =
  'usage: hsc backtest --prometheus URL [--backend be_app] [--start=-1h] [--end=now] [--step 15s] [--rate-window 1m] [--query PROMQL] [--capacity REQ/S] [--slo-p99 S] [--slo-budget MIN] [--out backtest.svg]';

export interface BacktestIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly fetch: typeof fetch;
  readonly env: NodeJS.ProcessEnv;
  /** The configuration file's text, when HSC_CONFIG_FILE names one. */
  readonly readFile?: (path: string) => Promise<string>;
  readonly now?: () => number;
}

/** Exit codes, as hsc's: 0 done, 2 usage, 3 Prometheus unreachable or without the data. */
const EXIT = { ok: 0, usage: 2, unavailable: 3 } as const;

/** "90", "15s", "2m", "1.5h", "1d" → seconds; undefined when it is none of those. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(text.trim());
  if (match === null) return undefined;
  const unit = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 }[(match[2] ?? 's') as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(match[1]) * unit;
}

/** "now", "-2h" (before now), seconds since the epoch, or an ISO date → seconds since the epoch. */
export function parseTime(text: string, nowSeconds: number): number | undefined {
  if (text === 'now') return nowSeconds;
  if (text.startsWith('-')) {
    const ago = parseDuration(text.slice(1));
    return ago === undefined ? undefined : nowSeconds - ago;
  }
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const parsed = Date.parse(text);
  return Number.isNaN(parsed) ? undefined : parsed / 1000;
}

export interface RangeQuery {
  readonly base: string;
  readonly query: string;
  readonly start: number;
  readonly end: number;
  readonly stepSeconds: number;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Prometheus' query_range, the one place the backtest talks to it: the sum of the series it
 * answers, as points in time; an answer with no series is an empty list, not an error.
 */
export async function queryRange(doFetch: typeof fetch, range: RangeQuery): Promise<Result<RatePoint[]>> {
  const url = `${range.base.replace(/\/+$/, '')}/api/v1/query_range?${new URLSearchParams({ query: range.query, start: String(range.start), end: String(range.end), step: `${range.stepSeconds}s` }).toString()}`;
  const operation = `query_range ${range.query}`;
  let body: unknown;
  let status: number;
  try {
    const response = await doFetch(url, { signal: AbortSignal.timeout(30_000) });
    status = response.status;
    body = await response.json();
  } catch (error) {
    return fail(operation, 'network', `${range.base}: ${errorMessage(error)}`);
  }
  if (!isRecord(body) || body.status !== 'success') {
    const message = isRecord(body) && typeof body.error === 'string' ? body.error : `HTTP ${status}`;
    return fail(operation, status >= 500 ? 'unavailable' : 'invalid', message, status);
  }
  const data = body.data;
  if (!isRecord(data) || data.resultType !== 'matrix' || !Array.isArray(data.result)) return fail(operation, 'malformed', 'not a range vector (matrix)');
  const sums = new Map<number, number>();
  for (const series of data.result as unknown[]) {
    const values = isRecord(series) && Array.isArray(series.values) ? (series.values as unknown[]) : [];
    for (const pair of values) {
      if (!Array.isArray(pair)) continue;
      const t = Number(pair[0]);
      const v = Number(pair[1]);
      if (Number.isFinite(t) && Number.isFinite(v)) sums.set(t, (sums.get(t) ?? 0) + v);
    }
  }
  return ok([...sums.entries()].sort((a, b) => a[0] - b[0]).map(([t, rate]) => ({ t, rate })));
}

const fmt = (n: number, digits = 2): string => n.toFixed(digits);

export async function backtest(argv: readonly string[], io: BacktestIo): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        prometheus: { type: 'string' },
        backend: { type: 'string', default: 'be_app' },
        start: { type: 'string', default: '-1h' },
        end: { type: 'string', default: 'now' },
        step: { type: 'string', default: '15s' },
        'rate-window': { type: 'string' },
        query: { type: 'string' },
        capacity: { type: 'string' },
        'slo-budget': { type: 'string', default: '0' },
        'slo-p99': { type: 'string', default: '0.5' },
        out: { type: 'string', default: 'backtest.svg' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (error) {
    io.err(`${errorMessage(error)}\n${BACKTEST_USAGE}`);
    return EXIT.usage;
  }
  if (values.help) {
    io.out(BACKTEST_USAGE);
    return EXIT.ok;
  }
  const usage = (message: string): number => {
    io.err(`${message}\n${BACKTEST_USAGE}`);
    return EXIT.usage;
  };
  const prometheus = values.prometheus ?? io.env.HSC_PROMETHEUS_URL;
  if (prometheus === undefined || prometheus === '') return usage('--prometheus (or HSC_PROMETHEUS_URL) is required');
  if (!/^[A-Za-z0-9_.:-]+$/.test(values.backend)) return usage(`--backend must be a backend name, not ${values.backend}`);
  const nowSeconds = (io.now?.() ?? Date.now()) / 1000;
  const start = parseTime(values.start, nowSeconds);
  const end = parseTime(values.end, nowSeconds);
  const step = parseDuration(values.step);
  if (start === undefined || end === undefined || !(end > start)) return usage('--start and --end must be times (now, --start=-2h, seconds or an ISO date) with start before end');
  if (step === undefined || !(step >= 1)) return usage('--step must be a duration of at least 1 s (15s, 1m)');
  if ((end - start) / step > 11_000) return usage(`--step ${values.step} over that range makes more than Prometheus' 11 000 points: choose a longer step`);
  const rateWindow = values['rate-window'] === undefined ? Math.max(4 * step, 30) : parseDuration(values['rate-window']);
  if (rateWindow === undefined || !(rateWindow >= 1)) return usage('--rate-window must be a duration (1m)');
  const capacity = values.capacity === undefined ? undefined : Number(values.capacity);
  if (capacity !== undefined && !(capacity > 0)) return usage('--capacity must be requests per second an instance serves at saturation, > 0');
  const budget = Number(values['slo-budget']);
  if (!(budget >= 0)) return usage('--slo-budget must be minutes >= 0');
  const sloP99 = Number(values['slo-p99']);
  if (!(sloP99 > 0)) return usage('--slo-p99 must be seconds > 0');

  let autoscale: AutoscaleConfig;
  try {
    const file = io.env.HSC_CONFIG_FILE ?? '';
    const env = { ...NON_SCALING_SETTINGS, ...io.env };
    // Only the autoscale settings matter here: the others the loader requires are given where absent.
    autoscale = (file === '' ? loadConfig({ env }) : loadConfig({ env, fileText: await (io.readFile ?? (() => Promise.reject(new Error('no file reader'))))(file), fileName: file })).autoscale;
  } catch (error) {
    return usage(`your configuration: ${errorMessage(error)}`);
  }

  const selector = `{proxy="${values.backend}"}`;
  const query = values.query ?? `sum(rate(haproxy_backend_http_requests_total${selector}[${Math.round(rateWindow)}s]))`;
  const range = { base: prometheus, start, end, stepSeconds: step };
  const [rates, servers] = await Promise.all([
    queryRange(io.fetch, { ...range, query }),
    queryRange(io.fetch, { ...range, query: `sum(haproxy_backend_active_servers${selector})` }),
  ]);
  if (!rates.ok) {
    io.err(`Prometheus at ${prometheus}: ${rates.error.message}`);
    return EXIT.unavailable;
  }
  if (rates.value.length < 2) {
    io.err(`Prometheus at ${prometheus} has fewer than two points of ${query} from ${new Date(start * 1000).toISOString()} to ${new Date(end * 1000).toISOString()}`);
    return EXIT.unavailable;
  }
  const recorded = servers.ok ? servers.value : [];
  const first = rates.value[0]?.t ?? start;
  const trace = { name: `backtest-${values.backend}`, description: `${values.backend} from ${new Date(first * 1000).toISOString()}`, rates: resample(rates.value) };
  const result = await runBacktest(trace, autoscale, {
    ...(capacity === undefined ? {} : { capacityPerInstance: capacity }),
    ...(recorded[0] === undefined ? {} : { initialReplicas: Math.round(recorded[0].rate) }),
    sloBudgetMinutes: budget,
    sloP99Seconds: sloP99,
  });

  const minutes = (trace.rates.length / 60).toFixed(1);
  io.out(`backtest of ${values.backend}: ${minutes} min from ${new Date(first * 1000).toISOString()} (${rates.value.length} points, step ${step} s) from ${prometheus}`);
  io.out(`query: ${query}`);
  const station = result.model.station;
  const perInstance = station.kind === 'mmc' ? station.workers / station.serviceTime : station.rate;
  io.out(`model: an instance serves ${fmt(perInstance, 0)} req/s at saturation${capacity === undefined ? ' (your request-rate target / 0.7; --capacity to say)' : ''}, starts in ${result.model.startupSeconds} s; SLO: p99 <= ${result.model.sloP99Seconds} s, no failed request`);
  io.out('');
  const recordedHours = recorded.length < 2 ? undefined : recorded.slice(1).reduce((sum, p, i) => sum + ((recorded[i]?.rate ?? 0) * (p.t - (recorded[i]?.t ?? p.t))) / 3600, 0);
  const rows = result.runs.map((r) => [r.policy, fmt(r.summary.sloViolationMinutes), fmt(r.summary.instanceHours), String(r.summary.scalingActions), String(r.summary.maxReplicas), fmt(r.summary.p99Worst, 3), String(r.summary.failedRequests)]);
  if (recordedHours !== undefined) rows.push(['actual (recorded servers)', '-', fmt(recordedHours), '-', String(Math.max(...recorded.map((p) => p.rate))), '-', '-']);
  io.out(textTable(['policy', 'SLO-violation min', 'instance-hours', 'scaling actions', 'max instances', 'worst p99 s', 'failed requests'], rows));
  io.out('');
  const hpa = totals(result.runs, 'HPA rule');
  for (const policy of result.policies) io.out(summaryLine(totals(result.runs, policy.name), hpa));
  const s = result.suggestion;
  if (s !== undefined) {
    const env = `HSC_AUTOSCALE_RPS_TARGET=${s.setting.requestRateTarget} HSC_AUTOSCALE_DOWN_WINDOW_MS=${s.setting.scaleDownWindowMs} HSC_AUTOSCALE_FORECAST=${s.setting.forecast}`;
    const what = `${fmt(s.run.summary.sloViolationMinutes)} SLO-violation min, ${fmt(s.run.summary.instanceHours)} instance-hours`;
    io.out('');
    io.out(s.metSlo ? `suggested: ${env} (${what}: the cheapest of ${s.tried} settings tried that met the SLO${budget > 0 ? ` within ${budget} min` : ''})` : `suggested: ${env} (${what}: none of ${s.tried} settings tried met the SLO; this one came closest)`);
  }
  const chart = traceChart([...result.runs], {
    title: `Backtest: ${values.backend}, ${minutes} min of ${prometheus}`,
    sloP99Seconds: result.model.sloP99Seconds,
    ...(recorded.length < 2 ? {} : { actualReplicas: recorded.map((p) => [p.t - first, p.rate] as const) }),
  });
  try {
    await writeFile(values.out, chart);
  } catch (error) {
    io.err(`cannot write the chart to ${values.out}: ${errorMessage(error)}`);
    return EXIT.unavailable;
  }
  io.out(`chart: ${values.out}`);
  return EXIT.ok;
}
