// Turns what Docker shows about a container into the server it should become, or into a reason
// it is skipped. Pure: the Docker edge (docker.ts) converts dockerode's types into
// ContainerSnapshot, and everything after that is plain data in, plain data out.
//
// Labels, in the style Traefik users know (prefix configurable, default "haproxy"):
//   haproxy.enable=true|false      opt in (or out, for a container of the Compose service)
//   haproxy.backend=<name>         one of the managed backends (default: backends.defaultBackend)
//   haproxy.port=<port>            the container port nginx listens on (default: backends.port)
//   haproxy.weight=<0..256>        server weight (default: backends.weight)
//   haproxy.check.path=</path>     readiness probe path for containers without a Docker healthcheck

import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../docker/labels.js';
import type { ContainerHealth, ContainerSnapshot } from '../docker/snapshot.js';

/** How a container's server address is found: its published port on the host, or its address on a Docker network. */
export type AddressMode = 'published' | 'network';

export type { ContainerHealth, ContainerSnapshot, PublishedPort } from '../docker/snapshot.js';

/** Servers the sidecar creates carry this prefix; it is how it recognises them after a restart. */
export const OWNED_SERVER_PREFIX = 'hsc-';

export const isOwnedServerName = (name: string): boolean => name.startsWith(OWNED_SERVER_PREFIX);

/** A container of the managed Compose service (in its project, when one is set). */
export function isOfComposeService(labels: Readonly<Record<string, string>>, options: Pick<DiscoveryOptions, 'composeService' | 'composeProject'>): boolean {
  return (
    options.composeService !== '' &&
    own(labels, COMPOSE_SERVICE) === options.composeService &&
    (options.composeProject === '' || own(labels, COMPOSE_PROJECT) === options.composeProject)
  );
}

export interface DiscoveryOptions {
  readonly labelPrefix: string;
  readonly composeService: string;
  /** The Compose project of that service; empty: any project. */
  readonly composeProject: string;
  readonly addressMode: AddressMode;
  /** The Docker network HAProxy shares with the containers (addressMode "network"). */
  readonly network: string;
  readonly managedBackends: readonly string[];
  readonly defaultBackend: string;
  readonly defaultPort: number;
  readonly defaultWeight: number;
  readonly defaultHealthPath: string;
}

/** A container that should be a server once it is ready. */
export interface Candidate {
  readonly containerId: string;
  readonly containerName: string;
  readonly backend: string;
  /** Readable, stable, and unique in its backend after assignServerNames(). */
  readonly serverName: string;
  /** Where HAProxy reaches it. */
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly healthPath: string;
  readonly health: ContainerHealth;
  /** Its container is on its way out (a Swarm task told to stop): its server is drained, not added. */
  readonly stopping?: boolean;
}

export type ParseOutcome =
  | { readonly kind: 'candidate'; readonly candidate: Candidate }
  /** Not meant for the sidecar: no opt-in label and not the Compose service, or not running. */
  | { readonly kind: 'ignored' }
  /** Meant for the sidecar but unusable: the warning names the container and the label. */
  | { readonly kind: 'skipped'; readonly containerName: string; readonly label: string; readonly reason: string };

const HOST_WILDCARDS = new Set(['', '0.0.0.0', '::']);

/**
 * A record's own entry, never an inherited one: labels and network names are anyone's strings, and
 * a network called "toString" must not find Object.prototype.toString (found by a property test:
 * the server's address became a function).
 */
function own(record: Readonly<Record<string, string>>, key: string): string | undefined {
  if (!Object.hasOwn(record, key)) return undefined;
  const value = record[key];
  return typeof value === 'string' ? value : undefined;
}

export function parseContainer(container: ContainerSnapshot, options: DiscoveryOptions): ParseOutcome {
  const label = (suffix: string): string => `${options.labelPrefix}.${suffix}`;
  const skip = (suffix: string, reason: string): ParseOutcome => ({
    kind: 'skipped',
    containerName: container.name,
    label: suffix === '' ? '' : label(suffix),
    reason,
  });

  const enable = own(container.labels, label('enable'));
  if (enable !== undefined && enable !== 'true' && enable !== 'false') {
    return skip('enable', `must be "true" or "false", not ${JSON.stringify(enable)}`);
  }
  const ofComposeService = isOfComposeService(container.labels, options);
  const selected = enable === 'true' || (enable === undefined && ofComposeService);
  if (!selected || !container.running) return { kind: 'ignored' };

  const backend = own(container.labels, label('backend')) ?? options.defaultBackend;
  if (!options.managedBackends.includes(backend)) {
    return skip('backend', `${JSON.stringify(backend)} is not a managed backend (${options.managedBackends.join(', ')})`);
  }
  const port = integerLabel(own(container.labels, label('port')), options.defaultPort, 1, 65535);
  if (port === undefined) return skip('port', `must be a port number 1-65535, not ${JSON.stringify(own(container.labels, label('port')))}`);
  const weight = integerLabel(own(container.labels, label('weight')), options.defaultWeight, 0, 256);
  if (weight === undefined) return skip('weight', `must be an integer 0-256, not ${JSON.stringify(own(container.labels, label('weight')))}`);
  const healthPath = own(container.labels, label('check.path')) ?? options.defaultHealthPath;
  if (!/^\/[\x21-\x7e]*$/.test(healthPath)) {
    return skip('check.path', `must be an absolute path without spaces, not ${JSON.stringify(healthPath)}`);
  }

  let address: string;
  let serverPort: number;
  if (options.addressMode === 'network') {
    const ip = own(container.networks, options.network);
    if (ip === undefined || ip === '') return skip('', `is not attached to the network ${options.network}`);
    address = ip;
    serverPort = port;
  } else {
    const published = container.publishedPorts.find((p) => p.containerPort === port);
    if (published === undefined) return skip('port', `container port ${port} is not published on the host`);
    // A port bound to every interface is reached through the loopback: HAProxy runs on this host.
    address = HOST_WILDCARDS.has(published.hostIp) ? '127.0.0.1' : published.hostIp;
    serverPort = published.hostPort;
  }

  return {
    kind: 'candidate',
    candidate: {
      containerId: container.id,
      containerName: container.name,
      backend,
      serverName: baseServerName(container),
      address,
      port: serverPort,
      weight,
      healthPath,
      health: container.health,
      ...(container.stopping === true ? { stopping: true } : {}),
    },
  };
}

function integerLabel(raw: string | undefined, fallback: number, min: number, max: number): number | undefined {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw)) return undefined;
  const value = Number(raw);
  return value >= min && value <= max ? value : undefined;
}

/**
 * hsc-<service>-<number> for a Compose container (what `docker compose ps` shows), otherwise
 * hsc-<container name>; characters HAProxy does not accept in a server name become "-".
 */
function baseServerName(container: ContainerSnapshot): string {
  const service = own(container.labels, COMPOSE_SERVICE);
  const number = own(container.labels, COMPOSE_NUMBER);
  const readable = service !== undefined && number !== undefined && /^\d+$/.test(number) ? `${service}-${number}` : container.name;
  const safe = readable.replace(/[^A-Za-z0-9_.:-]+/g, '-').replace(/^-+|-+$/g, '');
  return `${OWNED_SERVER_PREFIX}${safe === '' ? container.id.slice(0, 12) : safe}`;
}

/**
 * Makes server names unique per backend. Two containers that would share a name (the same
 * service in two Compose projects, say) both get the first 12 characters of their container ID
 * appended, so the result depends only on the set of containers, never on listing order.
 */
export function assignServerNames(candidates: readonly Candidate[]): Candidate[] {
  const count = new Map<string, number>();
  const key = (c: Candidate): string => `${c.backend}/${c.serverName}`;
  for (const c of candidates) count.set(key(c), (count.get(key(c)) ?? 0) + 1);
  return candidates.map((c) =>
    (count.get(key(c)) ?? 0) > 1 ? { ...c, serverName: `${c.serverName}-${c.containerId.slice(0, 12)}` } : c,
  );
}
