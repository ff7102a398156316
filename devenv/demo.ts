// The README's run command (after setup): a local HAProxy with two nginx containers behind
// it, the Data Plane API beside it where the pinned binary is available, and the addresses
// and generated credentials printed. Runs until Ctrl-C (or exits at once with --once) and
// cleans up everything it started. --prometheus also starts a real Prometheus beside it
// (devenv/prometheus.ts) with the stack's recording and alert rules, scraping HAProxy and the
// sidecar, so the dashboards' queries (grafana/dashboards) can be tried against live data.
import { removeOwnedContainers, startNginx } from './containers.js';
import { startLocalHaproxy, sweepLeftovers, type LocalHaproxy } from './localenv.js';
import { startLocalPrometheus, STACK_RULE_FILES, type LocalPrometheus, type ScrapeTarget } from './prometheus.js';
import { dataplaneApiBinary, readPinnedVersions } from './versions.js';
import { loadConfig } from '../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../sidecar/main.js';
import { eventuallyServing } from './wait.js';

/** The demo's containers opt in with this label prefix (haproxy.enable=true). */
const DEMO_LABEL_PREFIX = 'haproxy';

const once = process.argv.includes('--once');
const withPrometheus = process.argv.includes('--prometheus');
const out = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};

/** The sidecar, in this process, managing the backend from the containers' labels. */
async function startManagingSidecar(haproxy: LocalHaproxy): Promise<RunningSidecar> {
  const config = loadConfig({
    env: {
      HSC_DATAPLANE_URL: haproxy.dataplaneUrl,
      HSC_DATAPLANE_USERNAME: haproxy.dataplaneUser,
      HSC_DATAPLANE_PASSWORD: haproxy.dataplanePassword,
      HSC_DOCKER_ADDRESS_MODE: 'published',
      HSC_DOCKER_LABEL_PREFIX: DEMO_LABEL_PREFIX,
      HSC_DEFAULT_BACKEND: haproxy.backend,
      HSC_HTTP_PORT: '0',
      HSC_LOG_LEVEL: process.env.HSC_LOG_LEVEL ?? 'info',
    },
  });
  return startSidecar(config);
}

async function main(): Promise<void> {
  await sweepLeftovers('demo');
  await removeOwnedContainers('demo');
  const binary = dataplaneApiBinary();
  const labels = { [`${DEMO_LABEL_PREFIX}.enable`]: 'true' };
  const containers = await Promise.all([1, 2].map((n) => startNginx({ owner: 'demo', name: `demo-nginx-${n}`, labels })));
  const haproxy = await startLocalHaproxy({
    purpose: 'demo',
    withDataplane: binary !== undefined,
    // Without the Data Plane API the containers go into haproxy.cfg directly.
    manualServers:
      binary === undefined ? containers.map((c, i) => ({ name: `nginx-${i + 1}`, address: '127.0.0.1', port: c.hostPort })) : [],
  });
  let sidecar: RunningSidecar | undefined;
  let prometheus: LocalPrometheus | undefined;
  const cleanup = async (): Promise<void> => {
    await prometheus?.stop();
    await sidecar?.stop();
    await haproxy.stop();
    await removeOwnedContainers('demo');
  };
  try {
    if (binary !== undefined) {
      sidecar = await startManagingSidecar(haproxy);
      await eventuallyServing(haproxy.frontendUrl, containers.length, 30_000);
    }
    if (withPrometheus) {
      // The stack's job names, which its rules and the dashboards select on. A 5 s interval
      // (the stack scrapes every 15 s) so graphs move while someone watches.
      const targets: ScrapeTarget[] = [{ job: 'haproxy', targets: [new URL(haproxy.metricsUrl).host] }];
      if (sidecar !== undefined) targets.push({ job: 'sidecar', targets: [`127.0.0.1:${sidecar.port}`] });
      prometheus = await startLocalPrometheus({ purpose: 'demo', scrapeTargets: targets, ruleFiles: STACK_RULE_FILES, intervalSeconds: 5 });
    }
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
    out(
      sidecar === undefined
        ? '  sidecar              not started: it writes through the Data Plane API; the containers were put in haproxy.cfg by hand'
        : `  sidecar              http://127.0.0.1:${sidecar.port}/metrics   (servers hsc-demo-nginx-1 and -2 on the stats page)`,
    );
    out(
      prometheus === undefined
        ? '  Prometheus           not started (add --prometheus)'
        : `  Prometheus           ${prometheus.url}/   (scrapes HAProxy${sidecar === undefined ? '' : ' and the sidecar'} every 5 s, with the stack's rules)`,
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
