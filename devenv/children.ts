// Child processes (HAProxy, the Data Plane API, Prometheus, …) that must die with the process that
// started them, even when it exits without stopping them. One set and one exit hook per process:
// vitest re-imports modules for every test file in the same worker, and a hook per import would
// pile up.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

const KEY = Symbol.for('haproxy-scaling-sidecar.children');
type Registry = { children: Set<ChildProcess> };
const holder = globalThis as typeof globalThis & { [KEY]?: Registry };

function registry(): Registry {
  let found = holder[KEY];
  if (found === undefined) {
    const created: Registry = { children: new Set() };
    process.once('exit', () => {
      for (const child of created.children) child.kill('SIGKILL');
    });
    holder[KEY] = created;
    found = created;
  }
  return found;
}

/** The set every started child goes into until it is stopped. */
export const runningChildren = (): Set<ChildProcess> => registry().children;

/**
 * SIGKILLs every other process whose command line (arguments joined by spaces) `matches`, and
 * returns how many: how sweeps find what a crashed run left behind, by what it was started with.
 */
export function killProcessesWhere(matches: (cmdline: string) => boolean): number {
  let killed = 0;
  for (const pid of readdirSync('/proc').filter((entry) => /^\d+$/.test(entry))) {
    if (Number(pid) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      continue; // gone already, or not ours to read
    }
    if (!matches(cmdline)) continue;
    try {
      process.kill(Number(pid), 'SIGKILL');
      killed++;
    } catch {
      // Already gone.
    }
  }
  return killed;
}
