// The reconciler's pure core: what must change so that the servers the sidecar owns in each
// managed backend equal the ready containers (plan), and so that each of them is in the admin
// state its records ask, with its health checks on (planStates). No I/O, no clock; the same
// inputs give the same operations in the same order, and a converged state gives none.
import { compareNames, type AdminState, type ConfiguredServer, type DesiredServer, type Operation, type RuntimeServer } from '../driver/port.js';

export type { DesiredServer, Operation } from '../driver/port.js';

export interface PlanInput {
  readonly desired: readonly DesiredServer[];
  readonly actual: readonly ConfiguredServer[];
  /** Backends the sidecar manages; servers in any other backend are never touched. */
  readonly managedBackends: readonly string[];
  /** True for servers the sidecar created (by its naming scheme); all others are never touched. */
  readonly isOwned: (serverName: string) => boolean;
}

const key = (backend: string, name: string): string => `${backend}/${name}`;

function byBackendAndName(a: { backend: string; name: string }, b: { backend: string; name: string }): number {
  return a.backend === b.backend ? compareNames(a.name, b.name) : compareNames(a.backend, b.backend);
}

export function plan(input: PlanInput): Operation[] {
  const managed = new Set(input.managedBackends);
  const desired = new Map<string, DesiredServer>();
  for (const server of input.desired) {
    // The naming scheme must give every container its own name: a clash is a bug here.
    const id = key(server.backend, server.name);
    if (desired.has(id)) throw new Error(`two desired servers share the name ${id}`);
    if (!managed.has(server.backend)) throw new Error(`desired server ${id} is in an unmanaged backend`);
    if (!input.isOwned(server.name)) throw new Error(`desired server ${id} does not follow the ownership naming scheme`);
    desired.set(id, server);
  }
  const owned = input.actual.filter((s) => managed.has(s.backend) && input.isOwned(s.name));
  const actual = new Map(owned.map((s) => [key(s.backend, s.name), s]));

  const removals: Operation[] = [...actual.values()]
    .filter((s) => !desired.has(key(s.backend, s.name)))
    .sort(byBackendAndName)
    .map((s) => ({ op: 'remove', backend: s.backend, name: s.name, reason: 'no ready container' }));

  const changes: Operation[] = [];
  for (const server of [...desired.values()].sort(byBackendAndName)) {
    const current = actual.get(key(server.backend, server.name));
    if (current === undefined) {
      changes.push({ op: 'add', server, reason: 'container ready' });
    } else if (current.address !== server.address || current.port !== server.port) {
      changes.push({ op: 'replace', server, reason: 'address changed' });
    } else if (current.weight !== server.weight) {
      changes.push({ op: 'replace', server, reason: 'weight changed' });
    }
  }
  return [...removals, ...changes];
}

/** A change to a server's running state: never a reload, never a rewrite of the configuration. */
export type StateOperation =
  | { readonly op: 'enable-checks'; readonly backend: string; readonly name: string; readonly reason: string }
  | { readonly op: 'set-state'; readonly backend: string; readonly name: string; readonly state: AdminState; readonly reason: string };

export interface StatePlanInput {
  readonly desired: readonly DesiredServer[];
  /** The running servers by `backend/name`, as HAProxy shows them now. */
  readonly running: ReadonlyMap<string, RuntimeServer>;
  /** Servers the structural plan adds, replaces or removes in this pass: left to it. */
  readonly changing: ReadonlySet<string>;
}

export const serverKey = key;

/**
 * The admin state and health checks of every wanted server that HAProxy runs already. Checks
 * first, so a server comes back into rotation only under their watch. A server whose state
 * cannot be read (not running yet, a driver without runtime reads) is left alone.
 */
export function planStates(input: StatePlanInput): StateOperation[] {
  const operations: StateOperation[] = [];
  for (const server of [...input.desired].sort(byBackendAndName)) {
    const id = key(server.backend, server.name);
    const running = input.running.get(id);
    if (running === undefined || input.changing.has(id)) continue;
    if (running.checks === 'off') {
      operations.push({ op: 'enable-checks', backend: server.backend, name: server.name, reason: 'its health checks are off (a start interrupted between adding and enabling it)' });
    }
    const have = running.adminState;
    const want = server.adminState ?? 'ready';
    // Maintenance satisfies a drain: both keep new traffic away, and a forced drain ends in it.
    const holds = have === want || (want === 'drain' && have === 'maint');
    if (have !== undefined && !holds) {
      operations.push({
        op: 'set-state',
        backend: server.backend,
        name: server.name,
        state: want,
        reason: want === 'ready' ? `in ${have} without a record asking for it` : `in ${have} where its record asks for ${want}`,
      });
    }
  }
  return operations;
}
