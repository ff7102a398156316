// The test command's closing table: which HAProxy each suite file ran on, and with what result.
// devenv/test.sh runs vitest more than once (every suite on the default HAProxy, the HAProxy-facing
// ones again on the newest LTS) and passes each run's JSON report labelled with the HAProxy it ran:
//
//   test-summary.ts default=<report.json> 3.4=<report.json> …
//
// `default` is the HAProxy devenv/versions.ts haproxyBinary() picks in this environment (what a
// vitest run without HSC_HAPROXY_SERIES ran); a series is setup.sh's cached binary of it.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { haproxyBinary, haproxyBinaryOf, haproxyVersion } from './versions.js';

interface FileResult {
  readonly name: string;
  readonly status: string;
  readonly startTime: number;
  readonly endTime: number;
  readonly assertionResults: ReadonlyArray<{ readonly status: string }>;
}
interface Report {
  readonly startTime: number;
  readonly testResults: readonly FileResult[];
}

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const suiteName = (file: string): string => relative(`${repoRoot}test`, file).replace(/\.test\.ts$/, '');

function cell(file: FileResult): string {
  const count = (...statuses: string[]): number => file.assertionResults.filter((a) => statuses.includes(a.status)).length;
  const failed = count('failed');
  // A file that failed outside any test (a hook, an import) has no failed assertion to show it.
  const broken = file.status === 'failed' && failed === 0 ? ' (file failed)' : '';
  return `${count('passed')}/${failed}/${count('skipped', 'pending', 'todo')}${broken}`;
}

const args = process.argv.slice(2);
if (args.length === 0) throw new Error('usage: test-summary.ts default|<series>=<vitest-json-report>...');

/** Column per HAProxy binary, in the order first seen; rows per suite file. */
const columns = new Map<string, { version: string; seconds: number; suites: number }>();
const rows = new Map<string, Map<string, string>>();
for (const arg of args) {
  const [label, file] = arg.split(/=(.*)/s);
  if (label === undefined || file === undefined) throw new Error(`expected <label>=<report>, got ${arg}`);
  const binary = label === 'default' ? haproxyBinary() : haproxyBinaryOf(label);
  const report = JSON.parse(readFileSync(file, 'utf8')) as Report;
  const column = columns.get(binary) ?? { version: haproxyVersion(binary), seconds: 0, suites: 0 };
  const end = Math.max(report.startTime, ...report.testResults.map((r) => r.endTime));
  column.seconds += (end - report.startTime) / 1000;
  column.suites += report.testResults.length;
  columns.set(binary, column);
  for (const result of report.testResults) {
    const row = rows.get(suiteName(result.name)) ?? new Map<string, string>();
    row.set(binary, cell(result));
    rows.set(suiteName(result.name), row);
  }
}

const binaries = [...columns.keys()];
const header = ['suite (passed/failed/skipped)', ...binaries.map((b) => `HAProxy ${columns.get(b)?.version ?? '?'}`)];
const table = [...rows.entries()]
  .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  .map(([suite, cells]) => [suite, ...binaries.map((b) => cells.get(b) ?? '-')]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] ?? '').length)));
const line = (cells: readonly string[]): string => `[test] ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd()}`;
const out = [line(header), ...table.map(line)];
for (const [binary, column] of columns) {
  out.push(`[test] HAProxy ${column.version} (${binary}): ${column.suites} suite files in ${Math.round(column.seconds)} s`);
}
process.stdout.write(`${out.join('\n')}\n`);
