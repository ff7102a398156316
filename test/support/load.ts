// Bounded closed-loop load for the integration tests: `concurrency` workers send GETs back to
// back until stopped, or until the time or count limit, and every answer is counted, so a test can
// assert that not one request failed. Only loopback targets are accepted.

export interface LoadReport {
  readonly sent: number;
  readonly ok: number;
  /** Answers by HTTP status; 0 counts requests that got no answer (reset, timeout). */
  readonly statuses: ReadonlyMap<number, number>;
  /** Everything that was not a 2xx answer, by status ("0" = no answer). */
  readonly failures: Readonly<Record<string, number>>;
}

export interface RunningLoad {
  stop(): Promise<LoadReport>;
  /** Resolves when the count or time limit ends the load by itself. */
  finished(): Promise<LoadReport>;
}

export interface LoadLimits {
  readonly concurrency: number;
  readonly maxDurationMs: number;
  readonly maxRequests: number;
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1' && host !== '[::1]' && host !== 'localhost') {
    throw new Error(`load may only target the loopback, not ${host}`);
  }
}

export function startLoad(url: string, limits: LoadLimits): RunningLoad {
  assertLoopback(url);
  const deadline = Date.now() + limits.maxDurationMs;
  let stopped = false;
  let sent = 0;
  const statuses = new Map<number, number>();
  const count = (status: number): void => {
    statuses.set(status, (statuses.get(status) ?? 0) + 1);
  };
  const worker = async (): Promise<void> => {
    while (!stopped && Date.now() < deadline && sent < limits.maxRequests) {
      sent++;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(15_000) });
        await response.arrayBuffer();
        count(response.status);
      } catch {
        count(0);
      }
    }
  };
  const workers = Promise.all(Array.from({ length: limits.concurrency }, () => worker()));
  const report = (): LoadReport => {
    const failures: Record<string, number> = {};
    let ok = 0;
    for (const [status, n] of statuses) {
      if (status >= 200 && status < 300) ok += n;
      else failures[String(status)] = n;
    }
    return { sent, ok, statuses, failures };
  };
  return {
    async stop() {
      stopped = true;
      await workers;
      return report();
    },
    async finished() {
      await workers;
      return report();
    },
  };
}

/** Sends up to `requests` GETs within `deadlineMs` and reports them. */
export function boundedLoad(url: string, options: { requests: number; concurrency: number; deadlineMs: number }): Promise<LoadReport> {
  return startLoad(url, { concurrency: options.concurrency, maxDurationMs: options.deadlineMs, maxRequests: options.requests }).finished();
}

/** One GET that reads the whole body; a network error becomes status 0. */
export async function download(url: string, timeoutMs = 60_000): Promise<{ status: number; bytes: number }> {
  assertLoopback(url);
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: response.status, bytes: (await response.arrayBuffer()).byteLength };
  } catch {
    return { status: 0, bytes: 0 };
  }
}
