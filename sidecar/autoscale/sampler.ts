// Gathers the policy's inputs: from HAProxy's exporter the backend's request rate (from its
// counter, across reloads), queue, mean response time, requests in flight and their growth, and
// serving replicas; from Docker the replicas' CPU. A source that cannot be read leaves its signals
// missing, never zero, and says so. A peek reads HAProxy only, over its own shorter window, for the
// breach checks between evaluations (Docker's CPU takes seconds to read; HAProxy's figures do not).
import type { Samples } from './policy.js';
import { backendSnapshot, counterRate, type BackendSnapshot, type ScrapeResult } from '../haproxy-metrics/exporter.js';

export interface SamplerOptions {
  readonly backend: string;
  readonly scrape: () => Promise<ScrapeResult>;
  /** Mean CPU of these containers as a fraction of one core; undefined when Docker cannot tell. */
  readonly cpu: (containerIds: readonly string[]) => Promise<number | undefined>;
  readonly now: () => number;
  /**
   * How far back a peek's rates look: the latest read at least this old (0: the last read). Over
   * a few checks, not one, so that a second's noise is not read as a breach.
   */
  readonly peekWindowMs?: number;
}

/** A breach check's figures cover this many checks' worth of time (the peek window). */
export const BREACH_WINDOW_CHECKS = 2;

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
  /**
   * HAProxy's figures only (no CPU), rates over the peek window (since the latest read at least
   * peekWindowMs old): what a breach check decides on. The next sample's rates still cover the
   * whole evaluation interval.
   */
  peek(replicas: ListedReplicas | undefined): Promise<SampleSet>;
}

export function createSampler(options: SamplerOptions): Sampler {
  /** The last snapshot of an evaluation's sample, and the recent ones of any read (sample or peek). */
  let previousSample: BackendSnapshot | undefined;
  let reads: BackendSnapshot[] = [];
  const peekWindowMs = options.peekWindowMs ?? 0;
  const remember = (snapshot: BackendSnapshot): void => {
    // Enough to reach one window back: the latest at least that old, and everything newer.
    const keepFrom = reads.filter((r) => r.at <= snapshot.at - peekWindowMs).at(-1);
    reads = [...reads.filter((r) => r === keepFrom || r.at > snapshot.at - peekWindowMs), snapshot];
  };
  /** The latest read at least a window before `at`, else the oldest kept. */
  const windowStart = (at: number): BackendSnapshot | undefined => reads.filter((r) => r.at <= at - peekWindowMs).at(-1) ?? reads[0];

  /** `from`: the earlier snapshot the rates are taken from, for a snapshot taken at `at`. */
  async function read(listed: ListedReplicas | undefined, withCpu: boolean, from: (at: number) => BackendSnapshot | undefined): Promise<SampleSet & { readonly current: BackendSnapshot | undefined }> {
    const problems: string[] = [];
    const [scraped, cpu] = await Promise.all([
      options.scrape(),
      listed === undefined || !withCpu ? Promise.resolve(undefined) : options.cpu(listed.ids).catch(() => undefined),
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
    let inFlightGrowth: number | undefined;
    const since = snapshot === undefined ? undefined : from(snapshot.at);
    if (snapshot !== undefined && since !== undefined && snapshot.at > since.at) {
      requestRate = counterRate({ value: since.httpRequestsTotal, at: since.at }, { value: snapshot.httpRequestsTotal, at: snapshot.at });
      // Not a counter: a reload that empties the old worker's sessions is a real fall.
      inFlightGrowth = (snapshot.currentSessions - since.currentSessions) / ((snapshot.at - since.at) / 1000);
    }
    if (withCpu && cpu === undefined) problems.push('container CPU unavailable from Docker');

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
      // The backend's current sessions: requests queued in HAProxy or at a server.
      inFlight: snapshot === undefined ? undefined : reading(snapshot.currentSessions),
      inFlightGrowth: inFlightGrowth === undefined ? undefined : reading(Number(inFlightGrowth.toFixed(3))),
    };
    return { samples, snapshot, sources: { haproxy: snapshot !== undefined, docker: cpu !== undefined }, problems, current: snapshot };
  }

  return {
    async sample(listed) {
      const { current, ...set } = await read(listed, true, () => previousSample);
      if (current !== undefined) {
        previousSample = current;
        remember(current);
      }
      return set;
    },
    async peek(listed) {
      const { current, ...set } = await read(listed, false, windowStart);
      if (current !== undefined) remember(current);
      return set;
    },
  };
}
