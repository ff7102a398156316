// The README's run command, as a user runs it: `devenv/demo.ts --once` brings up HAProxy, a
// Compose-style nginx pool and the sidecar, runs its load (ramp, hold, drop), and must exit 0
// with a summary that shows the pool grew above its minimum, came back, and not one request
// failed. The runtime driver, which every machine has; the child cleans up after itself.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const repoRoot = fileURLToPath(new URL('../..', import.meta.url));
const TIMEOUT_MS = 300_000;

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly output: string;
}

function runOnce(): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn('npx', ['tsx', 'devenv/demo.ts', '--once', '--driver', 'runtime'], {
      cwd: repoRoot,
      env: process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so a signal reaches npx, tsx and the run alike.
      detached: true,
    });
    const signalGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    // SIGINT first, so the run removes what it started; SIGKILL if it does not stop.
    const interrupt = setTimeout(() => signalGroup('SIGINT'), TIMEOUT_MS - 30_000);
    const kill = setTimeout(() => signalGroup('SIGKILL'), TIMEOUT_MS - 5_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(interrupt);
      clearTimeout(kill);
      resolve({ code, signal, output });
    });
  });
}

describe('the run command (devenv/demo.ts --once)', () => {
  it(
    'scales the pool up under the ramp and back to the minimum after it, with no failed request',
    async () => {
      const run = await runOnce();
      const context = `exit ${run.code ?? run.signal}\n${run.output}`;
      expect(run.code, context).toBe(0);
      const failed = /^\s*failed requests\s+(\d+)/m.exec(run.output)?.[1];
      const peak = /^\s*peak instances\s+(\d+) serving/m.exec(run.output)?.[1];
      const minimum = /\(minimum (\d+), maximum \d+\)/.exec(run.output)?.[1];
      expect(failed, context).toBe('0');
      expect(Number(peak), context).toBeGreaterThan(Number(minimum));
      expect(run.output, context).toMatch(/^\s*load drop → back to the minimum\s+\d+\.\d s/m);
      expect(run.output).toMatch(/^\s*result\s+PASS$/m);
    },
    TIMEOUT_MS,
  );
});
