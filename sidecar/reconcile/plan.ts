// The reconciler's pure core: what must change so that the servers the sidecar owns in each
// managed backend equal the ready containers. No I/O, no clock; the same inputs give the same
// operations in the same order, and a converged state gives none.

/** A server the sidecar wants, derived from a ready container. */
export interface DesiredServer {
  readonly backend: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  /** The container it stands for, for logs. */
  readonly containerId: string;
}

/** A server as HAProxy's configuration holds it. */
export interface ActualServer {
  readonly backend: string;
  readonly name: string;
  readonly address: string;
  readonly port: number | undefined;
  readonly weight: number | undefined;
}

export type Operation =
  | { readonly op: 'add'; readonly server: DesiredServer; readonly reason: 'container ready' }
  | {
      readonly op: 'replace';
      readonly server: DesiredServer;
      readonly reason: 'address changed' | 'weight changed';
    }
  | { readonly op: 'remove'; readonly backend: string; readonly name: string; readonly reason: 'no ready container' };

export interface PlanInput {
  readonly desired: readonly DesiredServer[];
  readonly actual: readonly ActualServer[];
  /** Backends the sidecar manages; servers in any other backend are never touched. */
  readonly managedBackends: readonly string[];
  /** True for servers the sidecar created (by its naming scheme); all others are never touched. */
  readonly isOwned: (serverName: string) => boolean;
}

const key = (backend: string, name: string): string => `${backend}/${name}`;

function byBackendAndName(a: { backend: string; name: string }, b: { backend: string; name: string }): number {
  return a.backend === b.backend ? a.name.localeCompare(b.name) : a.backend.localeCompare(b.backend);
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
