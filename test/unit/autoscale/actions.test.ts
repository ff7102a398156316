import { describe, expect, it } from 'vitest';
import { planActions, type Action, type PoolState, type ServingReplica } from '../../../sidecar/autoscale/actions.js';

const replica = (n: number, sessions: number | undefined, createdAt = n): ServingReplica => ({ containerId: `c${n}`, server: `hsc-nginx-${n}`, sessions, createdAt });
const pool = (serving: ServingReplica[], extra: Partial<PoolState> = {}): PoolState => ({ serving, draining: [], starting: 0, retiring: 0, ...extra });

const cases: Array<{ name: string; desired: number; pool: PoolState; expected: Action[] }> = [
  { name: 'at the desired count: nothing', desired: 2, pool: pool([replica(1, 3), replica(2, 4)]), expected: [] },
  { name: 'scale-up starts the difference', desired: 5, pool: pool([replica(1, 3), replica(2, 4)]), expected: [{ kind: 'start', count: 3 }] },
  { name: 'containers already starting count toward it', desired: 5, pool: pool([replica(1, 3)], { starting: 2 }), expected: [{ kind: 'start', count: 2 }] },
  {
    name: 'a scale-up puts draining servers back before starting anything',
    desired: 4,
    pool: pool([replica(1, 3), replica(2, 4)], { draining: [{ containerId: 'c3', server: 'hsc-nginx-3' }] }),
    expected: [
      { kind: 'undrain', containerId: 'c3', server: 'hsc-nginx-3' },
      { kind: 'start', count: 1 },
    ],
  },
  {
    name: 'undrain alone when it covers the need',
    desired: 3,
    pool: pool([replica(1, 3), replica(2, 4)], { draining: [{ containerId: 'c3', server: 'hsc-nginx-3' }, { containerId: 'c4', server: 'hsc-nginx-4' }] }),
    expected: [{ kind: 'undrain', containerId: 'c3', server: 'hsc-nginx-3' }],
  },
  { name: 'scale-down retires the replica with the fewest sessions', desired: 2, pool: pool([replica(1, 5), replica(2, 0), replica(3, 9)]), expected: [{ kind: 'retire', containerId: 'c2', server: 'hsc-nginx-2' }] },
  { name: 'equal sessions: the newest goes', desired: 2, pool: pool([replica(1, 2, 100), replica(2, 2, 300), replica(3, 2, 200)]), expected: [{ kind: 'retire', containerId: 'c2', server: 'hsc-nginx-2' }] },
  { name: 'unknown sessions count as busy', desired: 1, pool: pool([replica(1, undefined), replica(2, 7)]), expected: [{ kind: 'retire', containerId: 'c2', server: 'hsc-nginx-2' }] },
  { name: 'no scale-down while replicas start', desired: 1, pool: pool([replica(1, 0), replica(2, 0)], { starting: 1 }), expected: [] },
  { name: 'one retirement at a time', desired: 1, pool: pool([replica(1, 0), replica(2, 0)], { draining: [{ containerId: 'c3', server: 'hsc-nginx-3' }], retiring: 1 }), expected: [] },
  { name: 'one retirement at a time, even past its drain (drained, removed)', desired: 1, pool: pool([replica(1, 0), replica(2, 0)], { retiring: 1 }), expected: [] },
];

describe('planActions', () => {
  it.each(cases)('$name', ({ desired, pool: state, expected }) => {
    expect(planActions(desired, state)).toEqual(expected);
  });
  it('throws on a count that is not a whole number', () => {
    expect(() => planActions(2.5, pool([]))).toThrow(/whole number/);
  });
});
