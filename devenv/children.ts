// Child processes (HAProxy, the Data Plane API, Prometheus, …) that must die with the process that
// started them, even when it exits without stopping them. One set and one exit hook per process:
// vitest re-imports modules for every test file in the same worker, and a hook per import would
// pile up.
import type { ChildProcess } from 'node:child_process';

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
