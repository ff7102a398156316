// Scale-down as durable, observable state. Deciding to retire a replica writes one small record
// (which container, which server, which stage, the drain's deadline); every pass of the control
// loop reads what HAProxy and Docker show and moves each record on by one pure step:
//
//   draining ── no session and no queue twice in a row, or the deadline ──> drained
//   drained  ── the reconciler removed the server (it is gone from HAProxy) ──> removed
//   removed  ── that container stopped ──> (record deleted)
//
// Nothing waits inside an action and nothing lives only in memory: a sidecar killed at any
// stage finds the record at its next start and carries on from what it observes. Why a record
// of our own: Docker labels cannot change on a running container, and HAProxy's drain state
// cannot tell a scale-down from an operator's `hsc drain` (which must never stop a container).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { AdminState } from '../driver/index.js';
import { errorMessage, fail, ok, type Result } from '../edge/result.js';

export type RetirementStage = 'draining' | 'drained' | 'removed';

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
}

/** What HAProxy and Docker show of one retirement now. */
export interface RetirementView {
  readonly containerRunning: boolean;
  /** The server is still in HAProxy (its configuration, or its runtime where that is the truth). */
  readonly serverPresent: boolean;
  readonly adminState: AdminState | undefined;
  /** Sessions and queue from HAProxy's exporter; undefined when they cannot be read now. */
  readonly load: { readonly sessions: number; readonly queue: number } | undefined;
}

export type RetirementEffect = 'set-drain' | 'set-maint' | 'request-removal' | 'stop-container';

export interface RetirementStep {
  /** The record after this pass; undefined when the retirement is over. */
  readonly next: Retirement | undefined;
  /** What the shell must do, in order, before it stores `next`. */
  readonly effects: readonly RetirementEffect[];
  readonly reason: string;
  /** Set on the pass that ended the drain. */
  readonly drain?: 'drained' | 'forced';
}

const QUIET_READS = 2;

/** One pure step of a retirement from what is observed now. */
export function advanceRetirement(retirement: Retirement, view: RetirementView, now: number): RetirementStep {
  const r = retirement;
  if (!view.containerRunning) {
    // Gone by itself (crashed, or stopped by us before a crash): the reconciler removes its
    // server like any other stopped container's. Nothing is left to do here.
    return { next: undefined, effects: [], reason: `container of ${r.server} is no longer running` };
  }
  switch (r.stage) {
    case 'draining': {
      if (!view.serverPresent) {
        // Removed by someone else mid-drain: nothing serves through it any more.
        return { next: { ...r, stage: 'removed' }, effects: ['stop-container'], reason: `${r.server} left HAProxy during its drain` };
      }
      if (view.adminState !== 'drain' && view.adminState !== 'maint') {
        // Decided but not applied yet (a crash in between), or lost with a HAProxy restart
        // without its state file: (re)apply it. An operator's undrain deletes the record instead.
        return { next: { ...r, quietReads: 0 }, effects: ['set-drain'], reason: `${r.server} put in drain for scale-down` };
      }
      const quiet = view.load !== undefined && view.load.sessions === 0 && view.load.queue === 0 ? r.quietReads + 1 : 0;
      if (quiet >= QUIET_READS) {
        return { next: { ...r, stage: 'drained', quietReads: quiet }, effects: ['request-removal'], reason: `${r.server} drained`, drain: 'drained' };
      }
      if (now >= r.deadlineAt) {
        return {
          next: { ...r, stage: 'drained', quietReads: quiet },
          effects: ['set-maint', 'request-removal'],
          reason: `${r.server} still busy at its drain deadline (${view.load?.sessions ?? '?'} session(s), ${view.load?.queue ?? '?'} queued): forced to maintenance`,
          drain: 'forced',
        };
      }
      return { next: { ...r, quietReads: quiet }, effects: [], reason: `${r.server} draining` };
    }
    case 'drained':
      return view.serverPresent
        ? { next: r, effects: ['request-removal'], reason: `waiting for the removal of ${r.server}` }
        : { next: { ...r, stage: 'removed' }, effects: ['stop-container'], reason: `${r.server} removed from HAProxy` };
    case 'removed':
      return { next: r, effects: ['stop-container'], reason: `stopping the container of ${r.server}` };
  }
}

/** The retirement records, kept in one small JSON file (or in memory when no file is set). */
export interface RetirementStore {
  list(): readonly Retirement[];
  put(retirement: Retirement): Promise<Result<void>>;
  remove(containerId: string): Promise<Result<void>>;
}

const FORMAT = 1;

function isRetirement(value: unknown): value is Retirement {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.containerId === 'string' &&
    typeof v.backend === 'string' &&
    typeof v.server === 'string' &&
    (v.stage === 'draining' || v.stage === 'drained' || v.stage === 'removed') &&
    typeof v.startedAt === 'number' &&
    typeof v.deadlineAt === 'number' &&
    typeof v.quietReads === 'number'
  );
}

/**
 * Loads the records from `file` ('' keeps them in memory only). A missing file is an empty
 * store; an unreadable or malformed one is an error, so start-up says so instead of forgetting
 * a scale-down in progress.
 */
export async function openRetirementStore(file: string): Promise<Result<RetirementStore>> {
  let records: Retirement[] = [];
  if (file !== '') {
    let text: string | undefined;
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') return fail(`read ${file}`, 'unavailable', errorMessage(error));
    }
    if (text !== undefined) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        return fail(`read ${file}`, 'malformed', `not JSON: ${errorMessage(error)}`);
      }
      const list = (parsed as { retirements?: unknown } | null)?.retirements;
      if (!Array.isArray(list) || !list.every(isRetirement)) return fail(`read ${file}`, 'malformed', 'expected {"retirements": [...]} of retirement records');
      records = list;
    }
  }

  return ok(retirementStore(records, file));
}

/** A store over `records`, written to `file` on every change ('' keeps it in memory only). */
export function retirementStore(initial: readonly Retirement[] = [], file = ''): RetirementStore {
  let records = [...initial];

  async function save(next: Retirement[]): Promise<Result<void>> {
    if (file !== '') {
      // Temp file and rename: a crash leaves the old record or the new one, never half of one.
      const temp = `${file}.${randomBytes(4).toString('hex')}.tmp`;
      try {
        await mkdir(dirname(file), { recursive: true });
        await writeFile(temp, `${JSON.stringify({ format: FORMAT, retirements: next }, null, 2)}\n`, { mode: 0o600, flush: true });
        await rename(temp, file);
      } catch (error) {
        return fail(`write ${file}`, 'unavailable', errorMessage(error));
      }
    }
    records = next;
    return ok(undefined);
  }

  return {
    list: () => records,
    put: (retirement) => save([...records.filter((r) => r.containerId !== retirement.containerId), retirement]),
    remove: (containerId) => save(records.filter((r) => r.containerId !== containerId)),
  };
}
