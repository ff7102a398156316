// Property-based tests of the configuration loader: for any environment and any configuration
// file, loadConfig either returns a whole, valid, deeply frozen configuration, or throws a
// ConfigError whose message names the key (or the file) at fault. Never another exception, and
// never a configuration where part of what was asked for is silently left at its default.
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig, type SidecarConfig } from '../../../sidecar/config/index.js';

// The loader's table of keys, read from its source so that a key added there is fuzzed here too.
const source = readFileSync(new URL('../../../sidecar/config/index.ts', import.meta.url), 'utf8');
const KEYS = [...source.matchAll(/^\s+'?([A-Za-z.]+)'?: \{\s*env: '(HSC_[A-Z0-9_]+)'/gm)].map((m) => ({ key: m[1] ?? '', env: m[2] ?? '' }));
const SECTIONS = [...new Set(KEYS.map((k) => k.key.split('.')[0] ?? ''))];

// A configuration that loads: what every generated case starts from before it breaks things.
const BASE = {
  HSC_HAPROXY_DRIVER: 'runtime',
  HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy/admin.sock',
  HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg',
  HSC_DOCKER_NETWORK: 'stack_app',
};

const value = fc.oneof(
  fc.string({ maxLength: 10 }),
  fc.constantFrom('', ' ', '0', '1', '-1', '100', '1000', '30000', '0.5', '1e3', '0x10', 'NaN', 'Infinity', '-0', 'true', 'false', 'yes', 'runtime', 'dataplane', 'network', 'published', 'off', 'shadow', 'act', 'info', 'debug', 'be_app', 'be_app,be_api', ',', 'http://127.0.0.1:5555', 'ftp://x', 'http://', '/healthz', 'healthz', '127.0.0.1', '0.0.0.0', '::1', 'localhost', 'tcp:127.0.0.1:9999', 'unix:/x.sock', '__proto__', 'constructor'),
);

const fileValue: fc.Arbitrary<unknown> = fc.oneof(
  value,
  fc.integer({ min: -10, max: 100_000 }),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.constant(null),
  fc.array(value, { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), value, { maxKeys: 2 }),
);

/** A file tree: known keys at their place with any value, sections with junk, unknown keys. */
const fileTree = fc
  .tuple(
    fc.subarray(KEYS, { maxLength: 8 }).chain((keys) => fc.tuple(...keys.map((k) => fileValue.map((v) => [k.key, v] as const)))),
    fc.dictionary(fc.oneof(fc.constantFrom(...SECTIONS), fc.string({ maxLength: 6 })), fileValue, { maxKeys: 2 }),
    fc.boolean(),
  )
  .map(([entries, junk, withJunk]) => {
    const tree: Record<string, unknown> = withJunk ? { ...junk } : {};
    for (const [key, v] of entries) {
      const parts = key.split('.');
      let node = tree;
      for (const part of parts.slice(0, -1)) {
        const next = node[part];
        node = (node[part] = next !== null && typeof next === 'object' && !Array.isArray(next) ? next : {}) as Record<string, unknown>;
      }
      node[parts.at(-1) ?? ''] = v;
    }
    return tree;
  });

const fileText = fc.oneof(
  fileTree.map((tree) => stringify(tree)),
  fc.string({ maxLength: 40 }),
  fc.constantFrom('', '42', '- a\n- b', 'just text', 'null', '~', 'a: &x [*x]', 'a: &x {b: *x}', 'http: &h {port: 1}\nhttp2: *h', '? [a]\n: b', '!!binary aGVsbG8=', 'http: !!binary aGVsbG8=', 'docker: !!set {a, b}', 'http:\n  port: !!float 80', 'http: {port: 80, port: 81}', 'logLevel: [info]', '\t', '%YAML 1.2\n---\nhttp: {}'),
);

const environment = fc.dictionary(fc.oneof(fc.constantFrom(...KEYS.map((k) => k.env)), fc.constantFrom('HSC_NOPE', 'HSC_ADMIN_TOKEN_FILE', 'HSC_DATAPLANE_PASSWORD_FILE')), fc.oneof(value, fc.constantFrom('/nonexistent/secret', '/', '/etc/hostname')), { maxKeys: 6 });

function deeplyFrozen(node: unknown): boolean {
  if (node === null || typeof node !== 'object') return true;
  return Object.isFrozen(node) && Object.values(node).every(deeplyFrozen);
}

/** What the loader promises about a configuration it returns. */
function expectValid(config: SidecarConfig): void {
  expect(deeplyFrozen(config)).toBe(true);
  expect(config.backends.managedBackends).toContain(config.backends.defaultBackend);
  expect(config.backends.managedBackends).toContain(config.autoscale.backend);
  expect(config.autoscale.policy.maxReplicas).toBeGreaterThanOrEqual(config.autoscale.policy.minReplicas);
  expect(config.docker.eventsMaxBackoffMs).toBeGreaterThanOrEqual(config.docker.eventsMinBackoffMs);
  if (config.docker.addressMode === 'network') expect(config.docker.network).not.toBe('');
  if (config.haproxy.driver === 'dataplane') expect(config.dataplane?.password).not.toBe('');
  else expect(config.dataplane).toBeUndefined();
  const loopback = ['127.0.0.1', '::1', 'localhost'].includes(config.http.host);
  if (!loopback) expect(config.http.adminToken).not.toBe('');
  for (const n of [config.http.port, config.backends.port, config.backends.weight, config.reconcile.resyncIntervalMs, config.drain.deadlineMs]) expect(Number.isInteger(n)).toBe(true);
}

/** A ConfigError whose message names a known key, an environment variable, a file or a section. */
function expectNamed(error: unknown, fileName: string): void {
  if (!(error instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(error)}`, { cause: error });
  expect(error.message.startsWith(`configuration key ${error.key}: `)).toBe(true);
  const bare = error.key.replace(/\[\d+\]$/, '').replace(/ \(HSC_[A-Z0-9_]+\)$/, '');
  const known = KEYS.some((k) => k.key === bare || k.key.startsWith(`${bare}.`)) || bare === fileName;
  // An unknown key in the file is named by its own (unknown) path.
  expect(known || error.message.endsWith('unknown key'), error.message).toBe(true);
}

describe('loadConfig, for any environment and file', () => {
  it('found every key of the loader', () => {
    expect(KEYS.length).toBeGreaterThan(50);
    expect(KEYS.map((k) => k.key)).toContain('http.adminToken');
  });

  it('returns a whole, valid, frozen configuration, or throws a ConfigError naming the key; nothing else', () => {
    fc.assert(
      fc.property(environment, fc.option(fileText, { nil: undefined }), fc.boolean(), (env, text, withBase) => {
        const sources = { env: { ...(withBase ? BASE : {}), ...env }, ...(text === undefined ? {} : { fileText: text, fileName: 'sidecar.yaml' }) };
        const envBefore = JSON.stringify(sources.env);
        let config: SidecarConfig;
        try {
          config = loadConfig(sources);
        } catch (error) {
          expectNamed(error, 'sidecar.yaml');
          expect(JSON.stringify(sources.env)).toBe(envBefore);
          return;
        }
        expectValid(config);
        // A file whose top level is not a mapping (a number, a text, a list) sets nothing: it must
        // be refused, not loaded as if it were empty.
        if (text !== undefined) {
          const top = ((): unknown => {
            try {
              return parse(text) as unknown;
            } catch {
              return undefined;
            }
          })();
          expect(top === undefined || top === null || (typeof top === 'object' && !Array.isArray(top)), `file ${JSON.stringify(text)} loaded`).toBe(true);
        }
        // Pure: the same sources give the same configuration again.
        expect(loadConfig(sources)).toEqual(config);
      }),
      { numRuns: 1500 },
    );
  }, 120_000);

  it('applies every key it was given in the file, or refuses the file: no part silently left at its default', () => {
    fc.assert(
      fc.property(fileTree, (tree) => {
        let config: SidecarConfig;
        try {
          config = loadConfig({ env: BASE, fileText: stringify(tree), fileName: 'sidecar.yaml' });
        } catch (error) {
          expectNamed(error, 'sidecar.yaml');
          return;
        }
        expectValid(config);
        // Every leaf the file set (and the environment did not) is reflected somewhere in the result.
        const leaves = KEYS.filter((k) => !(k.env in BASE)).map((k) => ({ k, raw: k.key.split('.').reduce<unknown>((node, part) => (node !== null && typeof node === 'object' ? (node as Record<string, unknown>)[part] : undefined), tree) }));
        for (const { k, raw } of leaves) {
          // Scalars only: a list or a section where a value belongs is refused by the readers.
          if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') continue;
          // A value set in the file is never refused in silence: it is in the configuration.
          const text = JSON.stringify(config);
          const shown = typeof raw === 'string' ? raw.trim().replace(/\/+$/, '') : String(raw);
          if (k.key.endsWith('Token') || k.key.endsWith('password') || shown === '') continue;
          // The Data Plane API's settings are read (and checked) only for its driver.
          if (k.key.startsWith('dataplane.') && config.dataplane === undefined) continue;
          expect(text.includes(JSON.stringify(shown).slice(1, -1)) || text.includes(String(Number(raw))) || ['true', 'false', '1', '0'].includes(shown), `${k.key}=${JSON.stringify(raw)}`).toBe(true);
        }
      }),
      { numRuns: 800 },
    );
  }, 120_000);

  it.each(['42', '- a\n- b', 'just text', 'true'])('refuses a file whose top level is not a mapping (%j), naming the file', (text) => {
    expect(() => loadConfig({ env: BASE, fileText: text, fileName: 'sidecar.yaml' })).toThrow(/^configuration key sidecar.yaml: expected a mapping of keys at the top/);
  });

  it('refuses a YAML tag it cannot resolve, naming the file, instead of printing a warning and going on without the value', () => {
    const warn = vi.spyOn(process, 'emitWarning');
    try {
      expect(() => loadConfig({ env: BASE, fileText: 'http:\n  port: !!float 80\n', fileName: 'sidecar.yaml' })).toThrow(/^configuration key sidecar.yaml: not valid YAML: .*Unresolved tag/);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });
});
