import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isLeavingEvent, isReturningEvent, readEvents, type ContainerEvent } from '../../../sidecar/docker/compose.js';

async function parse(lines: string[]): Promise<ContainerEvent[]> {
  const stream = new PassThrough();
  stream.end(lines.map((l) => `${l}\n`).join(''));
  const events: ContainerEvent[] = [];
  for await (const event of readEvents(stream, new AbortController().signal)) events.push(event);
  return events;
}

describe("Docker's event lines", () => {
  it('keep the kill signal and the health verdict; leaving and returning are told from them', async () => {
    const events = await parse([
      JSON.stringify({ Action: 'kill', Actor: { ID: 'a', Attributes: { signal: '3' } } }),
      JSON.stringify({ Action: 'kill', Actor: { ID: 'b', Attributes: { signal: '1' } } }),
      JSON.stringify({ Action: 'health_status: unhealthy', Actor: { ID: 'c', Attributes: {} } }),
      JSON.stringify({ Action: 'health_status: healthy', Actor: { ID: 'c', Attributes: {} } }),
      JSON.stringify({ Action: 'start', Actor: { ID: 'd' } }),
      'not json',
    ]);
    expect(events).toEqual([
      { action: 'kill', containerId: 'a', signal: '3' },
      { action: 'kill', containerId: 'b', signal: '1' },
      { action: 'health_status', containerId: 'c', health: 'unhealthy' },
      { action: 'health_status', containerId: 'c', health: 'healthy' },
      { action: 'start', containerId: 'd' },
    ]);
    // SIGQUIT stops nginx, SIGHUP reloads it; an unhealthy container can no longer serve.
    expect(events.map(isLeavingEvent)).toEqual([true, false, true, false, false]);
    expect(events.map(isReturningEvent)).toEqual([false, false, false, true, true]);
  });
});
