// Open-loop load at a fixed rate, for tests that need the load to stay small (an autoscaler that
// must see a quiet backend): one GET every 1000/rate ms, whatever the answers take, bounded in
// time and count, every answer counted as in load.ts. Only loopback targets are accepted.
import type { LoadReport, RunningLoad } from './load.js';

export interface PacedLoadOptions {
  readonly ratePerSecond: number;
  readonly maxDurationMs: number;
  readonly maxRequests: number;
  /** Extra request headers (a persistence cookie, say). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Called with each answer's X-Served-By, to check where HAProxy sent the requests. */
  readonly onServedBy?: (servedBy: string | null) => void;
  /** Called with every answer (status 0: none) and when its request was sent, to tell when failures happened. */
  readonly onAnswer?: (status: number, sentAt: number) => void;
}

export function startPacedLoad(url: string, options: PacedLoadOptions): RunningLoad {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]' && host !== 'localhost') throw new Error(`load may only target the loopback, not ${host}`);
  const statuses = new Map<number, number>();
  const inFlight = new Set<Promise<void>>();
  let sent = 0;
  let stopped = false;
  const deadline = Date.now() + options.maxDurationMs;
  const one = async (): Promise<void> => {
    let status = 0;
    const sentAt = Date.now();
    try {
      const response = await fetch(url, { headers: { ...options.headers }, signal: AbortSignal.timeout(30_000) });
      await response.arrayBuffer();
      options.onServedBy?.(response.headers.get('x-served-by'));
      status = response.status;
    } catch {
      status = 0;
    }
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
    options.onAnswer?.(status, sentAt);
  };
  let resolveEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  const timer = setInterval(() => {
    if (stopped || Date.now() >= deadline || sent >= options.maxRequests) {
      clearInterval(timer);
      resolveEnded();
      return;
    }
    sent++;
    const request = one();
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request));
  }, 1000 / options.ratePerSecond);
  const report = (): LoadReport => {
    const failures: Record<string, number> = {};
    let ok = 0;
    for (const [status, n] of statuses) {
      if (status >= 200 && status < 300) ok += n;
      else failures[String(status)] = n;
    }
    return { sent, ok, statuses, failures };
  };
  const settle = async (): Promise<LoadReport> => {
    await ended;
    await Promise.all([...inFlight]);
    return report();
  };
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
      resolveEnded();
      return settle();
    },
    finished: settle,
  };
}
