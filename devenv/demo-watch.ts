// What the run command shows while it runs: the sidecar's own account of itself, read from its
// admin API (GET /v1/autoscaler for the decisions, GET /v1/backends for servers and drains) and
// the scaled service's containers from Docker, turned into one line per autoscaler evaluation and
// one line per pool event (a server added, serving, drained, removed; a container started or
// stopped). Only reads: nothing here changes the pool.
import type { DrainProgress } from '../sidecar/records/drains.js';
import type { DecisionRecord } from '../sidecar/autoscale/controller.js';
import type { BackendView, ServerView } from '../sidecar/admin/service.js';
import type { LoadWindow } from './demo-load.js';

export interface AutoscalerView {
  readonly mode: 'auto' | 'paused' | 'manual';
  readonly inFlight: readonly string[];
  readonly recent: readonly DecisionRecord[];
}

export interface PoolEvent {
  readonly at: number;
  readonly text: string;
}

export interface Observation {
  readonly at: number;
  /** Servers of the backend that are ready and up. */
  readonly serving: number;
  /** Running containers of the scaled service. */
  readonly containers: number;
  /** Drains in progress. */
  readonly draining: number;
  /** Decisions made since the previous poll, oldest first. */
  readonly decisions: readonly DecisionRecord[];
  readonly events: readonly PoolEvent[];
}

export interface ObserverOptions {
  readonly adminUrl: string;
  readonly backend: string;
  /** Names of the scaled service's running containers. */
  readonly containers: () => Promise<readonly string[]>;
  readonly timeoutMs?: number;
}

export interface Observer {
  /** undefined when the sidecar did not answer this time. */
  poll(): Promise<Observation | undefined>;
}

async function getJson<T>(url: string, timeoutMs: number): Promise<T | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!response.ok) {
      await response.arrayBuffer();
      return undefined;
    }
    return (await response.json()) as T;
  } catch {
    return undefined;
  }
}

/** Docker calls have no timeout of their own: a daemon that hangs must not hang the poll. */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

const isServing = (s: ServerView): boolean => s.adminState === 'ready' && s.operationalState === 'up';
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

export function createObserver(options: ObserverOptions): Observer {
  const timeoutMs = options.timeoutMs ?? 2_000;
  let lastDecisionAt = 0;
  let known = new Map<string, ServerView>();
  const servingSeen = new Set<string>();
  /**
   * Drains seen, per server: when the current one started, whether its end was shown, and whether
   * the server was seen in service since (only then can a new drain of it start).
   */
  const episodes = new Map<string, { startedAt: number; ended: boolean; rearmed: boolean }>();
  /** Drainer records already shown to their end (server@startedAt). */
  const finishedDrains = new Set<string>();
  let containersKnown: ReadonlySet<string> | undefined;

  return {
    async poll() {
      const [autoscaler, backends, containers] = await Promise.all([
        getJson<AutoscalerView>(`${options.adminUrl}/v1/autoscaler`, timeoutMs),
        getJson<BackendView[]>(`${options.adminUrl}/v1/backends`, timeoutMs),
        withTimeout(options.containers(), timeoutMs * 2).catch(() => undefined),
      ]);
      if (autoscaler === undefined || backends === undefined) return undefined;
      const now = Date.now();
      const events: PoolEvent[] = [];
      const startDrain = (server: string, at: number, why: string): void => {
        const last = episodes.get(server);
        if (last !== undefined && !(last.ended && last.rearmed)) return;
        episodes.set(server, { startedAt: at, ended: false, rearmed: false });
        events.push({ at, text: `drain started: ${server} (${why})` });
      };
      const endDrain = (server: string, how: string): void => {
        const open = episodes.get(server);
        if (open === undefined || open.ended) return;
        open.ended = true;
        events.push({ at: now, text: `drain ended: ${server} ${how} after ${seconds(now - open.startedAt)}` });
      };
      /** A drain of the drainer (hsc drain, the admin API): its record says how it ended. */
      const drainerRecord = (progress: DrainProgress): void => {
        const key = `${progress.server}@${progress.startedAt}`;
        if (finishedDrains.has(key)) return;
        startDrain(progress.server, progress.startedAt, progress.reason);
        if (progress.state === 'draining') return;
        finishedDrains.add(key);
        const cut = progress.state === 'forced' && progress.load !== undefined ? `, ${progress.load.sessions} session(s) cut` : '';
        endDrain(progress.server, `${progress.state}${cut}`);
      };

      const decisions = autoscaler.recent.filter((d) => d.at > lastDecisionAt);
      if (decisions.length > 0) lastDecisionAt = Math.max(...decisions.map((d) => d.at));

      // A retirement's drain starts with the decision that planned it…
      for (const decision of decisions) {
        if (!decision.applied) continue;
        for (const action of decision.actions) if (action.kind === 'retire') startDrain(action.server, decision.at, 'scale-down');
      }
      // …and goes on as "<server> <stage>" in flight: draining, then drained, then removed.
      const retiring = new Set(autoscaler.inFlight.map((entry) => entry.split(' ')[0]));
      for (const entry of autoscaler.inFlight) {
        const [server, stage] = entry.split(' ');
        if (server === undefined) continue;
        if (stage === 'draining') startDrain(server, now, 'scale-down');
        else if (stage !== undefined) {
          startDrain(server, now, 'scale-down');
          endDrain(server, 'drained');
        }
      }

      const servers = backends.find((b) => b.name === options.backend)?.servers.filter((s) => s.managed) ?? [];
      const current = new Map(servers.map((s) => [s.name, s]));
      for (const server of servers) {
        const before = known.get(server.name);
        if (before === undefined) events.push({ at: now, text: `${server.name} added to HAProxy (${server.address}:${server.port ?? '?'})` });
        if (isServing(server) && !servingSeen.has(server.name)) {
          servingSeen.add(server.name);
          events.push({ at: now, text: `${server.name} serving` });
        }
        const episode = episodes.get(server.name);
        if (episode?.ended === true && server.adminState === 'ready' && !retiring.has(server.name)) episode.rearmed = true;
        if (server.drain !== null) drainerRecord(server.drain);
        if (server.adminState === 'drain') startDrain(server.name, now, 'drain');
        else if (before?.adminState === 'drain' && server.adminState === 'ready') endDrain(server.name, 'cancelled: back in service');
        else if (before?.adminState === 'drain' && server.adminState === 'maint') endDrain(server.name, 'forced to maintenance');
      }
      for (const name of known.keys()) {
        if (current.has(name)) continue;
        servingSeen.delete(name);
        // A drain that started and ended between two polls: the drainer's record outlives the server.
        const last = await getJson<DrainProgress>(`${options.adminUrl}/v1/backends/${options.backend}/servers/${name}/drain`, timeoutMs);
        if (last !== undefined) drainerRecord(last);
        endDrain(name, 'drained');
        events.push({ at: now, text: `${name} removed from HAProxy` });
      }
      known = current;

      if (containers !== undefined) {
        const names = new Set(containers);
        if (containersKnown !== undefined) {
          for (const name of names) if (!containersKnown.has(name)) events.push({ at: now, text: `container ${name} started` });
          for (const name of containersKnown) if (!names.has(name)) events.push({ at: now, text: `container ${name} stopped and removed` });
        }
        containersKnown = names;
      }
      events.sort((a, b) => a.at - b.at);
      return {
        at: now,
        serving: servers.filter(isServing).length,
        containers: containersKnown?.size ?? 0,
        draining: servers.filter((s) => s.adminState === 'drain').length + autoscaler.inFlight.length,
        decisions,
        events,
      };
    },
  };
}

const SIGNAL_NAMES: Readonly<Record<string, string>> = { cpu: 'cpu', requestRate: 'rate', queue: 'queue', responseTime: 'rt' };

/** The signal that decided the count, with what it observed (per instance for rate and queue). */
export function winningSignal(decision: DecisionRecord): string {
  if (decision.stage === 'forecast') return `forecast ${Math.round(decision.predictedRequestRate ?? 0)}/s`;
  const largest = decision.stages.find((s) => s.stage === 'largest');
  const name = /^(\w+) wins/.exec(largest?.reason ?? '')?.[1];
  const proposal = decision.proposals.find((p) => p.signal === name);
  if (name === undefined || proposal === undefined) return '-';
  const observed = proposal.observed;
  const shown = observed === undefined ? proposal.status : name === 'responseTime' ? `${Math.round(observed * 1000)}ms` : `${Number(observed.toFixed(2))}`;
  return `${SIGNAL_NAMES[name] ?? name} ${shown}`;
}

function describeActions(decision: DecisionRecord): string {
  const parts = decision.actions.map((a) => (a.kind === 'start' ? `start ${a.count}` : `${a.kind} ${a.server}`));
  if (parts.length === 0) return decision.direction === 'none' ? '' : ' (no new action: one is under way)';
  return ` → ${parts.join(', ')}${decision.applied ? '' : ` (${decision.mode}: not applied)`}`;
}

export const DECISION_HEADER = '  time   offered   served  inst  signal        decision     p99  failed  reason';

export interface DecisionLineInput {
  readonly decision: DecisionRecord;
  /** ms since the epoch that time 0 stands for. */
  readonly origin: number;
  readonly window: LoadWindow;
  readonly serving: number;
  readonly containers: number;
  readonly failedSoFar: number;
}

const pad = (text: string, width: number): string => text.padStart(width);

export function decisionLine(input: DecisionLineInput): string {
  const { decision: d, window: w } = input;
  const rate = (n: number): string => `${Math.round(n / Math.max(w.seconds, 0.001))} r/s`;
  const verdict = d.direction === 'none' ? `hold ${d.current}` : `${d.direction} ${d.current}→${d.desired}`;
  return [
    pad(`+${((d.at - input.origin) / 1000).toFixed(1)}s`, 7),
    pad(rate(w.sent), 9),
    pad(rate(w.ok), 8),
    pad(`${input.serving}/${input.containers}`, 5),
    ` ${winningSignal(d).padEnd(13)}`,
    verdict.padEnd(9),
    pad(w.p99Ms === undefined ? '-' : `${Math.round(w.p99Ms)}ms`, 6),
    pad(String(input.failedSoFar), 7),
    ` ${d.reason}${describeActions(d)}`,
  ].join(' ');
}

export function eventLine(event: PoolEvent, origin: number): string {
  return `${pad(`+${((event.at - origin) / 1000).toFixed(1)}s`, 7)}   ── ${event.text}`;
}
