import { defineConfig } from 'vitest/config';

// Three suites: `unit` is pure and fast (no processes, no network beyond nock);
// `integration` (and `faults`) start real HAProxy, Data Plane API and Docker containers, so its
// files run one at a time (they compete for 2 cores and the Docker daemon).
export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 120_000,
          hookTimeout: 180_000,
          globalSetup: ['test/support/global-setup.ts'],
        },
      },
      {
        // Faults injected into the real components under load (test/faults/world.ts); one file
        // at a time like integration, and a table of verdicts printed at the end.
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          environment: 'node',
          pool: 'forks',
          poolOptions: { forks: { singleFork: true } },
          testTimeout: 180_000,
          hookTimeout: 180_000,
          globalSetup: ['test/support/global-setup.ts', 'test/faults/setup.ts'],
        },
      },
    ],
  },
});
