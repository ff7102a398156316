// One process's resident memory and CPU time, read from /proc, so the sidecar's figures are its
// own (a child process) and not the benchmark's.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** VmRSS (and VmHWM, the peak) from /proc/<pid>/status, in bytes. */
export function parseProcStatus(text: string): { readonly rssBytes: number; readonly peakRssBytes: number } {
  const kib = (field: string): number => {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
    if (match?.[1] === undefined) throw new Error(`/proc status has no ${field}`);
    return Number(match[1]) * 1024;
  };
  return { rssBytes: kib('VmRSS'), peakRssBytes: kib('VmHWM') };
}

/**
 * utime + stime (fields 14 and 15) from /proc/<pid>/stat, in clock ticks. The command name
 * (field 2) is in parentheses and may itself hold spaces or parentheses, so the fields are
 * counted from the last ")".
 */
export function parseProcStatCpuTicks(text: string): number {
  const after = text.slice(text.lastIndexOf(')') + 1).trim().split(/\s+/);
  // `after` starts at field 3 (state): field n is after[n - 3].
  const utime = Number(after[14 - 3]);
  const stime = Number(after[15 - 3]);
  if (!Number.isFinite(utime) || !Number.isFinite(stime)) throw new Error(`/proc stat without CPU times: ${text}`);
  return utime + stime;
}

let ticksPerSecond: number | undefined;

/** The kernel's USER_HZ (almost always 100); the unit of the CPU times in /proc. */
export function clockTicksPerSecond(): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  if (!(ticksPerSecond > 0)) throw new Error('getconf CLK_TCK gave no tick rate');
  return ticksPerSecond;
}

export interface ProcessSample {
  /** performance.now() of the reading, ms. */
  readonly at: number;
  readonly rssBytes: number;
  readonly peakRssBytes: number;
  readonly cpuSeconds: number;
}

export async function sampleProcess(pid: number): Promise<ProcessSample> {
  const [status, stat] = await Promise.all([readFile(`/proc/${pid}/status`, 'utf8'), readFile(`/proc/${pid}/stat`, 'utf8')]);
  return { at: performance.now(), ...parseProcStatus(status), cpuSeconds: parseProcStatCpuTicks(stat) / clockTicksPerSecond() };
}

/** CPU used between two samples, as a fraction of one core. */
export function cpuShare(from: ProcessSample, to: ProcessSample): number {
  const seconds = (to.at - from.at) / 1000;
  return seconds > 0 ? (to.cpuSeconds - from.cpuSeconds) / seconds : NaN;
}

/** The pid of the first process whose command name (/proc/<pid>/comm) is `name`; for reading only. */
export function findProcessByName(name: string): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() === name) return Number(entry);
    } catch {
      // Gone since the listing.
    }
  }
  return undefined;
}
