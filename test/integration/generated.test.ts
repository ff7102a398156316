// generated/ must match what `npm run generate` writes from the pinned specification.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('generated Data Plane API types', () => {
  it('are up to date with the pinned specification', async () => {
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'devenv/generate-dataplane-types.ts', '--check'], {
      cwd: new URL('../..', import.meta.url).pathname,
    });
    expect(stdout).toContain('is up to date');
  });
});
