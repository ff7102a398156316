// The soak's load, and what tells which failed request was whose:
// - paced open-loop load (wrk with the capacity scenario's pacing script, capacity-load.ts) at
//   the soak's rate on GET /, in back-to-back segments of at most 30 s, each bounded in time and
//   count, so a failure is placed in a window of the run and the whole load ends by itself;
// - a few long requests (nginx's /slow?s=2..5, each tagged with its own id) in flight all the
//   time, bounded in count and time;
// - HAProxy's error log (option log-separate-errors, see soak-world.ts): every request that
//   ended in an error, a retry or a redispatch, with its server, timers and termination state.
// wrk counts failures only in total, so a failure is excused only when HAProxy's log shows a
// failed request on the server of a container the soak killed, in flight when it was killed or
// sent to it before HAProxy took it out of rotation; the excused count never exceeds what the
// client saw fail. Everything else is a failure, whatever the cause.
import { open } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { runPaced, type PacedRun } from './capacity-load.js';
import type { Rng } from './soak-rng.js';

export interface Segment {
  readonly index: number;
  readonly from: number;
  readonly to: number;
  readonly targetPerSecond: number;
  readonly sent: number;
  /** Non-2xx/3xx answers plus socket errors (connect, read, write, timeout). */
  readonly failed: number;
  readonly detail: string;
  readonly lateSends: number;
  readonly p99Ms: number;
  /** Set when wrk itself failed: its requests are unknown, and the run fails. */
  readonly error?: string;
}

export interface LongRequest {
  readonly id: string;
  readonly seconds: number;
  readonly sentAt: number;
  readonly endedAt: number;
  /** 0: no answer (reset, refused, timeout). */
  readonly status: number;
  readonly servedBy: string | null;
  readonly error?: string;
}

/** One line of HAProxy's error log (httplog format). */
export interface LogEntry {
  readonly acceptedAt: number;
  /** Ta: total active time of the request (ms); -1 when it did not finish. */
  readonly totalMs: number;
  readonly backend: string;
  readonly server: string;
  readonly status: number;
  readonly termination: string;
  readonly retries: number;
  readonly path: string;
  readonly line: string;
}

export interface CrashWindow {
  readonly server: string;
  readonly from: number;
  readonly to: number;
}

const MONTHS: Readonly<Record<string, number>> = { Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11 };
// 127.0.0.1:40236 [21/Feb/2025:02:55:12.345] fe_http be_app/hsc-web-1 0/0/0/-1/1 502 209 - - SH-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"
const HTTPLOG =
  /^\S+ \[(\d{2})\/(\w{3})\/(\d{4}):(\d{2}):(\d{2}):(\d{2})\.(\d{3})\] \S+ ([^/\s]+)\/(\S+) -?\d+\/-?\d+\/-?\d+\/-?\d+\/\+?(-?\d+) (-?\d+) \+?\d+ \S+ \S+ (\S{4}) \d+\/\d+\/\d+\/\d+\/\+?(\d+) \d+\/\d+ "(?:\S+) (\S+)/;

/** One httplog line, or undefined for anything else HAProxy writes to its log. */
export function parseLogLine(line: string): LogEntry | undefined {
  const m = HTTPLOG.exec(line);
  if (m === null) return undefined;
  const n = (i: number): number => Number(m[i]);
  const month = MONTHS[m[2] ?? ''];
  if (month === undefined) return undefined;
  // HAProxy writes its local time, the same clock and zone as this process's.
  const acceptedAt = new Date(n(3), month, n(1), n(4), n(5), n(6), n(7)).getTime();
  return {
    acceptedAt,
    totalMs: n(10),
    backend: m[8] ?? '',
    server: m[9] ?? '',
    status: n(11),
    termination: m[12] ?? '----',
    retries: n(13),
    path: m[14] ?? '',
    line,
  };
}

/** A request that did not end well as HAProxy saw it: no answer or 5xx, or cut by anything but the client. */
export function looksFailed(entry: LogEntry): boolean {
  const first = entry.termination[0] ?? '-';
  return entry.status < 100 || entry.status >= 500 || (first !== '-' && first !== 'C');
}

/** Follows haproxy.log from its current end, keeping the httplog lines. */
export function tailErrorLog(file: string): { entries(): readonly LogEntry[]; stop(): Promise<void> } {
  const entries: LogEntry[] = [];
  let offset = -1;
  let partial = '';
  let stopped = false;
  const readMore = async (): Promise<void> => {
    const handle = await open(file, 'r').catch(() => undefined);
    if (handle === undefined) return;
    try {
      const { size } = await handle.stat();
      if (offset < 0) offset = size;
      if (size < offset) offset = 0;
      while (offset < size) {
        const buffer = Buffer.alloc(Math.min(1 << 20, size - offset));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
        if (bytesRead === 0) break;
        offset += bytesRead;
        const lines = (partial + buffer.subarray(0, bytesRead).toString('utf8')).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          const entry = parseLogLine(line);
          if (entry !== undefined) entries.push(entry);
        }
      }
    } finally {
      await handle.close();
    }
  };
  const started = readMore();
  const loop = (async () => {
    await started;
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      await readMore().catch(() => undefined);
    }
    await readMore().catch(() => undefined);
  })();
  return {
    entries: () => entries,
    async stop() {
      stopped = true;
      await loop;
    },
  };
}

export interface LoadOptions {
  readonly url: string;
  readonly ratePerSecond: number;
  /** The load ends by this time (ms since the epoch), whatever happens. */
  readonly until: number;
  readonly segmentSeconds: number;
  readonly longConcurrency: number;
  readonly rng: Rng;
  readonly log: (message: string) => void;
}

export interface SoakLoad {
  readonly segments: readonly Segment[];
  readonly long: readonly LongRequest[];
  /** Resolves once both loops ended by themselves (at `until`). */
  readonly done: Promise<void>;
}

const TICKS_PER_SECOND = 100;

/** Paced segments until `until`; one at a time, back to back. */
async function pacedLoop(options: LoadOptions, segments: Segment[]): Promise<void> {
  const host = new URL(options.url).hostname;
  if (host !== '127.0.0.1') throw new Error(`the soak's load goes to 127.0.0.1 only, not ${host}`);
  for (let index = 1; ; index++) {
    const seconds = Math.floor(Math.min(options.segmentSeconds, (options.until - Date.now()) / 1000));
    if (seconds < 2) return;
    const from = Date.now();
    // Enough connections for the rate at ~60 ms per answer; more would only idle.
    const connections = Math.max(8, Math.min(128, Math.ceil(options.ratePerSecond / 16)));
    let run: PacedRun | undefined;
    let error: string | undefined;
    try {
      run = await runPaced({
        url: options.url,
        ratePerSecond: options.ratePerSecond,
        threads: 2,
        connections: connections - (connections % 2),
        durationSeconds: seconds,
        timeoutSeconds: 10,
        ticksPerSecond: TICKS_PER_SECOND,
      });
    } catch (caught) {
      error = caught instanceof Error ? caught.message.split('\n')[0] ?? caught.message : String(caught);
    }
    const to = Date.now();
    const e = run?.socketErrors;
    const failed = run === undefined ? 0 : run.non2xx3xx + (e?.connect ?? 0) + (e?.read ?? 0) + (e?.write ?? 0) + (e?.timeout ?? 0);
    const segment: Segment = {
      index,
      from,
      to,
      targetPerSecond: options.ratePerSecond,
      sent: run?.requests ?? 0,
      failed,
      detail:
        run === undefined
          ? `wrk failed: ${error ?? ''}`
          : `non-2xx ${run.non2xx3xx}, connect ${e?.connect ?? 0}, read ${e?.read ?? 0}, write ${e?.write ?? 0}, timeout ${e?.timeout ?? 0}`,
      lateSends: run?.lateSends ?? 0,
      p99Ms: (run?.latency.p99 ?? NaN) * 1000,
      ...(error === undefined ? {} : { error }),
    };
    segments.push(segment);
    options.log(
      `load segment ${index}: ${segment.sent} requests in ${((to - from) / 1000).toFixed(0)} s (${(segment.sent / ((to - from) / 1000)).toFixed(0)}/s), ` +
        `${failed} failed${failed > 0 || error !== undefined ? ` (${segment.detail})` : ''}, p99 ${segment.p99Ms.toFixed(1)} ms, ${segment.lateSends} late sends`,
    );
    // wrk could not run at all (HAProxy gone): a segment that failed whole, and a pause before
    // the next one, not a loop of thousands of them in a second.
    if (run === undefined) await new Promise((resolve) => setTimeout(resolve, 1_000));
  }
}

/**
 * One GET on a connection of its own. A client that keeps connections alive between long
 * requests sends some on a connection HAProxy is closing as idle (timeout http-keep-alive): a
 * race of the client's, which no server change causes, so the long requests do not keep any.
 */
function getOnNewConnection(url: string, timeoutMs: number): Promise<{ status: number; servedBy: string | null }> {
  return new Promise((resolve, reject) => {
    const request = httpGet(url, { agent: false, timeout: timeoutMs }, (response) => {
      response.on('data', () => undefined);
      response.on('error', reject);
      // Aborted: the body was cut (the connection closed before its end).
      response.on('aborted', () => reject(new Error(`response cut after status ${response.statusCode ?? '?'}`)));
      response.on('end', () => {
        if (!response.complete) reject(new Error(`response cut after status ${response.statusCode ?? '?'}`));
        else resolve({ status: response.statusCode ?? 0, servedBy: (response.headers['x-served-by'] as string | undefined) ?? null });
      });
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
  });
}

/** `concurrency` clients, each sending one long request after another until `until`. */
async function longLoop(options: LoadOptions, results: LongRequest[]): Promise<void> {
  let next = 0;
  // A bound on the count, beside the one in time: one request per 2 s per client at most.
  const maxRequests = Math.ceil(((options.until - Date.now()) / 2_000) * options.longConcurrency) + options.longConcurrency;
  const client = async (): Promise<void> => {
    for (;;) {
      const seconds = 2 + Math.floor(options.rng() * 4);
      if (Date.now() + seconds * 1000 + 1_000 > options.until || next >= maxRequests) return;
      const id = `L${++next}`;
      const sentAt = Date.now();
      let status = 0;
      let servedBy: string | null = null;
      let error: string | undefined;
      try {
        ({ status, servedBy } = await getOnNewConnection(`${options.url}/slow?s=${seconds}&soak=${id}`, (seconds + 20) * 1000));
      } catch (caught) {
        error = caught instanceof Error ? caught.message : String(caught);
      }
      const result: LongRequest = { id, seconds, sentAt, endedAt: Date.now(), status, servedBy, ...(error === undefined ? {} : { error }) };
      results.push(result);
      if (status !== 200) options.log(`long request ${id} (${seconds} s) failed: ${status === 0 ? (error ?? 'no answer') : `status ${status}`}`);
      await new Promise((resolve) => setTimeout(resolve, 200 + Math.floor(options.rng() * 800)));
    }
  };
  await Promise.all(Array.from({ length: options.longConcurrency }, () => client()));
}

export function startSoakLoad(options: LoadOptions): SoakLoad {
  const segments: Segment[] = [];
  const long: LongRequest[] = [];
  const done = Promise.all([pacedLoop(options, segments), longLoop(options, long)]).then(() => undefined);
  return { segments, long, done };
}

export interface Attribution {
  readonly sent: number;
  readonly failed: number;
  /** Failed on a container the soak killed (HAProxy's log names its server, within its crash window). */
  readonly excused: number;
  readonly unexcused: number;
  readonly longSent: number;
  readonly longFailed: number;
  readonly lateSends: number;
  readonly wrkErrors: readonly string[];
  /** The failed-looking log lines no crash explains, grouped: what to look at first. */
  readonly unexplainedLog: readonly string[];
  /** Segments with failures, for placing them against the events. */
  readonly failedSegments: readonly Segment[];
  /** The long requests that failed, each with what the soak was doing then. */
  readonly longFailures: readonly string[];
}

const inWindow = (entry: LogEntry, windows: readonly CrashWindow[]): boolean =>
  windows.some((w) => w.server === entry.server && entry.acceptedAt <= w.to && entry.acceptedAt + Math.max(0, entry.totalMs) >= w.from);

/**
 * Failed requests, and which of them a crash the soak caused explains. `context` names what the
 * soak was doing at a moment (the event just before it), to place the rest.
 */
export function attribute(load: SoakLoad, entries: readonly LogEntry[], windows: readonly CrashWindow[], context: (at: number) => string): Attribution {
  const failedEntries = entries.filter(looksFailed);
  const onCrashed = failedEntries.filter((e) => inWindow(e, windows));
  // The paced load: what its log lines on a killed container explain, never more than it saw fail.
  const pacedFailed = load.segments.reduce((sum, s) => sum + s.failed, 0);
  const pacedExcused = Math.min(pacedFailed, onCrashed.filter((e) => !e.path.startsWith('/slow')).length);
  // The long requests, one by one: each carries its id into HAProxy's log.
  const longFailed = load.long.filter((r) => r.status !== 200);
  const excusedBy = new Map<string, string>();
  for (const request of longFailed) {
    const entry = onCrashed.find((e) => new URLSearchParams(e.path.split('?')[1] ?? '').get('soak') === request.id);
    if (entry !== undefined) excusedBy.set(request.id, entry.server);
  }
  const longExcused = excusedBy.size;
  const failed = pacedFailed + longFailed.length;
  const excused = pacedExcused + longExcused;
  const groups = new Map<string, { count: number; first: number; last: number }>();
  for (const entry of failedEntries.filter((e) => !inWindow(e, windows))) {
    const key = `${entry.backend}/${entry.server} status ${entry.status} ${entry.termination}${entry.path.startsWith('/slow') ? ' (long request)' : ''} ${context(entry.acceptedAt)}`;
    const group = groups.get(key) ?? { count: 0, first: entry.acceptedAt, last: entry.acceptedAt };
    group.count++;
    group.last = Math.max(group.last, entry.acceptedAt);
    group.first = Math.min(group.first, entry.acceptedAt);
    groups.set(key, group);
  }
  const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 23);
  return {
    sent: load.segments.reduce((sum, s) => sum + s.sent, 0) + load.long.length,
    failed,
    excused,
    unexcused: failed - excused,
    longSent: load.long.length,
    longFailed: longFailed.length,
    lateSends: load.segments.reduce((sum, s) => sum + s.lateSends, 0),
    wrkErrors: load.segments.filter((s) => s.error !== undefined).map((s) => `segment ${s.index}: ${s.error ?? ''}`),
    unexplainedLog: [...groups.entries()].map(([key, g]) => `${g.count} × ${key}, ${clock(g.first)}–${clock(g.last)} UTC`),
    failedSegments: load.segments.filter((s) => s.failed > 0 || s.error !== undefined),
    longFailures: longFailed.map((r) => {
      const on = excusedBy.get(r.id);
      const verdict = on === undefined ? 'NOT excused' : `excused: on ${on}, killed by the soak`;
      return `${r.id} (${r.seconds} s) sent ${clock(r.sentAt)}, ended ${clock(r.endedAt)} UTC: ${r.status === 0 ? (r.error ?? 'no answer') : `status ${r.status}`} ${context(r.endedAt)}; ${verdict}`;
    }),
  };
}
