// The one snapshot type of a container: what the Docker edge (index.ts) converts dockerode's
// answers into. SDK-free, so discovery and scaling work on plain data.

export type ContainerHealth = 'healthy' | 'unhealthy' | 'starting' | 'none';

export interface PublishedPort {
  readonly containerPort: number;
  readonly hostIp: string;
  readonly hostPort: number;
}

export interface ContainerSnapshot {
  readonly id: string;
  /** Without Docker's leading slash. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly running: boolean;
  readonly health: ContainerHealth;
  /** IPv4 address per attached network name. */
  readonly networks: Readonly<Record<string, string>>;
  readonly publishedPorts: readonly PublishedPort[];
  /** Seconds since the epoch. */
  readonly createdAt: number;
  /**
   * Swarm mode: this replica's place in the order Swarm stops its service's tasks when the count
   * goes down (1: the next one stopped; swarm-plan.ts). Absent for Compose containers.
   */
  readonly removalOrder?: number;
}

/** A lifecycle event; the reconciler uses it only as a trigger, never as state. */
export interface ContainerEvent {
  readonly action: string;
  readonly containerId: string;
}
