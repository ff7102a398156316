// One verdict per fault and driver, appended as a JSON line to the file the faults' global setup
// names (test/faults/setup.ts), and printed there as one table when the suite ends.
import { appendFileSync, readFileSync } from 'node:fs';

export interface Verdict {
  readonly fault: string;
  readonly driver: string;
  readonly haproxy: string;
  /** Requests sent through HAProxy while the fault was on and until the check after it. */
  readonly requests: number;
  /** Requests that failed, not counting those on a container the fault crashed. */
  readonly failed: number;
  /** Requests that failed on a container the fault killed (fault 7 only). */
  readonly failedOnCrashed: number;
  /** From the end of the fault until HAProxy, Docker and the sidecar agreed (null: never). */
  readonly convergeMs: number | null;
  /** Disagreements left at the final check; empty when they all agree. */
  readonly problems: readonly string[];
  /** What else the fault showed (reloads, the sidecar's report, …). */
  readonly notes: string;
}

export function recordVerdict(file: string, verdict: Verdict): void {
  appendFileSync(file, `${JSON.stringify(verdict)}\n`);
}

function readVerdicts(file: string): Verdict[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as Verdict);
}

/** The verdicts as a Markdown table (what the suite prints at its end). */
export function verdictTable(file: string): string {
  const verdicts = readVerdicts(file);
  if (verdicts.length === 0) return '[faults] no verdict recorded';
  const rows = verdicts.map((v) => [
    v.fault,
    `${v.driver} (HAProxy ${v.haproxy})`,
    String(v.requests),
    String(v.failed),
    String(v.failedOnCrashed),
    v.convergeMs === null ? 'never' : `${(v.convergeMs / 1000).toFixed(1)} s`,
    v.problems.length === 0 ? 'yes' : `NO: ${v.problems.join('; ')}`,
    v.notes,
  ]);
  const header = ['fault', 'driver', 'requests', 'failed', 'failed on crashed', 'converged after', 'agree', 'notes'];
  const line = (cells: readonly string[]): string => `| ${cells.map((c) => c.replaceAll('|', '/')).join(' | ')} |`;
  return ['[faults] verdicts', line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}
