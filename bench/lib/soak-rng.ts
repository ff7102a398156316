// The soak's only source of randomness: a seeded generator (mulberry32), so a run's schedule of
// events, their targets and the long requests' lengths come back with the same --seed. What the
// system does in between (timings, the autoscaler's choices) is not seeded and differs.
export type Rng = () => number;

export function seededRng(seed: number): Rng {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** A whole number from `min` to `max`, both included. */
export const between = (rng: Rng, min: number, max: number): number => min + Math.floor(rng() * (max - min + 1));

/** One element of a non-empty list. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  const item = items[Math.floor(rng() * items.length)];
  if (item === undefined) throw new Error('pick from an empty list');
  return item;
}
