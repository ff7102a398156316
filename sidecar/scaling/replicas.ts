// The replicas of the scaled Compose service, as plain data from one Docker snapshot. Pure: the
// Docker edge (sidecar/docker) lists the containers once per evaluation, and everything the
// autoscaler needs about its pool is derived from that one list here.
import { COMPOSE_PROJECT, COMPOSE_SERVICE, composeNumber, type ContainerSnapshot, type ServiceRef } from '../docker/compose.js';

export type { ServiceRef } from '../docker/compose.js';

export interface Replica {
  readonly id: string;
  readonly name: string;
  /** Compose's container number (0 when the label is missing). */
  readonly number: number;
  /** Seconds since the epoch. */
  readonly createdAt: number;
  /** Swarm mode: its place in the order Swarm stops the service's tasks (1: next). */
  readonly removalOrder?: number;
}

/** The service's running replicas, oldest first (then by number). */
export function replicasOf(containers: readonly ContainerSnapshot[], ref: ServiceRef): Replica[] {
  return containers
    .filter((c) => c.running && c.stopping !== true && c.labels[COMPOSE_SERVICE] === ref.service && (ref.project === '' || c.labels[COMPOSE_PROJECT] === ref.project))
    .map((c) => ({
      id: c.id,
      name: c.name,
      number: composeNumber(c.labels) ?? 0,
      createdAt: c.createdAt,
      ...(c.removalOrder === undefined ? {} : { removalOrder: c.removalOrder }),
    }))
    .sort((a, b) => a.createdAt - b.createdAt || a.number - b.number);
}

/** A container discovery turned into a server: which server stands for which container. */
export interface NamedServer {
  readonly containerId: string;
  readonly backend: string;
  readonly serverName: string;
}

/**
 * What one autoscaler evaluation needs from one Docker list: the service's replicas, oldest
 * first, and the server name of each in `backend` (as discovery named it from the same list).
 */
export function poolView(
  containers: readonly ContainerSnapshot[],
  servers: readonly NamedServer[],
  ref: ServiceRef,
  backend: string,
): { readonly replicas: Replica[]; readonly serverOf: ReadonlyMap<string, string> } {
  return {
    replicas: replicasOf(containers, ref),
    serverOf: new Map(servers.filter((c) => c.backend === backend).map((c) => [c.containerId, c.serverName])),
  };
}
