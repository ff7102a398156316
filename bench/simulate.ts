// npm run simulate [-- --seed N] [--family name,name] [--trace file.csv ...] [--fidelity dir] [--out dir]
// Runs every trace of every family (bench/sim/families.ts) against every compared policy, each a
// configuration of the sidecar itself (sidecar/simulation), and reports per family, and for the
// families the defaults were tuned on apart from those they were not. Prints the tables and the
// summary lines; writes report.md, report.json and one SVG chart per family (its first trace).
// It also replays the recorded runs of the real environment (bench/results/fidelity, written by
// npm run bench's load-step and varying scenarios) and prints the simulator's error against them.
// The same seed gives the same bytes; no wall-clock time goes into the reports.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { FAMILIES, tracesOf, type TraceFamily } from './sim/families.js';
import { fidelityLine, replay, type Fidelity } from './sim/fidelity.js';
import type { Recording } from './lib/timeline.js';
import { fromCsv, LOAD_STEP, loadStep, type Trace } from './sim/traces.js';
import { traceChart } from '../sidecar/simulation/chart.js';
import { markdownTable, meetsGoal, ratio, summaryLine, textTable, totals, type Totals } from '../sidecar/simulation/compare.js';
import { comparedPolicies, hpaRule, oursPredictive } from '../sidecar/simulation/policies.js';
import { DEFAULT_MODEL, simulate, stepTimings, type RunResult } from '../sidecar/simulation/simulate.js';
import { instanceCapacity } from '../sidecar/simulation/world.js';

/**
 * A new container's start-up on this machine, as the bench's load-step measured it (decision →
 * first request served by a new container, both drivers, bench/results/latest.md).
 */
const MEASURED_STARTUP_SECONDS = 4;

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(DEFAULT_MODEL.seed) },
    family: { type: 'string', default: FAMILIES.map((f) => f.name).join(',') },
    trace: { type: 'string', multiple: true, default: [] },
    out: { type: 'string', default: 'bench/results/simulation' },
    fidelity: { type: 'string', default: 'bench/results/fidelity' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  process.stdout.write(
    [
      'usage: npm run simulate [-- --seed N] [--family name,name] [--trace file.csv ...] [--out dir]',
      `  --family  families to run, of: ${FAMILIES.map((f) => `${f.name}${f.tunedOn ? '' : '*'}`).join(', ')} (* not tuned on; default: all)`,
      '  --trace   a recorded trace as CSV lines "timestamp,requests per second" (repeatable), reported on its own',
      '  --seed    the model\'s random seed (arrivals); the traces have their own seeds',
      '  --fidelity  a directory of recorded runs of the real environment to replay (default bench/results/fidelity; npm run bench writes them)',
      '  --out     where report.md, report.json and the charts go (default bench/results/simulation)',
      '',
    ].join('\n'),
  );
  process.exit(0);
}
const seed = Number(values.seed);
if (!Number.isInteger(seed) || seed < 0) {
  process.stderr.write(`--seed must be a non-negative integer, not ${values.seed}\n`);
  process.exit(2);
}
const chosen = new Set(values.family.split(',').map((s) => s.trim()).filter((s) => s !== ''));
const unknown = [...chosen].filter((name) => !FAMILIES.some((f) => f.name === name));
if (unknown.length > 0) {
  process.stderr.write(`unknown family ${unknown.join(', ')}; known: ${FAMILIES.map((f) => f.name).join(', ')}\n`);
  process.exit(2);
}
const model = { ...DEFAULT_MODEL, seed };
const outDir = resolve(values.out);
const families = FAMILIES.filter((f) => chosen.has(f.name));
const recorded: Trace[] = values.trace.map((file) => fromCsv(basename(file, '.csv'), readFileSync(file, 'utf8')));

interface Group {
  readonly name: string;
  readonly family: TraceFamily | undefined;
  readonly traces: readonly Trace[];
}
const groups: Group[] = [...families.map((f) => ({ name: f.name, family: f, traces: tracesOf(f) })), ...(recorded.length > 0 ? [{ name: 'recorded', family: undefined, traces: recorded }] : [])];

const started = performance.now();
const runs = new Map<string, RunResult[]>();
for (const group of groups) {
  const mine: RunResult[] = [];
  for (const trace of group.traces) for (const policy of comparedPolicies) mine.push(await simulate(trace, policy, model));
  runs.set(group.name, mine);
}
const elapsedMs = performance.now() - started;
const all = [...runs.values()].flat();
const runsOf = (group: Group): RunResult[] => runs.get(group.name) ?? [];

const ours = oursPredictive.name;
/** Traces of these runs where ours has more SLO-violation minutes than the HPA rule. */
const worseThanHpa = (of: readonly RunResult[]): string[] => {
  const traces = [...new Set(of.map((r) => r.trace))];
  return traces.filter((trace) => {
    const mine = of.find((r) => r.trace === trace && r.policy === ours)?.summary.sloViolationMinutes ?? 0;
    const hpa = of.find((r) => r.trace === trace && r.policy === hpaRule.name)?.summary.sloViolationMinutes ?? 0;
    return mine > hpa;
  });
};
const cell = (t: Totals, base: Totals): string => `${t.minutes.toFixed(2)} / ${t.hours.toFixed(1)}${t.policy === base.policy ? '' : ` (×${ratio(t.minutes, base.minutes)}, ×${ratio(t.hours, base.hours)})`}`;

const familyColumns = ['family', 'tuned on', 'traces', ...comparedPolicies.map((p) => `${p.name}: min / h`), `${ours} worse than the HPA rule on`];
const familyRows = groups.map((group) => {
  const of = runsOf(group);
  const base = totals(of, hpaRule.name);
  const worse = worseThanHpa(of);
  return [group.name, group.family === undefined ? 'recorded' : group.family.tunedOn ? 'yes' : 'no', String(group.traces.length), ...comparedPolicies.map((p) => cell(totals(of, p.name), base)), worse.length === 0 ? '-' : worse.join(', ')];
});

interface Verdict {
  readonly title: string;
  readonly lines: readonly string[];
  readonly goal: string | undefined;
}
/** The summary lines of a set of groups, and for the held-out ones the goal's verdict. */
function verdict(title: string, picked: readonly Group[], judge: boolean): Verdict | undefined {
  if (picked.length === 0) return undefined;
  const of = picked.flatMap(runsOf);
  const base = totals(of, hpaRule.name);
  const lines = comparedPolicies.map((p) => summaryLine(totals(of, p.name), base));
  const worse = worseThanHpa(of);
  const traces = new Set(of.map((r) => r.trace)).size;
  const goal = judge
    ? `goal (≥ 50 % fewer SLO-violation minutes than the HPA rule at ≤ +10 % instance-hours, in sum): ${meetsGoal(totals(of, ours), base) ? 'met' : 'NOT met'}; ` +
      `${ours} worse than the HPA rule on ${worse.length} of ${traces} traces${worse.length === 0 ? '' : ` (${worse.join(', ')})`}`
    : undefined;
  return { title: `${title} (${picked.length} ${picked.length === 1 ? 'family' : 'families'}, ${traces} traces)`, lines, goal };
}
const verdicts = [
  verdict('tuned on', groups.filter((g) => g.family?.tunedOn === true), false),
  verdict('not tuned on', groups.filter((g) => g.family?.tunedOn === false), true),
  verdict('recorded', groups.filter((g) => g.family === undefined), true),
].filter((v): v is Verdict => v !== undefined);

// The bench's load step in the simulator: a pool of 2 at rest, a step to five instances' worth at
// the target, held 4 minutes; once with the model's start-up and once with the one measured here.
const stepTrace = loadStep();
const stepRows: string[][] = [];
for (const startupSeconds of [model.startupSeconds, MEASURED_STARTUP_SECONDS]) {
  for (const p of comparedPolicies.filter((c) => c.name !== 'bash rule')) {
    const run = await simulate(stepTrace, p, { ...model, startupSeconds });
    const timing = stepTimings(run, LOAD_STEP.stepAt, LOAD_STEP.stepAt + LOAD_STEP.seconds);
    const secs = (n: number | undefined): string => (n === undefined ? '—' : `${n} s`);
    stepRows.push([`${startupSeconds} s`, p.name, secs(timing.decisionSeconds), secs(timing.firstCapacitySeconds), secs(timing.fullCapacitySeconds), run.summary.sloViolationMinutes.toFixed(2), run.summary.instanceHours.toFixed(2)]);
  }
}
const stepColumns = ['start-up', 'policy', 'step → decision', 'step → first new capacity', 'step → all of it', 'SLO-violation min', 'instance-hours'];

// The simulator against the product: each recorded run replayed with its load and settings.
const fidelityDir = resolve(values.fidelity);
const fidelity: Fidelity[] = [];
if (existsSync(fidelityDir)) {
  for (const file of readdirSync(fidelityDir).filter((f) => f.endsWith('.json')).sort()) {
    fidelity.push(await replay(JSON.parse(readFileSync(join(fidelityDir, file), 'utf8')) as Recording));
  }
}

const verdictText = verdicts.map((v) => [`${v.title}:`, ...v.lines, ...(v.goal === undefined ? [] : [v.goal])].join('\n')).join('\n\n');
process.stdout.write(`${textTable(familyColumns, familyRows)}\n`);
process.stdout.write(`\n${all.length} runs (${groups.reduce((n, g) => n + g.traces.length, 0)} traces × ${comparedPolicies.length} policies) in ${(elapsedMs / 1000).toFixed(1)} s; reports in ${outDir}\n`);
process.stdout.write(`\nload step: ${stepTrace.description}\n${textTable(stepColumns, stepRows)}\n`);
if (fidelity.length > 0) process.stdout.write(`\nfidelity (recorded runs of the real environment, replayed):\n${fidelity.map(fidelityLine).join('\n')}\n`);
process.stdout.write(`\n${verdictText}\n`);

const traceColumns = ['trace', 'policy', 'SLO-violation min', 'instance-hours', 'scaling actions', 'failed requests', 'max instances', 'worst p99 s'];
const traceRows = all.map((r) => [r.trace, r.policy, r.summary.sloViolationMinutes.toFixed(2), r.summary.instanceHours.toFixed(2), String(r.summary.scalingActions), String(r.summary.failedRequests), String(r.summary.maxReplicas), r.summary.p99Worst.toFixed(3)]);
const station = model.station;
const markdown = [
  '# Policy simulation',
  '',
  `Written by \`npm run simulate\` (model seed ${seed}); the same seed gives the same bytes. Every policy is a configuration of`,
  "the sidecar itself: its control loop, autoscaler, sampler, `decide()` and action planning (sidecar/autoscale), run by",
  'sidecar/simulation/simulate.ts on a simulated clock against a model of Docker and HAProxy (sidecar/simulation/world.ts):',
  '',
  station.kind === 'mmc'
    ? `- each instance: ${station.workers} workers, ${station.serviceTime * 1000} ms mean service time (M/M/c: ${instanceCapacity(station).toFixed(1)} req/s at saturation, 70 % busy at 100 req/s, so the original design's 70 % CPU and 100 req/s are one load);`
    : `- each instance: a token bucket of ${station.rate} req/s with ${station.burst} waiting, then ${station.workSeconds * 1000} ms of work;`,
  `- **start-up**: a started container's server serves ${model.startupSeconds} s later (autoscale.startupMs's default); **no warm pool**; a retired one drains (its sessions end within the second), its server leaves HAProxy ${model.reconcileDelayMs} ms after the reconciler is asked, then the container stops;`,
  `- **saturation**: what the pool cannot serve waits in HAProxy's queue; a request queued more than ${model.queueTimeoutSeconds} s **fails with a 503**, and with no server up every request is **refused**;`,
  "- **HAProxy's exporter**: the backend's request counter counts a request when it ends (served or failed), its current sessions (queued and in service), its queue, its response-time average over the last 1024 requests, each server's sessions and state; **Docker's CPU**: the sidecar's reads cover the last second of every running replica (the HPA rule's 15 s of ready ones, the bash rule's 30 s);",
  `- **the sidecar**: evaluations, breach checks and the retirements' passes (every ${model.drainPollMs} ms) on the control loop's own schedule; a second violates the SLO when its p99 exceeds ${model.sloP99Seconds} s or a request failed; instances start at ${model.initialReplicas}, min 2, max 10.`,
  '',
  'Policies:',
  '',
  ...comparedPolicies.map((p) => `- **${p.name}** (every ${p.intervalSeconds} s${p.breachCheckSeconds > 0 ? `, breach check every ${p.breachCheckSeconds} s` : ''}): ${p.description}`),
  '',
  'Families (tuned on: the defaults were chosen on their traces; not tuned on: held out, see docs/autoscaling-policy.md):',
  '',
  ...families.map((f) => `- **${f.name}** (${f.tunedOn ? 'tuned on' : 'not tuned on'}, seeds ${f.seeds[0] ?? ''}–${f.seeds.at(-1) ?? ''}): ${f.description}`),
  ...(recorded.length > 0 ? [`- **recorded**: ${recorded.map((t) => `${t.name} (${t.description})`).join(', ')}`] : []),
  '',
  '## Per family',
  '',
  'SLO-violation minutes / instance-hours, summed over the family\'s traces, and their ratio to the HPA rule\'s:',
  '',
  ...markdownTable(familyColumns, familyRows),
  '',
  '## Summary',
  '',
  ...verdicts.flatMap((v) => [`${v.title}:`, '', '```', ...v.lines, ...(v.goal === undefined ? [] : [v.goal]), '```', '']),
  '## Fidelity: recorded runs of the real environment, replayed',
  '',
  fidelity.length === 0
    ? `No recording in ${values.fidelity} (npm run bench -- --only load-step,varying writes them).`
    : `Each run recorded by \`npm run bench\` (its load each second, its sidecar settings, the servers HAProxy had in rotation) replayed here with the same load and settings; the model's start-up and Docker's CPU read are the ones measured in the run:`,
  '',
  ...fidelity.map((f) => `- ${fidelityLine(f)}`),
  '',
  '## The load step',
  '',
  `${stepTrace.description}; start-up as the model's, and as measured on this machine by the bench's load-step (decision → first request served by a new container, about ${MEASURED_STARTUP_SECONDS} s).`,
  '',
  ...markdownTable(stepColumns, stepRows),
  '',
  'Charts (each family\'s first trace): ' + groups.map((g) => `[${g.name}](${g.name}.svg)`).join(', '),
  '',
  '## Every trace',
  '',
  ...groups.flatMap((g) => g.traces.map((t) => `- **${t.name}**: ${t.description}`)),
  '',
  ...markdownTable(traceColumns, traceRows),
  '',
].join('\n');

mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'report.md'), markdown);
// Summaries one run a line; the series only of the charted traces, so the file stays small.
const charted = new Set(groups.map((g) => g.traces[0]?.name));
const json = [
  '{',
  `"seed": ${seed},`,
  `"model": ${JSON.stringify(model)},`,
  `"policies": ${JSON.stringify(comparedPolicies)},`,
  '"runs": [',
  all.map((r) => `{"trace": ${JSON.stringify(r.trace)}, "policy": ${JSON.stringify(r.policy)}, "summary": ${JSON.stringify(r.summary)}${charted.has(r.trace) ? `,\n "series": ${JSON.stringify(r.series)}` : ''}}`).join(',\n'),
  ']',
  '}',
].join('\n');
JSON.parse(json); // the hand-assembled document must stay valid JSON
writeFileSync(join(outDir, 'report.json'), `${json}\n`);
for (const group of groups) {
  const first = group.traces[0];
  if (first === undefined) continue;
  const title = `Simulated: ${first.name} (${group.family === undefined ? 'recorded' : group.family.tunedOn ? 'tuned on' : 'not tuned on'}): ${first.description}`;
  writeFileSync(join(outDir, `${group.name}.svg`), traceChart(runsOf(group).filter((r) => r.trace === first.name), { title, sloP99Seconds: model.sloP99Seconds }));
}
