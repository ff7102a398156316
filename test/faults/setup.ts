// The fault suite's own global setup, after the integration suite's (which sweeps leftovers):
// builds the sidecar once for every file (each fault runs it as its own process), names the
// file the verdicts go into, and prints them as one table when the suite ends.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { buildSidecar } from '../../bench/lib/sidecar-process.js';
import { verdictTable } from './verdicts.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** The compiled sidecar (bench/lib/sidecar-process.ts buildSidecar). */
    faultsSidecarBuild: string;
    /** JSON lines, one verdict each (verdicts.ts). */
    faultsVerdictFile: string;
  }
}

export async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'hsc-test-faults-'));
  const build = await buildSidecar('test').catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  project.provide('faultsSidecarBuild', build.dir);
  project.provide('faultsVerdictFile', join(dir, 'verdicts.jsonl'));
  return async () => {
    process.stdout.write(`\n${verdictTable(join(dir, 'verdicts.jsonl'))}\n\n`);
    await build.remove();
    await rm(dir, { recursive: true, force: true });
  };
}
