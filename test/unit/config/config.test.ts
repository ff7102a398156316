import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, redactConfig } from '../../../sidecar/config/index.js';

const minimalEnv = { HSC_HAPROXY_DRIVER: 'dataplane', HSC_DATAPLANE_PASSWORD: 's3cret', HSC_DOCKER_NETWORK: 'app' };

describe('loadConfig', () => {
  it('configures the runtime driver without any Data Plane API setting', () => {
    const config = loadConfig({
      env: { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy/admin.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg', HSC_DOCKER_NETWORK: 'app' },
    });
    expect(config.dataplane).toBeUndefined();
    expect(config.haproxy).toMatchObject({
      driver: 'runtime',
      runtimeSocket: '/run/haproxy/admin.sock',
      configFile: '/etc/haproxy/haproxy.cfg',
      check: { intervalMs: 1000, fall: 2, rise: 1 },
    });
  });

  it('applies the defaults and freezes the result', () => {
    const config = loadConfig({ env: minimalEnv });
    expect(config.dataplane?.url).toBe('http://127.0.0.1:5555');
    expect(config.backends.managedBackends).toEqual(['be_app']);
    expect(config.reconcile.resyncIntervalMs).toBe(30_000);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.backends.managedBackends)).toBe(true);
  });

  it('builds the scaling policy from the original design’s defaults, every interval-based limit following the interval', () => {
    const config = loadConfig({ env: { ...minimalEnv, HSC_AUTOSCALE_INTERVAL_MS: '15000', HSC_AUTOSCALE_FORECAST: 'shadow' } });
    expect(config.autoscale).toMatchObject({ enabled: true, dryRun: false, backend: 'be_app', service: 'nginx', project: '', intervalMs: 15_000, breachCheckMs: 2_000 });
    expect(config.autoscale.policy).toMatchObject({
      minReplicas: 2,
      maxReplicas: 10,
      signals: { cpu: { target: 0.7, scaleDownBelow: 0.6 }, requestRate: { target: 100, scaleDownBelow: 85 } },
      maxSampleAgeMs: 45_000,
      scaleUp: { periodMs: 15_000 },
      forecast: { mode: 'shadow', horizonMs: 35_000 },
      demand: { startupMs: 20_000, backlogDrainMs: 30_000 },
    });
  });

  it('lets the environment override the file', () => {
    const config = loadConfig({
      env: { ...minimalEnv, HSC_DATAPLANE_TIMEOUT_MS: '2500' },
      fileText: 'dataplane:\n  timeoutMs: 900\n  url: http://10.0.0.1:5555/\n',
    });
    expect(config.dataplane?.timeoutMs).toBe(2500);
    expect(config.dataplane?.url).toBe('http://10.0.0.1:5555');
  });

  it.each([
    [{ HSC_DATAPLANE_TIMEOUT_MS: 'soon' }, 'dataplane.timeoutMs (HSC_DATAPLANE_TIMEOUT_MS)'],
    [{ HSC_DATAPLANE_URL: 'ftp://x' }, 'dataplane.url (HSC_DATAPLANE_URL)'],
    [{ HSC_DOCKER_ADDRESS_MODE: 'bridge' }, 'docker.addressMode (HSC_DOCKER_ADDRESS_MODE)'],
    [{ HSC_BACKEND_PORT: '70000' }, 'backends.port (HSC_BACKEND_PORT)'],
    [{ HSC_MANAGED_BACKENDS: 'be_a, bad name' }, 'backends.managedBackends (HSC_MANAGED_BACKENDS)[1]'],
    [{ HSC_DATAPLANE_PASSWORD: undefined }, 'dataplane.password'],
    [{ HSC_DOCKER_NETWORK: '' }, 'docker.network'],
    [{ HSC_HTTP_HOST: '0.0.0.0' }, 'http.adminToken'],
    [{ HSC_MANAGED_BACKENDS: 'be_other' }, 'backends.defaultBackend'],
    [{ HSC_AUTOSCALE_ENABLED: 'maybe' }, 'autoscale.enabled (HSC_AUTOSCALE_ENABLED)'],
    [{ HSC_AUTOSCALE_MIN: '5', HSC_AUTOSCALE_MAX: '3' }, 'autoscale.maxReplicas'],
    [{ HSC_AUTOSCALE_CPU_DOWN: '0.9' }, 'autoscale.cpu.scaleDownBelow'],
    [{ HSC_AUTOSCALE_BREACH_CHECK_MS: 'often' }, 'autoscale.breachCheckMs (HSC_AUTOSCALE_BREACH_CHECK_MS)'],
    [{ HSC_AUTOSCALE_BACKLOG_DRAIN_MS: '-1' }, 'autoscale.backlogDrainMs (HSC_AUTOSCALE_BACKLOG_DRAIN_MS)'],
    [{ HSC_AUTOSCALE_RPS_TARGET: 'fast' }, 'autoscale.requestRate.target (HSC_AUTOSCALE_RPS_TARGET)'],
    [{ HSC_AUTOSCALE_FORECAST: 'always' }, 'autoscale.forecast (HSC_AUTOSCALE_FORECAST)'],
    [{ HSC_AUTOSCALE_BACKEND: 'be_other' }, 'autoscale.backend'],
    [{ HSC_DOCKER_COMPOSE_SERVICE: '' }, 'autoscale.service'],
    [{ HSC_HAPROXY_DRIVER: undefined }, 'haproxy.driver'],
    [{ HSC_HAPROXY_DRIVER: 'socket' }, 'haproxy.driver (HSC_HAPROXY_DRIVER)'],
    [{ HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg' }, 'haproxy.runtimeSocket'],
    [{ HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy.sock' }, 'haproxy.configFile'],
    [{ HSC_HAPROXY_CHECK_FALL: '0' }, 'haproxy.check.fall (HSC_HAPROXY_CHECK_FALL)'],
    [{ HSC_HAPROXY_RUNTIME_SOCKET: 'haproxy.sock' }, 'haproxy.runtimeSocket'],
  ])('rejects %o naming the key', (override, key) => {
    const env = { ...minimalEnv, ...override };
    expect(() => loadConfig({ env })).toThrow(ConfigError);
    try {
      loadConfig({ env });
    } catch (error) {
      expect((error as ConfigError).key).toBe(key);
      expect((error as Error).message).toContain(`configuration key ${key}`);
    }
  });

  it('rejects unknown keys and malformed YAML in the file', () => {
    expect(() => loadConfig({ env: minimalEnv, fileText: 'dataplane:\n  timeout: 5\n' })).toThrow(
      'configuration key dataplane.timeout: unknown key',
    );
    expect(() => loadConfig({ env: minimalEnv, fileText: 'dataplane: [1\n', fileName: 'hsc.yml' })).toThrow(
      /configuration key hsc.yml: not valid YAML/,
    );
  });

  it('never shows secrets in the redacted form', () => {
    const config = loadConfig({ env: { ...minimalEnv, HSC_ADMIN_TOKEN: 'tok-123' } });
    const text = JSON.stringify(redactConfig(config));
    expect(text).not.toContain('s3cret');
    expect(text).not.toContain('tok-123');
    expect(text).toContain('[redacted]');
  });
});

describe('secrets from files', () => {
  it('reads HSC_*_FILE for secret keys only, without the trailing newline, and names the key when the file is missing', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-config-'));
    await writeFile(join(dir, 'pw'), 'from-a-file\n');
    const config = loadConfig({ env: { HSC_HAPROXY_DRIVER: 'dataplane', HSC_DOCKER_NETWORK: 'app', HSC_DATAPLANE_PASSWORD_FILE: join(dir, 'pw'), HSC_ADMIN_TOKEN_FILE: join(dir, 'pw') } });
    expect(config.dataplane?.password).toBe('from-a-file');
    expect(config.http.adminToken).toBe('from-a-file');
    // The variable itself wins over the file.
    expect(loadConfig({ env: { ...minimalEnv, HSC_DATAPLANE_PASSWORD_FILE: join(dir, 'pw') } }).dataplane?.password).toBe('s3cret');
    // Not a secret key: no _FILE form.
    expect(loadConfig({ env: { ...minimalEnv, HSC_DATAPLANE_URL_FILE: join(dir, 'pw') } }).dataplane?.url).toBe('http://127.0.0.1:5555');
    expect(() => loadConfig({ env: { HSC_HAPROXY_DRIVER: 'dataplane', HSC_DOCKER_NETWORK: 'app', HSC_DATAPLANE_PASSWORD_FILE: join(dir, 'missing') } })).toThrow(
      /configuration key dataplane.password: cannot read HSC_DATAPLANE_PASSWORD_FILE=.*missing/,
    );
    await rm(dir, { recursive: true, force: true });
  });
});

describe('credentials never shown by a configuration error', () => {
  const base = { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy.cfg', HSC_DOCKER_NETWORK: 'app' };
  const secret = 's3cr3t-pa55word-7f3a';

  it.each([
    { variable: 'HSC_HAPROXY_METRICS_URL', value: `http://stats:${secret}@127.0.0.1:8404/metrics`, key: 'haproxy.metricsUrl', message: /must not carry credentials/ },
    { variable: 'HSC_DATAPLANE_URL', value: `http://admin:${secret}@127.0.0.1:5555`, key: 'dataplane.url', message: /must not carry credentials/ },
    { variable: 'HSC_HAPROXY_METRICS_URL', value: `ftp://stats:${secret}@127.0.0.1/metrics`, key: 'haproxy.metricsUrl', message: /expected an http\(s\) URL, got "ftp:\/\/\[redacted\]@127\.0\.0\.1\/metrics"/ },
    { variable: 'HSC_HAPROXY_METRICS_URL', value: `http://stats:${secret}@[::1/metrics`, key: 'haproxy.metricsUrl', message: /expected an http\(s\) URL/ },
  ])('refuses $variable with credentials in it, naming $key without showing them', ({ variable, value, key, message }) => {
    const env = { ...base, HSC_HAPROXY_DRIVER: key.startsWith('dataplane') ? 'dataplane' : 'runtime', HSC_DATAPLANE_PASSWORD: 'x', [variable]: value };
    let caught: unknown;
    try {
      loadConfig({ env });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).key).toContain(key);
    expect((caught as ConfigError).message).toMatch(message);
    expect((caught as ConfigError).message).not.toContain(secret);
  });

  it('names a secret key of the wrong type without showing its value', () => {
    const fileText = `http:\n  adminToken: [${secret}]\n`;
    expect(() => loadConfig({ env: base, fileText })).toThrow(/^configuration key http\.adminToken: expected a string \(the value is a secret and is not shown\)$/);
  });
});
