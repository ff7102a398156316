import { describe, expect, it } from 'vitest';
import { createSampler } from '../../../sidecar/autoscale/sampler.js';
import { parsePrometheusText, type ScrapeResult } from '../../../sidecar/haproxy-metrics/index.js';

const exposition = (requests: number, queue = 0) =>
  parsePrometheusText(`haproxy_backend_http_requests_total{proxy="be_app"} ${requests}
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
});
