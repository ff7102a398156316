// Property-based tests of the Docker label parser (parseContainer) and of discovery's warnings:
// whatever labels, names and networks a container has, the parser never throws; it either
// yields a server HAProxy accepts, or skips the container naming the label at fault, or ignores a
// container that is not meant for the sidecar. A broken container is warned about once, however
// many passes see it.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createDiscovery } from '../../../sidecar/discovery/discovery.js';
import { parseContainer, type ContainerSnapshot, type DiscoveryOptions } from '../../../sidecar/discovery/parse.js';
import { COMPOSE_NUMBER, COMPOSE_PROJECT, COMPOSE_SERVICE } from '../../../sidecar/docker/labels.js';
import { ok } from '../../../sidecar/edge/result.js';
import type { Logger } from '../../../sidecar/log/logger.js';

const SUFFIXES = ['enable', 'backend', 'port', 'weight', 'check.path'] as const;
// Names that mean something to JavaScript objects, where a lookup by name could find an
// inherited property instead of nothing.
const TRICKY_NAMES = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'];

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.constantFrom('', ' ', 'true', 'false', 'TRUE', '1', '0', '80', '65535', '65536', '-1', '1e3', '0x50', '08', ' 80', '80 ', '256', '257', 'NaN', 'Infinity', '/', '/ok', '/a b', 'be_app', 'be_api', 'be_nope', '\u0000', '٨٠', ...TRICKY_NAMES),
);

const options = fc.record<DiscoveryOptions>({
  labelPrefix: fc.oneof(fc.constantFrom('haproxy', 'traefik.x', ...TRICKY_NAMES), fc.string({ minLength: 1, maxLength: 6 })),
  composeService: fc.constantFrom('', 'nginx', 'constructor'),
  composeProject: fc.constantFrom('', 'stack'),
  addressMode: fc.constantFrom('published', 'network'),
  network: fc.oneof(fc.constantFrom('stack_app', 'bridge', ...TRICKY_NAMES), fc.string({ maxLength: 6 })),
  managedBackends: fc.constant(['be_app', 'be_api']),
  defaultBackend: fc.constant('be_app'),
  defaultPort: fc.constantFrom(80, 8080),
  defaultWeight: fc.constantFrom(0, 100, 256),
  defaultHealthPath: fc.constant('/healthz'),
});

function containerFor(prefix: string): fc.Arbitrary<ContainerSnapshot> {
  const sidecarLabels = fc.dictionary(fc.constantFrom(...SUFFIXES.map((s) => `${prefix}.${s}`)), text, { maxKeys: 5 });
  const composeLabels = fc.dictionary(fc.constantFrom(COMPOSE_SERVICE, COMPOSE_PROJECT, COMPOSE_NUMBER), fc.oneof(text, fc.constantFrom('nginx', 'stack', '3')), { maxKeys: 3 });
  const otherLabels = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom(...TRICKY_NAMES)), text, { maxKeys: 3 });
  return fc.record<ContainerSnapshot>({
    id: fc.stringMatching(/^[0-9a-f]{64}$/),
    name: fc.oneof(text, fc.constantFrom('web-1', 'stack-nginx-1', '---', 'a/b c')),
    labels: fc.tuple(sidecarLabels, composeLabels, otherLabels).map(([a, b, c]) => ({ ...c, ...b, ...a })),
    running: fc.boolean(),
    health: fc.constantFrom('healthy', 'unhealthy', 'starting', 'none'),
    networks: fc.dictionary(fc.oneof(fc.constantFrom('stack_app', 'bridge', ...TRICKY_NAMES), fc.string({ maxLength: 6 })), fc.constantFrom('172.20.0.5', '', '10.0.0.1'), { maxKeys: 3 }),
    publishedPorts: fc.array(
      fc.record({ containerPort: fc.constantFrom(80, 8080, 443), hostIp: fc.constantFrom('0.0.0.0', '::', '', '127.0.0.1'), hostPort: fc.integer({ min: 1, max: 65535 }) }),
      { maxLength: 3 },
    ),
    createdAt: fc.integer({ min: 0, max: 2_000_000_000 }),
  });
}

const scenario = options.chain((o) => fc.tuple(fc.constant(o), containerFor(o.labelPrefix)));

describe('parseContainer, for any container', () => {
  it('never throws; a server it yields is one HAProxy accepts, a skip names the label at fault', () => {
    fc.assert(
      fc.property(scenario, ([o, container]) => {
        const outcome = parseContainer(container, o);
        const own = (suffix: string): string | undefined => (Object.hasOwn(container.labels, `${o.labelPrefix}.${suffix}`) ? container.labels[`${o.labelPrefix}.${suffix}`] : undefined);
        // Ignored exactly when the container did not opt in (or opted out), or is not running.
        const enable = own('enable');
        const label = (name: string): string | undefined => (Object.hasOwn(container.labels, name) ? container.labels[name] : undefined);
        const ofService = o.composeService !== '' && label(COMPOSE_SERVICE) === o.composeService && (o.composeProject === '' || label(COMPOSE_PROJECT) === o.composeProject);
        const validEnable = enable === undefined || enable === 'true' || enable === 'false';
        const selected = enable === 'true' || (enable === undefined && ofService);
        expect(outcome.kind === 'ignored').toBe(validEnable && (!selected || !container.running));
        if (outcome.kind === 'ignored') return;
        if (outcome.kind === 'skipped') {
          expect(outcome.containerName).toBe(container.name);
          expect(outcome.reason.length).toBeGreaterThan(0);
          // The label at fault is one of the sidecar's, or none when the container itself is
          // unreachable (not on the network).
          if (outcome.label === '') expect(o.addressMode).toBe('network');
          else expect(SUFFIXES.map((s) => `${o.labelPrefix}.${s}`)).toContain(outcome.label);
          return;
        }
        const c = outcome.candidate;
        expect(container.running).toBe(true);
        expect(o.managedBackends).toContain(c.backend);
        expect(typeof c.address).toBe('string');
        expect(c.address.length).toBeGreaterThan(0);
        expect(Number.isInteger(c.port) && c.port >= 1 && c.port <= 65535).toBe(true);
        expect(Number.isInteger(c.weight) && c.weight >= 0 && c.weight <= 256).toBe(true);
        expect(c.healthPath).toMatch(/^\/[\x21-\x7e]*$/);
        // HAProxy's server names: letters, digits and - _ . : only.
        expect(c.serverName).toMatch(/^hsc-[A-Za-z0-9_.:-]+$/);
        expect(c.containerId).toBe(container.id);
        // What the labels say is what the server gets.
        const port = own('port');
        if (port !== undefined && o.addressMode === 'network') expect(c.port).toBe(Number(port));
        const weight = own('weight');
        expect(c.weight).toBe(weight === undefined ? o.defaultWeight : Number(weight));
        expect(c.backend).toBe(own('backend') ?? o.defaultBackend);
      }),
      { numRuns: 500 },
    );
  }, 120_000);
});

describe('parseContainer, what the properties found', () => {
  it('skips a container whose network is named like an Object property instead of taking a function for its address', () => {
    const o: DiscoveryOptions = { labelPrefix: 'haproxy', composeService: '', composeProject: '', addressMode: 'network', network: 'toString', managedBackends: ['be_app'], defaultBackend: 'be_app', defaultPort: 80, defaultWeight: 100, defaultHealthPath: '/healthz' };
    const container: ContainerSnapshot = { id: 'a'.repeat(64), name: 'web', labels: { 'haproxy.enable': 'true' }, running: true, health: 'healthy', networks: {}, publishedPorts: [], createdAt: 0 };
    expect(parseContainer(container, o)).toMatchObject({ kind: 'skipped', label: '', reason: 'is not attached to the network toString' });
  });
});

describe('discovery warnings, for any set of containers', () => {
  it('warns once per broken container, naming it and the label, however many passes see it', async () => {
    await fc.assert(
      fc.asyncProperty(
        options.chain((o) => fc.tuple(fc.constant(o), fc.uniqueArray(containerFor(o.labelPrefix), { maxLength: 6, selector: (c) => c.id }), fc.integer({ min: 2, max: 5 }))),
        async ([o, containers, passes]) => {
          const warnings: Array<{ container: string; label: string }> = [];
          const logger = {
            warn: (fields: { container: string; label: string }) => warnings.push(fields),
            info: () => undefined,
            debug: () => undefined,
            error: () => undefined,
          } as unknown as Logger;
          const discovery = createDiscovery(
            { listRunning: (selects) => Promise.resolve(ok(containers.filter((c) => selects === undefined || selects(c.labels)))) } as Parameters<typeof createDiscovery>[0],
            o,
            logger,
          );
          let skipped = 0;
          for (let pass = 0; pass < passes; pass++) {
            const found = await discovery.discover();
            if (!found.ok) throw new Error(found.error.message);
            skipped = found.value.skipped.length;
          }
          // One warning per skipped container, all from the first pass.
          expect(warnings.length).toBe(skipped);
          const named = new Set(warnings.map((w) => `${w.container}|${w.label}`));
          expect(named.size).toBeLessThanOrEqual(warnings.length);
        },
      ),
      { numRuns: 200 },
    );
  }, 120_000);
});
