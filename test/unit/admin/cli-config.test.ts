// `hsc config check`: the sidecar's own loader over a file and the environment, the effective
// configuration printed with its secrets redacted, and an exit code that says whether a sidecar
// would start, with the bad key named.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT, run } from '../../../sidecar/cli/hsc.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hsc-unit-config-check-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function check(args: readonly string[], env: NodeJS.ProcessEnv) {
  const out: string[] = [];
  const err: string[] = [];
  const refuse = (): Promise<Response> => Promise.reject(new Error('config check must not call the sidecar'));
  const code = await run(['config', 'check', ...args], { out: (l) => out.push(l), err: (l) => err.push(l), fetch: refuse, env });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const PASSWORD = 'dp-pass-not-to-be-printed';
const TOKEN = 'admin-token-not-to-be-printed';

describe('hsc config check', () => {
  it('prints the effective configuration of the file and the environment, secrets redacted, and exits 0', async () => {
    const path = await file(
      'good.yaml',
      ['haproxy:', '  driver: dataplane', 'dataplane:', `  password: ${PASSWORD}`, 'docker:', '  network: app', 'autoscale:', '  maxReplicas: 6', '  minReplicas: 3'].join('\n'),
    );
    const result = await check(['--file', path], { HSC_AUTOSCALE_MIN: '4', HSC_ADMIN_TOKEN: TOKEN, HSC_HTTP_HOST: '0.0.0.0' });
    expect(result.code).toBe(EXIT.ok);
    expect(result.err).toBe(`configuration valid: ${path} and the environment`);
    const printed = JSON.parse(result.out) as { dataplane: { password: string }; http: { adminToken: string; host: string }; autoscale: { policy: { minReplicas: number; maxReplicas: number } } };
    // The file's value, and the environment's where both set one.
    expect(printed.autoscale.policy).toMatchObject({ minReplicas: 4, maxReplicas: 6 });
    expect(printed.dataplane.password).toBe('[redacted]');
    expect(printed.http).toMatchObject({ adminToken: '[redacted]', host: '0.0.0.0' });
    expect(result.out).not.toContain(PASSWORD);
    expect(result.out + result.err).not.toContain(TOKEN);
  });

  it('reads HSC_CONFIG_FILE when --file is not given, and a secret from its _FILE variable', async () => {
    const path = await file('driver.yaml', 'haproxy:\n  driver: dataplane\ndocker:\n  addressMode: published\n');
    const secret = await file('password', `${PASSWORD}\n`);
    const result = await check([], { HSC_CONFIG_FILE: path, HSC_DATAPLANE_PASSWORD_FILE: secret });
    expect(result.code).toBe(EXIT.ok);
    expect(result.out).toContain('"password": "[redacted]"');
    expect(result.out).not.toContain(PASSWORD);
  });

  it('shows a part that is off as null: the runtime driver has no Data Plane API settings', async () => {
    const result = await check([], { HSC_HAPROXY_DRIVER: 'runtime', HSC_HAPROXY_RUNTIME_SOCKET: '/run/haproxy.sock', HSC_HAPROXY_CONFIG_FILE: '/etc/haproxy/haproxy.cfg', HSC_DOCKER_NETWORK: 'app' });
    expect(result.code).toBe(EXIT.ok);
    expect(JSON.parse(result.out)).toMatchObject({ dataplane: null, haproxy: { driver: 'runtime' } });
  });

  it.each([
    { name: 'a value out of range in the file', yaml: 'haproxy:\n  driver: runtime\nautoscale:\n  maxReplicas: 5000\n', env: {}, key: 'configuration key autoscale.maxReplicas: expected a whole number from 1 to 1000, got 5000' },
    { name: 'an unknown key in the file', yaml: 'haproxy:\n  driver: runtime\n  drivr: runtime\n', env: {}, key: 'configuration key haproxy.drivr: unknown key' },
    { name: 'a bad variable', yaml: 'haproxy:\n  driver: dataplane\n', env: { HSC_DATAPLANE_PASSWORD: 'x', HSC_DOCKER_NETWORK: 'app', HSC_LOG_LEVEL: 'loud' }, key: 'configuration key logLevel (HSC_LOG_LEVEL): expected one of' },
    { name: 'keys that disagree', yaml: 'haproxy:\n  driver: dataplane\n', env: { HSC_DATAPLANE_PASSWORD: 'x', HSC_DOCKER_NETWORK: 'app', HSC_AUTOSCALE_MIN: '5', HSC_AUTOSCALE_MAX: '3' }, key: 'configuration key autoscale.maxReplicas: 3 is below autoscale.minReplicas (5)' },
    { name: 'a required key missing', yaml: 'docker:\n  network: app\n', env: {}, key: 'configuration key haproxy.driver: is required' },
  ])('exits 5 naming the key for $name, printing no configuration', async ({ yaml, env, key }) => {
    const path = await file('bad.yaml', yaml);
    const result = await check(['--file', path], env);
    expect(result.code).toBe(EXIT.invalidConfig);
    expect(result.out).toBe('');
    expect(result.err).toContain(`configuration invalid (${path} and the environment): ${key}`);
  });

  it('exits 5 for a file it cannot read, and never shows a secret it refused', async () => {
    const missing = await check(['--file', join(dir, 'absent.yaml')], {});
    expect(missing).toMatchObject({ code: EXIT.invalidConfig, err: expect.stringContaining('configuration key HSC_CONFIG_FILE: cannot read') as unknown });
    const path = await file('secret.yaml', `haproxy:\n  driver: dataplane\ndataplane:\n  password: [${PASSWORD}]\n`);
    const refused = await check(['--file', path], { HSC_DOCKER_NETWORK: 'app' });
    expect(refused.code).toBe(EXIT.invalidConfig);
    expect(refused.err).toContain('configuration key dataplane.password');
    expect(refused.err).not.toContain(PASSWORD);
  });

  it('takes only the check subcommand', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['config', 'show'], { out: (l) => out.push(l), err: (l) => err.push(l), fetch, env: {} });
    expect(code).toBe(EXIT.usage);
    expect(err.join('\n')).toContain('config takes one subcommand, check');
  });
});
