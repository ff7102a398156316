// Traces of the bench's own making: a recorded one read from CSV (timestamp, request rate), and the
// bench's load step as the simulator replays it. The generated families are in families.ts.
import { resample, type RatePoint, type Trace } from '../../sidecar/simulation/trace.js';

export type { Trace };

const minutes = (m: number): number => m * 60;

/**
 * A recorded trace: CSV lines "timestamp,requests per second" (a header line is allowed; the
 * timestamp is seconds or an ISO date), linearly interpolated to one value per second.
 */
export function fromCsv(name: string, text: string): Trace {
  const points: RatePoint[] = [];
  text.split(/\r?\n/).forEach((line, index) => {
    const trimmed = line.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;
    const [rawTime, rawRate] = trimmed.split(',').map((s) => s.trim());
    const seconds = rawTime !== undefined && /^-?\d+(\.\d+)?$/.test(rawTime) ? Number(rawTime) : Date.parse(rawTime ?? '') / 1000;
    const rate = Number(rawRate);
    if (Number.isNaN(seconds) || rawRate === undefined || rawRate === '' || !Number.isFinite(rate) || rate < 0) {
      if (index === 0) return; // a header
      throw new Error(`${name}: line ${index + 1} is not "timestamp,requests per second": ${JSON.stringify(trimmed)}`);
    }
    points.push({ t: seconds, rate });
  });
  if (points.length < 2) throw new Error(`${name}: a trace needs at least two points`);
  const rates = resample(points);
  return { name, description: `recorded (${points.length} points, ${Math.round(rates.length / 60)} min)`, rates };
}

/**
 * The bench's load step in the simulator's terms: when the step comes (7 s after an evaluation of
 * every policy: mid-period for the HPA rule's 15 s) and how long it lasts.
 */
export const LOAD_STEP = { stepAt: minutes(2) + 7, seconds: minutes(4) } as const;

/**
 * As the bench's load-step: a pool of 2 at rest, a step to five instances' worth of load at the
 * target (the bench: 12 clients on /work with a target of 20 req/s per instance), held 4 minutes,
 * then back to rest. Not one of the standard traces: the report times it on its own.
 */
export function loadStep(): Trace {
  const rates = Array.from({ length: minutes(12) }, (_, t) => (t >= LOAD_STEP.stepAt && t < LOAD_STEP.stepAt + LOAD_STEP.seconds ? 500 : 10));
  return { name: 'load-step', description: 'a pool of 2 at 10 req/s, a step to 500 req/s (five instances at the target) at 2 min 7 s for 4 min, then back to 10 req/s', rates };
}
