// Keeps a Docker event stream open for as long as the sidecar runs. Events are triggers only;
// when the stream breaks, events may have been lost, so every (re)open also asks for a full pass.
import type { Logger } from '../log/logger.js';
import type { ContainerEvent } from '../docker/compose.js';
import type { DockerSource } from './discovery.js';

export interface WatchOptions {
  readonly source: DockerSource;
  readonly onEvent: (event: ContainerEvent) => void;
  /** Called with true once the stream is open and false when it broke. */
  readonly onStreamState: (open: boolean) => void;
  readonly signal: AbortSignal;
  /** Resolves after `ms`, or early when `signal` aborts. */
  readonly sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  readonly now: () => number;
  readonly logger: Logger;
  readonly minBackoffMs: number;
  readonly maxBackoffMs: number;
}

/** Resolves only when `signal` aborts. */
export async function watchContainerEvents(options: WatchOptions): Promise<void> {
  const { signal, logger } = options;
  let backoff = options.minBackoffMs;
  while (!signal.aborted) {
    const openedAt = options.now();
    let failure: unknown;
    let opened = false;
    try {
      const events = await options.source.openEvents(signal);
      opened = true;
      options.onStreamState(true);
      for await (const event of events) options.onEvent(event);
    } catch (error) {
      failure = error;
    }
    if (opened) options.onStreamState(false);
    if (signal.aborted) return;
    // A stream that stayed up a while was healthy: start the backoff over.
    if (options.now() - openedAt >= options.maxBackoffMs) backoff = options.minBackoffMs;
    logger.warn(
      { retryInMs: backoff, error: failure instanceof Error ? failure.message : failure ?? 'stream ended' },
      'Docker event stream closed; reopening',
    );
    await options.sleep(backoff, signal);
    backoff = Math.min(backoff * 2, options.maxBackoffMs);
  }
}
