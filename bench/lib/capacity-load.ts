// A constant-rate load for the capacity scenario: wrk (the Debian package) paced by a Lua script,
// wrk2-style. Each wrk thread sends on a fixed schedule of slots, `threads × 1000 / rate` ms apart
// (a random first offset); a connection that becomes free takes the next slot and waits for it, so
// the offered rate does not depend on how fast the answers come, as long as a connection is free.
// When none is (every connection waits for an answer), the slot is sent late and counted: then
// the pool is not keeping up and wrk's latencies understate what a user would see (coordinated
// omission), which the probe's verdict treats as not sustained (capacity-search.ts judgeProbe).
//
// The clock is clock_gettime(CLOCK_MONOTONIC) through LuaJIT's FFI (Debian's wrk is built on
// LuaJIT; plain Lua has no sub-second clock). Every run is bounded in time (-d) and in count (the
// script stops a thread at its share), and only the loopback is a target. wrk runs under a shell
// that prints its own /proc stat after wrk ended: the children's CPU time there is wrk's.
import { assertLoopback, parseWrkOutput, runToEnd, withScript, wrkArgs, type WrkResult } from './wrk.js';

const PACED_SCRIPT = `local ffi = require("ffi")
ffi.cdef[[
typedef struct hsc_timespec { long tv_sec; long tv_nsec; } hsc_timespec;
int clock_gettime(int clk_id, hsc_timespec *tp);
]]
local ts = ffi.new("hsc_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end
local threads = {}
function setup(thread)
  table.insert(threads, thread)
end
local interval, limit, late_after, seen = 1, 0, 10, 0
local next_slot = nil
late = 0
max_late = 0
function init(args)
  interval = tonumber(args[2]) * 1000 / tonumber(args[1])
  limit = tonumber(args[3]) or 0
  late_after = tonumber(args[4]) or 10
end
function delay()
  local t = now_ms()
  if next_slot == nil then next_slot = t + math.random() * interval end
  local slot = next_slot
  next_slot = next_slot + interval
  local wait = slot - t
  if wait < 0 then
    if -wait > late_after then late = late + 1 end
    if -wait > max_late then max_late = -wait end
    return 0
  end
  return math.floor(wait)
end
function response(status, headers, body)
  seen = seen + 1
  if limit > 0 and seen >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local l, m = 0, 0
  for _, t in ipairs(threads) do
    l = l + (t:get("late") or 0)
    local tm = t:get("max_late") or 0
    if tm > m then m = tm end
  end
  io.write(string.format("paced: late %d max-late-ms %.1f\\n", l, m))
end
`;

export interface PacedRun extends WrkResult {
  readonly targetPerSecond: number;
  readonly connections: number;
  /** Requests sent more than `lateAfterMs` after their slot. */
  readonly lateSends: number;
  readonly maxLateMs: number;
  /** wrk's own CPU time (user + system), seconds. */
  readonly wrkCpuSeconds: number | undefined;
  /** True when a thread stopped at the count limit. */
  readonly hitRequestLimit: boolean;
}

/** The pacing script's summary line. */
export function parsePacedLine(text: string): { readonly lateSends: number; readonly maxLateMs: number } {
  const match = /^paced: late (\d+) max-late-ms ([\d.]+)$/m.exec(text);
  if (match?.[1] === undefined || match[2] === undefined) throw new Error(`wrk output has no pacing summary:\n${text}`);
  return { lateSends: Number(match[1]), maxLateMs: Number(match[2]) };
}

/**
 * The children's CPU time (cutime + cstime, fields 16 and 17, in clock ticks) from a /proc/<pid>/stat
 * line: for the shell that waited for wrk, wrk's CPU time. Fields are counted from the last ")",
 * since the command name may hold spaces.
 */
export function parseChildrenCpuTicks(statLine: string): number {
  const after = statLine.slice(statLine.lastIndexOf(')') + 1).trim().split(/\s+/);
  const cutime = Number(after[16 - 3]);
  const cstime = Number(after[17 - 3]);
  if (!Number.isFinite(cutime) || !Number.isFinite(cstime)) throw new Error(`/proc stat without children's CPU times: ${statLine}`);
  return cutime + cstime;
}

export interface PacedOptions {
  readonly url: string;
  readonly ratePerSecond: number;
  readonly threads: number;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Total request limit over all threads (a bound against a runaway; default twice the plan). */
  readonly maxRequests?: number;
  /** A send later than this after its slot counts as late (default 10 ms). */
  readonly lateAfterMs?: number;
  readonly timeoutSeconds?: number;
  /** The kernel's clock ticks per second, for wrk's CPU time. */
  readonly ticksPerSecond: number;
}

export async function runPaced(options: PacedOptions): Promise<PacedRun> {
  assertLoopback(options.url);
  if (!(options.ratePerSecond > 0) || options.connections < options.threads) throw new Error('a paced run needs a positive rate and at least one connection per thread');
  const maxRequests = options.maxRequests ?? Math.ceil(options.ratePerSecond * options.durationSeconds * 2) + 100;
  const perThread = Math.max(1, Math.floor(maxRequests / options.threads));
  return withScript('hsc-bench-capacity-wrk-', PACED_SCRIPT, async (script) => {
    const args = [...wrkArgs(options, script), '--', String(options.ratePerSecond), String(options.threads), String(perThread), String(options.lateAfterMs ?? 10)];
    // The shell waits for wrk, then prints its own stat line: its children's CPU is wrk's.
    const shell = 'wrk "$@"; code=$?; echo "capacity-stat: $(cat /proc/$$/stat)"; exit $code';
    const output = await runToEnd('/bin/sh', ['-c', shell, 'sh', ...args], options.durationSeconds);
    const parsed = parseWrkOutput(output);
    const statLine = /^capacity-stat: (.*)$/m.exec(output)?.[1];
    return {
      ...parsed,
      ...parsePacedLine(output),
      targetPerSecond: options.ratePerSecond,
      connections: options.connections,
      wrkCpuSeconds: statLine === undefined ? undefined : parseChildrenCpuTicks(statLine) / options.ticksPerSecond,
      hitRequestLimit: parsed.requests >= perThread * options.threads,
    };
  });
}
