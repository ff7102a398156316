// The shape every scenario returns, and the table and Markdown written from it. A scenario that
// could not run here says why in `reason` and carries no figure: nothing is estimated.
import type { Summary } from './stats.js';

export const NEEDS_DATAPLANE = 'not measured here: no Data Plane API binary';

export interface Figure {
  readonly metric: string;
  readonly unit: string;
  /** Samples behind p50/p95/max (trials, rounds, events). */
  readonly n?: number;
  readonly p50?: number;
  readonly p95?: number;
  readonly max?: number;
  /** A single figure: a ratio, a count, a mean. */
  readonly value?: number;
  readonly note?: string;
  /** Names the figure for the summary table (SUMMARY_ROWS in bench/run.ts). */
  readonly key?: string;
}

export type ScenarioStatus = 'measured' | 'not-measured' | 'failed';

export interface ScenarioResult {
  readonly id: string;
  /** The sidecar's HAProxy driver, for the scenarios run once per driver. */
  readonly driver?: string;
  readonly title: string;
  readonly status: ScenarioStatus;
  /** Why it was not measured, or the error it failed with. */
  readonly reason?: string;
  readonly figures: readonly Figure[];
  /** How it was measured and what the figures do and do not include. */
  readonly notes: readonly string[];
  readonly seconds: number;
  /** Per-trial figures, for the JSON report. */
  readonly data?: unknown;
}

/** p50/p95/max and n of a summary, for a Figure. */
export function spread(summary: Summary): Pick<Figure, 'n' | 'p50' | 'p95' | 'max'> {
  return { n: summary.n, p50: summary.p50, p95: summary.p95, max: summary.max };
}

export function formatNumber(value: number | undefined, unit: string): string {
  if (value === undefined) return '';
  if (Number.isNaN(value)) return 'n/a';
  if (unit === 'ratio') return value.toFixed(3);
  if (Number.isInteger(value)) return String(value);
  const size = Math.abs(value);
  return size < 10 ? value.toFixed(2) : size < 1000 ? value.toFixed(1) : value.toFixed(0);
}

const COLUMNS = ['scenario', 'metric', 'n', 'p50', 'p95', 'max', 'value', 'unit'] as const;

/** The scenario as the tables name it: its id, and its driver where it runs once per driver. */
export function scenarioLabel(result: Pick<ScenarioResult, 'id' | 'driver'>): string {
  return result.driver === undefined ? result.id : `${result.id} (${result.driver})`;
}

export function tableRows(results: readonly ScenarioResult[]): string[][] {
  const rows: string[][] = [];
  for (const result of results) {
    if (result.status !== 'measured') {
      rows.push([scenarioLabel(result), result.status === 'failed' ? `FAILED: ${result.reason ?? ''}` : (result.reason ?? ''), '', '', '', '', '', '']);
      continue;
    }
    for (const f of result.figures) {
      rows.push([
        scenarioLabel(result),
        f.metric,
        f.n === undefined ? '' : String(f.n),
        formatNumber(f.p50, f.unit),
        formatNumber(f.p95, f.unit),
        formatNumber(f.max, f.unit),
        formatNumber(f.value, f.unit),
        f.unit,
      ]);
    }
  }
  return rows;
}

export function textTable(results: readonly ScenarioResult[]): string {
  const rows = tableRows(results);
  const widths = COLUMNS.map((c, i) => Math.max(c.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(COLUMNS), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** One line of the summary: a key figure per driver, against its goal. */
export interface SummaryRow {
  readonly figure: string;
  readonly goal: string;
  /** Driver → the figure as text ("not measured here: …" where it was not). */
  readonly byDriver: Readonly<Record<string, string>>;
}

export interface RunReport {
  readonly generatedAt: string;
  readonly seconds: number;
  readonly environment: Readonly<Record<string, string | number>>;
  /** Key figures per driver, first in the Markdown report. */
  readonly summary?: { readonly drivers: readonly string[]; readonly rows: readonly SummaryRow[]; readonly notes: readonly string[] };
  readonly scenarios: readonly ScenarioResult[];
}

function summaryLines(summary: NonNullable<RunReport['summary']>, escape: (text: string) => string): string[] {
  return [
    '## Summary per HAProxy driver',
    '',
    `| figure | goal | ${summary.drivers.join(' | ')} |`,
    `|---|---|${summary.drivers.map(() => '---').join('|')}|`,
    ...summary.rows.map((row) => `| ${escape(row.figure)} | ${escape(row.goal)} | ${summary.drivers.map((d) => escape(row.byDriver[d] ?? '')).join(' | ')} |`),
    '',
    ...summary.notes.map((note) => `- ${note}`),
    ...(summary.notes.length > 0 ? [''] : []),
  ];
}

export function markdownReport(report: RunReport): string {
  const escape = (text: string): string => text.replaceAll('|', '\\|');
  const lines = [
    '# Benchmarks on the local environment',
    '',
    `Written by \`npm run bench\` on ${report.generatedAt} in ${report.seconds.toFixed(0)} s. The machine is shared and`,
    'noisy, so comparisons are ratios within this one run; absolute figures are for this machine only.',
    'Percentiles are nearest-rank (each is an observed sample).',
    '',
    '## Environment',
    '',
    ...Object.entries(report.environment).map(([k, v]) => `- ${k}: ${escape(String(v))}`),
    '',
    ...(report.summary === undefined ? [] : summaryLines(report.summary, escape)),
    '## Figures',
    '',
    `| ${COLUMNS.join(' | ')} |`,
    `|${COLUMNS.map(() => '---').join('|')}|`,
    ...tableRows(report.scenarios).map((row) => `| ${row.map(escape).join(' | ')} |`),
    '',
    '## Scenarios',
    '',
  ];
  for (const s of report.scenarios) {
    lines.push(`### ${scenarioLabel(s)}: ${s.title}`, '');
    lines.push(`Status: **${s.status}**${s.reason === undefined ? '' : ` (${s.reason})`}; ${s.seconds.toFixed(0)} s.`, '');
    for (const note of s.notes) lines.push(`- ${note}`);
    const annotated = s.figures.filter((f) => f.note !== undefined);
    if (annotated.length > 0) {
      lines.push('', 'Figure notes:', '');
      for (const f of annotated) lines.push(`- ${f.metric}: ${f.note ?? ''}`);
    }
    lines.push('');
  }
  return lines.join('\n');
}
