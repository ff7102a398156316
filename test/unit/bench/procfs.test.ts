import { describe, expect, it } from 'vitest';
import { cpuShare, parseProcStatCpuTicks, parseProcStatus } from '../../../bench/lib/procfs.js';

// /proc/<pid>/status and /proc/<pid>/stat of a sleeping node process, captured on this machine
// (Linux, Debian 12); status lines this parser does not read (signal masks, capabilities, CPU
// and memory-node lists) are left out.
const STATUS = `Name:\tnode
Umask:\t0022
State:\tS (sleeping)
Tgid:\t7479
Ngid:\t0
Pid:\t7479
PPid:\t7477
TracerPid:\t0
Uid:\t0\t0\t0\t0
Gid:\t0\t0\t0\t0
FDSize:\t256
Groups:\t 
NStgid:\t7479
NSpid:\t7479
NSpgid:\t7477
NSsid:\t21723
Kthread:\t0
VmPeak:\t  728652 kB
VmSize:\t  728436 kB
VmLck:\t       0 kB
VmPin:\t       0 kB
VmHWM:\t   39760 kB
VmRSS:\t   39760 kB
RssAnon:\t    6332 kB
RssFile:\t   33428 kB
RssShmem:\t       0 kB
VmData:\t   48804 kB
VmStk:\t     132 kB
VmExe:\t   27208 kB
VmLib:\t    3108 kB
VmPTE:\t     376 kB
VmSwap:\t       0 kB
HugetlbPages:\t       0 kB
CoreDumping:\t0
THP_enabled:\t1
Threads:\t7
voluntary_ctxt_switches:\t5
nonvoluntary_ctxt_switches:\t1
`;

const STAT =
  '7479 (node) S 7477 7477 21723 0 -1 4194304 2210 0 3 0 5 0 0 0 20 0 7 0 759674 745918464 9925 18446744073709551615 11988992 39846385 140736538665840 0 0 0 0 16781312 17922 0 0 0 17 1 0 0 0 0 0 90418888 90555584 240295936 140736538667700 140736538667732 140736538667732 140736538669034 0\n';

describe('/proc readings', () => {
  it('reads VmRSS and VmHWM in bytes', () => {
    expect(parseProcStatus(STATUS)).toEqual({ rssBytes: 39760 * 1024, peakRssBytes: 39760 * 1024 });
  });

  it('names the missing field', () => {
    expect(() => parseProcStatus(STATUS.replace(/^VmRSS.*\n/m, ''))).toThrow(/VmRSS/);
  });

  it('adds utime and stime (fields 14 and 15)', () => {
    expect(parseProcStatCpuTicks(STAT)).toBe(5);
    // The same line with stime set, and with a command name holding spaces and parentheses,
    // which is why fields are counted from the last ")".
    const withStime = STAT.replace(' 3 0 5 0 0 0 20', ' 3 0 5 7 0 0 20');
    expect(parseProcStatCpuTicks(withStime)).toBe(12);
    expect(parseProcStatCpuTicks(withStime.replace('(node)', '(a (b) c)'))).toBe(12);
  });

  it('turns two readings into a share of one core', () => {
    const from = { at: 1_000, rssBytes: 0, peakRssBytes: 0, cpuSeconds: 1.0 };
    expect(cpuShare(from, { ...from, at: 3_000, cpuSeconds: 1.1 })).toBeCloseTo(0.05, 12);
    expect(cpuShare(from, from)).toBeNaN();
  });
});
