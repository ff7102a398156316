// The parsers of what the runtime driver reads, on output captured from real HAProxy 2.6.12 and
// 3.0.11 (Debian's packages): `show servers state` is byte-for-byte the same format in both.
import { describe, expect, it } from 'vitest';
import {
  adminStateFromFlags,
  operationalStateFromCode,
  parseInfoVersion,
  parseServersState,
  toConfiguredServer,
  toRuntimeServer,
  versionAtLeast,
} from '../../../sidecar/runtime/state.js';

const HEADER =
  '# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight ' +
  'srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state ' +
  'srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl ' +
  'srv_check_port srv_check_addr srv_agent_addr srv_agent_port';

// HAProxy 2.6.12, `show servers state` of a configuration with a static server set to drain
// (`set server … state drain`), one with `disabled`, one by host name with weight 20, one
// tracking the first (so it inherits the drain), a server without port, and a server added at
// run time and not enabled yet.
const captured26Drain = `1
${HEADER}
2 be_app 1 srv-static 127.0.0.1 2 8 1 1 0 6 3 2 6 0 0 0 - 32797 - 0 0 - - 0
2 be_app 2 srv-disabled 127.0.0.1 0 5 1 1 6 1 0 0 14 0 0 0 - 32798 - 0 0 - - 0
2 be_app 3 srv-fqdn 127.0.0.1 2 0 20 20 6 6 3 4 6 0 0 0 localhost 32797 - 0 0 - - 0
2 be_app 4 srv-track 127.0.0.1 2 16 1 1 0 1 0 0 0 0 0 0 - 32798 - 0 0 - - 0
3 be_api 1 srv-noport 127.0.0.1 2 0 1 1 6 1 0 2 0 0 0 0 - 0 - 0 0 - - 0
3 be_api 2 hsc-dyn 127.0.0.1 0 1 3 3 4 1 0 0 2 0 0 0 - 32798 - 0 0 - - 0

`;

// HAProxy 3.0.11, the same configuration after `set server be_app/srv-static state maint`: the
// tracking server inherits the maintenance (IMAINT, 0x02).
const captured30Maint = `1
${HEADER}
2 be_app 1 srv-static 127.0.0.1 0 1 1 1 2 6 3 0 14 0 0 0 - 32797 - 0 0 - - 0
2 be_app 2 srv-disabled 127.0.0.1 0 5 1 1 6 1 0 0 14 0 0 0 - 32798 - 0 0 - - 0
2 be_app 3 srv-fqdn 127.0.0.1 2 0 20 20 6 6 3 4 6 0 0 0 localhost 32797 - 0 0 - - 0
2 be_app 4 srv-track 127.0.0.1 0 2 1 1 2 1 0 0 0 0 0 0 - 32798 - 0 0 - - 0
3 be_api 1 srv-noport 127.0.0.1 2 0 1 1 6 1 0 2 0 0 0 0 - 0 - 0 0 - - 0
3 be_api 2 hsc-dyn 127.0.0.1 0 1 3 3 4 1 0 0 2 0 0 0 - 32798 - 0 0 - - 0

`;

// HAProxy 3.0.11, `show servers state be_app` of the local environment's backend with servers
// added at run time the driver's way: ready and up, drained (weight 50), in maintenance, down
// (nothing listens on port 1), and added but not enabled yet.
const captured30Managed = `1
${HEADER}
3 be_app 1 hsc-ready 127.0.0.1 2 0 100 100 4 15 3 2 6 0 0 0 - 32797 - 0 0 - - 0
3 be_app 2 hsc-drain 127.0.0.1 2 8 50 50 4 15 3 2 6 0 0 0 - 32798 - 0 0 - - 0
3 be_app 3 hsc-maint 127.0.0.1 0 1 100 100 1 15 3 0 14 0 0 0 - 32797 - 0 0 - - 0
3 be_app 4 hsc-down 127.0.0.1 0 0 100 100 3 8 2 0 6 0 0 0 - 1 - 0 0 - - 0
3 be_app 5 hsc-new 127.0.0.1 0 1 7 7 4 1 0 0 2 0 0 0 - 32798 - 0 0 - - 0

`;

// Both versions, a backend without servers.
const capturedEmpty = `1\n${HEADER}\n\n`;

describe('parseServersState', () => {
  it('reads HAProxy 2.6 output: addresses, ports, weights and drain states, direct and inherited', () => {
    const parsed = parseServersState(captured26Drain);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value).toEqual([
      { backend: 'be_app', name: 'srv-static', address: '127.0.0.1', port: 32797, weight: 1, runtimeWeight: 1, adminState: 'drain', operationalState: 'up', checks: 'on' },
      { backend: 'be_app', name: 'srv-disabled', address: '127.0.0.1', port: 32798, weight: 1, runtimeWeight: 1, adminState: 'maint', operationalState: 'down', checks: 'on' },
      { backend: 'be_app', name: 'srv-fqdn', address: 'localhost', port: 32797, weight: 20, runtimeWeight: 20, adminState: 'ready', operationalState: 'up', checks: 'on' },
      { backend: 'be_app', name: 'srv-track', address: '127.0.0.1', port: 32798, weight: 1, runtimeWeight: 1, adminState: 'drain', operationalState: 'up', checks: 'none' },
      { backend: 'be_api', name: 'srv-noport', address: '127.0.0.1', port: undefined, weight: 1, runtimeWeight: 1, adminState: 'ready', operationalState: 'up', checks: 'none' },
      { backend: 'be_api', name: 'hsc-dyn', address: '127.0.0.1', port: 32798, weight: 3, runtimeWeight: 3, adminState: 'maint', operationalState: 'down', checks: 'off' },
    ]);
  });

  it('keeps a weight set at run time (a canary) apart from the configured one', () => {
    const parsed = parseServersState(`1\n${HEADER}\n2 be_app 5 hsc-canary 127.0.0.1 2 0 10 100 6 6 3 4 6 0 0 0 - 32797 - 0 0 - - 0\n`);
    if (!parsed.ok) throw new Error(parsed.error.message);
    const [row] = parsed.value;
    if (row === undefined) throw new Error('no row');
    // Configured 100: no structural change to plan; runs at 10: the canary's weight holds.
    expect(toConfiguredServer(row).weight).toBe(100);
    expect(toRuntimeServer(row).weight).toBe(10);
  });

  it('reads HAProxy 3.0 output: forced and inherited maintenance', () => {
    const parsed = parseServersState(captured30Maint);
    expect(parsed.ok && parsed.value.map((s) => [s.name, s.adminState, s.operationalState])).toEqual([
      ['srv-static', 'maint', 'down'],
      ['srv-disabled', 'maint', 'down'],
      ['srv-fqdn', 'ready', 'up'],
      ['srv-track', 'maint', 'down'],
      ['srv-noport', 'ready', 'up'],
      ['hsc-dyn', 'maint', 'down'],
    ]);
  });

  it('gives the driver port its configured and runtime views', () => {
    const parsed = parseServersState(captured30Managed, 'show servers state be_app');
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.value.map(toConfiguredServer)).toEqual([
      { backend: 'be_app', name: 'hsc-ready', address: '127.0.0.1', port: 32797, weight: 100 },
      { backend: 'be_app', name: 'hsc-drain', address: '127.0.0.1', port: 32798, weight: 50 },
      { backend: 'be_app', name: 'hsc-maint', address: '127.0.0.1', port: 32797, weight: 100 },
      { backend: 'be_app', name: 'hsc-down', address: '127.0.0.1', port: 1, weight: 100 },
      { backend: 'be_app', name: 'hsc-new', address: '127.0.0.1', port: 32798, weight: 7 },
    ]);
    expect(parsed.value.map(toRuntimeServer)).toEqual([
      { name: 'hsc-ready', adminState: 'ready', operationalState: 'up', checks: 'on', weight: 100 },
      { name: 'hsc-drain', adminState: 'drain', operationalState: 'up', checks: 'on', weight: 50 },
      { name: 'hsc-maint', adminState: 'maint', operationalState: 'down', checks: 'on', weight: 100 },
      { name: 'hsc-down', adminState: 'ready', operationalState: 'down', checks: 'on', weight: 100 },
      { name: 'hsc-new', adminState: 'maint', operationalState: 'down', checks: 'off', weight: 7 },
    ]);
  });

  it('reads a backend without servers as none', () => {
    expect(parseServersState(capturedEmpty)).toEqual({ ok: true, value: [] });
  });

  it('finds columns by their header names, so appended columns do not matter', () => {
    const text = `1\n${HEADER} srv_future_column\n3 be_app 1 hsc-a 10.0.0.5 2 0 100 100 4 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0 xyz\n`;
    const parsed = parseServersState(text);
    expect(parsed.ok && parsed.value[0]).toMatchObject({ name: 'hsc-a', address: '10.0.0.5', port: 8080, adminState: 'ready' });
  });

  it.each([
    ['an empty answer', ''],
    ['another format version', `2\n${HEADER}\n`],
    ['no header', '1\n3 be_app 1 hsc-a 127.0.0.1 2 0 100 100 4 15 3 2 6 0 0 0 - 8080 - 0 0 - - 0\n'],
    ['a header without the needed columns', '1\n# be_id be_name srv_id\n'],
    ['a short row', `1\n${HEADER}\n3 be_app 1 hsc-a 127.0.0.1 2\n`],
  ])('refuses %s as malformed', (_what, text) => {
    expect(parseServersState(text, 'show servers state be_app')).toMatchObject({
      ok: false,
      error: { kind: 'malformed', operation: 'show servers state be_app' },
    });
  });
});

describe('admin and operational states', () => {
  it.each([
    [0x00, 'ready'],
    [0x01, 'maint'], // FMAINT: set server … state maint, and every server `add server` creates
    [0x02, 'maint'], // IMAINT: inherited from a tracked server
    [0x04, 'maint'], // CMAINT: `disabled` in the configuration
    [0x05, 'maint'], // what a `disabled` server shows (FMAINT | CMAINT)
    [0x20, 'maint'], // RMAINT: address resolution failed
    [0x08, 'drain'], // FDRAIN
    [0x10, 'drain'], // IDRAIN
    [0x09, 'maint'], // maintenance wins over drain
    [0x40, 'ready'], // HMAINT (2.6) / FQDN_CHANGED (3.0): not a maintenance bit
    [0x48, 'drain'],
  ])('admin flags %i are %s', (flags, state) => {
    expect(adminStateFromFlags(flags)).toBe(state);
  });

  it.each([
    [0, 'down'],
    [1, 'up'], // starting (slowstart): already takes traffic
    [2, 'up'],
    [3, 'stopping'],
    [7, undefined],
  ])('operational state %i is %s', (code, state) => {
    expect(operationalStateFromCode(code)).toBe(state);
  });
});

describe('versions', () => {
  it.each([
    ['Name: HAProxy\nVersion: 2.6.12-1+deb12u4\nRelease_date: 2026/10/17\nNbthread: 2\n', '2.6.12-1+deb12u4'],
    ['Name: HAProxy\nVersion: 3.0.11-1+deb13u4\nRelease_date: 2026/10/15\n', '3.0.11-1+deb13u4'],
    ['Name: HAProxy\nRelease_date: 2026/10/15\n', undefined],
  ])('reads the Version line of show info', (text, version) => {
    expect(parseInfoVersion(text)).toBe(version);
  });

  it.each([
    ['2.6.12-1+deb12u4', false],
    ['2.9.0', false],
    ['3.0.11-1+deb13u4', true],
    ['3.2-dev5', true],
    ['10.1.0', true],
    ['unknown', false],
    [undefined, false],
  ])('%s is at least 3.0: %s', (version, expected) => {
    expect(versionAtLeast(version, 3, 0)).toBe(expected);
  });
});
