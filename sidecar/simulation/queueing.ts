// Queueing formulas for the simulator's instances. Each nginx + PHP-FPM instance is an M/M/c
// station: c workers, exponential service with mean S seconds, and (round robin) an equal share
// of the Poisson arrivals. These are the textbook results (Erlang C); the simulator adds a
// backlog on top for the times the offered load exceeds capacity.

/** Probability that an arrival waits, for c servers and offered load a = λ/μ (Erlang C). */
export function erlangC(servers: number, offered: number): number {
  if (servers < 1 || !Number.isInteger(servers)) throw new Error(`erlangC: servers must be a positive integer, not ${servers}`);
  if (offered < 0) throw new Error(`erlangC: offered load must be >= 0, not ${offered}`);
  if (offered >= servers) return 1;
  // Erlang B by its stable recursion, then C from B.
  let b = 1;
  for (let k = 1; k <= servers; k++) b = (offered * b) / (k + offered * b);
  const rho = offered / servers;
  return b / (1 - rho * (1 - b));
}

export interface Station {
  /** Workers per instance. */
  readonly workers: number;
  /** Mean service time, seconds. */
  readonly serviceTime: number;
}

export interface StationFigures {
  /** Busy fraction of the workers, 0..1. */
  readonly utilisation: number;
  /** Mean time in the system (wait + service), seconds; Infinity when overloaded. */
  readonly meanResponse: number;
  /** 99th percentile of the time in the system, seconds; Infinity when overloaded. */
  readonly p99Response: number;
}

/**
 * Steady-state figures of one instance receiving `arrivalRate` requests per second. The p99 adds
 * the 99th percentiles of the wait (exact for M/M/c: P(W > t) = C·e^-(cμ-λ)t) and of the
 * exponential service (S·ln 100): an upper bound, which is the safe side for an SLO.
 */
export function stationFigures(station: Station, arrivalRate: number): StationFigures {
  const mu = 1 / station.serviceTime;
  const c = station.workers;
  const offered = arrivalRate / mu;
  const utilisation = Math.min(1, offered / c);
  if (offered >= c) return { utilisation: 1, meanResponse: Infinity, p99Response: Infinity };
  const wait = erlangC(c, offered);
  const drain = c * mu - arrivalRate;
  const meanWait = wait / drain;
  const p99Wait = wait <= 0.01 ? 0 : Math.log(wait / 0.01) / drain;
  return {
    utilisation,
    meanResponse: meanWait + station.serviceTime,
    p99Response: p99Wait + station.serviceTime * Math.log(100),
  };
}
