// The admin token check: constant-time comparison of equal-length digests, whatever the token
// sent (shorter, longer, one character off, empty).
import type * as crypto from 'node:crypto';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const compared: Array<[number, number]> = [];
vi.mock('node:crypto', async (importOriginal) => {
  const actual = await importOriginal<typeof crypto>();
  return {
    ...actual,
    timingSafeEqual: (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView): boolean => {
      compared.push([a.byteLength, b.byteLength]);
      return actual.timingSafeEqual(a, b);
    },
  };
});

const { tokenMatches } = await import('../../../sidecar/admin/routes.js');

describe('tokenMatches', () => {
  beforeEach(() => {
    compared.length = 0;
  });
  const expected = 'k3y-0f-the-admin-api-1234567890';

  it.each([
    { given: expected, matches: true },
    { given: `${expected}x`, matches: false },
    { given: expected.slice(0, -1), matches: false },
    { given: `${expected.slice(0, -1)}X`, matches: false },
    { given: '', matches: false },
    { given: 'x'.repeat(10_000), matches: false },
    { given: expected.toUpperCase(), matches: false },
  ])('compares 32-byte digests with timingSafeEqual, never the raw tokens ($given.length characters → $matches)', ({ given, matches }) => {
    expect(tokenMatches(given, expected)).toBe(matches);
    expect(compared).toEqual([[32, 32]]);
  });

  it('never matches when no token is configured, not even an empty one', () => {
    expect(tokenMatches('', '')).toBe(false);
  });
});
