// A run of the real environment second by second, in the terms the simulator replays: the load
// offered (requests sent, closed-loop clients), what the clients saw (failures, p99), the pool
// (servers HAProxy had in rotation, containers Docker ran) and the sidecar's decisions. The
// recording is the input of the fidelity comparison (bench/sim/fidelity.ts).
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { LocalHaproxy } from '../../devenv/localenv.js';
import type { Station } from '../../sidecar/simulation/world.js';
import { serverSnapshots } from './haproxy.js';
import type { BenchPool } from './pool.js';
import type { SidecarProcess } from './sidecar-process.js';
import type { Answer } from './traffic.js';

/**
 * The local environment's nginx /work (stack/images/nginx/nginx.conf): limit_req at 50 requests
 * a second per instance, 200 waiting, a 503 beyond; then 10 ms of work.
 */
export const NGINX_WORK: Station = { kind: 'token-bucket', rate: 50, burst: 200, workSeconds: 0.01 };

export interface RecordedSecond {
  /** Requests sent in this second (open loop and closed loop). */
  readonly sent: number;
  /** Of them, the open loop's (the rest are the closed-loop clients'). */
  readonly openSent: number;
  /** Closed-loop clients active in this second. */
  readonly clients: number;
  /** Requests sent in this second that failed (non-2xx, or no answer). */
  readonly failed: number;
  /** p99 of the answer times of the requests sent in this second, in seconds; null when none was sent. */
  readonly p99: number | null;
  /** The sidecar's servers in rotation (UP) at this second, from HAProxy's exporter. */
  readonly serving: number;
  /** The pool's containers running at this second, from Docker. */
  readonly running: number;
}

export interface RecordedDecision {
  /** Seconds from the recording's start. */
  readonly at: number;
  readonly current: number;
  readonly desired: number;
  readonly applied: boolean;
  readonly started: number;
  readonly retired: number;
  readonly reason: string;
  /** Seconds from the recording's start to the HAProxy scrape the decision was made on (its inputs' time). */
  readonly sampledAt: number | undefined;
}

export interface Recording {
  readonly name: string;
  readonly description: string;
  /** The sidecar's HSC_AUTOSCALE_* settings during the run (the rest were the defaults). */
  readonly settings: Readonly<Record<string, string>>;
  /** What an instance of the pool is, as the simulator models it. */
  readonly station: Station;
  readonly startedAt: number;
  readonly seconds: readonly RecordedSecond[];
  readonly decisions: readonly RecordedDecision[];
}

interface PoolSample {
  readonly at: number;
  readonly serving: number;
  readonly running: number;
}

/** Reads the pool once a second (HAProxy's exporter and Docker's list) until stopped. */
export function watchPool(local: LocalHaproxy, pool: BenchPool): { samples(): readonly PoolSample[]; stop(): Promise<void> } {
  const samples: PoolSample[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const next = Date.now() + 1000;
      const [servers, replicas] = await Promise.all([serverSnapshots(local).catch(() => undefined), pool.replicasNow().catch(() => undefined)]);
      if (servers !== undefined && replicas !== undefined) {
        samples.push({ at: Date.now(), serving: servers.filter((s) => s.name.startsWith('hsc-') && s.state === 'UP').length, running: replicas.size });
      }
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
    }
  })();
  return {
    samples: () => samples,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

/** A decision record as GET /v1/autoscaler shows it (the fields used here). */
export interface AdminDecision {
  readonly at: number;
  readonly current: number;
  readonly desired: number;
  readonly applied: boolean;
  readonly reason: string;
  readonly actions: ReadonlyArray<{ readonly kind: string; readonly count?: number }>;
  /** The samples decide() was given. */
  readonly inputs?: unknown;
  readonly predictedRequestRate?: number | null;
}

/**
 * Collects the sidecar's decision records (GET /v1/autoscaler keeps the last 50) every 2 s until
 * stopped, so a run longer than fifty evaluations keeps them all.
 */
export function watchDecisions(sidecar: SidecarProcess): { stop(): Promise<AdminDecision[]> } {
  const seen = new Map<string, AdminDecision>();
  let stopped = false;
  const read = async (): Promise<void> => {
    const answer = await sidecar.admin('GET', '/v1/autoscaler').catch(() => undefined);
    const recent = (answer?.body as { recent?: AdminDecision[] } | undefined)?.recent ?? [];
    for (const r of recent) seen.set(`${r.at}/${r.reason}`, r);
  };
  const loop = (async () => {
    while (!stopped) {
      await read();
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop;
      await read();
      return [...seen.values()].sort((a, b) => a.at - b.at);
    },
  };
}

const p99 = (values: number[]): number | null => {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)] ?? null;
};

export interface RecordingInput {
  readonly name: string;
  readonly description: string;
  readonly settings: Readonly<Record<string, string>>;
  readonly station: Station;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly answers: readonly Answer[];
  /** The open loop's answers (a subset of `answers`). */
  readonly openAnswers: readonly Answer[];
  /** Closed-loop clients at a time (ms since the epoch). */
  readonly clients: (at: number) => number;
  readonly pool: readonly PoolSample[];
  readonly decisions: readonly AdminDecision[];
}

/** When the samples a decision was made on were read (their request rate's or in-flight reading's time). */
function sampledAt(inputs: unknown, startedAt: number): number | undefined {
  const reading = (name: string): number | undefined => {
    const r = typeof inputs === 'object' && inputs !== null ? (inputs as Record<string, unknown>)[name] : undefined;
    const at = typeof r === 'object' && r !== null ? (r as Record<string, unknown>).at : undefined;
    return typeof at === 'number' ? at : undefined;
  };
  const at = reading('requestRate') ?? reading('inFlight');
  return at === undefined ? undefined : Math.round((at - startedAt) / 100) / 10;
}

/** The run as seconds from its start: load, answers, pool and decisions. */
export function recording(input: RecordingInput): Recording {
  const length = Math.floor((input.endedAt - input.startedAt) / 1000);
  const bySecond = Array.from({ length }, () => ({ sent: 0, openSent: 0, failed: 0, times: [] as number[] }));
  for (const a of input.openAnswers) {
    const second = bySecond[Math.floor((a.sentAt - input.startedAt) / 1000)];
    if (second !== undefined) second.openSent++;
  }
  for (const a of input.answers) {
    const second = bySecond[Math.floor((a.sentAt - input.startedAt) / 1000)];
    if (second === undefined) continue;
    second.sent++;
    if (!a.ok) second.failed++;
    second.times.push((a.endedAt - a.sentAt) / 1000);
  }
  let sample = 0;
  const seconds = bySecond.map((s, t): RecordedSecond => {
    const at = input.startedAt + (t + 1) * 1000;
    while (sample + 1 < input.pool.length && (input.pool[sample + 1]?.at ?? Infinity) <= at) sample++;
    const pool = input.pool[sample];
    return { sent: s.sent, openSent: s.openSent, clients: input.clients(at - 500), failed: s.failed, p99: p99(s.times), serving: pool?.serving ?? 0, running: pool?.running ?? 0 };
  });
  const decisions = input.decisions
    .filter((d) => d.at >= input.startedAt && d.at < input.endedAt)
    .map((d) => ({
      at: Math.round((d.at - input.startedAt) / 100) / 10,
      current: d.current,
      desired: d.desired,
      applied: d.applied,
      started: d.actions.reduce((sum, a) => sum + (a.kind === 'start' ? (a.count ?? 0) : 0), 0),
      retired: d.actions.filter((a) => a.kind === 'retire').length,
      reason: d.reason,
      sampledAt: sampledAt(d.inputs, input.startedAt),
    }));
  return { name: input.name, description: input.description, settings: input.settings, station: input.station, startedAt: input.startedAt, seconds, decisions };
}

/** Writes each recording as <dir>/<name>.json (one second a line, so a diff reads). */
export async function saveRecordings(dir: string, recordings: readonly Recording[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const r of recordings) {
    const { seconds, decisions, ...head } = r;
    const text = [
      '{',
      ...Object.entries(head).map(([key, value]) => `"${key}": ${JSON.stringify(value)},`),
      '"decisions": [',
      decisions.map((d) => JSON.stringify(d)).join(',\n'),
      '],',
      '"seconds": [',
      seconds.map((s) => JSON.stringify(s)).join(',\n'),
      ']',
      '}',
    ].join('\n');
    JSON.parse(text); // the hand-assembled document must stay valid JSON
    await writeFile(join(dir, `${r.name}.json`), `${text}\n`);
  }
}
