// Small HTTP helpers for the integration tests (undici's fetch, no keep-alive surprises).

export interface Answer {
  readonly status: number;
  readonly servedBy: string | null;
  readonly body: string;
}

/** One GET; network errors become status 0 so a test can count them. */
export async function get(url: string, init: RequestInit = {}): Promise<Answer> {
  try {
    const response = await fetch(url, { ...init, signal: AbortSignal.timeout(10_000) });
    return { status: response.status, servedBy: response.headers.get('x-served-by'), body: await response.text() };
  } catch {
    return { status: 0, servedBy: null, body: '' };
  }
}

/** Polls until check() holds or the time runs out; returns whether it held. */
export async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
  return check();
}
