// The README's run command (after setup): a local HAProxy with two nginx containers behind
// it, the Data Plane API beside it where the pinned binary is available, and the addresses
// and generated credentials printed. Runs until Ctrl-C (or exits at once with --once) and
// cleans up everything it started.
import { removeOwnedContainers, startNginx, type TestContainer } from './containers.js';
import { startLocalHaproxy, sweepLeftovers, type LocalHaproxy } from './localenv.js';
import { dataplaneApiBinary, readPinnedVersions } from './versions.js';
import { applyInTransaction, createDataplaneClient } from '../sidecar/dataplane/index.js';

const once = process.argv.includes('--once');
const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

async function addThroughDataplane(haproxy: LocalHaproxy, containers: readonly TestContainer[]): Promise<void> {
  const client = createDataplaneClient({
    url: haproxy.dataplaneUrl ?? '',
    username: haproxy.dataplaneUser,
    password: haproxy.dataplanePassword,
    timeoutMs: 5_000,
    retries: 2,
  });
  const result = await applyInTransaction(
    client,
    async (transactionId) => {
      for (const [index, container] of containers.entries()) {
        const server = { name: `nginx-${index + 1}`, address: '127.0.0.1', port: container.hostPort };
        const added = await client.addServer(haproxy.backend, { ...server, check: { intervalMs: 1000, fall: 2, rise: 1 } }, transactionId);
        if (!added.ok) return added;
      }
      return { ok: true, value: undefined };
    },
    20_000,
  );
  if (!result.ok) throw new Error(`${result.error.operation}: ${result.error.message}`);
}

async function main(): Promise<void> {
  await sweepLeftovers('demo');
  await removeOwnedContainers('demo');
  const binary = dataplaneApiBinary();
  const containers = await Promise.all([startNginx({ owner: 'demo' }), startNginx({ owner: 'demo' })]);
  const haproxy = await startLocalHaproxy({
    purpose: 'demo',
    withDataplane: binary !== undefined,
    // Without the Data Plane API the containers go into haproxy.cfg directly.
    manualServers:
      binary === undefined ? containers.map((c, i) => ({ name: `nginx-${i + 1}`, address: '127.0.0.1', port: c.hostPort })) : [],
  });
  const cleanup = async (): Promise<void> => {
    await haproxy.stop();
    await removeOwnedContainers('demo');
  };
  try {
    if (binary !== undefined) await addThroughDataplane(haproxy, containers);
    const release = readPinnedVersions().DATAPLANEAPI_RELEASE;
    out('HAProxy local environment is up');
    out(`  frontend             ${haproxy.frontendUrl}/`);
    out(`  stats page           ${haproxy.statsUrl}   (user ${haproxy.statsUser}, password ${haproxy.statsPassword})`);
    out(`  Prometheus exporter  ${haproxy.metricsUrl}`);
    out(
      haproxy.dataplaneUrl === undefined
        ? `  Data Plane API       not running: no ${release} binary is available (README: Data Plane API availability)`
        : `  Data Plane API       ${haproxy.dataplaneUrl}/v3   (user ${haproxy.dataplaneUser}, password ${haproxy.dataplanePassword})`,
    );
    out(`  runtime socket       ${haproxy.runtimeSocket}`);
    out(`  nginx containers     ${containers.map((c) => `${c.hostname} (127.0.0.1:${c.hostPort})`).join(', ')}`);
    out();
    out('Six requests through the frontend (round robin over the containers):');
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    for (let i = 0; i < 6; i += 1) {
      const response = await fetch(`${haproxy.frontendUrl}/`);
      out(`  ${response.status} served by ${response.headers.get('x-served-by') ?? '?'}`);
      await response.text();
    }
    if (once) return;
    out();
    out('Press Ctrl-C to stop and remove everything.');
    await new Promise<void>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
  } finally {
    await cleanup();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
