// wrk (the Debian package) as the load generator for throughput and latency, and a parser for
// its text report. wrk has no request-count limit of its own, so a small Lua script stops each
// thread after its share of the count: every load is bounded in time (-d) and in count, and a
// run that hit the count limit is flagged, because wrk then still divides by the full duration.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface WrkResult {
  readonly requests: number;
  readonly durationSeconds: number;
  readonly requestsPerSecond: number;
  /** Latency percentiles from --latency, in seconds. */
  readonly latency: { readonly avg: number; readonly max: number; readonly p50: number; readonly p75: number; readonly p90: number; readonly p99: number };
  readonly socketErrors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  /** wrk counts every answer with a status above 399 here. */
  readonly non2xx3xx: number;
}

const TIME_UNITS: Readonly<Record<string, number>> = { us: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };

/** "552.00us", "1.10ms", "2.00s", "1.00m" → seconds. */
export function parseWrkTime(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  const unit = match?.[2] === undefined ? undefined : TIME_UNITS[match[2]];
  if (match?.[1] === undefined || unit === undefined) throw new Error(`not a wrk duration: ${JSON.stringify(text)}`);
  return Number(match[1]) * unit;
}

/** Parses wrk's report (run with --latency); throws naming the line it could not find. */
export function parseWrkOutput(text: string): WrkResult {
  const need = (pattern: RegExp, what: string): RegExpExecArray => {
    const match = pattern.exec(text);
    if (match === null) throw new Error(`wrk output has no ${what}:\n${text}`);
    return match;
  };
  const group = (match: RegExpExecArray, index: number): string => match[index] ?? '';
  const latencyLine = need(/^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+%?\s*$/m, 'thread latency line');
  const percentile = (p: number): number => parseWrkTime(group(need(new RegExp(`^\\s+${p}%\\s+(\\S+)\\s*$`, 'm'), `${p}% latency (was --latency given?)`), 1));
  const totals = need(/^\s+(\d+) requests in ([\d.]+(?:us|ms|s|m|h)),/m, 'request total');
  const errors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  return {
    requests: Number(group(totals, 1)),
    durationSeconds: parseWrkTime(group(totals, 2)),
    requestsPerSecond: Number(group(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec'), 1)),
    latency: {
      avg: parseWrkTime(group(latencyLine, 1)),
      max: parseWrkTime(group(latencyLine, 3)),
      p50: percentile(50),
      p75: percentile(75),
      p90: percentile(90),
      p99: percentile(99),
    },
    // wrk prints these lines only when a count is not zero.
    socketErrors: {
      connect: Number(errors?.[1] ?? 0),
      read: Number(errors?.[2] ?? 0),
      write: Number(errors?.[3] ?? 0),
      timeout: Number(errors?.[4] ?? 0),
    },
    non2xx3xx: Number(non2xx?.[1] ?? 0),
  };
}

export interface WrkOptions {
  readonly url: string;
  readonly threads: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Total request limit over all threads. */
  readonly maxRequests: number;
  readonly timeoutSeconds?: number;
}

export interface WrkRun extends WrkResult {
  /** True when a thread stopped at the count limit: the rate is then not comparable. */
  readonly hitRequestLimit: boolean;
}

// Each thread counts its own answers (thread-local Lua state) and stops at its share.
const LIMIT_SCRIPT = `local limit = 0
local seen = 0
function init(args)
  limit = tonumber(args[1]) or 0
end
function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then wrk.thread:stop() end
end
`;

/**
 * Runs a wrk command line to its end and answers its standard output. wrk stops by itself after
 * its -d; the guard only kills one that hangs past it.
 */
export function runToEnd(command: string, args: readonly string[], durationSeconds: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const guard = setTimeout(() => child.kill('SIGKILL'), (durationSeconds + 20) * 1000);
    child.on('error', (error) => {
      clearTimeout(guard);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(guard);
      if (code === 0) resolve(stdout);
      else reject(new Error(`wrk exited with ${code}: ${stderr || stdout}`));
    });
  });
}

export async function runWrk(options: WrkOptions): Promise<WrkRun> {
  assertLoopback(options.url);
  const perThread = Math.max(1, Math.floor(options.maxRequests / options.threads));
  return withScript('hsc-bench-wrk-', LIMIT_SCRIPT, async (script) => {
    const output = await runToEnd('wrk', [...wrkArgs(options, script), String(perThread)], options.durationSeconds);
    const parsed = parseWrkOutput(output);
    return { ...parsed, hitRequestLimit: parsed.requests >= perThread * options.threads };
  });
}

/** Loads go to the loopback only. */
export function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]') throw new Error(`wrk may only target the loopback, not ${host}`);
}

/** wrk's own arguments up to the URL; the script's arguments follow. */
export function wrkArgs(
  options: { readonly threads: number; readonly connections: number; readonly durationSeconds: number; readonly timeoutSeconds?: number; readonly url: string },
  script: string,
): string[] {
  return [
    '-t', String(options.threads),
    '-c', String(options.connections),
    '-d', `${options.durationSeconds}s`,
    '--timeout', `${options.timeoutSeconds ?? 5}s`,
    '--latency',
    '-s', script,
    options.url,
  ];
}

/** Runs `use` with a Lua script written to a temporary file, removed afterwards. */
export async function withScript<T>(prefix: string, lua: string, use: (script: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const script = join(dir, 'script.lua');
  await writeFile(script, lua);
  try {
    return await use(script);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
