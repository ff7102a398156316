// hsc rollout: starts a rollout through the admin API and follows it, one line per change of
// phase or progress, until it succeeded (exit 0) or rolled back (exit 6); `hsc rollout status`
// lists them, `hsc rollout rollback <id>` rolls the one in progress back.
//
//   hsc rollout --image IMG [--env KEY=VALUE]... [--batch N] [--canary PERCENT] [--bake SECONDS]
//               [--ready-timeout SECONDS] [--max-error-ratio R] [--max-latency-ratio R] [--detach]
import { setTimeout as sleep } from 'node:timers/promises';

/** What the rollout commands need of hsc's shell: its request function and its output. */
export interface RolloutCli {
  readonly request: (method: string, path: string, body?: object) => Promise<{ status: number; body: unknown } | undefined>;
  readonly failure: (answer: { status: number; body: unknown }) => number;
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Longest time to follow a rollout before giving up the watch (the rollout goes on). */
  readonly followLimitMs?: number;
}

export interface RolloutFlags {
  readonly image?: string | undefined;
  readonly env?: readonly string[] | undefined;
  readonly batch?: string | undefined;
  readonly canary?: string | undefined;
  readonly bake?: string | undefined;
  readonly 'ready-timeout'?: string | undefined;
  readonly 'max-error-ratio'?: string | undefined;
  readonly 'max-latency-ratio'?: string | undefined;
  readonly detach?: boolean | undefined;
}

export const ROLLED_BACK_EXIT = 6;
const USAGE_EXIT = 2;
const UNAVAILABLE_EXIT = 3;

interface RolloutAnswer {
  id: string;
  phase: string;
  batch: number;
  batches: number;
  reason: string;
  startedAt: number;
  endedAt?: number;
  from: { image: string };
  to: { image: string };
  bake?: { newAnswers: number; newErrors: number };
}

/** The flags as the API's body; a message for a flag that is not a number. */
export function rolloutBody(flags: RolloutFlags): object | string {
  const body: Record<string, unknown> = {};
  if (flags.image !== undefined) body.image = flags.image;
  if (flags.env !== undefined && flags.env.length > 0) body.env = [...flags.env];
  const numbers: Array<[keyof RolloutFlags, string]> = [
    ['batch', 'batch'],
    ['canary', 'canaryPercent'],
    ['bake', 'bakeSeconds'],
    ['ready-timeout', 'readyTimeoutSeconds'],
    ['max-error-ratio', 'maxErrorRatio'],
    ['max-latency-ratio', 'maxLatencyRatio'],
  ];
  for (const [flag, field] of numbers) {
    const raw = flags[flag];
    if (raw === undefined || typeof raw !== 'string') continue;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value)) return `--${flag} must be a number, not ${raw}`;
    body[field] = value;
  }
  if (body.image === undefined && body.env === undefined) return 'hsc rollout needs --image, --env KEY=VALUE, or both';
  return body;
}

const line = (r: RolloutAnswer): string => `${r.id} ${r.phase.padEnd(12)} batch ${Math.min(r.batch + 1, r.batches)}/${r.batches}  ${r.reason}`;

export async function rolloutCommand(sub: readonly string[], flags: RolloutFlags, cli: RolloutCli): Promise<number> {
  const [first, second] = sub;
  if (first === 'status') {
    const answer = await cli.request('GET', second === undefined ? '/v1/rollouts' : `/v1/rollouts/${encodeURIComponent(second)}`);
    if (answer === undefined) return UNAVAILABLE_EXIT;
    if (answer.status !== 200) return cli.failure(answer);
    const list = second === undefined ? (answer.body as { rollouts: RolloutAnswer[] }).rollouts : [answer.body as RolloutAnswer];
    if (list.length === 0) cli.out('no rollout on record');
    for (const r of list) cli.out(`${line(r)}  (${r.from.image} -> ${r.to.image})`);
    return 0;
  }
  if (first === 'rollback') {
    if (second === undefined) {
      cli.err('hsc rollout rollback needs the rollout id (hsc rollout status lists them)');
      return USAGE_EXIT;
    }
    const answer = await cli.request('POST', `/v1/rollouts/${encodeURIComponent(second)}/rollback`, {});
    if (answer === undefined) return UNAVAILABLE_EXIT;
    if (answer.status !== 202) return cli.failure(answer);
    cli.out(line(answer.body as RolloutAnswer));
    return flags.detach === true ? 0 : follow(second, cli);
  }
  if (first !== undefined) {
    cli.err(`unknown rollout subcommand ${first} (status, rollback, or flags to start one)`);
    return USAGE_EXIT;
  }
  const body = rolloutBody(flags);
  if (typeof body === 'string') {
    cli.err(body);
    return USAGE_EXIT;
  }
  const answer = await cli.request('POST', '/v1/rollouts', body);
  if (answer === undefined) return UNAVAILABLE_EXIT;
  if (answer.status !== 202) return cli.failure(answer);
  const started = answer.body as RolloutAnswer;
  cli.out(line(started));
  return flags.detach === true ? 0 : follow(started.id, cli);
}

/** Prints a line whenever the rollout's phase or reason changes, until it ends. */
async function follow(id: string, cli: RolloutCli): Promise<number> {
  const wait = cli.sleep ?? ((ms: number) => sleep(ms));
  const limit = Date.now() + (cli.followLimitMs ?? 6 * 3600_000);
  let last = '';
  let unreachable = 0;
  while (Date.now() < limit) {
    await wait(1000);
    const answer = await cli.request('GET', `/v1/rollouts/${encodeURIComponent(id)}`);
    if (answer === undefined || answer.status >= 500) {
      // A sidecar restarting goes on with the rollout from its record: keep watching a while.
      if (++unreachable > 120) return UNAVAILABLE_EXIT;
      continue;
    }
    unreachable = 0;
    if (answer.status !== 200) return cli.failure(answer);
    const r = answer.body as RolloutAnswer;
    const text = line(r);
    if (text !== last) cli.out(text);
    last = text;
    if (r.phase === 'succeeded' || r.phase === 'rolled-back') {
      const seconds = (((r.endedAt ?? Date.now()) - r.startedAt) / 1000).toFixed(1);
      cli.out(r.phase === 'succeeded' ? `rollout ${id} succeeded in ${seconds} s: ${r.to.image} serves` : `rollout ${id} rolled back after ${seconds} s: ${r.from.image} serves`);
      return r.phase === 'succeeded' ? 0 : ROLLED_BACK_EXIT;
    }
  }
  cli.err(`stopped following ${id}; it goes on (hsc rollout status ${id})`);
  return UNAVAILABLE_EXIT;
}
