// A small seeded random source, so a simulation is byte-for-byte reproducible for a given seed.

export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** Poisson-distributed count with mean `mean`. */
  poisson(mean: number): number;
}

/** mulberry32: 32-bit state, fast, well distributed for simulation (not for cryptography). */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const normal = (): number => {
    const u = Math.max(next(), Number.EPSILON);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * next());
  };
  return {
    next,
    normal,
    poisson(mean) {
      if (mean <= 0) return 0;
      if (mean > 50) {
        // The normal approximation is within a fraction of a percent here and O(1).
        return Math.max(0, Math.round(mean + Math.sqrt(mean) * normal()));
      }
      // Knuth's method for small means.
      const limit = Math.exp(-mean);
      let k = 0;
      let p = next();
      while (p > limit) {
        k++;
        p *= next();
      }
      return k;
    },
  };
}
