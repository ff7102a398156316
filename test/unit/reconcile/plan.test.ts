import { describe, expect, it } from 'vitest';
import type { ConfiguredServer as ActualServer } from '../../../sidecar/driver/port.js';
import { plan, type DesiredServer, type Operation } from '../../../sidecar/reconcile/plan.js';

const isOwned = (name: string): boolean => name.startsWith('hsc-');
const managedBackends = ['be_app', 'be_api'];

const want = (name: string, port: number, extra: Partial<DesiredServer> = {}): DesiredServer => ({
  backend: 'be_app',
  name,
  address: '127.0.0.1',
  port,
  weight: 100,
  containerId: `c-${name}`,
  ...extra,
});
const have = (name: string, port: number | undefined, extra: Partial<ActualServer> = {}): ActualServer => ({
  backend: 'be_app',
  name,
  address: '127.0.0.1',
  port,
  weight: 100,
  ...extra,
});

const cases: Array<{ name: string; desired: DesiredServer[]; actual: ActualServer[]; expected: Operation[] }> = [
  { name: 'nothing wanted, nothing there', desired: [], actual: [], expected: [] },
  {
    name: 'a converged state yields zero operations',
    desired: [want('hsc-nginx-1', 32768), want('hsc-nginx-2', 32769)],
    actual: [have('hsc-nginx-2', 32769), have('hsc-nginx-1', 32768)],
    expected: [],
  },
  {
    name: 'a ready container without a server is added',
    desired: [want('hsc-nginx-1', 32768), want('hsc-nginx-2', 32769)],
    actual: [have('hsc-nginx-1', 32768)],
    expected: [{ op: 'add', server: want('hsc-nginx-2', 32769), reason: 'container ready' }],
  },
  {
    name: 'an owned server without a container is removed',
    desired: [want('hsc-nginx-1', 32768)],
    actual: [have('hsc-nginx-1', 32768), have('hsc-nginx-2', 32769)],
    expected: [{ op: 'remove', backend: 'be_app', name: 'hsc-nginx-2', reason: 'no ready container' }],
  },
  {
    name: 'manual servers are never in a plan, even with no containers at all',
    desired: [],
    actual: [have('static-1', 8080), have('web-a', 80), have('hsc', 81)],
    expected: [],
  },
  {
    name: 'servers of unmanaged backends are never touched, owned name or not',
    desired: [],
    actual: [have('hsc-nginx-1', 32768, { backend: 'be_legacy' })],
    expected: [],
  },
  {
    name: 'a container that came back on another port is replaced',
    desired: [want('hsc-nginx-1', 32800)],
    actual: [have('hsc-nginx-1', 32768)],
    expected: [{ op: 'replace', server: want('hsc-nginx-1', 32800), reason: 'address changed' }],
  },
  {
    name: 'a changed address is replaced',
    desired: [want('hsc-nginx-1', 80, { address: '172.18.0.5' })],
    actual: [have('hsc-nginx-1', 80, { address: '172.18.0.4' })],
    expected: [{ op: 'replace', server: want('hsc-nginx-1', 80, { address: '172.18.0.5' }), reason: 'address changed' }],
  },
  {
    name: 'a changed weight is replaced',
    desired: [want('hsc-nginx-1', 32768, { weight: 50 })],
    actual: [have('hsc-nginx-1', 32768)],
    expected: [{ op: 'replace', server: want('hsc-nginx-1', 32768, { weight: 50 }), reason: 'weight changed' }],
  },
  {
    name: 'several backends: removals first, then changes, each sorted by backend and name',
    desired: [want('hsc-b', 2), want('hsc-api-1', 9000, { backend: 'be_api' }), want('hsc-a', 1)],
    actual: [have('hsc-z', 26), have('hsc-old', 5, { backend: 'be_api' }), have('static-1', 8080)],
    expected: [
      { op: 'remove', backend: 'be_api', name: 'hsc-old', reason: 'no ready container' },
      { op: 'remove', backend: 'be_app', name: 'hsc-z', reason: 'no ready container' },
      { op: 'add', server: want('hsc-api-1', 9000, { backend: 'be_api' }), reason: 'container ready' },
      { op: 'add', server: want('hsc-a', 1), reason: 'container ready' },
      { op: 'add', server: want('hsc-b', 2), reason: 'container ready' },
    ],
  },
];

describe('plan', () => {
  it.each(cases)('$name', ({ desired, actual, expected }) => {
    expect(plan({ desired, actual, managedBackends, isOwned })).toEqual(expected);
  });

  it('is idempotent: applying its plan and planning again yields nothing', () => {
    const desired = [want('hsc-a', 1), want('hsc-b', 2, { weight: 10 })];
    let actual: ActualServer[] = [have('hsc-b', 3), have('hsc-c', 4), have('static-1', 8080)];
    for (const operation of plan({ desired, actual, managedBackends, isOwned })) {
      const name = operation.op === 'remove' ? operation.name : operation.server.name;
      actual = actual.filter((s) => s.name !== name);
      if (operation.op !== 'remove') {
        const { containerId: _containerId, ...server } = operation.server;
        actual.push(server);
      }
    }
    expect(plan({ desired, actual, managedBackends, isOwned })).toEqual([]);
    expect(actual.map((s) => s.name).sort()).toEqual(['hsc-a', 'hsc-b', 'static-1']);
  });

  it.each([
    ['two containers mapped to one name', [want('hsc-a', 1), want('hsc-a', 2)], 'two desired servers share the name be_app/hsc-a'],
    ['a desired server outside the managed backends', [want('hsc-a', 1, { backend: 'be_x' })], 'be_x/hsc-a is in an unmanaged backend'],
    ['a desired server that the sidecar would not recognise as its own', [want('web-1', 1)], 'does not follow the ownership naming scheme'],
  ])('refuses its own misuse: %s', (_label, desired, message) => {
    expect(() => plan({ desired, actual: [], managedBackends, isOwned })).toThrow(message);
  });
});
