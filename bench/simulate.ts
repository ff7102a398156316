// npm run simulate [-- --seed N] [--trace file.csv ...] [--out dir]
// Runs every trace against every compared policy with the sidecar's own decide(), prints a table
// and writes report.json, report.md and one SVG chart per trace. The same seed gives the same
// bytes; no wall-clock time goes into the reports.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { traceChart } from './sim/chart.js';
import { comparedPolicies } from './sim/policies.js';
import { DEFAULT_MODEL, simulate, type RunResult } from './sim/simulate.js';
import { fromCsv, standardTraces, type Trace } from './sim/traces.js';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(DEFAULT_MODEL.seed) },
    trace: { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: 'bench/results/simulation' },
  },
});

const seed = Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) {
  process.stderr.write(`--seed must be a non-negative integer, not ${values.seed}\n`);
  process.exit(2);
}
const model = { ...DEFAULT_MODEL, seed };
const outDir = resolve(values.out);
const traces: Trace[] = [...standardTraces(seed), ...values.trace.map((file) => fromCsv(basename(file, '.csv'), readFileSync(file, 'utf8')))];

const started = performance.now();
const runs: RunResult[] = traces.flatMap((trace) => comparedPolicies.map((policy) => simulate(trace, policy, model)));
const elapsedMs = performance.now() - started;

mkdirSync(outDir, { recursive: true });
const columns = ['trace', 'policy', 'SLO-violation min', 'instance-hours', 'scaling actions', 'failed requests', 'max instances', 'worst p99 s'] as const;
const rows = runs.map((r) => [
  r.trace,
  r.policy,
  r.summary.sloViolationMinutes.toFixed(2),
  r.summary.instanceHours.toFixed(2),
  String(r.summary.scalingActions),
  String(r.summary.failedRequests),
  String(r.summary.maxReplicas),
  r.summary.p99Worst.toFixed(3),
]);

const widths = columns.map((c, i) => Math.max(c.length, ...rows.map((row) => (row[i] ?? '').length)));
const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
process.stdout.write(`${line(columns)}\n${line(widths.map((w) => '-'.repeat(w)))}\n${rows.map(line).join('\n')}\n`);
process.stdout.write(`\n${runs.length} runs (${traces.length} traces × ${comparedPolicies.length} policies) in ${(elapsedMs / 1000).toFixed(2)} s; reports in ${outDir}\n`);

const markdown = [
  '# Policy simulation',
  '',
  `Written by \`npm run simulate\` (seed ${seed}); the same seed gives the same bytes. Every policy is a`,
  "configuration of the sidecar's own `decide()` (sidecar/autoscale/policy.ts), run by",
  'bench/sim/simulate.ts on a model of the pool:',
  '',
  `- each instance: ${model.station.workers} workers, ${model.station.serviceTime * 1000} ms mean service time (M/M/c, so ${model.station.workers / model.station.serviceTime} req/s at saturation);`,
  `- a new instance serves ${model.startupSeconds} s after it is started; a drained one stops ${model.drainSeconds} s after it left the pool;`,
  `- HAProxy queues what the pool cannot serve and fails a request queued more than ${model.queueTimeoutSeconds} s (or all, with no instance up);`,
  `- a second violates the SLO when its p99 exceeds ${model.sloP99Seconds} s or a request failed; instances start at ${model.initialReplicas}, min 2, max 10.`,
  '',
  'Policies:',
  '',
  ...comparedPolicies.map((p) => `- **${p.name}** (every ${p.intervalSeconds} s): ${p.description}`),
  '',
  'Traces:',
  '',
  ...traces.map((t) => `- **${t.name}**: ${t.description}`),
  '',
  `| ${columns.join(' | ')} |`,
  `|${columns.map(() => '---').join('|')}|`,
  ...rows.map((row) => `| ${row.join(' | ')} |`),
  '',
  'Charts: ' + traces.map((t) => `[${t.name}](${t.name}.svg)`).join(', '),
  '',
].join('\n');
writeFileSync(join(outDir, 'report.md'), markdown);
// Summaries indented for reading; each run's series on one line, so the file stays small.
const json = [
  '{',
  `"seed": ${seed},`,
  `"model": ${JSON.stringify(model)},`,
  `"policies": ${JSON.stringify(comparedPolicies)},`,
  '"runs": [',
  runs.map((r) => `{"trace": ${JSON.stringify(r.trace)}, "policy": ${JSON.stringify(r.policy)}, "summary": ${JSON.stringify(r.summary)},\n "series": ${JSON.stringify(r.series)}}`).join(',\n'),
  ']',
  '}',
].join('\n');
JSON.parse(json); // the hand-assembled document must stay valid JSON
writeFileSync(join(outDir, 'report.json'), `${json}\n`);
for (const trace of traces) {
  writeFileSync(join(outDir, `${trace.name}.svg`), traceChart(trace.name, runs.filter((r) => r.trace === trace.name), model.sloP99Seconds));
}
