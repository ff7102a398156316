import { describe, expect, it } from 'vitest';
import type { ContainerEvent, DockerSource } from '../../../sidecar/discovery/discovery.js';
import { watchContainerEvents } from '../../../sidecar/discovery/events.js';
import { silentLogger } from '../../../sidecar/log/logger.js';

async function* events(list: ContainerEvent[], thenFail?: Error): AsyncGenerator<ContainerEvent> {
  for (const e of list) yield await Promise.resolve(e);
  if (thenFail) throw thenFail;
}

describe('watchContainerEvents', () => {
  it('reopens a broken stream with exponential backoff and reports every open and close', async () => {
    const controller = new AbortController();
    let opens = 0;
    const source: DockerSource = {
      listRunning: () => Promise.resolve({ ok: true, value: [] }),
      openEvents: () => {
        opens++;
        if (opens === 2) return Promise.reject(new Error('connect ECONNREFUSED'));
        if (opens === 5) controller.abort();
        return Promise.resolve(events([{ action: 'start', containerId: `c${opens}` }], new Error('socket hang up')));
      },
    };
    const seen: string[] = [];
    const sleeps: number[] = [];
    await watchContainerEvents({
      source,
      signal: controller.signal,
      onEvent: (e) => seen.push(`event ${e.action} ${e.containerId}`),
      onStreamState: (open) => seen.push(open ? 'open' : 'closed'),
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      now: () => 0,
      logger: silentLogger,
      minBackoffMs: 500,
      maxBackoffMs: 4_000,
    });
    expect(opens).toBe(5);
    expect(sleeps).toEqual([500, 1_000, 2_000, 4_000]);
    // The second open failed before the stream existed: no open/closed pair for it.
    expect(seen).toEqual([
      'open', 'event start c1', 'closed',
      'open', 'event start c3', 'closed',
      'open', 'event start c4', 'closed',
      'open', 'event start c5', 'closed',
    ]);
  });

  it('starts the backoff over after a stream that stayed up', async () => {
    const controller = new AbortController();
    let clock = 0;
    let opens = 0;
    const source: DockerSource = {
      listRunning: () => Promise.resolve({ ok: true, value: [] }),
      openEvents: () => {
        opens++;
        if (opens === 4) controller.abort();
        // The third stream lives a minute before it breaks.
        if (opens === 3) clock += 60_000;
        return Promise.resolve(events([]));
      },
    };
    const sleeps: number[] = [];
    await watchContainerEvents({
      source,
      signal: controller.signal,
      onEvent: () => {},
      onStreamState: () => {},
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      now: () => clock,
      logger: silentLogger,
      minBackoffMs: 500,
      maxBackoffMs: 4_000,
    });
    expect(sleeps).toEqual([500, 1_000, 500]);
  });
});
