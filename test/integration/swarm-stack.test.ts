// stack/swarm.yaml as `docker stack deploy` reads it (`docker stack config`, the same loader and
// schema, Docker 20.10+), kept in step with compose.yaml, and the Docker API proxy's Swarm
// allowlist checked by HAProxy itself. The allowlist's behaviour is proven by the multi-node
// test (swarm.test.ts), whose sidecar reaches Swarm only through it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { haproxyBinary } from '../../devenv/versions.js';

const run = promisify(execFile);
const stackDir = fileURLToPath(new URL('../../stack/', import.meta.url));

interface StackService {
  readonly image?: string;
  readonly user?: string;
  readonly environment?: Record<string, string>;
  readonly networks?: Record<string, unknown> | string[];
  readonly deploy?: { readonly mode?: string; readonly replicas?: number; readonly labels?: Record<string, string>; readonly placement?: { readonly constraints?: string[] } };
  readonly configs?: Array<{ source: string; target: string }>;
}
interface StackFile {
  readonly services: Record<string, StackService>;
  readonly networks: Record<string, { driver?: string; attachable?: boolean; internal?: boolean }>;
}

describe('the stack on Swarm (stack/swarm.yaml)', () => {
  let secrets: string;
  let config: StackFile;

  beforeAll(async () => {
    secrets = await mkdtemp(join(tmpdir(), 'hsc-test-swarm-stack-'));
    const compose = parseYaml(await readFile(join(stackDir, 'compose.yaml'), 'utf8')) as { secrets: Record<string, unknown> };
    await Promise.all(Object.keys(compose.secrets).map((name) => writeFile(join(secrets, name), 'not-a-secret\n')));
    const { stdout } = await run('docker', ['stack', 'config', '-c', 'swarm.yaml'], {
      cwd: stackDir,
      env: { ...process.env, HSC_STACK: 'shop', HSC_SECRETS_DIR: secrets },
      timeout: 60_000,
    });
    config = parseYaml(stdout) as StackFile;
  });

  afterAll(async () => {
    await rm(secrets, { recursive: true, force: true });
  });

  it('is accepted by docker stack config, with the sidecar in Swarm mode on the stack’s app network', () => {
    const sidecar = config.services.sidecar;
    expect(sidecar?.environment).toMatchObject({
      HSC_DOCKER_MODE: 'swarm',
      HSC_DOCKER_ADDRESS_MODE: 'network',
      HSC_DOCKER_NETWORK: 'shop_app',
      HSC_DOCKER_COMPOSE_SERVICE: 'nginx',
      HSC_DOCKER_COMPOSE_PROJECT: 'shop',
      HSC_AUTOSCALE_PROJECT: 'shop',
    });
    // HAProxy's control group without group_add, which a stack file does not have.
    expect(sidecar?.user).toBe('1000:1500');
    expect(config.networks.app).toMatchObject({ driver: 'overlay', attachable: true });
    expect(config.networks.db).toMatchObject({ driver: 'overlay', internal: true });
  });

  it('puts HAProxy, the sidecar and the Docker API proxy on the same labelled manager (their sockets are on node-local volumes)', () => {
    for (const name of ['haproxy', 'sidecar', 'docker-api-proxy']) {
      expect(config.services[name]?.deploy?.placement?.constraints, name).toEqual(['node.role == manager', 'node.labels.hsc-edge == true']);
    }
    expect(config.services['docker-api-proxy']?.configs).toEqual([{ source: 'docker_api_proxy', target: '/etc/haproxy/docker-api-proxy.cfg' }]);
  });

  it('gives the application deploy.labels the sidecar reads, and runs the node exporter on every node', () => {
    expect(config.services.nginx?.deploy).toMatchObject({ replicas: 2, labels: { 'haproxy.backend': 'be_app' } });
    expect(config.services['node-exporter']?.deploy?.mode).toBe('global');
  });

  it('has every service of compose.yaml with the same image (Grafana, not buildable here, aside)', async () => {
    const compose = parseYaml(await readFile(join(stackDir, 'compose.yaml'), 'utf8')) as { services: Record<string, StackService> };
    const expected = Object.entries(compose.services)
      .filter(([name]) => name !== 'grafana')
      .map(([name, s]) => [name, s.image])
      .sort();
    const actual = Object.entries(config.services)
      .map(([name, s]) => [name, s.image])
      .sort();
    expect(actual).toEqual(expected);
  });

  it('the proxy’s Swarm allowlist is a configuration HAProxy accepts', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-test-swarm-proxy-'));
    try {
      const text = (await readFile(join(stackDir, 'images/docker-api-proxy/haproxy.swarm.cfg'), 'utf8'))
        .replace('unix@/run/docker-api-proxy/docker.sock', `unix@${join(dir, 'docker.sock')}`)
        .replace('bind :2375', 'bind 127.0.0.1:2375');
      await writeFile(join(dir, 'haproxy.cfg'), text);
      await expect(run(haproxyBinary(), ['-c', '-q', '-f', join(dir, 'haproxy.cfg')], { timeout: 30_000 })).resolves.toBeDefined();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
