import { describe, expect, it } from 'vitest';
import { parseChildrenCpuTicks, parsePacedLine } from '../../../bench/lib/capacity-load.js';
import { parseCpuStatUsage, parseProcStatTotals } from '../../../bench/lib/capacity-stack.js';
import { parseWrkOutput } from '../../../bench/lib/wrk.js';

// A paced run as wrk 4.1.0 printed it (the capacity scenario's script, 2 instances through
// HAProxy at 630 req/s), followed by the shell's stat line.
const PACED = `Running 5s test @ http://127.0.0.1:41235/
  2 threads and 189 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.20ms   30.11ms 243.17ms   88.20%
    Req/Sec   318.03     61.55   440.00     71.00%
  Latency Distribution
     50%    6.94ms
     75%   21.01ms
     90%   60.52ms
     99%  118.10ms
  3142 requests in 5.00s, 1.03MB read
Requests/sec:    628.13
Transfer/sec:    210.21KB
paced: late 0 max-late-ms 0.0
capacity-stat: 31337 (sh) S 31330 31337 31330 0 -1 4194560 155 5893 0 0 0 0 41 12 20 0 1 0 1234 2600960 226 18446744073709551615 1 1 0 0 0 0 0 0 65536 0 0 0 17 1 0 0 0 0 0
`;

describe('the paced wrk run', () => {
  it("reads wrk's report and the pacing line", () => {
    expect(parseWrkOutput(PACED).requestsPerSecond).toBe(628.13);
    expect(parsePacedLine(PACED)).toEqual({ lateSends: 0, maxLateMs: 0 });
    expect(parsePacedLine('paced: late 12 max-late-ms 371.9\n')).toEqual({ lateSends: 12, maxLateMs: 371.9 });
  });

  it('throws without the pacing line (the script did not run)', () => {
    expect(() => parsePacedLine('Requests/sec: 1\n')).toThrow(/no pacing summary/);
  });

  it("takes wrk's CPU from the shell's children times (fields 16 and 17)", () => {
    const line = /^capacity-stat: (.*)$/m.exec(PACED)?.[1] ?? '';
    expect(parseChildrenCpuTicks(line)).toBe(53);
    // A command name with spaces and parentheses does not shift the fields.
    expect(parseChildrenCpuTicks(line.replace('(sh)', '(a (b) c)'))).toBe(53);
    expect(() => parseChildrenCpuTicks('1 (sh) S')).toThrow(/children's CPU/);
  });
});

describe('CPU accounting', () => {
  it("reads the machine's busy and total ticks from /proc/stat", () => {
    const stat = 'cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\nintr 1\n';
    expect(parseProcStatTotals(stat)).toEqual({ busy: 160, total: 1000 });
  });

  it("reads a cgroup v2 cpu.stat's usage in seconds", () => {
    expect(parseCpuStatUsage('usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n')).toBe(2.5);
    expect(() => parseCpuStatUsage('user_usec 1\n')).toThrow(/usage_usec/);
  });
});
