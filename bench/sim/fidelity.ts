// Fidelity: a run of the real environment (bench/lib/timeline.ts) replayed in the simulator with
// the same offered load (the open loop's requests each second, the closed-loop clients) and the
// same sidecar settings, and the two compared second by second: the servers in rotation, the
// seconds that violated the SLO, when the first scale-up was decided. What the simulator says
// about policies is worth what this error says about the simulator.
import { loadConfig } from '../../sidecar/config/index.js';
import { NON_SCALING_SETTINGS, ours } from '../../sidecar/simulation/policies.js';
import { DEFAULT_MODEL, simulate, type ModelSettings } from '../../sidecar/simulation/simulate.js';
import type { Recording } from '../lib/timeline.js';

export interface Fidelity {
  readonly name: string;
  readonly seconds: number;
  /** Start-up (decision → the first new server in rotation; then per further container) and Docker's CPU read, as measured in the recording and given to the model. */
  readonly startupSeconds: number;
  readonly staggerSeconds: number;
  readonly cpuLatencyMs: number;
  readonly serving: {
    /** Mean over the seconds of |simulated − real| servers in rotation. */
    readonly meanAbsoluteError: number;
    /** Share of the seconds where the two agree exactly. */
    readonly exactShare: number;
    /** Server-seconds in rotation, real and simulated. */
    readonly real: number;
    readonly simulated: number;
  };
  /** Seconds that violated the SLO (p99 over it, or a failed request), real and simulated. */
  readonly violations: { readonly real: number; readonly simulated: number };
  /** Seconds from the recording's start to the first scale-up decision, real and simulated. */
  readonly firstScaleUp: { readonly real: number | undefined; readonly simulated: number | undefined };
  readonly perSecond: { readonly real: readonly number[]; readonly simulated: readonly number[] };
}

/** The SLO the bench's runs are judged by, as the simulator's model judges its seconds. */
const SLO_P99_SECONDS = DEFAULT_MODEL.sloP99Seconds;

/** The lower median: of two values, the smaller. */
const median = (values: readonly number[]): number | undefined => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? undefined : sorted[Math.floor((sorted.length - 1) / 2)];
};

/**
 * The start-up as the run shows it, per scale-up that started containers: from the decision to
 * the first second with more servers in rotation than at the decision (the first container), and
 * from there, per further container, to the second all of them served (Docker starts them one
 * after the other); the latter only where no other scale-up came in between, which would mix its
 * containers in. Lower medians; undefined without a scale-up that completed.
 */
export function measuredStartup(recording: Recording): { readonly firstSeconds: number; readonly staggerSeconds: number | undefined } | undefined {
  const ups = recording.decisions.filter((d) => d.applied && d.started > 0);
  const measured = ups.flatMap((d, i) => {
    const before = recording.seconds[Math.max(0, Math.floor(d.at) - 1)]?.serving ?? 0;
    const first = recording.seconds.findIndex((s, t) => t >= Math.ceil(d.at) && s.serving > before);
    if (first < 0) return [];
    const all = recording.seconds.findIndex((s, t) => t >= Math.ceil(d.at) && s.serving >= before + d.started);
    const next = ups[i + 1]?.at ?? Infinity;
    const alone = all >= 0 && d.started >= 2 && all < next;
    return [{ first: first + 1 - d.at, stagger: alone ? (all - first) / (d.started - 1) : undefined }];
  });
  const firstSeconds = median(measured.map((m) => m.first));
  if (firstSeconds === undefined) return undefined;
  return { firstSeconds, staggerSeconds: median(measured.flatMap((m) => (m.stagger === undefined ? [] : [m.stagger]))) };
}

/**
 * How long an evaluation waited for Docker's CPU figure: from the scrape its decision was made on
 * to the decision. Median over the evaluations (a breach check reads no CPU); undefined without one.
 */
export function measuredCpuLatencyMs(recording: Recording): number | undefined {
  const lags = recording.decisions.filter((d) => !d.reason.startsWith('breach check') && d.sampledAt !== undefined).map((d) => (d.at - (d.sampledAt ?? d.at)) * 1000);
  return median(lags.filter((l) => l >= 0));
}

/**
 * Where the sidecar's evaluations fell in the run: the time (ms from its start) its control loop
 * would have started for its first recorded evaluation to come at the same second. A breach
 * check's record is no evaluation; undefined without one.
 */
export function evaluationPhaseMs(recording: Recording, intervalMs: number): number | undefined {
  const first = recording.decisions.find((d) => !d.reason.startsWith('breach check'));
  if (first === undefined) return undefined;
  // An evaluation starts with its scrape; its record is made once Docker's CPU has come.
  const startedAt = (first.sampledAt ?? first.at) * 1000;
  return ((startedAt % intervalMs) + intervalMs) % intervalMs;
}

export async function replay(recording: Recording): Promise<Fidelity> {
  const autoscale = loadConfig({ env: { ...NON_SCALING_SETTINGS, ...recording.settings } }).autoscale;
  const configured = ours(autoscale).predictive;
  const cpuLatencyMs = measuredCpuLatencyMs(recording) ?? configured.cpu.latencyMs;
  const policy = { ...configured, cpu: { ...configured.cpu, latencyMs: cpuLatencyMs } };
  const startup = measuredStartup(recording);
  const startupSeconds = Math.round(startup?.firstSeconds ?? 4);
  const model: ModelSettings = {
    ...DEFAULT_MODEL,
    station: recording.station,
    startupSeconds,
    startupStaggerSeconds: startup?.staggerSeconds ?? DEFAULT_MODEL.startupStaggerSeconds ?? 0,
    dockerLatency: {
      ...DEFAULT_MODEL.dockerLatency,
      startPerContainerMs: (startup?.staggerSeconds ?? DEFAULT_MODEL.dockerLatency.startPerContainerMs / 1000) * 1000,
    },
    initialReplicas: recording.seconds[0]?.serving ?? autoscale.policy.minReplicas,
    // nginx's /work sleeps, it does not compute: its CPU stays low, as Docker shows it.
    cpuAtFullLoad: recording.station.kind === 'token-bucket' ? 0.05 : DEFAULT_MODEL.cpuAtFullLoad,
    sloP99Seconds: SLO_P99_SECONDS,
  };
  const trace = { name: recording.name, description: recording.description, rates: recording.seconds.map((s) => s.openSent) };
  const phase = evaluationPhaseMs(recording, autoscale.intervalMs);
  const run = await simulate(trace, policy, model, { perSecond: true, clients: recording.seconds.map((s) => s.clients), ...(phase === undefined ? {} : { controlStartMs: phase }) });
  const real = recording.seconds.map((s) => s.serving);
  const simulated = run.perSecond?.serving ?? [];
  const n = Math.min(real.length, simulated.length);
  let absolute = 0;
  let exact = 0;
  for (let t = 0; t < n; t++) {
    const diff = Math.abs((simulated[t] ?? 0) - (real[t] ?? 0));
    absolute += diff;
    if (diff === 0) exact++;
  }
  const sum = (values: readonly number[]): number => values.slice(0, n).reduce((a, b) => a + b, 0);
  const realViolations = recording.seconds.filter((s) => s.failed > 0 || (s.p99 ?? 0) > SLO_P99_SECONDS).length;
  const firstReal = recording.decisions.find((d) => d.applied && d.desired > d.current)?.at;
  return {
    name: recording.name,
    seconds: n,
    startupSeconds,
    staggerSeconds: model.startupStaggerSeconds ?? 0,
    cpuLatencyMs,
    serving: { meanAbsoluteError: n === 0 ? 0 : absolute / n, exactShare: n === 0 ? 0 : exact / n, real: sum(real), simulated: sum(simulated) },
    violations: { real: realViolations, simulated: (run.perSecond?.violated ?? []).filter(Boolean).length },
    firstScaleUp: { real: firstReal, simulated: run.scaleUps[0]?.decidedAt },
    perSecond: { real: real.slice(0, n), simulated: simulated.slice(0, n) },
  };
}

/** One line per replayed run, for the reports. */
export function fidelityLine(f: Fidelity): string {
  const up = (s: number | undefined): string => (s === undefined ? '—' : `${s.toFixed(1)} s`);
  return (
    `${f.name}: ${f.seconds} s; servers in rotation: mean |simulated − real| ${f.serving.meanAbsoluteError.toFixed(2)}, equal ${(f.serving.exactShare * 100).toFixed(0)} % of the seconds, ` +
    `server-seconds ${f.serving.simulated} simulated vs ${f.serving.real} real (${f.serving.real === 0 ? '—' : `${(((f.serving.simulated - f.serving.real) / f.serving.real) * 100).toFixed(1)} %`}); ` +
    `SLO-violation seconds ${f.violations.simulated} simulated vs ${f.violations.real} real; first scale-up ${up(f.firstScaleUp.simulated)} simulated vs ${up(f.firstScaleUp.real)} real; model: start-up ${f.startupSeconds} s + ${f.staggerSeconds.toFixed(1)} s per further container, Docker's CPU read ${Math.round(f.cpuLatencyMs)} ms (measured in the run)`
  );
}
