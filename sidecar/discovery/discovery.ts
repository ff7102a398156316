// Discovery: which containers should be servers right now, and which of them may take traffic.
// Docker's side comes in through a DockerSource (docker.ts); everything else here is plain data.
import type { Logger } from '../log/logger.js';
import type { DockerEdge } from '../docker/compose.js';
import { compareNames } from '../driver/port.js';
import { httpGet } from '../edge/http-get.js';
import { ok, type Result } from '../edge/result.js';
import { assignServerNames, isOfComposeService, parseContainer, type Candidate, type ContainerSnapshot, type DiscoveryOptions } from './parse.js';

export { isOwnedServerName, OWNED_SERVER_PREFIX, type Candidate } from './parse.js';
export type { ContainerEvent } from '../docker/compose.js';

/** What discovery reads from the Docker edge. */
export type DockerSource = Pick<DockerEdge, 'listRunning' | 'openEvents'>;

export interface SkippedContainer {
  readonly containerName: string;
  readonly label: string;
  readonly reason: string;
}

export interface DiscoveryResult {
  /** Unique server names per backend, sorted by backend and name. */
  readonly candidates: readonly Candidate[];
  readonly skipped: readonly SkippedContainer[];
}

export interface Discovery {
  /** Lists Docker once and parses what it shows. */
  discover(): Promise<Result<DiscoveryResult>>;
  /** The same from containers already listed (one Docker read shared by several users). */
  from(containers: readonly ContainerSnapshot[]): DiscoveryResult;
  /** Whether discovery looks at a container with these labels at all. */
  selects(labels: Readonly<Record<string, string>>): boolean;
}

export function createDiscovery(source: DockerSource, options: DiscoveryOptions, logger: Logger): Discovery {
  // A broken label is reported once per container and problem, not on every resync.
  let reported = new Set<string>();
  const enableLabel = `${options.labelPrefix}.enable`;
  const selects = (labels: Readonly<Record<string, string>>): boolean =>
    labels[enableLabel] !== undefined || isOfComposeService(labels, options);

  function from(all: readonly ContainerSnapshot[]): DiscoveryResult {
      const containers = all.filter((c) => selects(c.labels));
      const candidates: Candidate[] = [];
      const skipped: SkippedContainer[] = [];
      const stillBroken = new Set<string>();
      for (const container of containers) {
        const outcome = parseContainer(container, options);
        if (outcome.kind === 'candidate') candidates.push(outcome.candidate);
        if (outcome.kind !== 'skipped') continue;
        const { containerName, label, reason } = outcome;
        skipped.push({ containerName, label, reason });
        const key = `${container.id}|${label}|${reason}`;
        stillBroken.add(key);
        if (!reported.has(key)) {
          logger.warn({ container: containerName, label, reason }, `container skipped: ${label === '' ? 'it' : `label ${label}`} ${reason}`);
        }
      }
      reported = stillBroken;
      const named = assignServerNames(candidates).sort((a, b) =>
        a.backend === b.backend ? compareNames(a.serverName, b.serverName) : compareNames(a.backend, b.backend),
      );
      return { candidates: named, skipped };
  }

  return {
    from,
    selects,
    async discover() {
      const listed = await source.listRunning(selects);
      return listed.ok ? ok(from(listed.value)) : listed;
    },
  };
}

/** Answers whether a container without a Docker healthcheck responds on its health path. */
export type Probe = (address: string, port: number, path: string) => Promise<boolean>;

export function httpProbe(timeoutMs: number): Probe {
  return async (address, port, path) => {
    const host = address.includes(':') ? `[${address}]` : address;
    try {
      // A redirect counts as an answer (not followed), as before with fetch's redirect: 'manual'.
      const response = await httpGet(`http://${host}:${port}${path}`, { timeoutMs, statusOnly: true });
      return response.status >= 200 && response.status < 400;
    } catch {
      return false;
    }
  };
}

export interface Readiness {
  readonly ready: readonly Candidate[];
  /** Running but not ready yet: worth another look soon. */
  readonly waiting: readonly Candidate[];
}

/**
 * A container takes traffic only once it can answer: with a Docker healthcheck, when Docker
 * says healthy; without one, once it answers on its health path. A container that already is a
 * server stays one without a new probe; HAProxy's own checks decide its traffic from then on,
 * so a slow answer does not make the sidecar remove and re-add it.
 */
export async function selectReady(
  candidates: readonly Candidate[],
  isServing: (candidate: Candidate) => boolean,
  probe: Probe,
): Promise<Readiness> {
  const verdicts = await Promise.all(
    candidates.map(async (c): Promise<boolean> => {
      switch (c.health) {
        case 'healthy':
          return true;
        case 'starting':
        case 'unhealthy':
          return false;
        case 'none':
          return isServing(c) || probe(c.address, c.port, c.healthPath);
      }
    }),
  );
  return {
    ready: candidates.filter((_, i) => verdicts[i] === true),
    waiting: candidates.filter((_, i) => verdicts[i] !== true),
  };
}

/**
 * A backend left without a ready server that stays (every replica replaced at once: a plain
 * `docker compose up -d` of a new version) takes its starting containers as soon as they answer
 * their health path, before Docker's first health check calls them healthy (2 s and more later):
 * a container that answers beats a backend that answers 503 to everything. `leavingOrStopping`
 * tells the servers that are on their way out; HAProxy's own checks watch the ones admitted, so
 * one admitted early stays a server while Docker still calls it starting, even once others are
 * healthy (it is not removed and added again).
 */
export async function admitWhenEmpty(
  readiness: Readiness,
  leavingOrStopping: (candidate: Candidate) => boolean,
  isServing: (candidate: Candidate) => boolean,
  probe: Probe,
): Promise<Readiness & { readonly starving: number }> {
  const staying = new Set(readiness.ready.filter((c) => !leavingOrStopping(c)).map((c) => c.backend));
  const starting = readiness.waiting.filter((c) => c.health === 'starting' && c.stopping !== true);
  const admittedBefore = starting.filter(isServing);
  const eligible = starting.filter((c) => !staying.has(c.backend) && !isServing(c));
  const answers = await Promise.all(eligible.map((c) => probe(c.address, c.port, c.healthPath)));
  const admitted = new Set([...admittedBefore, ...eligible.filter((_, i) => answers[i] === true)]);
  // Starving: containers a backend without a server waits for; the caller looks again soon.
  const starving = eligible.filter((_, i) => answers[i] !== true).length;
  if (admitted.size === 0) return { ...readiness, starving };
  return { ready: [...readiness.ready, ...admitted], waiting: readiness.waiting.filter((c) => !admitted.has(c)), starving };
}
