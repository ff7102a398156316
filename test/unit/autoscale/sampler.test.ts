import { describe, expect, it } from 'vitest';
import { createSampler } from '../../../sidecar/autoscale/sampler.js';
import { parsePrometheusText, type ScrapeResult } from '../../../sidecar/haproxy-metrics/exporter.js';

const exposition = (requests: number, queue = 0, sessions = 0) =>
  parsePrometheusText(`haproxy_backend_http_requests_total{proxy="be_app"} ${requests}
haproxy_backend_current_sessions{proxy="be_app"} ${sessions}
haproxy_backend_current_queue{proxy="be_app"} ${queue}
haproxy_backend_response_time_average_seconds{proxy="be_app"} 0.120000
haproxy_server_current_sessions{proxy="be_app",server="hsc-nginx-1"} 4
haproxy_server_current_queue{proxy="be_app",server="hsc-nginx-1"} 1
haproxy_server_status{proxy="be_app",server="hsc-nginx-1",state="UP"} 1
haproxy_server_status{proxy="be_app",server="hsc-nginx-2",state="DRAIN"} 1
haproxy_server_status{proxy="be_app",server="static-1",state="UP"} 1
haproxy_server_status{proxy="be_app",server="hsc-other-service-1",state="UP"} 1
`);

function sampler(results: ScrapeResult[], cpu: Array<number | undefined>) {
  let clock = 1_000_000;
  return createSampler({
    backend: 'be_app',
    scrape: () => {
      clock += 10_000;
      const next = results.shift();
      if (next === undefined) throw new Error('script exhausted');
      return Promise.resolve(next.ok ? { ok: true, value: { ...next.value, at: clock } } : next);
    },
    cpu: () => Promise.resolve(cpu.shift()),
    now: () => clock,
  });
}

// hsc-other-service-1 is the sidecar's too, but another service's: it is not a replica.
const threeReplicas = { ids: ['c1', 'c2', 'c3'], servers: new Set(['hsc-nginx-1', 'hsc-nginx-2', 'hsc-nginx-3']) };

describe('sampler', () => {
  it('reads no request rate from a single scrape (missing, not zero), then the counter rate', async () => {
    const s = sampler(
      [
        { ok: true, value: { samples: exposition(1000, 2), at: 0 } },
        { ok: true, value: { samples: exposition(1500, 2), at: 0 } },
      ],
      [0.42, 0.5],
    );
    const first = await s.sample(threeReplicas);
    expect(first.samples.requestRate).toBeUndefined();
    expect(first.samples).toMatchObject({ replicas: 1, sourceUp: true, queue: { value: 3 }, responseTime: { value: 0.12 }, cpu: { value: 0.42 } });
    const second = await s.sample(threeReplicas);
    expect(second.samples.requestRate).toEqual({ value: 50, at: 1_020_000 });
  });

  it('marks HAProxy down, counts replicas from Docker, and leaves its signals missing', async () => {
    const s = sampler([{ ok: false, error: { kind: 'network', operation: 'scrape', message: 'http://haproxy:8404/metrics: connect ECONNREFUSED' } }], [undefined]);
    const set = await s.sample(threeReplicas);
    expect(set.sources).toEqual({ haproxy: false, docker: false });
    expect(set.samples).toEqual({ replicas: 3, sourceUp: false, cpu: undefined, requestRate: undefined, queue: undefined, responseTime: undefined });
    expect(set.problems).toEqual(['http://haproxy:8404/metrics: connect ECONNREFUSED', 'container CPU unavailable from Docker']);
  });

  it('reads no CPU and counts no replica when Docker could not be listed', async () => {
    const s = sampler([{ ok: false, error: { kind: 'network', operation: 'scrape', message: 'down' } }], [0.5]);
    const set = await s.sample(undefined);
    expect(set.samples).toMatchObject({ replicas: 0, cpu: undefined });
  });

  it('survives a reload between scrapes: a counter reset gives the rate since the reset', async () => {
    const s = sampler(
      [
        { ok: true, value: { samples: exposition(90_000), at: 0 } },
        { ok: true, value: { samples: exposition(300), at: 0 } },
      ],
      [0.1, 0.1],
    );
    await s.sample(threeReplicas);
    expect((await s.sample(threeReplicas)).samples.requestRate?.value).toBe(30);
  });

  it('reads the requests in flight and their growth over the same window as the rate', async () => {
    const s = sampler(
      [
        { ok: true, value: { samples: exposition(1000, 0, 10), at: 0 } },
        { ok: true, value: { samples: exposition(3000, 0, 910), at: 0 } },
        { ok: true, value: { samples: exposition(6000, 0, 110), at: 0 } },
      ],
      [0.9, 1, 1],
    );
    const first = await s.sample(threeReplicas);
    expect(first.samples.inFlight).toEqual({ value: 10, at: 1_010_000 });
    expect(first.samples.inFlightGrowth).toBeUndefined();
    const second = await s.sample(threeReplicas);
    // 2000 requests ended in 10 s while 900 more came in than ended: 200 req/s ended, +90/s in flight.
    expect(second.samples).toMatchObject({ requestRate: { value: 200 }, inFlight: { value: 910 }, inFlightGrowth: { value: 90 } });
    // A reload empties the old worker: the fall is real (not a counter reset).
    expect((await s.sample(threeReplicas)).samples.inFlightGrowth?.value).toBe(-80);
  });

  it('peeks at HAProxy only, over the time since the last read, without moving the evaluation window', async () => {
    const cpuCalls: string[][] = [];
    let clock = 1_000_000;
    const script = [exposition(1000, 0, 10), exposition(1100, 0, 10), exposition(1200, 0, 410), exposition(2500, 0, 410)];
    const s = createSampler({
      backend: 'be_app',
      scrape: () => {
        clock += 10_000;
        const next = script.shift();
        if (next === undefined) throw new Error('script exhausted');
        return Promise.resolve({ ok: true, value: { samples: next, at: clock } });
      },
      cpu: (ids) => {
        cpuCalls.push([...ids]);
        return Promise.resolve(0.5);
      },
      now: () => clock,
    });
    await s.sample(threeReplicas);
    const peek1 = await s.peek(threeReplicas);
    expect(peek1.samples).toMatchObject({ cpu: undefined, requestRate: { value: 10 }, inFlightGrowth: { value: 0 } });
    expect(peek1.problems).toEqual([]);
    const peek2 = await s.peek(threeReplicas);
    expect(peek2.samples).toMatchObject({ requestRate: { value: 10 }, inFlightGrowth: { value: 40 } });
    // The evaluation's figures cover the whole interval since the last sample: 1500 ended and 400
    // more in flight in 30 s.
    const evaluation = await s.sample(threeReplicas);
    expect(evaluation.samples).toMatchObject({ requestRate: { value: 50 }, inFlightGrowth: { value: 13.333 }, cpu: { value: 0.5 } });
    expect(cpuCalls).toHaveLength(2);
  });

  it('a peek looks one window back (the latest read at least peekWindowMs old), so one noisy second is not a breach', async () => {
    let clock = 1_000_000;
    // Reads 2 s apart; the request counter and the sessions at each.
    const script: Array<[number, number]> = [[0, 0], [200, 0], [400, 0], [1000, 40], [1200, 40]];
    const s = createSampler({
      backend: 'be_app',
      scrape: () => {
        clock += 2_000;
        const [requests, sessions] = script.shift() ?? [NaN, NaN];
        return Promise.resolve({ ok: true, value: { samples: exposition(requests, 0, sessions), at: clock } });
      },
      cpu: () => Promise.resolve(0.5),
      now: () => clock,
      peekWindowMs: 4_000,
    });
    await s.sample(threeReplicas); // t = 2 s
    expect((await s.peek(threeReplicas)).samples.requestRate?.value).toBe(100); // 4 s: only 2 s back so far
    expect((await s.peek(threeReplicas)).samples.requestRate?.value).toBe(100); // 6 s: from 2 s
    // 8 s: from 4 s, not 6 s: 800 in 4 s, and 40 more in flight.
    expect((await s.peek(threeReplicas)).samples).toMatchObject({ requestRate: { value: 200 }, inFlightGrowth: { value: 10 } });
    // 10 s: from 6 s.
    expect((await s.peek(threeReplicas)).samples).toMatchObject({ requestRate: { value: 200 }, inFlightGrowth: { value: 10 } });
  });
});
