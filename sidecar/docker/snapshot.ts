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
  /**
   * Swarm mode: the task was told to stop (a rolling update, a scale-down by Swarm) and its
   * container still runs. It is no replica any more, but its server stays, drained, until the
   * container is gone, so the requests in flight on it finish.
   */
  readonly stopping?: boolean;
}

/** A lifecycle event; the reconciler uses it only as a trigger, never as state. */
export interface ContainerEvent {
  readonly action: string;
  readonly containerId: string;
  /** A `kill` event's signal as Docker reports it (a number, e.g. "15", or a name); absent otherwise. */
  readonly signal?: string;
  /** A `health_status` event's verdict (healthy, unhealthy); absent otherwise. */
  readonly health?: string;
}

// Signals that end a container's main process (docker stop sends the image's STOPSIGNAL, nginx's
// is SIGQUIT; docker kill sends SIGKILL unless told otherwise). HUP, USR1, USR2 and WINCH reload
// or reopen in nginx and most servers: the container keeps serving.
const STOPPING_SIGNALS = new Set(['2', '3', '9', '15', 'INT', 'QUIT', 'KILL', 'TERM', 'SIGINT', 'SIGQUIT', 'SIGKILL', 'SIGTERM']);

/** True for the first sign that a container is going away: a `kill` event with a signal that stops it. */
export const isStoppingKill = (event: ContainerEvent): boolean => event.action === 'kill' && event.signal !== undefined && STOPPING_SIGNALS.has(event.signal.toUpperCase());

/** The first sign a container can no longer serve: going away, or its health check turned unhealthy. */
export const isLeavingEvent = (event: ContainerEvent): boolean => isStoppingKill(event) || (event.action === 'health_status' && event.health === 'unhealthy');

/** A container that serves again: started anew, or its health check passing again. */
export const isReturningEvent = (event: ContainerEvent): boolean => event.action === 'start' || (event.action === 'health_status' && event.health === 'healthy');
