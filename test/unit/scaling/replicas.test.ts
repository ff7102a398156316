import { describe, expect, it } from 'vitest';
import type { ContainerSnapshot } from '../../../sidecar/docker/compose.js';
import { poolView, replicasOf } from '../../../sidecar/scaling/replicas.js';

const container = (id: string, labels: Record<string, string>, createdAt: number, running = true): ContainerSnapshot => ({
  id,
  name: `name-${id}`,
  labels,
  running,
  health: 'healthy',
  networks: {},
  publishedPorts: [],
  createdAt,
});
const of = (project: string, number: string): Record<string, string> => ({
  'com.docker.compose.project': project,
  'com.docker.compose.service': 'web',
  'com.docker.compose.container-number': number,
});

describe('replicasOf', () => {
  it('keeps the running containers of the service (in its project when one is named), oldest first, then by number', () => {
    const containers = [
      container('c3', of('shop', '3'), 300),
      container('c1', of('shop', '1'), 100),
      container('c2', of('shop', '2'), 100),
      container('x1', of('other', '1'), 50),
      container('c4', of('shop', '4'), 400, false),
      container('n1', { 'com.docker.compose.service': 'db' }, 10),
      container('c5', { ...of('shop', 'five') }, 500),
    ];
    expect(replicasOf(containers, { service: 'web', project: 'shop' }).map((r) => [r.id, r.number])).toEqual([
      ['c1', 1],
      ['c2', 2],
      ['c3', 3],
      ['c5', 0],
    ]);
    expect(replicasOf(containers, { service: 'web', project: '' }).map((r) => r.id)).toEqual(['x1', 'c1', 'c2', 'c3', 'c5']);
  });
});

describe('poolView', () => {
  it('pairs each replica with its server in the scaled backend only', () => {
    const containers = [container('c1', of('shop', '1'), 100), container('c2', of('shop', '2'), 200)];
    const view = poolView(
      containers,
      [
        { containerId: 'c1', backend: 'be_app', serverName: 'hsc-web-1' },
        { containerId: 'c2', backend: 'be_app', serverName: 'hsc-web-2' },
        { containerId: 'c2', backend: 'be_api', serverName: 'hsc-web-2' },
      ],
      { service: 'web', project: 'shop' },
      'be_app',
    );
    expect(view.replicas.map((r) => r.id)).toEqual(['c1', 'c2']);
    expect([...view.serverOf]).toEqual([
      ['c1', 'hsc-web-1'],
      ['c2', 'hsc-web-2'],
    ]);
  });
});
