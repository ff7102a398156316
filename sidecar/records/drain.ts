// The drain rule, shared by every record that drains a server (a scale-down's retirement, an
// operator's drain), and the operator drain's own pure step.
//
// A drain is complete when HAProxy's own figures show no session and no queued request on the
// server twice in a row (so a request dispatched between two reads is not missed), not after a
// fixed sleep; past its deadline the server goes to maintenance and the drain ends as forced.
//
// An operator drain is kept until the operator undrains the server (or its server goes away):
//
//   draining ── quiet twice ──> drained ──┐
//       └──── deadline ──> forced ────────┴── undrain / server gone ──> (record deleted)
//
// Every stage also says which admin state HAProxy must show (drain, or maint once forced), so a
// state lost to a reload by anyone, or a state someone else changed, is set again on the next pass.
import type { AdminState } from '../driver/port.js';
import type { DrainRecord } from './store.js';
import type { ServerLoad } from '../haproxy-metrics/exporter.js';

export type { ServerLoad } from '../haproxy-metrics/exporter.js';

const QUIET_READS = 2;
/**
 * The quiet reads must also span this long: a pass that runs right after another (an evaluation
 * asks for one) would otherwise read twice within milliseconds, and a request dispatched between
 * two such reads is the one the second read exists to catch.
 */
export const MIN_QUIET_SPAN_MS = 250;

export type DrainVerdict = {
  readonly quietReads: number;
  /** When the current run of quiet reads began; undefined when the last read was not quiet. */
  readonly quietSince: number | undefined;
  readonly verdict: 'drained' | 'deadline' | 'draining';
};

/**
 * One read of a draining server: counts quiet reads and says whether the drain is over.
 * `quietSince` undefined with quiet reads counted is a record from before it was kept: no span asked.
 */
export function drainProgress(quietReads: number, load: ServerLoad | undefined, deadlineAt: number, now: number, quietSince?: number): DrainVerdict {
  const isQuiet = load !== undefined && load.sessions === 0 && load.queue === 0;
  const quiet = isQuiet ? quietReads + 1 : 0;
  const since = !isQuiet ? undefined : quietReads === 0 ? now : quietSince;
  const spanned = since === undefined || now - since >= MIN_QUIET_SPAN_MS;
  if (quiet >= QUIET_READS && spanned) return { quietReads: quiet, quietSince: since, verdict: 'drained' };
  if (now >= deadlineAt) return { quietReads: quiet, quietSince: since, verdict: 'deadline' };
  return { quietReads: quiet, quietSince: since, verdict: 'draining' };
}

/** The record's quiet-read fields after a read. */
export const quietFields = (v: DrainVerdict): { quietReads: number; quietSince?: number } => ({ quietReads: v.quietReads, ...(v.quietSince === undefined ? {} : { quietSince: v.quietSince }) });

/** What HAProxy shows of one drained server now. */
export interface DrainView {
  /** The server is still in HAProxy. */
  readonly serverPresent: boolean;
  readonly adminState: AdminState | undefined;
  /** Sessions and queue from HAProxy's exporter; undefined when they cannot be read now. */
  readonly load: ServerLoad | undefined;
}

export type DrainEffect = 'set-drain' | 'set-maint';

export interface DrainStep {
  /** The record after this pass; undefined when it is over (its server left HAProxy). */
  readonly next: DrainRecord | undefined;
  /** Admin states to set, in order, before `next` is stored. */
  readonly effects: readonly DrainEffect[];
  readonly reason: string;
  /** Set on the pass that ended the drain. */
  readonly ended?: 'drained' | 'forced';
}

/** The admin state an operator drain's stage asks of its server. */
export const drainAdminState = (record: Pick<DrainRecord, 'stage'>): AdminState => (record.stage === 'forced' ? 'maint' : 'drain');

/** One pure step of an operator drain from what is observed now. */
export function advanceDrain(record: DrainRecord, view: DrainView, now: number): DrainStep {
  const r = record;
  const id = `${r.backend}/${r.server}`;
  if (!view.serverPresent) return { next: undefined, effects: [], reason: `${id} left HAProxy: its drain record ends` };
  const want = drainAdminState(r);
  const withLoad = view.load === undefined ? r : { ...r, load: view.load };
  // Maintenance already keeps the server out of rotation: a drain found in maint (forced by
  // someone else) is not set back to drain.
  const holds = view.adminState === want || (want === 'drain' && view.adminState === 'maint');
  if (!holds) {
    // Lost to a reload (HAProxy restarted without its state file), or set back by someone else.
    const { quietSince: _lost, ...reset } = withLoad;
    return {
      next: { ...reset, quietReads: 0 },
      effects: [want === 'maint' ? 'set-maint' : 'set-drain'],
      reason: `${id} was ${view.adminState ?? 'unknown'}; set to ${want} again (drained by an operator)`,
    };
  }
  if (r.stage !== 'draining') return { next: withLoad, effects: [], reason: `${id} ${r.stage}` };
  const progress = drainProgress(r.quietReads, view.load, r.deadlineAt, now, r.quietSince);
  const { quietSince: _before, ...base } = withLoad;
  if (progress.verdict === 'drained') {
    return { next: { ...base, ...quietFields(progress), stage: 'drained', endedAt: now }, effects: [], reason: `${id} drained`, ended: 'drained' };
  }
  if (progress.verdict === 'deadline') {
    return {
      next: { ...base, ...quietFields(progress), stage: 'forced', endedAt: now },
      effects: ['set-maint'],
      reason: `${id} still busy at its drain deadline (${view.load?.sessions ?? '?'} session(s), ${view.load?.queue ?? '?'} queued): forced to maintenance`,
      ended: 'forced',
    };
  }
  return { next: { ...base, ...quietFields(progress) }, effects: [], reason: `${id} draining` };
}
