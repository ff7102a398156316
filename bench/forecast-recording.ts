// npx tsx bench/forecast-recording.ts [-- --rate 176] [--minutes 3] [--driver runtime] [--reloads 2] [--out file]
// Records what the autoscaler's forecast is fed at a steady load: a pool of two nginx replicas,
// the sidecar as its own process (interval 5 s, so the forecast looks 25 s ahead as in issue 24's
// run; target 100 req/s per instance; forecast on), a paced open loop on / at ~176 req/s, and
// HAProxy reloaded through its master CLI now and then (the Data Plane API driver reloads on a
// scale-down; with the runtime driver the reloads are made by hand). Writes every decision's
// inputs and forecast (GET /v1/autoscaler) as the fixture of the forecast's table test
// (test/unit/autoscale/steady-load.test.ts). Loopback only; bounded in time and count.
import { writeFile } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { removeOwnedContainers } from '../devenv/containers.js';
import { sweepLeftovers } from '../devenv/localenv.js';
import type { DriverChoice } from '../devenv/sidecar-env.js';
import { startPool, type BenchPool } from './lib/pool.js';
import { buildSidecar, type SidecarBuild, type SidecarProcess } from './lib/sidecar-process.js';
import { watchDecisions } from './lib/timeline.js';
import { startTraffic } from './lib/traffic.js';

const { values } = parseArgs({
  options: {
    rate: { type: 'string', default: '176' },
    minutes: { type: 'string', default: '3' },
    driver: { type: 'string', default: 'runtime' },
    reloads: { type: 'string', default: '2' },
    out: { type: 'string', default: 'test/unit/autoscale/fixtures/steady-load.json' },
  },
});
const rate = Number(values.rate);
const minutes = Number(values.minutes);
const reloads = Number(values.reloads);
const driver = values.driver as DriverChoice;
if (!(rate > 0 && rate <= 400) || !(minutes > 0 && minutes <= 10) || !(reloads >= 0) || (driver !== 'runtime' && driver !== 'dataplane')) {
  process.stderr.write('--rate 1..400, --minutes up to 10, --reloads >= 0, --driver runtime|dataplane\n');
  process.exit(2);
}
const log = (message: string): void => {
  process.stderr.write(`[forecast-recording] ${message}\n`);
};

/** One command on HAProxy's master CLI (a reload, as `haproxy -sf` or the Data Plane API's reload script would make). */
const masterCommand = (socket: string, command: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const connection = createConnection(socket, () => connection.end(`${command}\n`));
    connection.setTimeout(10_000, () => connection.destroy(new Error(`master CLI ${command}: timed out`)));
    connection.on('data', (chunk: Buffer) => chunks.push(chunk));
    connection.on('error', reject);
    connection.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });

let build: SidecarBuild | undefined;
let pool: BenchPool | undefined;
let sidecar: SidecarProcess | undefined;
try {
  await sweepLeftovers('bench');
  await removeOwnedContainers('bench');
  build = await buildSidecar();
  pool = await startPool(build, 2, driver);
  const settings = { HSC_AUTOSCALE_DRY_RUN: 'false', HSC_AUTOSCALE_INTERVAL_MS: '5000', HSC_AUTOSCALE_FORECAST: 'act', HSC_AUTOSCALE_MIN: '2', HSC_AUTOSCALE_MAX: '4' };
  sidecar = await pool.startSidecar(join(tmpdir(), `forecast-recording-${process.pid}.log`), settings);
  const decisions = watchDecisions(sidecar);
  const seconds = minutes * 60;
  const traffic = startTraffic(`${pool.haproxy.frontendUrl}/`, { ratePerSecond: rate, maxDurationMs: seconds * 1000, maxRequests: rate * seconds });
  log(`${rate} req/s on / for ${minutes} min, ${driver} driver; ${reloads} reload(s) of HAProxy`);
  for (let i = 1; i <= reloads; i++) {
    await sleep((seconds * 1000) / (reloads + 1));
    log(`reload ${i}: ${(await masterCommand(pool.haproxy.masterSocket, 'reload')).trim().split('\n')[0] ?? ''}`);
  }
  await sleep((seconds * 1000) / (reloads + 1));
  const report = await traffic.stop();
  const records = await decisions.stop();
  log(`${report.sent} sent, ${report.failures.length} failed, ${records.length} decisions`);
  const fixture = {
    description: `${rate} req/s paced on / for ${minutes} min against a pool of 2, the ${driver} driver, HAProxy ${pool.haproxy.haproxyVersion}, ${reloads} master-CLI reload(s); the sidecar with ${Object.entries(settings).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    recordedAt: new Date().toISOString(),
    // Every decision as the sidecar recorded it: its inputs (the samples decide() was given), what it decided and forecast.
    decisions: records.map(({ at, current, desired, reason, inputs, predictedRequestRate }) => ({ at, current, desired, reason, predictedRequestRate, inputs })),
  };
  await writeFile(values.out, `${JSON.stringify(fixture, null, 1)}\n`);
  log(`wrote ${values.out}`);
} finally {
  await sidecar?.stop();
  await pool?.stop();
  await build?.remove();
}
