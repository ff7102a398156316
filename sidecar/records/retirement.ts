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
import type { AdminState } from '../driver/port.js';
import type { Retirement } from './store.js';
import { drainProgress, quietFields, type ServerLoad } from './drain.js';

export type { Retirement, RetirementStage, RetirementStore } from './store.js';
export { retirementStore } from './store.js';

/** What HAProxy and Docker show of one retirement now. */
export interface RetirementView {
  readonly containerRunning: boolean;
  /** The server is still in HAProxy (its configuration, or its runtime where that is the truth). */
  readonly serverPresent: boolean;
  readonly adminState: AdminState | undefined;
  /** Sessions and queue from HAProxy's exporter; undefined when they cannot be read now. */
  readonly load: ServerLoad | undefined;
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
      const read = drainProgress(r.quietReads, view.load, r.deadlineAt, now, r.quietSince);
      const { quietSince: _before, ...base } = r;
      const counted = { ...base, ...quietFields(read) };
      if (read.verdict === 'drained') {
        return { next: { ...counted, stage: 'drained' }, effects: ['request-removal'], reason: `${r.server} drained`, drain: 'drained' };
      }
      if (read.verdict === 'deadline') {
        return {
          next: { ...counted, stage: 'drained', forced: true },
          effects: ['set-maint', 'request-removal'],
          reason: `${r.server} still busy at its drain deadline (${view.load?.sessions ?? '?'} session(s), ${view.load?.queue ?? '?'} queued): forced to maintenance`,
          drain: 'forced',
        };
      }
      return { next: counted, effects: [], reason: `${r.server} draining` };
    }
    case 'drained': {
      if (!view.serverPresent) return { next: { ...r, stage: 'removed' }, effects: ['stop-container'], reason: `${r.server} removed from HAProxy` };
      // Out of rotation until it is removed, even if a reload in between set it back to ready.
      const lost = r.forced === true ? view.adminState !== 'maint' : view.adminState !== 'drain' && view.adminState !== 'maint';
      const restore: RetirementEffect[] = lost ? [r.forced === true ? 'set-maint' : 'set-drain'] : [];
      return { next: r, effects: [...restore, 'request-removal'], reason: `waiting for the removal of ${r.server}` };
    }
    case 'removed':
      return { next: r, effects: ['stop-container'], reason: `stopping the container of ${r.server}` };
  }
}
