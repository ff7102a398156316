// The capacity scenario's processes (HAProxy from devenv/localenv.ts, its sidecar, wrk's scripts,
// the stack's secrets) live under a private temporary directory, /tmp/hsc-capacity-run-<random>/,
// instead of directly under /tmp. The bench's sweep, which every bench run does when it starts
// and ends, kills the processes whose command line holds /tmp/hsc-bench-… and removes those
// directories: on a machine shared by several sessions, another session's bench run would
// otherwise take this scenario's HAProxy and sidecar in the middle of a measurement (seen: three
// runs lost so). Only the capacity scenario's own sweep (sweepPrivateLeftovers, at its start)
// removes what a crashed capacity run left under that prefix.
import { cp, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killProcessesWhere } from '../../devenv/children.js';
import type { SidecarBuild } from './sidecar-process.js';

const PRIVATE_PREFIX = 'hsc-capacity-run-';

export interface PrivateTmp {
  readonly dir: string;
  /** A copy of `build` under the private directory (its node_modules stays a link). */
  copyBuild(build: SidecarBuild): Promise<SidecarBuild>;
  /** Puts TMPDIR back and removes the directory. */
  release(): Promise<void>;
}

/**
 * Makes the private directory and points TMPDIR (what os.tmpdir() answers, so startLocalHaproxy's
 * and mkdtemp's directories) at it until release(). The bench runs one scenario at a time, so no
 * other code of this process sees the change while it lasts.
 */
export async function enterPrivateTmp(): Promise<PrivateTmp> {
  const saved = process.env.TMPDIR;
  const dir = await mkdtemp(join(tmpdir(), PRIVATE_PREFIX));
  process.env.TMPDIR = dir;
  return {
    dir,
    async copyBuild(build) {
      const copy = join(dir, 'sidecar-build');
      await cp(build.dir, copy, { recursive: true, verbatimSymlinks: true });
      return { dir: copy, entry: join(copy, 'sidecar', 'main.js'), remove: () => rm(copy, { recursive: true, force: true }) };
    },
    async release() {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Kills HAProxy and sidecar processes a crashed capacity run left, by their directory, and removes the directories. */
export async function sweepPrivateLeftovers(): Promise<number> {
  const root = join(tmpdir(), PRIVATE_PREFIX);
  const killed = killProcessesWhere((cmdline) => cmdline.includes(root) && /(^|\/)haproxy\s|\/sidecar\/main\.js/.test(cmdline));
  for (const entry of (await readdir(tmpdir())).filter((name) => name.startsWith(PRIVATE_PREFIX))) {
    await rm(join(tmpdir(), entry), { recursive: true, force: true });
  }
  return killed;
}
