import { describe, expect, it } from 'vitest';
import { EXIT, run } from '../../../sidecar/cli/hsc.js';
import { startAdminApi, TOKEN } from '../../support/admin-api.js';

async function hsc(args: string[], base: string, token: string = TOKEN) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (l) => out.push(l), err: (l) => err.push(l), fetch, env: { HSC_ADMIN_URL: base, HSC_ADMIN_TOKEN: token } });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

describe('hsc CLI against the admin API', () => {
  it('prints a status table', async () => {
    const { base } = await startAdminApi();
    const result = await hsc(['status'], base);
    expect(result.code).toBe(EXIT.ok);
    expect(result.out.split('\n')).toEqual([
      'be_app  (3 servers)',
      '  SERVER       OWNER    ADMIN  OPER  SESSIONS  QUEUE  CONTAINER      DRAIN',
      '  hsc-nginx-1  managed  ready  up    3         0      stack-nginx-1',
      '  hsc-nginx-2  managed  ready  up    -         -      stack-nginx-2',
      '  static-1     manual   ready  up    -         -      -',
      'be_api  (0 servers)',
      '  SERVER  OWNER  ADMIN  OPER  SESSIONS  QUEUE  CONTAINER  DRAIN',
    ]);
  });

  it('drains with --wait and exits 0 when the drain completed', async () => {
    const { base, dataplane } = await startAdminApi({ loads: { 'hsc-nginx-1': [{ sessions: 1, queue: 0 }, { sessions: 0, queue: 0 }] } });
    const result = await hsc(['drain', 'be_app/hsc-nginx-1', '--wait'], base);
    expect(result).toMatchObject({ code: EXIT.ok, out: expect.stringMatching(/^be_app\/hsc-nginx-1 drained in \d+\.\d s$/) as unknown });
    expect(dataplane.adminStates.get('be_app/hsc-nginx-1')).toBe('drain');
    expect((await hsc(['undrain', 'be_app/hsc-nginx-1'], base)).code).toBe(EXIT.ok);
    expect(dataplane.adminStates.get('be_app/hsc-nginx-1')).toBe('ready');
  });

  it('exits 4 when the drain was forced at its deadline', async () => {
    const { base } = await startAdminApi({ loads: { 'hsc-nginx-1': [{ sessions: 2, queue: 0 }] } });
    const result = await hsc(['drain', 'be_app/hsc-nginx-1', '--wait', '--deadline', '1'], base);
    expect(result.code).toBe(EXIT.drainNotClean);
    expect(result.out).toMatch(/forced to maintenance after 1\.\d s; 2 session\(s\) cut/);
  });

  it.each([
    { args: ['drain', 'be_app/nope'], code: EXIT.refused, err: /error \(404\): unknown server nope/ },
    { args: ['drain', 'be_app'], code: EXIT.usage, err: /needs one <backend>\/<server>/ },
    { args: ['drain', 'be_app/x', '--deadline', 'soon'], code: EXIT.usage, err: /--deadline must be/ },
    { args: ['frobnicate'], code: EXIT.usage, err: /unknown command frobnicate/ },
    { args: ['--bogus'], code: EXIT.usage, err: /Unknown option/ },
  ])('$args exits $code', async ({ args, code, err }) => {
    const { base } = await startAdminApi();
    const result = await hsc(args, base);
    expect(result.code).toBe(code);
    expect(result.err).toMatch(err);
  });

  it('exits 1 with the sidecar’s message on a wrong token, and 3 when the sidecar is unreachable', async () => {
    const { base } = await startAdminApi();
    const wrong = await hsc(['resync'], base, 'wrong');
    expect(wrong).toMatchObject({ code: EXIT.refused, err: 'error (401): wrong token' });
    const down = await hsc(['status'], 'http://127.0.0.1:9');
    expect(down.code).toBe(EXIT.unavailable);
    expect(down.err).toMatch(/cannot reach the sidecar at http:\/\/127\.0\.0\.1:9/);
  });
});
