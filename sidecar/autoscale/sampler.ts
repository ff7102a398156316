// Gathers the policy's inputs: from HAProxy's exporter the backend's request rate (from its
// counter, across reloads), queue, mean response time and serving replicas; from Docker the
// replicas' CPU. A source that cannot be read leaves its signals missing, never zero, and says so.
import type { Samples } from './policy.js';
import { backendSnapshot, counterRate, type BackendSnapshot, type ScrapeResult } from '../haproxy-metrics/index.js';

export interface SamplerOptions {
  readonly backend: string;
  readonly scrape: () => Promise<ScrapeResult>;
  /** Mean CPU of these containers as a fraction of one core; undefined when Docker cannot tell. */
  readonly cpu: (containerIds: readonly string[]) => Promise<number | undefined>;
  readonly now: () => number;
}

export interface SampleSet {
  readonly samples: Samples;
  /** The backend as the last successful scrape showed it (sessions per server, states). */
  readonly snapshot: BackendSnapshot | undefined;
  readonly sources: { readonly haproxy: boolean; readonly docker: boolean };
  /** Why a source is down, for logs and the admin API. */
  readonly problems: readonly string[];
}

/** The scaled service's running replicas as Docker listed them, and their servers in the backend. */
export interface ListedReplicas {
  readonly ids: readonly string[];
  /** Server names of these replicas: other servers of the backend (hand-written, other services) do not count. */
  readonly servers: ReadonlySet<string>;
}

export interface Sampler {
  /**
   * `replicas`: the running replicas Docker listed for this evaluation (their CPU is read, and
   * their count stands in when HAProxy cannot be read); undefined when Docker could not be listed.
   */
  sample(replicas: ListedReplicas | undefined): Promise<SampleSet>;
}

export function createSampler(options: SamplerOptions): Sampler {
  let previous: BackendSnapshot | undefined;

  return {
    async sample(listed) {
      const problems: string[] = [];
      const [scraped, cpu] = await Promise.all([
        options.scrape(),
        listed === undefined ? Promise.resolve(undefined) : options.cpu(listed.ids).catch(() => undefined),
      ]);
      let snapshot: BackendSnapshot | undefined;
      if (scraped.ok) {
        snapshot = backendSnapshot(scraped.value.samples, options.backend, scraped.value.at);
        if (snapshot === undefined) problems.push(`HAProxy's exporter does not list backend ${options.backend}`);
      } else {
        problems.push(scraped.error.message);
      }
      const at = snapshot?.at ?? options.now();
      const reading = (value: number) => ({ value, at });
      let requestRate: number | undefined;
      if (snapshot !== undefined && previous !== undefined) {
        requestRate = counterRate(
          { value: previous.httpRequestsTotal, at: previous.at },
          { value: snapshot.httpRequestsTotal, at: snapshot.at },
        );
      }
      if (snapshot !== undefined) previous = snapshot;
      if (cpu === undefined) problems.push('container CPU unavailable from Docker');

      const replicas =
        snapshot !== undefined
          ? snapshot.servers.filter((s) => listed?.servers.has(s.name) === true && s.state === 'UP').length
          : (listed?.ids.length ?? 0);
      const queue = snapshot === undefined ? undefined : snapshot.currentQueue + snapshot.servers.reduce((sum, s) => sum + s.currentQueue, 0);
      const samples: Samples = {
        replicas,
        sourceUp: snapshot !== undefined,
        cpu: cpu === undefined ? undefined : { value: cpu, at: options.now() },
        requestRate: requestRate === undefined ? undefined : reading(requestRate),
        queue: queue === undefined ? undefined : reading(queue),
        responseTime: snapshot === undefined ? undefined : reading(snapshot.responseTimeAverageSeconds),
      };
      return { samples, snapshot, sources: { haproxy: snapshot !== undefined, docker: cpu !== undefined }, problems };
    },
  };
}
