// npm run simulate [-- --seed N] [--trace file.csv ...] [--out dir]
// Runs every trace against every compared policy with the sidecar's own decide(), prints a table
// and writes report.json, report.md and one SVG chart per trace. The same seed gives the same
// bytes; no wall-clock time goes into the reports.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { traceChart } from './sim/chart.js';
import { comparedPolicies, hpaRule } from './sim/policies.js';
import { DEFAULT_MODEL, simulate, stepTimings, type RunResult } from './sim/simulate.js';
import { fromCsv, LOAD_STEP, loadStep, standardTraces, type Trace } from './sim/traces.js';

/**
 * A new container's start-up on this machine, as the bench's load-step measured it (decision →
 * first request served by a new container, both drivers, bench/results/latest.md).
 */
const MEASURED_STARTUP_SECONDS = 4;

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

// The goal of issue 17, checked on every trace where the HPA rule has violations.
const hpa = comparedPolicies.find((p) => p.name === hpaRule.name) ?? hpaRule;
const ours = comparedPolicies.filter((p) => p.name.startsWith('ours'));
const ofRun = (trace: string, policy: string): RunResult | undefined => runs.find((r) => r.trace === trace && r.policy === policy);
const ratio = (a: number, b: number): string => (b === 0 ? (a === 0 ? '1.00' : '∞') : (a / b).toFixed(2));
const goalRows = traces.flatMap((trace) => {
  const base = ofRun(trace.name, hpa.name)?.summary;
  if (base === undefined || base.sloViolationMinutes === 0) return [];
  return ours.map((p) => {
    const run = ofRun(trace.name, p.name)?.summary;
    if (run === undefined) return [];
    const fewer = 1 - run.sloViolationMinutes / base.sloViolationMinutes;
    const more = run.instanceHours / base.instanceHours - 1;
    const met = fewer >= 0.5 && more <= 0.1;
    return [`${trace.name}${trace.heldOut === true ? ' (held out)' : ''}`, p.name, `${(fewer * 100).toFixed(0)} % fewer`, `${more >= 0 ? '+' : ''}${(more * 100).toFixed(1)} %`, met ? 'met' : 'NOT met'];
  });
});
const goalColumns = ['trace', 'policy', 'SLO-violation min vs HPA', 'instance-hours vs HPA', 'goal (≥ 50 % fewer, ≤ +10 %)'];

// The bench's load step in the simulator: a pool of 2 at rest, a step to five instances' worth at
// the target, held 4 minutes; once with the model's start-up and once with the one measured here.
const stepTrace = loadStep();
const stepRows = [model.startupSeconds, MEASURED_STARTUP_SECONDS].flatMap((startupSeconds) =>
  [hpa, ...ours].map((p) => {
    const run = simulate(stepTrace, p, { ...model, startupSeconds });
    const timing = stepTimings(run, LOAD_STEP.stepAt, LOAD_STEP.stepAt + LOAD_STEP.seconds);
    const secs = (n: number | undefined): string => (n === undefined ? '—' : `${n} s`);
    return [`${startupSeconds} s`, p.name, secs(timing.decisionSeconds), secs(timing.firstCapacitySeconds), secs(timing.fullCapacitySeconds), run.summary.sloViolationMinutes.toFixed(2), run.summary.instanceHours.toFixed(2)];
  }),
);
const stepColumns = ['start-up', 'policy', 'step → decision', 'step → first new capacity', 'step → all of it', 'SLO-violation min', 'instance-hours'];

// One line per policy over every trace: totals, and their ratio to the HPA rule's.
const totals = comparedPolicies.map((p) => {
  const mine = runs.filter((r) => r.policy === p.name);
  return { policy: p.name, minutes: mine.reduce((sum, r) => sum + r.summary.sloViolationMinutes, 0), hours: mine.reduce((sum, r) => sum + r.summary.instanceHours, 0) };
});
const hpaTotal = totals.find((t) => t.policy === hpa.name) ?? { minutes: 0, hours: 0 };
const summaryLines = totals.map(
  (t) =>
    `${t.policy}: ${t.minutes.toFixed(2)} SLO-violation min, ${t.hours.toFixed(2)} instance-hours over ${traces.length} traces; ` +
    `× HPA rule: ${ratio(t.minutes, hpaTotal.minutes)} min, ${ratio(t.hours, hpaTotal.hours)} h`,
);
const table = (cols: readonly string[], body: readonly (readonly string[])[]): string[] => [`| ${cols.join(' | ')} |`, `|${cols.map(() => '---').join('|')}|`, ...body.map((row) => `| ${row.join(' | ')} |`)];

const padded = (cols: readonly string[], body: readonly (readonly string[])[]): string => {
  const w = cols.map((c, i) => Math.max(c.length, ...body.map((row) => (row[i] ?? '').length)));
  return [cols, ...body].map((cells) => cells.map((c, i) => c.padEnd(w[i] ?? 0)).join('  ').trimEnd()).join('\n');
};
process.stdout.write(`\n${padded(goalColumns, goalRows)}\n`);
process.stdout.write(`\nload step: ${stepTrace.description}\n${padded(stepColumns, stepRows)}\n`);
process.stdout.write(`\n${summaryLines.join('\n')}\n`);

const markdown = [
  '# Policy simulation',
  '',
  `Written by \`npm run simulate\` (seed ${seed}); the same seed gives the same bytes. Every policy is a`,
  "configuration of the sidecar's own `decide()` (sidecar/autoscale/policy.ts), run by",
  'bench/sim/simulate.ts on a model of the pool. What the model has, and so what the policies can rely on:',
  '',
  `- each instance: ${model.station.workers} workers, ${model.station.serviceTime * 1000} ms mean service time (M/M/c: ${(model.station.workers / model.station.serviceTime).toFixed(1)} req/s at saturation, 70 % busy at 100 req/s, so the original design's 70 % CPU and 100 req/s are one load);`,
  `- **start-up delay**: a new instance serves ${model.startupSeconds} s after it is started (autoscale.startupMs's default); there is **no warm pool** (the sidecar keeps no created-but-stopped replicas, so none is modelled); a drained one stops ${model.drainSeconds} s after it left the pool;`,
  `- **saturation**: what the pool cannot serve waits in HAProxy's queue; a request queued more than ${model.queueTimeoutSeconds} s **fails with a 503** (timed out), and with no instance up every request is **refused** at once;`,
  "- **what HAProxy shows**: its backend's request counter counts a request when it ends (served or failed), as HAProxy does, so a saturated pool's request rate is its throughput, not the demand; the requests in flight (current sessions: queued and in service) and their growth; the queue; the mean response time over the window; CPU is busy time over the interval;",
  '- **the schedule**: an evaluation every interval; for ours, a breach check every 2 s between evaluations reads HAProxy only (no CPU), over the time since the last read, and acts only on a scale-up for a breach, as the control loop does;',
  "- **the actions** are the sidecar's: a scale-up first puts back draining instances; nothing is retired while instances start or others drain; only a change that acted counts against the rate limits;",
  `- a second violates the SLO when its p99 exceeds ${model.sloP99Seconds} s or a request failed; instances start at ${model.initialReplicas}, min 2, max 10.`,
  '',
  'Policies:',
  '',
  ...comparedPolicies.map((p) => `- **${p.name}** (every ${p.intervalSeconds} s${p.breachCheckSeconds > 0 ? `, breach check every ${p.breachCheckSeconds} s` : ''}): ${p.description}`),
  '',
  'Traces (held out: not seen while the defaults were chosen; see bench/sim/traces.ts for which were seen since):',
  '',
  ...traces.map((t) => `- **${t.name}**${t.heldOut === true ? ' (held out)' : ''}: ${t.description}`),
  '',
  ...table(columns, rows),
  '',
  '## The goal: at least 50 % fewer SLO-violation minutes than the HPA rule at no more than +10 % instance-hours',
  '',
  'On every trace where the HPA rule has violations:',
  '',
  ...table(goalColumns, goalRows),
  '',
  '## The load step',
  '',
  `${stepTrace.description}; start-up as the model's, and as measured on this machine by the bench's load-step (decision → first request served by a new container, about ${MEASURED_STARTUP_SECONDS} s).`,
  '',
  ...table(stepColumns, stepRows),
  '',
  'Charts: ' + traces.map((t) => `[${t.name}](${t.name}.svg)`).join(', '),
  '',
  '## Over all traces',
  '',
  ...summaryLines.map((l) => `- ${l}`),
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
