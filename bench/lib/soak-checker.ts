// The soak's invariant checker: every second it reads Docker, HAProxy, the sidecar's records and
// (per driver) the file region or the Data Plane API's configuration and its transactions, and
// lists every disagreement between them. A disagreement is normal for a moment after a change;
// one that lasts past the bound is a violation. The rules (disagreements()) are pure, so what
// counts as agreement is written in one place:
//   - every running, healthy container has its server, ready and UP, unless one of the
//     sidecar's records (a scale-down or an operator drain) holds it in drain or maintenance;
//   - every server the sidecar owns stands for a running container, at the port it publishes;
//   - a server out of rotation (drain, maint) has a record that says so, and a record that says
//     drain is not contradicted by HAProxy (a drain lost to a reload, say);
//   - a drain the soak asked for (hsc drain) and has not undone holds while its server exists;
//   - no record for a container that is gone;
//   - the file HAProxy loads (runtime driver) or the Data Plane API's configuration holds the
//     same servers as the running HAProxy, and no Data Plane API transaction stays open;
//   - the sidecar answers, unless the soak stopped it.
import type { SidecarRecord, SidecarView, SoakContainer, SoakServer } from './soak-world.js';
import { serverNameOf } from './soak-world.js';
import { isOwnedServerName } from '../../sidecar/discovery/discovery.js';

export interface Observation {
  readonly at: number;
  /** undefined where the source could not be read this time. */
  readonly containers: readonly SoakContainer[] | undefined;
  readonly servers: readonly SoakServer[] | undefined;
  readonly sidecar: SidecarView | undefined;
  readonly configured: readonly string[] | undefined;
  readonly transactions: readonly string[] | undefined;
  /** Why a source could not be read, by source. */
  readonly errors: Readonly<Record<string, string>>;
}

/** What the soak itself did and so knows: its operator drains, other writers' objects, its own stop of the sidecar. */
export interface Expectations {
  readonly operatorDrains: ReadonlySet<string>;
  readonly foreignServers: ReadonlySet<string>;
  readonly foreignTransactions: ReadonlySet<string>;
  readonly sidecarDownOnPurpose: boolean;
}

export interface Problem {
  /** Stable while the same disagreement lasts, so its duration can be measured. */
  readonly key: string;
  readonly text: string;
}

const holdsOutOfRotation = (record: SidecarRecord): 'drain' | 'maint' | 'any' => {
  if (record.kind === 'drain') return record.stage === 'forced' ? 'maint' : 'drain';
  // A scale-down drains, is forced to maintenance at its deadline, then the server goes.
  return record.stage === 'draining' ? 'drain' : 'any';
};

/**
 * Every disagreement in one observation. `records` are the sidecar's, from this observation or,
 * while it does not answer, the last ones it gave.
 */
export function disagreements(observation: Observation, expected: Expectations, records: readonly SidecarRecord[]): Problem[] {
  const problems: Problem[] = [];
  const add = (key: string, text: string): void => void problems.push({ key, text });
  const { containers, servers } = observation;
  if (containers === undefined || servers === undefined) return problems;

  const running = containers.filter((c) => c.state === 'running');
  const runningByName = new Map(running.map((c) => [serverNameOf(c.number), c]));
  const serverByName = new Map(servers.map((s) => [s.name, s]));
  const recordsOf = (server: string): SidecarRecord[] => records.filter((r) => r.server === server);

  for (const c of running.filter((x) => x.health === 'healthy')) {
    const name = serverNameOf(c.number);
    const server = serverByName.get(name);
    const held = recordsOf(name);
    if (server === undefined) {
      // A scale-down removes the server before it stops the container.
      if (!held.some((r) => r.kind === 'retirement')) add(`missing:${name}`, `healthy container ${c.name} has no server ${name}`);
      continue;
    }
    if (server.admin === 'ready' && server.operational !== 2) add(`down:${name}`, `${name} is ready but not UP (op state ${server.operational}) while its container is healthy`);
  }

  for (const server of servers) {
    if (expected.foreignServers.has(server.name)) continue;
    if (!isOwnedServerName(server.name)) {
      add(`stranger:${server.name}`, `server ${server.name} belongs to nobody the soak knows`);
      continue;
    }
    const container = runningByName.get(server.name);
    if (container === undefined) add(`orphan:${server.name}`, `server ${server.name} (${server.address}:${server.port}, ${server.admin}) has no running container`);
    // Healthy or not yet (a restarted container publishes a new port before it is healthy):
    // a server at another address sends its requests to nobody, or to someone else.
    else if (container.hostPort > 0 && (server.address !== '127.0.0.1' || server.port !== container.hostPort)) {
      add(`address:${server.name}`, `${server.name} points at ${server.address}:${server.port}, its container publishes 127.0.0.1:${container.hostPort}`);
    }
    const held = recordsOf(server.name);
    if (server.admin !== 'ready') {
      const allowed = held.some((r) => {
        const hold = holdsOutOfRotation(r);
        return hold === 'any' || hold === server.admin || (hold === 'drain' && server.admin === 'maint');
      });
      // The drain the soak asked for (hsc drain) holds it too: an operator's record.
      if (!allowed && !expected.operatorDrains.has(server.name)) {
        const by = held.length === 0 ? 'no record of the sidecar says so' : `the sidecar's record says ${held.map((r) => `${r.kind} ${r.stage}`).join(', ')}`;
        add(`out-of-rotation:${server.name}`, `${server.name} is in ${server.admin} but ${by}`);
      }
    } else {
      for (const record of held) {
        if (holdsOutOfRotation(record) !== 'any') add(`lost:${server.name}`, `the sidecar's ${record.kind} record (${record.stage}) holds ${server.name} out of rotation, HAProxy shows it ready`);
      }
      if (expected.operatorDrains.has(server.name) && container !== undefined) {
        add(`operator-drain-lost:${server.name}`, `the soak drained ${server.name} (hsc drain) and has not undrained it, HAProxy shows it ready${held.length === 0 ? ' and the sidecar has no record of the drain' : ''}`);
      }
    }
  }

  for (const record of records) {
    const present = serverByName.has(record.server);
    const container = record.containerId === undefined ? runningByName.get(record.server) : containers.find((c) => c.id === record.containerId);
    if (!present && (container === undefined || container.state !== 'running')) {
      add(`record:${record.kind}:${record.server}`, `the sidecar keeps a ${record.kind} record (${record.stage}) of ${record.server}, whose server and container are gone`);
    }
  }

  if (observation.configured !== undefined) {
    const running = servers.map((s) => s.name).filter((n) => !expected.foreignServers.has(n)).sort();
    const configured = observation.configured.filter((n) => !expected.foreignServers.has(n)).sort();
    if (JSON.stringify(running) !== JSON.stringify(configured)) {
      const extra = configured.filter((n) => !running.includes(n));
      const missing = running.filter((n) => !configured.includes(n));
      add('configuration', `the configuration HAProxy reloads from differs from the running servers: ${extra.length > 0 ? `only configured ${extra.join(', ')}` : ''}${extra.length > 0 && missing.length > 0 ? '; ' : ''}${missing.length > 0 ? `only running ${missing.join(', ')}` : ''}`);
    }
  }
  for (const id of observation.transactions ?? []) {
    if (!expected.foreignTransactions.has(id)) add(`transaction:${id}`, `Data Plane API transaction ${id} is open`);
  }
  if (observation.sidecar === undefined && !expected.sidecarDownOnPurpose) add('sidecar', `the sidecar's admin API does not answer${observation.errors.sidecar === undefined ? '' : ` (${observation.errors.sidecar})`}`);
  return problems;
}

export interface Violation {
  readonly key: string;
  text: string;
  /** When the disagreement was first seen, and when it was seen gone (undefined: still there). */
  readonly since: number;
  until: number | undefined;
}

export interface CheckerOptions {
  readonly observe: () => Promise<Observation>;
  readonly expectations: () => Expectations;
  readonly boundMs: number;
  readonly intervalMs: number;
  readonly log: (message: string) => void;
}

export interface Checker {
  readonly violations: readonly Violation[];
  /**
   * The first tick at or after `at` from which no disagreement was found for `holdMs` (or until
   * the last tick): a moment of agreement between two steps of a change does not count.
   */
  firstAgreementAfter(at: number, holdMs?: number): number | undefined;
  /** Problems of the last conclusive tick. */
  current(): readonly Problem[];
  /** Records of the sidecar seen last. */
  records(): readonly SidecarRecord[];
  ticks(): number;
  stop(): Promise<void>;
}

export function startChecker(options: CheckerOptions): Checker {
  const open = new Map<string, { text: string; since: number; violation: Violation | undefined }>();
  const unreadableSince = new Map<string, number>();
  const violations: Violation[] = [];
  /** Every conclusive tick: when, and whether it found no disagreement. */
  const history: Array<{ readonly at: number; readonly clean: boolean }> = [];
  let lastRecords: readonly SidecarRecord[] = [];
  let last: readonly Problem[] = [];
  let count = 0;
  let stopped = false;

  const tick = async (): Promise<void> => {
    const observation = await options.observe();
    count++;
    const now = observation.at;
    if (observation.sidecar !== undefined) lastRecords = observation.sidecar.records;
    // A source that cannot be read leaves the tick inconclusive for what depends on it; one
    // unreadable for longer than the bound is itself a violation (HAProxy's socket lost, say).
    const unreadable: Problem[] = [];
    for (const source of ['containers', 'servers', 'configured', 'transactions']) {
      const error = observation.errors[source];
      if (error === undefined) {
        unreadableSince.delete(source);
        continue;
      }
      const since = unreadableSince.get(source) ?? now;
      unreadableSince.set(source, since);
      unreadable.push({ key: `unreadable:${source}`, text: `cannot read ${source}: ${error}` });
    }
    const conclusive = observation.containers !== undefined && observation.servers !== undefined;
    const problems = conclusive ? [...disagreements(observation, options.expectations(), lastRecords), ...unreadable] : unreadable;
    const keys = new Set(problems.map((p) => p.key));
    for (const problem of problems) {
      const entry = open.get(problem.key);
      if (entry === undefined) open.set(problem.key, { text: problem.text, since: unreadableSince.get(problem.key.replace('unreadable:', '')) ?? now, violation: undefined });
      else entry.text = problem.text;
    }
    for (const [key, entry] of open) {
      // An inconclusive tick cannot say a disagreement ended.
      if (!keys.has(key) && (conclusive || key.startsWith('unreadable:'))) {
        if (entry.violation !== undefined) {
          entry.violation.until = now;
          options.log(`violation over after ${((now - entry.since) / 1000).toFixed(1)} s: ${entry.text}`);
        }
        open.delete(key);
        continue;
      }
      if (entry.violation === undefined && now - entry.since > options.boundMs) {
        entry.violation = { key, text: entry.text, since: entry.since, until: undefined };
        violations.push(entry.violation);
        options.log(`VIOLATION (disagreeing for ${((now - entry.since) / 1000).toFixed(1)} s, bound ${options.boundMs / 1000} s): ${entry.text}`);
      } else if (entry.violation !== undefined) {
        entry.violation.text = entry.text;
      }
    }
    if (conclusive) {
      last = problems;
      history.push({ at: now, clean: problems.length === 0 });
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const started = Date.now();
      await tick().catch((error: unknown) => options.log(`checker tick failed: ${error instanceof Error ? error.message : String(error)}`));
      await new Promise((resolve) => setTimeout(resolve, Math.max(50, options.intervalMs - (Date.now() - started))));
    }
  })();

  return {
    violations,
    firstAgreementAfter(at, holdMs = 3_000) {
      let runStart: number | undefined;
      for (const tick of history) {
        if (tick.at < at) continue;
        if (!tick.clean) runStart = undefined;
        else {
          runStart ??= tick.at;
          if (tick.at - runStart >= holdMs) return runStart;
        }
      }
      // Clean to the last tick: agreement that held as long as the soak looked.
      return runStart;
    },
    current: () => last,
    records: () => lastRecords,
    ticks: () => count,
    async stop() {
      stopped = true;
      await loop;
      // A violation still open at the end stays open (until undefined) in the report.
    },
  };
}

/** Reads every source once, in parallel, each failure caught and named. */
export async function observe(sources: {
  readonly containers: () => Promise<readonly SoakContainer[]>;
  readonly servers: () => Promise<readonly SoakServer[]>;
  readonly sidecar: () => Promise<SidecarView | undefined>;
  readonly configured: () => Promise<readonly string[]>;
  readonly transactions: () => Promise<readonly string[]>;
}): Promise<Observation> {
  const errors: Record<string, string> = {};
  const read = async <T>(name: string, reader: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await reader();
    } catch (error) {
      errors[name] = error instanceof Error ? error.message.split('\n')[0] ?? error.message : String(error);
      return undefined;
    }
  };
  // In parallel, so one tick is one moment as nearly as can be: a change that lands between two
  // reads shows as a disagreement for a tick or two, which the bound absorbs.
  const [containers, servers, sidecar, configured, transactions] = await Promise.all([
    read('containers', sources.containers),
    read('servers', sources.servers),
    read('sidecar', sources.sidecar),
    read('configured', sources.configured),
    read('transactions', sources.transactions),
  ]);
  return { at: Date.now(), containers, servers, sidecar, configured, transactions, errors };
}
