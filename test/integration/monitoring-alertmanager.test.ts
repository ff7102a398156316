// stack/alertmanager/alertmanager.yml in a real Alertmanager 0.25 (Debian's binary): alerts
// shaped like the stack's rules produce them are routed by severity, grouped by alert and
// backend, and inhibited as the configuration promises (a backend without servers silences its
// error and latency alerts, the sidecar down silences what it last said). The webhook
// receivers are pointed at a sink on the loopback, which shows what would be notified.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify } from 'yaml';
import { startLocalAlertmanager, type AmAlert, type LocalAlertmanager } from '../../devenv/prometheus.js';
import { eventually } from '../support/http.js';

const configFile = fileURLToPath(new URL('../../stack/alertmanager/alertmanager.yml', import.meta.url));

interface Notification {
  readonly path: string;
  readonly groupLabels: Record<string, string>;
  readonly alertnames: string[];
}

let alertmanager: LocalAlertmanager | undefined;
let sink: Server | undefined;
const notifications: Notification[] = [];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function labelsOf(value: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (isRecord(value)) for (const [key, entry] of Object.entries(value)) if (typeof entry === 'string') out[key] = entry;
  return out;
}

/** The stack's configuration with every webhook sent to the sink instead of `alert-webhook`. */
function localConfig(sinkUrl: string): string {
  const config: unknown = parseYaml(readFileSync(configFile, 'utf8'));
  if (!isRecord(config) || !Array.isArray(config.receivers)) throw new Error('alertmanager.yml has no receivers');
  for (const receiver of (config.receivers as unknown[]).filter(isRecord)) {
    const hooks: unknown[] = Array.isArray(receiver.webhook_configs) ? receiver.webhook_configs : [];
    for (const hook of hooks.filter(isRecord)) {
      hook.url = `${sinkUrl}${new URL(String(hook.url)).pathname}`;
    }
  }
  return stringify(config);
}

beforeAll(async () => {
  sink = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const alerts: unknown[] = isRecord(body) && Array.isArray(body.alerts) ? body.alerts : [];
      notifications.push({
        path: request.url ?? '',
        groupLabels: labelsOf(isRecord(body) ? body.groupLabels : undefined),
        alertnames: alerts.filter(isRecord).map((alert) => labelsOf(alert.labels).alertname ?? ''),
      });
      response.end();
    });
  });
  const server = sink;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  alertmanager = await startLocalAlertmanager({ config: localConfig(`http://127.0.0.1:${port}`) });
});

afterAll(async () => {
  await alertmanager?.stop().catch(() => undefined);
  await new Promise<void>((resolve) => (sink === undefined ? resolve() : sink.close(() => resolve())));
});

// Labels as the rules in stack/prometheus/rules/alerts.yml produce them.
const haproxy = { component: 'haproxy', job: 'haproxy', instance: 'haproxy:8404' };
const sidecar = { job: 'sidecar', instance: 'sidecar:9180' };
const alerts: Record<string, Record<string, string>> = {
  appDown: { alertname: 'HAProxyBackendNoHealthyServer', severity: 'critical', backend: 'be_app', proxy: 'be_app', ...haproxy },
  appErrors: { alertname: 'HAProxyBackendHighErrorRate', severity: 'critical', backend: 'be_app', proxy: 'be_app', component: 'haproxy' },
  appSlow: { alertname: 'HAProxyBackendResponseTimeHigh', severity: 'warning', backend: 'be_app', proxy: 'be_app', component: 'haproxy' },
  apiErrors: { alertname: 'HAProxyBackendHighErrorRate', severity: 'critical', backend: 'be_api', proxy: 'be_api', component: 'haproxy' },
  sidecarDown: { alertname: 'SidecarDown', severity: 'critical', component: 'sidecar', ...sidecar },
  stale: { alertname: 'AutoscalerSignalStale', severity: 'warning', component: 'autoscaler', service: 'nginx', signal: 'cpu', ...sidecar },
  drift: { alertname: 'ReconcileDriftPersisting', severity: 'warning', component: 'reconciler', backend: 'be_app', ...sidecar },
  nodeDown: { alertname: 'ExporterDown', severity: 'warning', component: 'exporter', job: 'node', instance: 'node-exporter:9100' },
};

function nameOf(alert: AmAlert): string {
  const entry = Object.entries(alerts).find(([, labels]) => Object.entries(labels).every(([key, value]) => alert.labels[key] === value));
  return entry?.[0] ?? JSON.stringify(alert.labels);
}

describe('the stack Alertmanager configuration in a real Alertmanager', () => {
  it('inhibits what the configuration says, and only that', async () => {
    const am = alertmanager;
    if (am === undefined) throw new Error('Alertmanager did not start');
    await am.post(Object.values(alerts));
    expect(await eventually(async () => (await am.alerts()).length === Object.keys(alerts).length, 10_000, 200)).toBe(true);
    const received = await am.alerts();
    const suppressed = received.filter((alert) => alert.inhibitedBy.length > 0).map(nameOf).sort();
    expect(suppressed).toEqual(['appErrors', 'appSlow', 'drift', 'stale']);
    const active = received.filter((alert) => alert.state === 'active').map(nameOf).sort();
    expect(active).toEqual(['apiErrors', 'appDown', 'nodeDown', 'sidecarDown']);
    // Who inhibits whom: the backend-down alert its backend's alerts, SidecarDown the sidecar's.
    const fingerprint = (name: string): string => received.find((alert) => nameOf(alert) === name)?.fingerprint ?? '?';
    const inhibitors = Object.fromEntries(received.filter((a) => a.inhibitedBy.length > 0).map((a) => [nameOf(a), [...a.inhibitedBy]]));
    expect(inhibitors).toEqual({
      appErrors: [fingerprint('appDown')],
      appSlow: [fingerprint('appDown')],
      drift: [fingerprint('sidecarDown')],
      stale: [fingerprint('sidecarDown')],
    });
  });

  it('groups by alert name and backend, and routes each group by severity', async () => {
    const am = alertmanager;
    if (am === undefined) throw new Error('Alertmanager did not start');
    const groups = (await am.groups()).map((group) => `${group.receiver} ${group.labels.alertname ?? ''}/${group.labels.backend ?? '-'}`);
    expect(groups.sort()).toEqual(
      [
        'critical HAProxyBackendNoHealthyServer/be_app',
        'critical HAProxyBackendHighErrorRate/be_app',
        'critical HAProxyBackendHighErrorRate/be_api',
        'critical SidecarDown/-',
        'warning HAProxyBackendResponseTimeHigh/be_app',
        'warning AutoscalerSignalStale/-',
        'warning ReconcileDriftPersisting/be_app',
        'warning ExporterDown/-',
      ].sort(),
    );
  });

  it('notifies the critical webhook of the critical groups that are not inhibited', async () => {
    // group_wait for critical alerts is 10 s.
    const criticalGroups = (): string[] =>
      notifications
        .filter((n) => n.path === '/alerts/critical')
        .map((n) => `${n.groupLabels.alertname ?? ''}/${n.groupLabels.backend ?? '-'}`)
        .sort();
    await eventually(async () => Promise.resolve(criticalGroups().length >= 3), 25_000, 500);
    // One more second, so a notification that should not come has had its chance.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(criticalGroups()).toEqual(['HAProxyBackendHighErrorRate/be_api', 'HAProxyBackendNoHealthyServer/be_app', 'SidecarDown/-']);
    expect(notifications.filter((n) => n.path !== '/alerts/critical')).toEqual([]);
  });
});
