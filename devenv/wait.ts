// Waits until HAProxy's frontend has served requests from `servers` different nginx containers.
export async function eventuallyServing(frontendUrl: string, servers: number, timeoutMs: number): Promise<void> {
  const seen = new Set<string>();
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const response = await fetch(`${frontendUrl}/`, { signal: AbortSignal.timeout(2_000) });
      await response.text();
      const by = response.headers.get('x-served-by');
      if (response.status === 200 && by !== null) seen.add(by);
      if (seen.size >= servers) return;
    } catch {
      // Not serving yet.
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the frontend served from ${seen.size} of ${servers} containers within ${timeoutMs / 1000} s`);
}
