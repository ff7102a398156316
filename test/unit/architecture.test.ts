// The shape of sidecar/: folders in layers, imports running one way. The edges to the outside
// (one module per outside system) at the bottom, the pure cores and the records above them, the
// controllers above those, main.ts and its wiring on top. A folder may import from its own layer
// or below; an import that runs back up is allowed only where this file lists it, with why.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../sidecar', import.meta.url));

/** Bottom first. `.` is sidecar/ itself (main.ts, wiring.ts). */
const LAYERS: readonly (readonly string[])[] = [
  ['edge', 'log', 'driver'],
  ['docker', 'dataplane', 'runtime', 'haproxy-metrics', 'http', 'queue'],
  ['discovery', 'scaling', 'records'],
  ['reconcile', 'autoscale'],
  ['telemetry', 'config'],
  // The policy simulator: the autoscaler and its schedule, with Docker, HAProxy and time simulated.
  ['simulation'],
  ['admin', 'cli'],
  ['.'],
];

/** Imports that run back up, each with its reason. */
const ALLOWED_UPWARD = new Map<string, string>([
  // The reconciler records its passes into the sidecar's metrics object (counters, histograms);
  // telemetry sits above the controllers because it implements their recorder interfaces.
  ['reconcile -> telemetry', 'the reconciler writes its own pass metrics'],
]);

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

function folderOf(path: string): string {
  const rel = relative(root, path);
  return rel.includes('/') ? (rel.split('/')[0] ?? '.') : '.';
}

function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sources(root)) {
    const from = folderOf(file);
    for (const match of readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const target = normalize(join(file, '..', match[1] ?? ''));
      if (!target.startsWith(root)) continue; // generated/, package.json
      const to = folderOf(target);
      if (to !== from) graph.set(from, new Set([...(graph.get(from) ?? []), to]));
    }
  }
  return graph;
}

const layerOf = (folder: string): number => LAYERS.findIndex((layer) => layer.includes(folder));

describe('the import graph of sidecar/', () => {
  const graph = folderGraph();

  it('places every folder in a layer', () => {
    const folders = new Set([...graph.keys(), ...[...graph.values()].flatMap((s) => [...s])]);
    expect([...folders].filter((f) => layerOf(f) === -1)).toEqual([]);
  });

  it('has no circle', () => {
    const visiting = new Set<string>();
    const done = new Set<string>();
    const circles: string[] = [];
    const visit = (folder: string, path: string[]): void => {
      if (done.has(folder)) return;
      if (visiting.has(folder)) {
        circles.push([...path.slice(path.indexOf(folder)), folder].join(' -> '));
        return;
      }
      visiting.add(folder);
      for (const next of graph.get(folder) ?? []) visit(next, [...path, folder]);
      visiting.delete(folder);
      done.add(folder);
    };
    for (const folder of graph.keys()) visit(folder, []);
    expect(circles).toEqual([]);
  });

  it('has no circle between files either, types included', () => {
    const files = new Map<string, string[]>();
    for (const file of sources(root)) {
      const targets = [...readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)\.js'/g)].map((m) => `${normalize(join(file, '..', m[1] ?? ''))}.ts`);
      files.set(file, targets.filter((t) => t.startsWith(root)));
    }
    const state = new Map<string, 'visiting' | 'done'>();
    const circles: string[] = [];
    const visit = (file: string, path: string[]): void => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        circles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' -> '));
        return;
      }
      state.set(file, 'visiting');
      for (const next of files.get(file) ?? []) visit(next, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of files.keys()) visit(file, []);
    expect(circles).toEqual([]);
  });

  it('runs one way: at most three imports back up, each listed with its reason', () => {
    const upward = [...graph.entries()].flatMap(([from, targets]) => [...targets].filter((to) => layerOf(to) > layerOf(from)).map((to) => `${from} -> ${to}`));
    expect(upward.filter((edge) => !ALLOWED_UPWARD.has(edge))).toEqual([]);
    expect(upward.length).toBeLessThanOrEqual(3);
  });

  it('keeps main.ts to wiring: under 120 lines', () => {
    expect(readFileSync(join(root, 'main.ts'), 'utf8').split('\n').length).toBeLessThan(120);
  });
});
