// Bad labels from outside, on real containers with the real sidecar and HAProxy: a container with
// every kind of broken label at once and one container per kind, beside two healthy ones. The
// healthy ones join and keep serving every request; each broken container gets exactly one
// warning naming it and the label at fault, and none is repeated by the passes that follow
// (the sidecar's log is read over at least five reconcile passes).
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { labelledContainersEnv } from '../../devenv/sidecar-env.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import type { Logger } from '../../sidecar/log/logger.js';
import { eventually, get } from '../support/http.js';
import { runtimeServerNames } from '../support/runtime.js';

interface Line {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

describe('containers with broken labels beside healthy ones, against the real sidecar', () => {
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  const label = (suffix: string): string => `${prefix}.${suffix}`;
  const lines: Line[] = [];
  const record =
    (level: Line['level']) =>
    (fields: Record<string, unknown>, message: string): void => {
      lines.push({ level, fields, message });
    };
  const logger: Logger = { debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
  let haproxy: LocalHaproxy;
  let sidecar: RunningSidecar | undefined;
  const healthy = new Map<string, TestContainer>();
  const containers: TestContainer[] = [];

  // Every kind of broken label: the parser's every refusal, and all of them on one container.
  const broken: Record<string, Record<string, string>> = {
    everything: { [label('enable')]: 'true', [label('backend')]: 'be_nope', [label('port')]: 'eighty', [label('weight')]: 'heavy', [label('check.path')]: 'no slash' },
    enable: { [label('enable')]: 'yes' },
    backend: { [label('enable')]: 'true', [label('backend')]: 'be_nope' },
    'port-word': { [label('enable')]: 'true', [label('port')]: 'eighty' },
    'port-range': { [label('enable')]: 'true', [label('port')]: '70000' },
    'port-unpublished': { [label('enable')]: 'true', [label('port')]: '8080' },
    weight: { [label('enable')]: 'true', [label('weight')]: '-1' },
    'check-path': { [label('enable')]: 'true', [label('check.path')]: 'healthz' },
  };
  const expectedLabel: Record<string, string> = {
    everything: label('backend'),
    enable: label('enable'),
    backend: label('backend'),
    'port-word': label('port'),
    'port-range': label('port'),
    'port-unpublished': label('port'),
    weight: label('weight'),
    'check-path': label('check.path'),
  };
  const name = (role: string): string => `${prefix}-${role}`;

  const passes = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${sidecar?.port ?? 0}/metrics`)).text();
    return [...text.matchAll(/^hsc_reconcile_runs_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
  };

  beforeAll(async () => {
    haproxy = await startLocalHaproxy({ withDataplane: false });
    const started = await Promise.all([
      ...['ok-1', 'ok-2'].map(async (role) => {
        const container = await startNginx({ name: name(role), labels: { [label('enable')]: 'true' } });
        healthy.set(role, container);
        return container;
      }),
      ...Object.entries(broken).map(([role, labels]) => startNginx({ name: name(role), labels })),
      // Opted out: whatever else its labels say, it is none of the sidecar's business.
      startNginx({ name: name('opted-out'), labels: { [label('enable')]: 'false', [label('port')]: 'eighty' } }),
    ]);
    containers.push(...started);
    const config = loadConfig({
      env: {
        ...labelledContainersEnv(haproxy, 'runtime', prefix),
        HSC_RESYNC_INTERVAL_MS: '1000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_AUTOSCALE_ENABLED: 'false',
        HSC_HTTP_PORT: '0',
      },
    });
    sidecar = await startSidecar(config, { logger });
  });

  afterAll(async () => {
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all(containers.map((c) => c.remove()));
  });

  it('serves through the healthy ones only, with every request answered', async () => {
    const expected = ['ok-1', 'ok-2'].map((role) => `hsc-${name(role)}`).sort();
    expect(await eventually(async () => JSON.stringify(await runtimeServerNames(haproxy)) === JSON.stringify(expected), 30_000, 200)).toBe(true);
    const hostnames = new Set([...healthy.values()].map((c) => c.hostname));
    expect(await eventually(async () => (await get(`${haproxy.frontendUrl}/`)).status === 200, 15_000, 200)).toBe(true);
    const seen = new Set<string>();
    const statuses: number[] = [];
    for (let i = 0; i < 40; i++) {
      const answer = await get(`${haproxy.frontendUrl}/`);
      statuses.push(answer.status);
      if (answer.servedBy !== null) seen.add(answer.servedBy);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(seen).toEqual(hostnames);
  });

  it('warns once per broken container, naming it and the label, and not again over the following passes', async () => {
    const first = await passes();
    expect(await eventually(async () => (await passes()) >= first + 5, 30_000, 250)).toBe(true);
    // Still serving after those passes, through the healthy ones.
    expect((await runtimeServerNames(haproxy)).filter((n) => n.startsWith(`hsc-${prefix}`)).sort()).toEqual(['ok-1', 'ok-2'].map((role) => `hsc-${name(role)}`).sort());
    const skips = lines.filter((l) => l.level === 'warn' && l.message.startsWith('container skipped'));
    const byContainer = new Map<string, Line[]>();
    for (const line of skips) {
      const container = String(line.fields.container);
      byContainer.set(container, [...(byContainer.get(container) ?? []), line]);
    }
    expect([...byContainer.keys()].sort()).toEqual(Object.keys(broken).map(name).sort());
    for (const [role, labelName] of Object.entries(expectedLabel)) {
      const warnings = byContainer.get(name(role)) ?? [];
      expect(warnings.length, `${role}: ${warnings.map((w) => w.message).join(' | ')}`).toBe(1);
      expect(warnings[0]?.fields.label).toBe(labelName);
      expect(warnings[0]?.message).toContain(labelName);
    }
    // Nothing else went wrong meanwhile.
    expect(lines.filter((l) => l.level === 'error').map((l) => l.message)).toEqual([]);
  });
});
