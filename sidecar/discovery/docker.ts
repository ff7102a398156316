// The Docker edge of discovery, and with sidecar/scaling the only code that imports dockerode.
// It lists running containers and streams their lifecycle events, converting Docker's types
// into ContainerSnapshot and ContainerEvent right here.
import Docker from 'dockerode';
import type { ContainerHealth, ContainerSnapshot, PublishedPort } from './parse.js';

/** A lifecycle event; the reconciler uses it only as a trigger, never as state. */
export interface ContainerEvent {
  readonly action: string;
  readonly containerId: string;
}

export interface DockerSource {
  /** Running containers; `selects` filters on labels before anything else is converted. */
  listRunning(selects: (labels: Readonly<Record<string, string>>) => boolean): Promise<ContainerSnapshot[]>;
  /** Resolves once the event stream is open; iterating it ends (or throws) when Docker closes it. */
  openEvents(signal: AbortSignal): Promise<AsyncIterable<ContainerEvent>>;
}

/** The events that can change which containers are ready. */
export const WATCHED_ACTIONS = ['start', 'die', 'stop', 'kill', 'destroy', 'health_status', 'pause', 'unpause'] as const;

export function createDockerSource(socketPath: string): DockerSource {
  const docker = new Docker({ socketPath });
  return {
    async listRunning(selects) {
      const containers = await docker.listContainers({ all: false });
      return containers.filter((c) => selects(c.Labels)).map(toSnapshot);
    },
    async openEvents(signal) {
      const stream = (await docker.getEvents({
        filters: { type: ['container'], event: [...WATCHED_ACTIONS] },
      })) as NodeJS.ReadableStream & { destroy(): void };
      return readEvents(stream, signal);
    },
  };
}

/**
 * The list endpoint carries everything discovery needs, so one call per reconcile suffices even
 * with hundreds of containers. Health is only in its Status text ("Up 5 minutes (healthy)"),
 * a format the daemon has produced unchanged since healthchecks exist (Docker 1.12).
 */
export function toSnapshot(c: Docker.ContainerInfo): ContainerSnapshot {
  const networks: Record<string, string> = {};
  for (const [name, network] of Object.entries(c.NetworkSettings.Networks)) {
    if (network.IPAddress !== '') networks[name] = network.IPAddress;
  }
  const publishedPorts: PublishedPort[] = c.Ports.filter(
    (p) => p.Type === 'tcp' && p.PublicPort !== undefined && p.PublicPort > 0,
  ).map((p) => ({ containerPort: p.PrivatePort, hostIp: p.IP ?? '', hostPort: p.PublicPort }));
  // IPv4 bindings first: HAProxy reaches a wildcard binding through 127.0.0.1.
  publishedPorts.sort((a, b) => Number(a.hostIp.includes(':')) - Number(b.hostIp.includes(':')));
  return {
    id: c.Id,
    name: (c.Names[0] ?? c.Id).replace(/^\//, ''),
    labels: c.Labels,
    running: c.State === 'running',
    health: healthFromStatus(c.Status),
    networks,
    publishedPorts,
  };
}

export function healthFromStatus(status: string): ContainerHealth {
  if (status.includes('(healthy)')) return 'healthy';
  if (status.includes('(unhealthy)')) return 'unhealthy';
  if (status.includes('(health: starting)')) return 'starting';
  return 'none';
}

async function* readEvents(
  stream: NodeJS.ReadableStream & { destroy(): void },
  signal: AbortSignal,
): AsyncGenerator<ContainerEvent> {
  const close = (): void => stream.destroy();
  signal.addEventListener('abort', close, { once: true });
  let buffered = '';
  try {
    for await (const chunk of stream) {
      buffered += chunk.toString();
      // The daemon writes one JSON object per line.
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (line === '') continue;
        const event = parseEventLine(line);
        if (event !== undefined) yield event;
      }
    }
  } catch (error) {
    if (signal.aborted) return;
    throw error;
  } finally {
    signal.removeEventListener('abort', close);
    stream.destroy();
  }
}

function parseEventLine(line: string): ContainerEvent | undefined {
  try {
    const raw = JSON.parse(line) as { Action?: unknown; Actor?: { ID?: unknown } };
    if (typeof raw.Action !== 'string' || typeof raw.Actor?.ID !== 'string') return undefined;
    // health_status events read "health_status: healthy"; the trigger only needs the verb.
    return { action: raw.Action.split(':')[0] ?? raw.Action, containerId: raw.Actor.ID };
  } catch {
    return undefined;
  }
}
