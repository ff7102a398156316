// The run command's load: open loop (requests leave on a schedule, whatever the answers do), so an
// overloaded pool shows up as latency and failures instead of as a generator that slows down with
// it. The schedule is a list of phases with a linear rate each; the load is bounded in requests in
// flight, in total requests and in time, and stops by itself at the end of its last phase (or
// earlier, through stop()). Every answer other than a 2xx and every socket error or timeout
// counts as failed; a request the generator could not send because too many were in flight is
// counted apart (it means latencies above maxInFlight / rate, a failure of the run too).
import { performance } from 'node:perf_hooks';

export interface LoadPhase {
  readonly name: string;
  readonly durationMs: number;
  /** Requests per second at the start of the phase… */
  readonly fromRps: number;
  /** …and at its end, linear in between. */
  readonly toRps: number;
}

export interface LoadOptions {
  /** Loopback only. */
  readonly url: string;
  readonly phases: readonly LoadPhase[];
  readonly maxInFlight: number;
  readonly requestTimeoutMs: number;
}

export interface LoadWindow {
  readonly seconds: number;
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** Of the requests answered in the window; undefined when none was. */
  readonly p99Ms: number | undefined;
}

export interface LoadTotals {
  readonly sent: number;
  readonly ok: number;
  readonly failed: number;
  /** Requests the schedule asked for that were not sent: too many in flight. */
  readonly notSent: number;
  /** Failed requests by kind: an HTTP status, "timeout" or the socket error's code. */
  readonly failures: Readonly<Record<string, number>>;
  readonly p50Ms: number | undefined;
  readonly p99Ms: number | undefined;
  readonly maxMs: number | undefined;
}

export interface OpenLoopLoad {
  /** ms since the epoch when the first phase began. */
  readonly startedAt: number;
  /** When the named phase begins on the schedule (ms since the epoch). */
  phaseStart(name: string): number;
  /** The phase the schedule is in now; undefined after the last one. */
  currentPhase(): LoadPhase | undefined;
  /** The scheduled rate now. */
  offeredRps(): number;
  /** What happened since the previous call (or the start). */
  window(): LoadWindow;
  totals(): LoadTotals;
  /** Stops sending, waits for the requests in flight and returns the totals. */
  stop(): Promise<LoadTotals>;
  /** Resolves when the schedule ended and every request in flight has been answered. */
  readonly done: Promise<LoadTotals>;
}

const TICK_MS = 5;
/** After a stalled event loop, at most this many requests leave in one tick. */
const MAX_CATCH_UP = 50;

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]' && host !== 'localhost') throw new Error(`the load may only target the loopback, not ${host}`);
}

/** Requests the schedule asks for from its start until `elapsedMs`. */
function scheduledBy(phases: readonly LoadPhase[], elapsedMs: number): number {
  let total = 0;
  let offset = 0;
  for (const phase of phases) {
    const t = Math.min(Math.max(elapsedMs - offset, 0), phase.durationMs) / 1000;
    const d = phase.durationMs / 1000;
    total += phase.fromRps * t + ((phase.toRps - phase.fromRps) * t * t) / (2 * d);
    offset += phase.durationMs;
    if (elapsedMs <= offset) break;
  }
  return total;
}

function percentile(sorted: readonly number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function failureKind(error: unknown): string {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'timeout';
  const cause = error instanceof Error ? (error.cause as { code?: unknown } | undefined) : undefined;
  return typeof cause?.code === 'string' ? cause.code : error instanceof Error ? error.message : String(error);
}

export function startOpenLoopLoad(options: LoadOptions): OpenLoopLoad {
  assertLoopback(options.url);
  if (options.phases.length === 0 || options.phases.some((p) => !(p.durationMs > 0) || p.fromRps < 0 || p.toRps < 0)) {
    throw new Error('the load needs phases with a positive duration and rates >= 0');
  }
  const startedAt = Date.now();
  const startedPerf = performance.now();
  const scheduleMs = options.phases.reduce((sum, p) => sum + p.durationMs, 0);
  // The whole schedule, rounded up: a hard bound on what this load can ever send.
  const maxRequests = Math.ceil(scheduledBy(options.phases, scheduleMs)) + 1;
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let sent = 0;
  let ok = 0;
  let failed = 0;
  let notSent = 0;
  let inFlight = 0;
  let stopped = false;
  let windowStart = performance.now();
  let windowSent = 0;
  let windowOk = 0;
  let windowFailed = 0;
  let windowLatencies: number[] = [];

  const settled: Array<() => void> = [];
  const whenIdle = (): Promise<void> => (inFlight === 0 ? Promise.resolve() : new Promise((resolve) => settled.push(resolve)));

  const fail = (kind: string): void => {
    failed++;
    windowFailed++;
    failures[kind] = (failures[kind] ?? 0) + 1;
  };

  const send = async (): Promise<void> => {
    inFlight++;
    sent++;
    windowSent++;
    const begun = performance.now();
    try {
      const response = await fetch(options.url, { signal: AbortSignal.timeout(options.requestTimeoutMs) });
      await response.arrayBuffer();
      const ms = performance.now() - begun;
      if (response.status >= 200 && response.status < 300) {
        ok++;
        windowOk++;
        latencies.push(ms);
        windowLatencies.push(ms);
      } else fail(String(response.status));
    } catch (error) {
      fail(failureKind(error));
    } finally {
      inFlight--;
      if (inFlight === 0) for (const resolve of settled.splice(0)) resolve();
    }
  };

  let dispatched = 0; // sent + notSent: what the schedule asked for so far
  let resolveEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => {
    resolveEnded = resolve;
  });
  const tick = (): void => {
    if (stopped) return;
    const elapsed = performance.now() - startedPerf;
    const due = Math.min(Math.floor(scheduledBy(options.phases, elapsed)), maxRequests);
    for (let n = 0; dispatched < due && n < MAX_CATCH_UP; n++) {
      dispatched++;
      if (inFlight >= options.maxInFlight) notSent++;
      else void send();
    }
    if (elapsed >= scheduleMs || dispatched >= maxRequests) {
      stopped = true;
      resolveEnded();
      return;
    }
    setTimeout(tick, TICK_MS);
  };
  setTimeout(tick, 0);

  const totals = (): LoadTotals => {
    const sorted = [...latencies].sort((a, b) => a - b);
    return {
      sent,
      ok,
      failed,
      notSent,
      failures: { ...failures },
      p50Ms: percentile(sorted, 50),
      p99Ms: percentile(sorted, 99),
      maxMs: sorted[sorted.length - 1],
    };
  };

  // Bounded in time too: the schedule, then at most one request timeout for the last answers.
  const done = ended.then(async () => {
    await whenIdle();
    return totals();
  });

  const phaseStart = (name: string): number => {
    let offset = 0;
    for (const phase of options.phases) {
      if (phase.name === name) return startedAt + offset;
      offset += phase.durationMs;
    }
    throw new Error(`no load phase ${name}`);
  };

  const currentPhase = (): LoadPhase | undefined => {
    if (stopped) return undefined;
    let offset = 0;
    const elapsed = performance.now() - startedPerf;
    for (const phase of options.phases) {
      offset += phase.durationMs;
      if (elapsed < offset) return phase;
    }
    return undefined;
  };

  return {
    startedAt,
    phaseStart,
    currentPhase,
    offeredRps() {
      const phase = currentPhase();
      if (phase === undefined) return 0;
      const into = performance.now() - startedPerf - (phaseStart(phase.name) - startedAt);
      return phase.fromRps + ((phase.toRps - phase.fromRps) * Math.min(Math.max(into, 0), phase.durationMs)) / phase.durationMs;
    },
    window() {
      const now = performance.now();
      const sorted = windowLatencies.sort((a, b) => a - b);
      const result: LoadWindow = { seconds: (now - windowStart) / 1000, sent: windowSent, ok: windowOk, failed: windowFailed, p99Ms: percentile(sorted, 99) };
      windowStart = now;
      windowSent = 0;
      windowOk = 0;
      windowFailed = 0;
      windowLatencies = [];
      return result;
    },
    totals,
    async stop() {
      stopped = true;
      resolveEnded();
      return done;
    },
    done,
  };
}
