// Load for the scenarios that measure events through the sidecar, open loop (a fixed rate,
// whatever the answers take, so a slow or failing moment does not lower the load) or closed loop
// (clients that wait for their answer, as users do: a saturated pool answers slower instead of
// refusing). Every request is bounded in time, the whole load in count and duration, and only
// the loopback is a target. It keeps what the scenarios attribute to events: each failure with
// its time, and when each container (X-Served-By) first answered.

export interface Failure {
  /** When the request was sent and when it ended (ms since the epoch). */
  readonly sentAt: number;
  readonly endedAt: number;
  /** HTTP status, or 0 when no answer came (reset, refused, timeout). */
  readonly status: number;
  readonly error: string | undefined;
}

/** One request as the client saw it: when it was sent, when its answer ended, whether it was a 2xx. */
export interface Answer {
  readonly sentAt: number;
  readonly endedAt: number;
  readonly ok: boolean;
}

export interface TrafficReport {
  readonly sent: number;
  readonly ok: number;
  readonly failures: readonly Failure[];
}

export interface Traffic {
  /** When `host` first answered 2xx (ms since the epoch), if it has. */
  firstServedBy(host: string): number | undefined;
  /** Requests sent in [from, to] and those of them that failed (by the time they were sent). */
  between(from: number, to: number): { readonly sent: number; readonly failures: readonly Failure[] };
  /** Resolves when `host` has answered, or with undefined after `timeoutMs`. */
  waitForHost(host: string, timeoutMs: number): Promise<number | undefined>;
  /** Every request answered (or failed) so far, in the order they ended: a run's timeline is made of them. */
  answers(): readonly Answer[];
  stop(): Promise<TrafficReport>;
}

interface Limits {
  readonly maxDurationMs: number;
  readonly maxRequests: number;
  readonly requestTimeoutMs?: number;
}

/** The bookkeeping both shapes of load share: one request at a time through send(). */
function recorder(url: string, limits: Limits) {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]') throw new Error(`load may only target the loopback, not ${host}`);
  const firstSeen = new Map<string, number>();
  const sentTimes: number[] = [];
  const failures: Failure[] = [];
  const answers: Answer[] = [];
  const deadline = Date.now() + limits.maxDurationMs;
  let ok = 0;
  let stopped = false;

  return {
    /** False once stopped, past the duration or at the count: send no more. */
    mayContinue: (): boolean => !stopped && Date.now() < deadline && sentTimes.length < limits.maxRequests,
    stopNow(): void {
      stopped = true;
    },
    async send(): Promise<void> {
      const sentAt = Date.now();
      sentTimes.push(sentAt);
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(limits.requestTimeoutMs ?? 15_000) });
        await response.arrayBuffer();
        const endedAt = Date.now();
        answers.push({ sentAt, endedAt, ok: response.status >= 200 && response.status < 300 });
        if (response.status >= 200 && response.status < 300) {
          ok++;
          const servedBy = response.headers.get('x-served-by');
          if (servedBy !== null && !firstSeen.has(servedBy)) firstSeen.set(servedBy, endedAt);
        } else {
          failures.push({ sentAt, endedAt, status: response.status, error: undefined });
        }
      } catch (error) {
        const cause = error instanceof Error && error.cause instanceof Error ? `: ${error.cause.message}` : '';
        const endedAt = Date.now();
        answers.push({ sentAt, endedAt, ok: false });
        failures.push({ sentAt, endedAt, status: 0, error: `${error instanceof Error ? error.message : String(error)}${cause}` });
      }
    },
    traffic(settle: () => Promise<void>): Traffic {
      return {
        firstServedBy: (h) => firstSeen.get(h),
        answers: () => answers,
        between: (from, to) => ({
          sent: sentTimes.filter((t) => t >= from && t <= to).length,
          failures: failures.filter((f) => f.sentAt >= from && f.sentAt <= to),
        }),
        async waitForHost(h, timeoutMs) {
          const until = Date.now() + timeoutMs;
          while (Date.now() < until && !stopped && firstSeen.get(h) === undefined) {
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          return firstSeen.get(h);
        },
        async stop() {
          stopped = true;
          await settle();
          return { sent: sentTimes.length, ok, failures: [...failures] };
        },
      };
    },
  };
}

/** Open loop: one GET every 1000/rate ms. */
export function startTraffic(url: string, options: Limits & { readonly ratePerSecond: number }): Traffic {
  const r = recorder(url, options);
  const inFlight = new Set<Promise<void>>();
  let resolveEnded: () => void = () => {};
  const ended = new Promise<void>((resolve) => (resolveEnded = resolve));
  const timer = setInterval(() => {
    if (!r.mayContinue()) {
      clearInterval(timer);
      resolveEnded();
      return;
    }
    const request = r.send();
    inFlight.add(request);
    void request.finally(() => inFlight.delete(request));
  }, 1000 / options.ratePerSecond);
  return r.traffic(async () => {
    clearInterval(timer);
    resolveEnded();
    await ended;
    await Promise.all([...inFlight]);
  });
}

/** Closed loop: `concurrency` clients, each sending its next GET when its last one ended. */
export function startClosedLoop(url: string, options: Limits & { readonly concurrency: number }): Traffic {
  const r = recorder(url, options);
  const worker = async (): Promise<void> => {
    while (r.mayContinue()) await r.send();
  };
  const workers = Promise.all(Array.from({ length: options.concurrency }, () => worker()));
  return r.traffic(async () => {
    r.stopNow();
    await workers;
  });
}
