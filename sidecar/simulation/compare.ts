// How runs of several policies over the same traces compare: totals per policy and their ratio to
// a baseline's (the HPA rule's), in the one line format the simulator and the backtest print, and
// plain-text and Markdown tables.
import type { RunResult } from './simulate.js';

export interface Totals {
  readonly policy: string;
  readonly traces: number;
  readonly minutes: number;
  readonly hours: number;
}

export function totals(runs: readonly RunResult[], policy: string): Totals {
  const mine = runs.filter((r) => r.policy === policy);
  return {
    policy,
    traces: mine.length,
    minutes: mine.reduce((sum, r) => sum + r.summary.sloViolationMinutes, 0),
    hours: mine.reduce((sum, r) => sum + r.summary.instanceHours, 0),
  };
}

/** a / b to two places; 1.00 for 0 / 0 and ∞ for more than nothing over nothing. */
export const ratio = (a: number, b: number): string => (b === 0 ? (a === 0 ? '1.00' : '∞') : (a / b).toFixed(2));

/** "<policy>: 1.23 SLO-violation min, 4.56 instance-hours over 8 traces; × HPA rule: 0.45 min, 1.02 h" */
export function summaryLine(t: Totals, base: Totals): string {
  return (
    `${t.policy}: ${t.minutes.toFixed(2)} SLO-violation min, ${t.hours.toFixed(2)} instance-hours over ${t.traces} trace${t.traces === 1 ? '' : 's'}; ` +
    `× ${base.policy}: ${ratio(t.minutes, base.minutes)} min, ${ratio(t.hours, base.hours)} h`
  );
}

/** The goal: at least 50 % fewer SLO-violation minutes than the baseline at no more than +10 % instance-hours. */
export function meetsGoal(t: Totals, base: Totals): boolean {
  return t.minutes <= base.minutes * 0.5 && t.hours <= base.hours * 1.1;
}

/** Columns padded to their widest cell, two spaces apart. */
export function textTable(columns: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((row) => (row[i] ?? '').length)));
  return [columns, ...rows].map((cells) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n');
}

export function markdownTable(columns: readonly string[], rows: readonly (readonly string[])[]): string[] {
  return [`| ${columns.join(' | ')} |`, `|${columns.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)];
}
