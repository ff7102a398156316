// The configuration reference is generated from the loader's own table: the committed
// docs/configuration.md must be what the generator writes now (CI fails on drift), and what it
// documents must be what the loader enforces.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, configurationReference, loadConfig } from '../../../sidecar/config/index.js';
import { REFERENCE_FILE, renderConfigurationReference } from '../../../devenv/config-docs.js';

const minimalEnv = { HSC_HAPROXY_DRIVER: 'dataplane', HSC_DATAPLANE_PASSWORD: 's3cret', HSC_DOCKER_NETWORK: 'app' };

describe('the configuration reference', () => {
  it('docs/configuration.md is what `npm run docs:config` writes from the loader’s table', () => {
    expect(readFileSync(REFERENCE_FILE, 'utf8')).toBe(renderConfigurationReference());
  });

  it('documents every key in one line, with its variable, type and meaning', () => {
    const rows = configurationReference();
    expect(rows.length).toBeGreaterThan(60);
    expect(new Set(rows.map((r) => r.env)).size).toBe(rows.length);
    for (const row of rows) {
      expect(row.env, row.key).toMatch(/^HSC_[A-Z0-9_]+$/);
      expect(row.meaning, row.key).toMatch(/^\S.*\.$/);
      expect(row.meaning, row.key).not.toContain('\n');
      expect(row.type, row.key).not.toBe('');
    }
    expect(rows.filter((r) => r.required).map((r) => r.key)).toEqual(['haproxy.driver']);
    expect(rows.filter((r) => r.fileEnv !== undefined).map((r) => r.fileEnv)).toEqual(['HSC_DATAPLANE_PASSWORD_FILE', 'HSC_ADMIN_TOKEN_FILE']);
  });

  it('the documented default is the loaded one', () => {
    const config = loadConfig({ env: minimalEnv });
    const byKey = new Map(configurationReference().map((r) => [r.key, r]));
    expect(byKey.get('dataplane.url')?.default).toBe(JSON.stringify(config.dataplane?.url));
    expect(byKey.get('reconcile.resyncIntervalMs')?.default).toBe(String(config.reconcile.resyncIntervalMs));
    expect(byKey.get('autoscale.forecast')?.default).toBe(JSON.stringify(config.autoscale.policy.forecast.mode));
    expect(byKey.get('backends.managedBackends')).toMatchObject({ default: undefined, defaultFrom: 'backends.defaultBackend' });
    expect(config.backends.managedBackends).toEqual([config.backends.defaultBackend]);
  });

  // The allowed ranges are the readers' own arguments: one past either end is refused, naming the key.
  it.each(configurationReference().filter((r) => r.type === 'integer' || r.type === 'number'))('$key refuses a value outside $allowed', (row) => {
    const [min, max] = (row.allowed ?? '').split(' to ').map(Number);
    if (min === undefined || max === undefined) throw new Error(`${row.key}: no range in ${row.allowed ?? ''}`);
    for (const outside of [max + 1, min - 1]) {
      const load = (): unknown => loadConfig({ env: { ...minimalEnv, [row.env]: String(outside) } });
      expect(load).toThrow(ConfigError);
      expect(load).toThrow(`configuration key ${row.key} (${row.env})`);
    }
  });

  it.each(configurationReference().filter((r) => r.choices !== undefined))(
    '$key accepts each of $allowed and nothing else',
    (row) => {
      expect(row.allowed).toBe(row.choices?.join(', '));
      for (const value of row.choices ?? []) {
        const env = { ...minimalEnv, [row.env]: value, ...(value === 'runtime' ? { HSC_HAPROXY_RUNTIME_SOCKET: '/run/h.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/h.cfg' } : {}) };
        expect(() => loadConfig({ env }), `${row.key}=${value}`).not.toThrow();
      }
      expect(() => loadConfig({ env: { ...minimalEnv, [row.env]: 'none-of-these' } })).toThrow(`configuration key ${row.key}`);
    },
  );
});
