// Traffic traces for the simulator: request rate per second. The synthetic ones are seeded, and a
// recorded trace can be read from CSV (timestamp, request rate), resampled to one value a second.
import { seededRandom } from './random.js';

export interface Trace {
  readonly name: string;
  readonly description: string;
  /** Offered requests per second, one entry per simulated second. */
  readonly rates: readonly number[];
}

const minutes = (m: number): number => m * 60;

export function flashSale(): Trace {
  const rates = Array.from({ length: minutes(60) }, (_, t) => (t >= minutes(10) && t < minutes(35) ? 800 : 120));
  return { name: 'flash-sale', description: '120 req/s, a step to 800 req/s at 10 min for 25 min, then back', rates };
}

export function diurnal(seed: number): Trace {
  const random = seededRandom(seed);
  const day = minutes(24 * 60);
  const rates = Array.from({ length: day }, (_, t) => {
    // Trough at 04:00, peak at 16:00, with short-term noise of about 8 %.
    const phase = ((t / day) * 24 - 4) / 24;
    const base = 80 + 520 * (0.5 - 0.5 * Math.cos(2 * Math.PI * phase));
    return Math.max(0, base * (1 + 0.08 * random.normal()));
  });
  return { name: 'diurnal', description: 'one day, 80 to 600 req/s (trough 04:00, peak 16:00), 8 % noise', rates };
}

export function suddenSpike(): Trace {
  const rates = Array.from({ length: minutes(30) }, (_, t) => (t >= minutes(10) && t < minutes(13) ? 1000 : 150));
  return { name: 'sudden-spike', description: '150 req/s, a 3-minute spike to 1000 req/s at 10 min', rates };
}

export function slowRamp(): Trace {
  const length = minutes(150);
  const rates = Array.from({ length }, (_, t) => (t < minutes(120) ? 50 + (850 * t) / minutes(120) : 900));
  return { name: 'slow-ramp', description: '50 to 900 req/s over 2 hours, then flat for 30 min', rates };
}

/**
 * A recorded trace: CSV lines "timestamp,requests per second" (a header line is allowed; the
 * timestamp is seconds or an ISO date), linearly interpolated to one value per second.
 */
export function fromCsv(name: string, text: string): Trace {
  const points: Array<{ t: number; rate: number }> = [];
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
  points.sort((a, b) => a.t - b.t);
  const start = points[0]?.t ?? 0;
  const end = points[points.length - 1]?.t ?? 0;
  const rates: number[] = [];
  let segment = 0;
  for (let s = 0; s <= end - start; s++) {
    const t = start + s;
    while ((points[segment + 1]?.t ?? Infinity) < t) segment++;
    const a = points[segment];
    const b = points[segment + 1] ?? a;
    if (a === undefined || b === undefined) break;
    const share = b.t === a.t ? 0 : (t - a.t) / (b.t - a.t);
    rates.push(a.rate + (b.rate - a.rate) * share);
  }
  return { name, description: `recorded (${points.length} points, ${Math.round(rates.length / 60)} min)`, rates };
}

export function standardTraces(seed: number): Trace[] {
  return [flashSale(), diurnal(seed), suddenSpike(), slowRamp()];
}
