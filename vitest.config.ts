import { defineConfig } from 'vitest/config';

// Two suites: `unit` is pure and fast (no processes, no network beyond nock);
// `integration` starts real HAProxy, Data Plane API and Docker containers, so its
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
    ],
  },
});
