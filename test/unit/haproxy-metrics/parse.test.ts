import { describe, expect, it } from 'vitest';
import { backendSnapshot, counterRate, parsePrometheusText, scrape } from '../../../sidecar/haproxy-metrics/exporter.js';

// Lines as HAProxy 2.6.12's exporter writes them (captured from the local environment).
const exposition = `# HELP haproxy_backend_current_queue Number of current queued connections.
# TYPE haproxy_backend_current_queue gauge
haproxy_backend_current_queue{proxy="be_app"} 3
haproxy_backend_current_sessions{proxy="be_app"} 12
haproxy_backend_http_requests_total{proxy="be_app"} 1500
haproxy_backend_response_time_average_seconds{proxy="be_app"} 0.042000
haproxy_backend_queue_time_average_seconds{proxy="be_app"} 0.001000
haproxy_backend_active_servers{proxy="be_app"} 2
haproxy_backend_http_requests_total{proxy="be_other"} 7
haproxy_server_current_sessions{proxy="be_app",server="hsc-nginx-1"} 5
haproxy_server_current_sessions{proxy="be_app",server="hsc-nginx-2"} 7
haproxy_server_current_queue{proxy="be_app",server="hsc-nginx-2"} 3
haproxy_server_status{proxy="be_app",server="hsc-nginx-1",state="UP"} 1
haproxy_server_status{proxy="be_app",server="hsc-nginx-1",state="DRAIN"} 0
haproxy_server_status{proxy="be_app",server="hsc-nginx-2",state="UP"} 0
haproxy_server_status{proxy="be_app",server="hsc-nginx-2",state="DRAIN"} 1
odd_metric{path="a\\"b}c",x="y"} 1.5e3 1700000000000
not a metric line
`;

describe('parsePrometheusText', () => {
  it('reads names, labels (with escapes and braces in values) and values, skipping comments and garbage', () => {
    const samples = parsePrometheusText(exposition);
    expect(samples).toHaveLength(15);
    expect(samples.at(-1)).toEqual({ name: 'odd_metric', labels: { path: 'a"b}c', x: 'y' }, value: 1500 });
    expect(samples[0]).toEqual({ name: 'haproxy_backend_current_queue', labels: { proxy: 'be_app' }, value: 3 });
  });
});

describe('backendSnapshot', () => {
  it('collects the backend and its servers', () => {
    expect(backendSnapshot(parsePrometheusText(exposition), 'be_app', 42)).toEqual({
      backend: 'be_app',
      at: 42,
      httpRequestsTotal: 1500,
      currentSessions: 12,
      currentQueue: 3,
      responseTimeAverageSeconds: 0.042,
      queueTimeAverageSeconds: 0.001,
      activeServers: 2,
      servers: [
        { name: 'hsc-nginx-1', currentSessions: 5, currentQueue: 0, state: 'UP' },
        { name: 'hsc-nginx-2', currentSessions: 7, currentQueue: 3, state: 'DRAIN' },
      ],
    });
  });

  it('is undefined for a backend the exporter does not list (not zeros)', () => {
    expect(backendSnapshot(parsePrometheusText(exposition), 'be_missing', 42)).toBeUndefined();
  });
});

describe('counterRate', () => {
  it.each([
    { name: 'a steady counter', prev: [1000, 0], curr: [1600, 30_000], rate: 20 },
    { name: 'a reset (reload): counted from zero', prev: [5000, 0], curr: [300, 30_000], rate: 10 },
    { name: 'no time passed', prev: [1000, 10], curr: [1000, 10], rate: undefined },
    { name: 'out of order', prev: [1000, 20], curr: [1200, 10], rate: undefined },
  ])('$name', ({ prev, curr, rate }) => {
    expect(counterRate({ value: prev[0] ?? 0, at: prev[1] ?? 0 }, { value: curr[0] ?? 0, at: curr[1] ?? 0 })).toBe(rate);
  });
});

describe('scrape', () => {
  it('reports an unreachable endpoint as a failure with the address, not as empty data', async () => {
    const result = await scrape({ url: 'http://127.0.0.1:9/metrics', timeoutMs: 1_000 });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toMatch(/^http:\/\/127\.0\.0\.1:9\/metrics: /);
  });
});
