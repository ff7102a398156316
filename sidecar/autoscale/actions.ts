// From a decided replica count to the actions that reach it, given what is already in flight.
// Pure. A scale-up first puts back servers that are draining (they are warm and already in
// HAProxy) and only then starts containers; a scale-down drains the replica with the fewest
// sessions, the newest among equals; nothing is retired while replicas are starting, and one
// retirement runs at a time. In Swarm mode, where the orchestrator and not the sidecar picks the
// task that stops, the victim is the one Swarm will pick (removalOrder), drained first.
import { compareNames } from '../driver/port.js';

export interface ServingReplica {
  readonly containerId: string;
  readonly server: string;
  /** Current sessions on its server; undefined when unknown (it then counts as busy). */
  readonly sessions: number | undefined;
  /** Seconds since the epoch. */
  readonly createdAt: number;
  /** Swarm mode: its place in Swarm's removal order (1: stopped next); absent in Compose mode. */
  readonly removalOrder?: number;
}

export interface PoolState {
  readonly serving: readonly ServingReplica[];
  /** Replicas being retired whose drain has not finished: they can still be put back. */
  readonly draining: readonly { readonly containerId: string; readonly server: string }[];
  /** Containers started for a scale-up that do not serve yet. */
  readonly starting: number;
  /** Scale-downs in progress at any stage (draining, drained, removed): one at a time. */
  readonly retiring: number;
}

export type Action =
  | { readonly kind: 'undrain'; readonly containerId: string; readonly server: string }
  | { readonly kind: 'start'; readonly count: number }
  | { readonly kind: 'retire'; readonly containerId: string; readonly server: string };

export function planActions(desired: number, pool: PoolState): Action[] {
  if (!Number.isInteger(desired) || desired < 0) throw new Error(`planActions: desired must be a whole number >= 0, not ${desired}`);
  const planned = pool.serving.length + pool.starting;
  if (desired > planned) {
    let needed = desired - planned;
    const actions: Action[] = [];
    for (const replica of pool.draining) {
      if (needed === 0) break;
      actions.push({ kind: 'undrain', containerId: replica.containerId, server: replica.server });
      needed--;
    }
    if (needed > 0) actions.push({ kind: 'start', count: needed });
    return actions;
  }
  if (desired < pool.serving.length && pool.starting === 0 && pool.retiring === 0) {
    const victims = [...pool.serving]
      .sort(
        (a, b) =>
          (a.removalOrder ?? Infinity) - (b.removalOrder ?? Infinity) ||
          (a.sessions ?? Infinity) - (b.sessions ?? Infinity) ||
          b.createdAt - a.createdAt ||
          compareNames(a.server, b.server),
      )
      .slice(0, pool.serving.length - desired);
    return victims.map((v) => ({ kind: 'retire', containerId: v.containerId, server: v.server }));
  }
  return [];
}
