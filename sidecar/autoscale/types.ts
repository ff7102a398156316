// The autoscaling policy's vocabulary: what the stages (stages.ts) and decide() (policy.ts) read and
// return. Types only, in a file of their own, so that the stages and the function that runs them
// import these one way instead of from each other.
import type { ForecastSettings, ForecastState } from './forecast.js';

export type SignalName = 'cpu' | 'requestRate' | 'queue' | 'responseTime';

/** One measured value and when it was measured (ms since the epoch). */
export interface Reading {
  readonly value: number;
  readonly at: number;
}

export interface Samples {
  /** Instances currently serving (ready servers of the backend). */
  readonly replicas: number;
  /** Mean CPU per instance, as a fraction of one core (0.7 = 70 %). */
  readonly cpu?: Reading | undefined;
  /** Requests per second over all instances. */
  readonly requestRate?: Reading | undefined;
  /** Requests waiting in HAProxy's queues for this backend. */
  readonly queue?: Reading | undefined;
  /** Mean response time, in seconds. */
  readonly responseTime?: Reading | undefined;
  /**
   * Requests in the backend now, queued in HAProxy or at the servers (its current sessions).
   * With inFlightGrowth it tells the demand a saturated pool does not serve (stage `demand`).
   */
  readonly inFlight?: Reading | undefined;
  /** Change of inFlight per second over the same window as requestRate (negative when it shrinks). */
  readonly inFlightGrowth?: Reading | undefined;
  /** False when the metrics source could not be read at the last scrape. */
  readonly sourceUp: boolean;
}

export interface SignalTarget {
  /** Per instance for cpu, requestRate and queue; the backend's mean for responseTime. */
  readonly target: number;
  /** Below this (same unit) the signal allows scaling down. */
  readonly scaleDownBelow: number;
}

export interface RateLimit {
  /** At most this many instances per period… */
  readonly instances: number;
  /** …or this fraction of the current count, whichever is larger (0 to disable). */
  readonly fraction: number;
  readonly periodMs: number;
}

export type ForecastMode = 'off' | 'shadow' | 'act';

export interface DemandSettings {
  /** Time a new instance needs to serve: a growing backlog grows this much longer after a scale-up. */
  readonly startupMs: number;
  /**
   * A backlog (requests in flight beyond what the pool holds at the response-time target) is sized
   * to be served within this time on top of the arrivals; 0 leaves the backlog out.
   */
  readonly backlogDrainMs: number;
}

export interface ScalingPolicy {
  readonly minReplicas: number;
  readonly maxReplicas: number;
  /** Signals absent here are not used. */
  readonly signals: Partial<Readonly<Record<SignalName, SignalTarget>>>;
  /** |observed / target − 1| within this is "on target": no change. */
  readonly tolerance: number;
  /** A reading older than this is stale. */
  readonly maxSampleAgeMs: number;
  readonly scaleDownStabilisationMs: number;
  /**
   * The scale-down window lengthens, up to maxMs, to what would have held the pool through the
   * scale-downs it had to take back within maxMs; those older than memoryMs are forgotten (see
   * stabilisationWindow). maxMs at or below scaleDownStabilisationMs keeps the window fixed.
   */
  readonly adaptiveWindow: { readonly maxMs: number; readonly memoryMs: number };
  readonly scaleUp: RateLimit;
  readonly scaleDown: RateLimit;
  readonly forecast: {
    readonly mode: ForecastMode;
    /** How far ahead to look: the time a new instance needs to serve. */
    readonly horizonMs: number;
    readonly settings: ForecastSettings;
  };
  /** Below this request rate the response time is not a signal (an idle backend keeps its last average). */
  readonly idleRequestRate: number;
  readonly demand: DemandSettings;
}

export interface History {
  /** Recent recommendations (before stabilisation), for the scale-down window. */
  readonly recommendations: readonly { readonly at: number; readonly replicas: number }[];
  /** Recent scaling decisions that changed the count (with the scale-down window then), for the rate limits and the window. */
  readonly changes: readonly { readonly at: number; readonly from: number; readonly to: number; readonly windowMs?: number; readonly breach?: boolean }[];
  readonly forecast: ForecastState | undefined;
  /** Forecasts made, to compare with what came (shadow mode's record). */
  readonly predictions: readonly { readonly madeAt: number; readonly forAt: number; readonly requestRate: number }[];
}

export type StageName = 'demand' | 'proposals' | 'largest' | 'forecast' | 'stabilise' | 'rateLimit' | 'clamp' | 'safety';

export interface Stage {
  readonly stage: StageName;
  readonly replicas: number;
  readonly reason: string;
}

export interface SignalProposal {
  readonly signal: SignalName;
  readonly status: 'ok' | 'missing' | 'stale' | 'idle';
  /** Per instance (or the mean, for response time), as compared with the target. */
  readonly observed: number | undefined;
  readonly replicas: number;
  readonly reason: string;
}

export interface Decision {
  readonly replicas: number;
  readonly direction: 'up' | 'down' | 'none';
  /** The stage that settled the final count, and why. */
  readonly stage: StageName;
  readonly reason: string;
  readonly stages: readonly Stage[];
  readonly proposals: readonly SignalProposal[];
  readonly predictedRequestRate: number | undefined;
  /** True when scale-down was held back because data is missing, stale or the source is down. */
  readonly scaleDownFrozen: boolean;
  /**
   * True when the pool shows saturation, not only a high request rate: demand the pool does not
   * serve, or a queue or response time over target. A breach check between evaluations acts on an
   * upward decision only then (a short window's request rate alone is too noisy to act on).
   */
  readonly breach: boolean;
  readonly history: History;
}
