import { describe, expect, it } from 'vitest';
import { parseWrkOutput, parseWrkTime } from '../../../bench/lib/wrk.js';

// Real wrk 4.1.0 reports, captured on this project's local environment (HAProxy 2.6 in front of
// the hsc/nginx:local test image), whitespace as wrk printed it.
const FAST = `Running 3s test @ http://127.0.0.1:35595/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.86ms    1.09ms  24.17ms   96.46%
    Req/Sec    10.67k     2.00k   18.90k    77.05%
  Latency Distribution
     50%  679.00us
     75%    0.92ms
     90%    1.25ms
     99%    4.94ms
  64823 requests in 3.10s, 14.16MB read
Requests/sec:  20912.24
Transfer/sec:      4.57MB
`;

// 300 connections on /work (50 req/s per instance, a 200-deep line, 503 beyond).
const OVERLOADED = `Running 3s test @ http://127.0.0.1:35595/work
  2 threads and 300 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    73.88ms  249.32ms   1.99s    92.94%
    Req/Sec     6.60k     2.26k   13.31k    73.33%
  Latency Distribution
     50%    7.02ms
     75%   10.10ms
     90%   41.73ms
     99%    1.38s 
  39583 requests in 3.02s, 16.24MB read
  Socket errors: connect 0, read 0, write 0, timeout 50
  Non-2xx or 3xx responses: 39434
Requests/sec:  13101.29
Transfer/sec:      5.38MB
`;

// --timeout 1s on /slow?s=2: every request times out, so wrk has no latency sample at all.
const ALL_TIMED_OUT = `Running 3s test @ http://127.0.0.1:35595/slow?s=2
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     1.00      0.00     1.00    100.00%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  4 requests in 3.01s, 0.95KB read
  Socket errors: connect 0, read 0, write 0, timeout 4
Requests/sec:      1.33
Transfer/sec:     322.10B
`;

describe('wrk report parsing', () => {
  it.each([
    ['552.00us', 552e-6],
    ['0.92ms', 0.92e-3],
    ['1.99s', 1.99],
    ['1.38s ', 1.38],
    ['1.50m', 90],
    ['2.00h', 7200],
  ])('reads the duration %j', (text, seconds) => {
    expect(parseWrkTime(text)).toBeCloseTo(seconds, 12);
  });

  it('refuses what is not a wrk duration', () => {
    expect(() => parseWrkTime('12')).toThrow(/not a wrk duration/);
    expect(() => parseWrkTime('1.2ks')).toThrow(/not a wrk duration/);
  });

  it('reads a clean run: rate, totals, every percentile, no errors', () => {
    const r = parseWrkOutput(FAST);
    expect(r.requests).toBe(64823);
    expect(r.durationSeconds).toBeCloseTo(3.1, 12);
    expect(r.requestsPerSecond).toBeCloseTo(20912.24, 6);
    expect(r.latency.avg).toBeCloseTo(0.86e-3, 12);
    expect(r.latency.max).toBeCloseTo(24.17e-3, 12);
    expect(r.latency.p50).toBeCloseTo(679e-6, 12);
    expect(r.latency.p75).toBeCloseTo(0.92e-3, 12);
    expect(r.latency.p90).toBeCloseTo(1.25e-3, 12);
    expect(r.latency.p99).toBeCloseTo(4.94e-3, 12);
    expect(r.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 0 });
    expect(r.non2xx3xx).toBe(0);
  });

  it('reads failures: error statuses and socket errors, and percentiles in seconds', () => {
    const r = parseWrkOutput(OVERLOADED);
    expect(r.requests).toBe(39583);
    expect(r.non2xx3xx).toBe(39434);
    expect(r.socketErrors).toEqual({ connect: 0, read: 0, write: 0, timeout: 50 });
    expect(r.latency.max).toBeCloseTo(1.99, 12);
    expect(r.latency.p99).toBeCloseTo(1.38, 12);
    expect(r.requestsPerSecond).toBeCloseTo(13101.29, 6);
  });

  it('reads a run where every request timed out (no latency samples, -nan spread)', () => {
    const r = parseWrkOutput(ALL_TIMED_OUT);
    expect(r.requests).toBe(4);
    expect(r.latency).toEqual({ avg: 0, max: 0, p50: 0, p75: 0, p90: 0, p99: 0 });
    expect(r.socketErrors.timeout).toBe(4);
    expect(r.requestsPerSecond).toBeCloseTo(1.33, 6);
  });

  it('says which part is missing when wrk ran without --latency', () => {
    const withoutDistribution = FAST.split('\n')
      .filter((line) => !/^\s+\d+%\s/.test(line))
      .join('\n');
    expect(() => parseWrkOutput(withoutDistribution)).toThrow(/50% latency \(was --latency given\?\)/);
  });
});
