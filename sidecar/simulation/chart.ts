// Plain SVG line charts for the simulation report and the backtest: one file per trace, four
// stacked panels (offered load and forecast, serving instances, p99 response time, seconds that
// violated the SLO), one line per policy.
// Written by hand so the report needs no browser or native library; the output is deterministic.
import type { RunResult } from './simulate.js';

const COLOURS = ['#d62728', '#ff7f0e', '#1f77b4', '#2ca02c', '#9467bd', '#8c564b'];
const WIDTH = 960;
const PANEL_HEIGHT = 190;
const MARGIN = { left: 64, right: 180, top: 34, bottom: 26 };

interface Line {
  readonly label: string;
  readonly colour: string;
  readonly points: ReadonlyArray<readonly [number, number]>;
  readonly dashed?: boolean;
}

const fmt = (n: number): string => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 1 ? n.toFixed(1) : n.toFixed(2));
const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function panel(top: number, title: string, unit: string, lines: readonly Line[], tMax: number, yMaxFixed?: number): string {
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = PANEL_HEIGHT - MARGIN.top - MARGIN.bottom;
  const yMax = yMaxFixed ?? Math.max(1, ...lines.flatMap((l) => l.points.map(([, y]) => y))) * 1.08;
  const x = (t: number): number => MARGIN.left + (t / tMax) * plotWidth;
  const y = (v: number): number => top + MARGIN.top + plotHeight - (Math.min(v, yMax) / yMax) * plotHeight;
  const parts: string[] = [];
  parts.push(`<text x="${MARGIN.left}" y="${top + 20}" font-size="14" font-weight="bold">${escapeXml(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const value = (yMax * i) / 4;
    parts.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotWidth}" y1="${y(value).toFixed(1)}" y2="${y(value).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${(y(value) + 4).toFixed(1)}" font-size="11" text-anchor="end">${fmt(value)}</text>`);
  }
  parts.push(`<text x="14" y="${top + MARGIN.top + plotHeight / 2}" font-size="11" transform="rotate(-90 14 ${top + MARGIN.top + plotHeight / 2})" text-anchor="middle">${escapeXml(unit)}</text>`);
  const hours = tMax / 3600;
  const tickEvery = hours > 6 ? 3600 * 4 : hours > 1.5 ? 1800 : 600;
  for (let t = 0; t <= tMax; t += tickEvery) {
    parts.push(`<text x="${x(t).toFixed(1)}" y="${top + PANEL_HEIGHT - 8}" font-size="11" text-anchor="middle">${t >= 3600 ? `${(t / 3600).toFixed(t % 3600 === 0 ? 0 : 1)} h` : `${t / 60} min`}</text>`);
  }
  lines.forEach((line, index) => {
    const d = downsample(line.points).map(([t, v], i) => `${i === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${line.colour}" stroke-width="1.6"${line.dashed === true ? ' stroke-dasharray="5,3"' : ''}/>`);
    const ly = top + MARGIN.top + 4 + index * 16;
    parts.push(`<line x1="${WIDTH - MARGIN.right + 12}" x2="${WIDTH - MARGIN.right + 32}" y1="${ly}" y2="${ly}" stroke="${line.colour}" stroke-width="2"${line.dashed === true ? ' stroke-dasharray="5,3"' : ''}/>`);
    parts.push(`<text x="${WIDTH - MARGIN.right + 38}" y="${ly + 4}" font-size="11">${escapeXml(line.label)}</text>`);
  });
  return parts.join('\n');
}

/** At most this many points per line: a day at 30 s would otherwise make a heavy file. */
const MAX_POINTS = 480;

/** Keeps the peaks: each kept point is the maximum of the points it stands for. */
function downsample(points: ReadonlyArray<readonly [number, number]>): Array<readonly [number, number]> {
  const stride = Math.ceil(points.length / MAX_POINTS);
  if (stride <= 1) return [...points];
  const kept: Array<readonly [number, number]> = [];
  for (let i = 0; i < points.length; i += stride) {
    const group = points.slice(i, i + stride);
    kept.push([group[0]?.[0] ?? 0, Math.max(...group.map(([, v]) => v))]);
  }
  return kept;
}

export interface ChartOptions {
  readonly title: string;
  readonly sloP99Seconds: number;
  /** What the pool really was (a backtest's recorded servers), as [seconds, instances]. */
  readonly actualReplicas?: ReadonlyArray<readonly [number, number]>;
}

export function traceChart(runs: readonly RunResult[], options: ChartOptions): string {
  const first = runs[0];
  if (first === undefined) throw new Error('traceChart: no runs');
  const last = first.series[first.series.length - 1];
  const tMax = Math.max(1, (last?.t ?? 0) + 1);
  const step = first.series.length > 1 ? (first.series[1]?.t ?? 0) - (first.series[0]?.t ?? 0) : tMax;
  const predictive = runs.find((r) => r.series.some((p) => p.predicted !== null));
  const load: Line[] = [{ label: 'offered req/s', colour: '#333', points: first.series.map((p) => [p.t, p.offered]) }];
  if (predictive !== undefined) {
    load.push({
      label: `forecast (${predictive.policy})`,
      colour: '#2ca02c',
      dashed: true,
      points: predictive.series.filter((p) => p.predicted !== null).map((p) => [p.t, p.predicted ?? 0]),
    });
  }
  const byPolicy = (pick: (p: RunResult['series'][number]) => number): Line[] =>
    runs.map((run, i) => ({ label: run.policy, colour: COLOURS[i % COLOURS.length] ?? '#000', points: run.series.map((p) => [p.t, pick(p)]) }));
  const pool = byPolicy((p) => p.replicas);
  if (options.actualReplicas !== undefined) pool.push({ label: 'actual (recorded)', colour: '#000', dashed: true, points: options.actualReplicas });
  const svg = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${PANEL_HEIGHT * 4 + 30}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="20" font-size="16" text-anchor="middle">${escapeXml(options.title)}</text>`,
    panel(30, 'Load', 'req/s', load, tMax),
    panel(30 + PANEL_HEIGHT, 'Serving instances', 'instances', pool, tMax),
    panel(30 + PANEL_HEIGHT * 2, `p99 response time (worst per ${step} s; SLO ${options.sloP99Seconds} s, axis capped at 2 s)`, 'seconds', byPolicy((p) => p.p99), tMax, 2),
    panel(30 + PANEL_HEIGHT * 3, `SLO violations (seconds per ${step} s)`, 'seconds', byPolicy((p) => p.violations), tMax),
    '</svg>',
  ];
  return `${svg.join('\n')}\n`;
}
