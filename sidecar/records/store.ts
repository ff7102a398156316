// The sidecar's durable state: one small JSON file holding everything that must outlive a
// restart (or a SIGKILL) of the sidecar and that neither Docker nor HAProxy can tell us:
//
//   - records: the multi-step operations in progress, each advanced by a pure step from what
//     HAProxy and Docker show (scale-down retirements: retirement.ts; operator drains: drain.ts;
//     rollouts: rollout.ts, with the last few that ended);
//   - the autoscaler's mode when an operator set it (paused, or a count set by hand);
//   - the ids of the Data Plane API transactions the sidecar opened and has not closed yet, so
//     that one left behind by a crash is deleted and never mistaken for someone else's.
//
// Every change is one atomic rewrite (a temporary file, then rename), serialised, so a crash
// leaves the old file or the new one and two writers never lose each other's change.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdminState } from '../driver/port.js';
import { errorMessage, fail, ok, type Result } from '../edge/result.js';
import type { ServerLoad } from '../haproxy-metrics/exporter.js';
import { isFinished, rolloutView, type Rollout, type RolloutView } from './rollout.js';

export type RetirementStage = 'draining' | 'drained' | 'removed';

/** A scale-down in progress: drain, removal of the server, then the stop of its container. */
export interface Retirement {
  readonly containerId: string;
  readonly backend: string;
  readonly server: string;
  readonly stage: RetirementStage;
  /** When the scale-down was decided (ms since the epoch). */
  readonly startedAt: number;
  /** When a drain still going becomes forced: the server goes to maintenance. */
  readonly deadlineAt: number;
  /** Consecutive reads of no session and no queue: two end the drain. */
  readonly quietReads: number;
  /** When the current run of quiet reads began (ms since the epoch). */
  readonly quietSince?: number;
  /** Set when the drain ended at its deadline: the server stays in maintenance until removed. */
  readonly forced?: boolean;
  /** Who retires it when not the autoscaler: `rollout <id>`. */
  readonly cause?: string;
}

export type DrainStage = 'draining' | 'drained' | 'forced';

/**
 * An operator's drain (hsc drain): the server stays out of rotation, in drain (or in maintenance
 * once forced at its deadline), until the operator undrains it or its container goes away.
 */
export interface DrainRecord {
  readonly backend: string;
  readonly server: string;
  readonly stage: DrainStage;
  readonly reason: string;
  readonly startedAt: number;
  readonly deadlineAt: number;
  readonly quietReads: number;
  /** When the current run of quiet reads began (ms since the epoch). */
  readonly quietSince?: number;
  /** The last sessions and queue read, for the admin API; absent until a read succeeded. */
  readonly load?: ServerLoad;
  /** When the drain ended (drained or forced). */
  readonly endedAt?: number;
}

/** The autoscaler's mode when an operator chose it; absent means automatic. */
export interface AutoscalerSetting {
  readonly mode: 'paused' | 'manual';
  /** The count set by hand (mode manual). */
  readonly replicas?: number;
  readonly since: number;
}

export interface SidecarState {
  readonly retirements: readonly Retirement[];
  readonly drains: readonly DrainRecord[];
  /** The rollout in progress, if any, after the last ones that ended (newest last). */
  readonly rollouts?: readonly Rollout[];
  readonly autoscaler?: AutoscalerSetting;
  /** Data Plane API transactions opened and not yet committed or deleted. */
  readonly transactions: readonly string[];
}

const EMPTY: SidecarState = { retirements: [], drains: [], transactions: [] };
const FORMAT = 2;

export interface StateStore {
  read(): SidecarState;
  /**
   * Applies `change` to the state as it is when the write's turn comes (writes are serialised),
   * and stores the result. On a failed write the state in memory stays what the file holds.
   */
  update(change: (state: SidecarState) => SidecarState): Promise<Result<void>>;
  /** Where the state is kept; '' for memory only. */
  readonly file: string;
}

/** The retirements of a state store, in the shape the autoscaler uses. */
export interface RetirementStore {
  list(): readonly Retirement[];
  put(retirement: Retirement): Promise<Result<void>>;
  remove(containerId: string): Promise<Result<void>>;
}

export function retirementsOf(store: StateStore): RetirementStore {
  return {
    list: () => store.read().retirements,
    put: (r) => store.update((s) => ({ ...s, retirements: [...s.retirements.filter((x) => x.containerId !== r.containerId), r] })),
    remove: (containerId) => store.update((s) => ({ ...s, retirements: s.retirements.filter((x) => x.containerId !== containerId) })),
  };
}

/** A store in memory only, holding `retirements` (tests, and a sidecar with no state file). */
export function retirementStore(initial: readonly Retirement[] = []): RetirementStore {
  return retirementsOf(memoryStateStore({ ...EMPTY, retirements: initial }));
}

export function memoryStateStore(initial: SidecarState = EMPTY): StateStore {
  return stateStore(initial, '');
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

function isRetirement(value: unknown): value is Retirement {
  if (!isObject(value)) return false;
  return (
    typeof value.containerId === 'string' &&
    typeof value.backend === 'string' &&
    typeof value.server === 'string' &&
    (value.stage === 'draining' || value.stage === 'drained' || value.stage === 'removed') &&
    isNumber(value.startedAt) &&
    isNumber(value.deadlineAt) &&
    isNumber(value.quietReads) &&
    (value.quietSince === undefined || isNumber(value.quietSince)) &&
    (value.forced === undefined || typeof value.forced === 'boolean') &&
    (value.cause === undefined || typeof value.cause === 'string')
  );
}

function isDrainRecord(value: unknown): value is DrainRecord {
  if (!isObject(value)) return false;
  const load = value.load;
  return (
    typeof value.backend === 'string' &&
    typeof value.server === 'string' &&
    (value.stage === 'draining' || value.stage === 'drained' || value.stage === 'forced') &&
    typeof value.reason === 'string' &&
    isNumber(value.startedAt) &&
    isNumber(value.deadlineAt) &&
    isNumber(value.quietReads) &&
    (value.quietSince === undefined || isNumber(value.quietSince)) &&
    (load === undefined || (isObject(load) && isNumber(load.sessions) && isNumber(load.queue))) &&
    (value.endedAt === undefined || isNumber(value.endedAt))
  );
}

const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isVersion = (v: unknown): boolean => isObject(v) && typeof v.image === 'string' && isStringList(v.env);
const ROLLOUT_PHASES: readonly string[] = ['starting', 'baking', 'retiring', 'rolling-back', 'succeeded', 'rolled-back'];

function isRollout(value: unknown): value is Rollout {
  if (!isObject(value)) return false;
  const settings = value.settings;
  const bake = value.bake;
  return (
    typeof value.id === 'string' &&
    typeof value.backend === 'string' &&
    typeof value.service === 'string' &&
    typeof value.project === 'string' &&
    isVersion(value.from) &&
    isVersion(value.to) &&
    isObject(settings) &&
    ['batch', 'canaryPercent', 'bakeMs', 'readyTimeoutMs', 'maxErrorRatio', 'maxLatencyRatio', 'minAnswers'].every((k) => isNumber(settings[k])) &&
    typeof value.phase === 'string' &&
    ROLLOUT_PHASES.includes(value.phase) &&
    isStringList(value.old) &&
    isNumber(value.batch) &&
    isNumber(value.started) &&
    isNumber(value.startedAt) &&
    isNumber(value.phaseSince) &&
    (value.endedAt === undefined || isNumber(value.endedAt)) &&
    typeof value.reason === 'string' &&
    (value.via === undefined || value.via === 'swarm') &&
    (value.previous === undefined || typeof value.previous === 'string') &&
    (value.progressAt === undefined || isNumber(value.progressAt)) &&
    (bake === undefined ||
      (isObject(bake) && ['newAnswers', 'newErrors', 'oldAnswers', 'oldErrors'].every((k) => isNumber(bake[k])) && isObject(bake.last)))
  );
}

function isAutoscalerSetting(value: unknown): value is AutoscalerSetting {
  if (!isObject(value)) return false;
  return (
    (value.mode === 'paused' || value.mode === 'manual') &&
    (value.replicas === undefined || (isNumber(value.replicas) && Number.isInteger(value.replicas))) &&
    isNumber(value.since)
  );
}

/**
 * Parses the file's text. Format 1 (before operator drains were records) held only
 * `retirements`; it is read as a format 2 state with nothing else in it.
 */
export function parseState(text: string): Result<SidecarState> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    return fail('parse state', 'malformed', `not JSON: ${errorMessage(error)}`);
  }
  if (!isObject(parsed)) return fail('parse state', 'malformed', 'expected a JSON object');
  const { retirements = [], drains = [], transactions = [], rollouts = [], autoscaler } = parsed;
  if (!Array.isArray(retirements) || !retirements.every(isRetirement)) return fail('parse state', 'malformed', '"retirements" must be a list of retirement records');
  if (!Array.isArray(drains) || !drains.every(isDrainRecord)) return fail('parse state', 'malformed', '"drains" must be a list of drain records');
  if (!Array.isArray(rollouts) || !rollouts.every(isRollout)) return fail('parse state', 'malformed', '"rollouts" must be a list of rollout records');
  if (!Array.isArray(transactions) || !transactions.every((t) => typeof t === 'string')) return fail('parse state', 'malformed', '"transactions" must be a list of ids');
  if (autoscaler !== undefined && !isAutoscalerSetting(autoscaler)) return fail('parse state', 'malformed', '"autoscaler" must be {"mode": "paused"|"manual", "replicas"?, "since"}');
  return ok({ retirements, drains, transactions, ...(rollouts.length === 0 ? {} : { rollouts }), ...(autoscaler === undefined ? {} : { autoscaler }) });
}

/**
 * Loads the state from `file` ('' keeps it in memory only). A missing file is an empty state;
 * an unreadable or malformed one is an error, so start-up says so instead of forgetting a
 * scale-down or a drain in progress.
 */
export async function openStateStore(file: string): Promise<Result<StateStore>> {
  if (file === '') return ok(memoryStateStore());
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ok(stateStore(EMPTY, file));
    return fail(`read ${file}`, 'unavailable', errorMessage(error));
  }
  const parsed = parseState(text);
  if (!parsed.ok) return fail(`read ${file}`, 'malformed', parsed.error.message);
  return ok(stateStore(parsed.value, file));
}

function stateStore(initial: SidecarState, file: string): StateStore {
  let state = initial;
  let writing: Promise<unknown> = Promise.resolve();

  async function write(next: SidecarState): Promise<Result<void>> {
    if (file === '') return ok(undefined);
    const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeFile(temp, `${JSON.stringify({ format: FORMAT, ...next }, null, 2)}\n`, { mode: 0o600, flush: true });
      await rename(temp, file);
      return ok(undefined);
    } catch (error) {
      return fail(`write ${file}`, 'unavailable', errorMessage(error));
    }
  }

  return {
    file,
    read: () => state,
    update(change) {
      const turn = writing.then(async (): Promise<Result<void>> => {
        const next = change(state);
        if (next === state) return ok(undefined);
        const written = await write(next);
        if (written.ok) state = next;
        return written;
      });
      writing = turn;
      return turn;
    },
  };
}

/** Every record of the one kind the sidecar keeps, each with its kind: what GET /v1/records shows. */
export type OperationRecord = ({ readonly kind: 'retirement' } & Retirement) | ({ readonly kind: 'drain' } & DrainRecord) | ({ readonly kind: 'rollout' } & RolloutView);

/** The records in progress (rollouts that ended are history: GET /v1/rollouts lists them). */
export function operationRecords(state: Pick<SidecarState, 'retirements' | 'drains' | 'rollouts'>): OperationRecord[] {
  return [
    ...state.retirements.map((r) => ({ kind: 'retirement' as const, ...r })),
    ...state.drains.map((d) => ({ kind: 'drain' as const, ...d })),
    ...(state.rollouts ?? []).filter((r) => !isFinished(r.phase)).map((r) => ({ kind: 'rollout' as const, ...rolloutView(r) })),
  ];
}

/** The rollout in progress, if any. */
export const activeRollout = (state: Pick<SidecarState, 'rollouts'>): Rollout | undefined => (state.rollouts ?? []).find((r) => !isFinished(r.phase));

/** The admin state the records ask of a server: maintenance wins over drain, drain over ready. */
export function recordedAdminState(state: Pick<SidecarState, 'retirements' | 'drains'>, backend: string, server: string): AdminState | undefined {
  const retirement = state.retirements.find((r) => r.backend === backend && r.server === server);
  const drain = state.drains.find((d) => d.backend === backend && d.server === server);
  if (retirement?.forced === true || drain?.stage === 'forced') return 'maint';
  if (retirement !== undefined || drain !== undefined) return 'drain';
  return undefined;
}
