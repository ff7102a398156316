// A real multi-node Docker Swarm on this one machine, for test/integration/swarm.test.ts: Docker
// engines in containers (the image devenv/swarm-node builds: Debian's docker.io), one manager and
// two workers on a private bridge network, joined as one Swarm; images loaded into every node
// with `docker save | docker load` (no registry); an attachable overlay network; and HAProxy in a
// container on the manager, attached to that overlay, so it reaches every task by its overlay
// address. What the sidecar on the host needs is bind-mounted out of the manager: its Docker API
// socket, HAProxy's runtime socket and configuration file; HAProxy's frontend and exporter are
// published on 127.0.0.1.
//
// Every container carries hsc.owner=test (the test suite's sweep removes leftovers) and a name
// starting with hsc-test-swarm-; the directory is under the temporary directory with the
// hsc-test- prefix. The host's own Docker engine is never put in Swarm mode.
import { execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { docker as hostDocker, OWNER_LABEL } from '../../devenv/containers.js';
import { cacheDirectory, readPinnedVersions } from '../../devenv/versions.js';

const run = promisify(execFile);

export const SWARM_NODE_IMAGE = 'hsc/swarm-node:local';
export const SWARM_PREFIX = 'hsc-test-swarm-';
/** HAProxy 3.0: the Debian 13 root setup.sh caches for the local environment, imported as is. */
export const SWARM_HAPROXY_IMAGE = 'hsc/swarm-haproxy:local';
const NODE_CONTEXT = new URL('../../devenv/swarm-node/', import.meta.url).pathname;
const PROXY_CONFIG = new URL('../../stack/images/docker-api-proxy/haproxy.swarm.cfg', import.meta.url).pathname;

export interface SwarmNode {
  /** The node container's name on the host; also the node's hostname in the Swarm. */
  readonly name: string;
  readonly role: 'manager' | 'worker';
}

export interface SwarmCluster {
  readonly dir: string;
  readonly manager: SwarmNode;
  readonly workers: readonly SwarmNode[];
  /** The manager's Docker API, bind-mounted out of the node (the test's own reads). */
  readonly managerSocket: string;
  /**
   * The same API through the stack's Docker API proxy with its Swarm allowlist
   * (stack/images/docker-api-proxy/haproxy.swarm.cfg), as the sidecar reaches it in the stack.
   */
  readonly proxySocket: string;
  readonly api: Docker;
  readonly overlay: string;
  readonly backend: string;
  readonly runtimeSocket: string;
  readonly configFile: string;
  readonly frontendUrl: string;
  readonly metricsUrl: string;
  /** `docker <args>` run inside a node. */
  exec(node: SwarmNode, args: readonly string[]): Promise<string>;
  /** A node's engine killed outright: the machine lost. */
  kill(node: SwarmNode): Promise<void>;
  /** Host images loaded into every node (no registry: docker save | docker load). */
  loadImages(images: readonly string[]): Promise<void>;
  remove(): Promise<void>;
}

async function hostDockerCli(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const { stdout } = await run('docker', [...args], { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** The node image, built from devenv/swarm-node unless an image of the same context exists. */
export async function ensureSwarmNodeImage(): Promise<void> {
  // The context hash devenv/setup.sh's build_image labels its images with, so either builds it once.
  const { stdout } = await run('sh', ['-c', 'find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d" " -f1'], { cwd: NODE_CONTEXT });
  const digest = stdout.trim();
  const current = await hostDockerCli(['image', 'inspect', '-f', '{{ index .Config.Labels "hsc.context-hash" }}', SWARM_NODE_IMAGE]).catch(() => '');
  if (current === digest) return;
  await hostDockerCli(['build', '-q', '--build-arg', `BASE_IMAGE=${readPinnedVersions().BASE_IMAGE}`, '--label', `hsc.context-hash=${digest}`, '-t', SWARM_NODE_IMAGE, NODE_CONTEXT], 600_000);
}

/**
 * HAProxy for the manager: the root devenv/setup.sh bootstrapped (Debian 13's package, the
 * HAProxy 3.0 every other test runs), imported as an image once; no registry, no apt.
 */
export async function ensureSwarmHaproxyImage(): Promise<void> {
  const { HAPROXY_SUITE, HAPROXY_SERIES } = readPinnedVersions();
  const root = join(cacheDirectory(), 'haproxy', `${HAPROXY_SUITE}-${HAPROXY_SERIES}`, 'root');
  const stamp = `${HAPROXY_SUITE}-${HAPROXY_SERIES}`;
  const current = await hostDockerCli(['image', 'inspect', '-f', '{{ index .Config.Labels "hsc.haproxy-root" }}', SWARM_HAPROXY_IMAGE]).catch(() => '');
  if (current === stamp) return;
  if (!existsSync(join(root, 'usr/sbin/haproxy'))) throw new Error(`no HAProxy root at ${root}: run devenv/setup.sh`);
  await run('sh', ['-c', `tar -C '${root}' -c . | docker import --change 'LABEL hsc.haproxy-root=${stamp}' --change 'ENTRYPOINT ["/usr/sbin/haproxy"]' - ${SWARM_HAPROXY_IMAGE}`], {
    timeout: 300_000,
  });
}

/** Removes what an earlier run killed outright left behind (containers, network, directories). */
export async function sweepSwarmLeftovers(): Promise<void> {
  const containers = await hostDocker.listContainers({ all: true, filters: { name: [SWARM_PREFIX] } });
  await Promise.all(containers.map((c) => hostDocker.getContainer(c.Id).remove({ force: true, v: true }).catch(() => undefined)));
  const networks = await hostDocker.listNetworks({ filters: { name: [SWARM_PREFIX] } });
  await Promise.all(networks.map((n) => hostDocker.getNetwork(n.Id).remove().catch(() => undefined)));
}

function haproxyConfig(backend: string): string {
  return `# HAProxy of the multi-node Swarm test: in a container on the manager, on the overlay network.
global
    master-worker
    stats socket /hsc/haproxy.sock mode 666 level admin expose-fd listeners
    stats timeout 30s
    maxconn 2000
    log stderr format raw local0 notice

defaults
    mode http
    log global
    option redispatch
    option idle-close-on-response
    retries 2
    timeout connect 1s
    timeout client 30s
    timeout server 30s
    timeout queue 10s
    timeout http-keep-alive 5s

frontend fe_http
    bind :8080
    default_backend ${backend}

backend ${backend}
    balance roundrobin
    option httpchk
    http-check send meth GET uri /healthz
    http-check expect status 200
    # hsc:managed-servers begin ${backend}
    # hsc:managed-servers end ${backend}

frontend fe_stats
    bind :8404
    http-request use-service prometheus-exporter if { path /metrics }
`;
}

/** Streams `docker save` of the images into `docker load` on each node, all nodes at once. */
async function loadImages(nodes: readonly SwarmNode[], images: readonly string[], archive: string): Promise<void> {
  await hostDockerCli(['save', '-o', archive, ...images], 300_000);
  await Promise.all(
    nodes.map(
      (node) =>
        new Promise<void>((resolve, reject) => {
          const child = spawn('sh', ['-c', `docker exec -i ${node.name} docker load -q < '${archive}'`], { stdio: ['ignore', 'ignore', 'pipe'] });
          let stderr = '';
          child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
          const timer = setTimeout(() => child.kill('SIGKILL'), 300_000);
          child.on('exit', (code) => {
            clearTimeout(timer);
            if (code === 0) resolve();
            else reject(new Error(`docker load into ${node.name} failed (${code}): ${stderr}`));
          });
        }),
    ),
  );
  await rm(archive, { force: true });
}

export async function startSwarmCluster(options: { readonly workers?: number; readonly backend?: string } = {}): Promise<SwarmCluster> {
  await Promise.all([ensureSwarmNodeImage(), ensureSwarmHaproxyImage()]);
  const id = Math.random().toString(16).slice(2, 8);
  const prefix = `${SWARM_PREFIX}${id}-`;
  const dir = await mkdtemp(join(tmpdir(), 'hsc-test-swarm-'));
  const backend = options.backend ?? 'be_app';
  const bridge = `${prefix}net`;
  const manager: SwarmNode = { name: `${prefix}m1`, role: 'manager' };
  const workers: SwarmNode[] = Array.from({ length: options.workers ?? 2 }, (_, i) => ({ name: `${prefix}w${i + 1}`, role: 'worker' }));
  const nodes = [manager, ...workers];
  const exec = (node: SwarmNode, args: readonly string[]): Promise<string> => hostDockerCli(['exec', node.name, 'docker', ...args]);

  const remove = async (): Promise<void> => {
    await Promise.all(nodes.map((n) => hostDocker.getContainer(n.name).remove({ force: true, v: true }).catch(() => undefined)));
    await hostDocker.getNetwork(bridge).remove().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  };

  try {
    await hostDockerCli(['network', 'create', '--label', `${OWNER_LABEL}=test`, bridge]);
    // Not --privileged: a machine whose capability bounding set lacks one (CAP_SYS_RESOURCE here)
    // refuses it. Every capability it has, no seccomp/AppArmor profile and a private cgroup
    // namespace are what the engine inside needs (devenv/swarm-node/entrypoint.sh).
    await Promise.all(
      nodes.map((node) =>
        hostDockerCli([
          'run', '-d', '--name', node.name, '--hostname', node.name, '--label', `${OWNER_LABEL}=test`, '--network', bridge,
          '--cgroupns', 'private', '--cap-add', 'ALL', '--cap-drop', 'SYS_RESOURCE',
          '--security-opt', 'seccomp=unconfined', '--security-opt', 'apparmor=unconfined', '--security-opt', 'systempaths=unconfined',
          // The engine's data in memory: nothing to clean up on disk, and fast.
          '--tmpfs', '/var/lib/docker:rw,exec,dev,suid,size=4g',
          ...(node.role === 'manager' ? ['-v', `${dir}:/hsc`, '-p', '127.0.0.1::8080', '-p', '127.0.0.1::8404'] : []),
          SWARM_NODE_IMAGE,
          ...(node.role === 'manager' ? ['--host=unix:///var/run/docker.sock', '--host=unix:///hsc/docker.sock'] : []),
        ]),
      ),
    );
    for (const node of nodes) {
      const deadline = Date.now() + 60_000;
      while (!(await exec(node, ['info', '--format', '{{.ServerVersion}}']).then(() => true, () => false))) {
        if (Date.now() > deadline) throw new Error(`the engine in ${node.name} did not start: ${await hostDockerCli(['logs', '--tail', '20', node.name]).catch(() => '')}`);
        await sleep(300);
      }
    }

    const address = await hostDockerCli(['inspect', '-f', `{{ (index .NetworkSettings.Networks "${bridge}").IPAddress }}`, manager.name]);
    // A short heartbeat: a lost node is declared down (and its tasks rescheduled) in seconds.
    await exec(manager, ['swarm', 'init', '--advertise-addr', address, '--dispatcher-heartbeat', '1s']);
    const token = await exec(manager, ['swarm', 'join-token', '-q', 'worker']);
    await Promise.all(workers.map((w) => exec(w, ['swarm', 'join', '--token', token, `${address}:2377`])));

    const pinned = readPinnedVersions();
    await Promise.all([loadImages(nodes, [pinned.NGINX_IMAGE], join(dir, 'app.tar')), loadImages([manager], [SWARM_HAPROXY_IMAGE], join(dir, 'haproxy.tar'))]);

    const overlay = `${prefix}app`;
    await exec(manager, ['network', 'create', '--driver', 'overlay', '--attachable', overlay]);
    await writeFile(join(dir, 'haproxy.cfg'), haproxyConfig(backend), { mode: 0o666 });
    // The stack's Docker API proxy with the Swarm allowlist, in front of the manager's socket:
    // the sidecar under test talks to Swarm only through it, so a call it lacks fails the test.
    await mkdir(join(dir, 'proxy'));
    await copyFile(PROXY_CONFIG, join(dir, 'proxy.cfg'));
    await exec(manager, [
      'run', '-d', '--name', 'docker-api-proxy', '-v', '/var/run/docker.sock:/var/run/docker.sock:ro',
      '-v', '/hsc/proxy:/run/docker-api-proxy', '-v', '/hsc/proxy.cfg:/etc/haproxy/docker-api-proxy.cfg:ro',
      SWARM_HAPROXY_IMAGE, '-db', '-f', '/etc/haproxy/docker-api-proxy.cfg',
    ]);
    await exec(manager, [
      'run', '-d', '--name', 'haproxy', '--network', overlay, '-p', '8080:8080', '-p', '8404:8404', '-v', '/hsc:/hsc',
      SWARM_HAPROXY_IMAGE, '-W', '-db', '-f', '/hsc/haproxy.cfg',
    ]);

    const port = async (inner: number): Promise<number> => Number((await hostDockerCli(['port', manager.name, `${inner}/tcp`])).split('\n')[0]?.split(':').at(-1));
    const frontendUrl = `http://127.0.0.1:${await port(8080)}`;
    const metricsUrl = `http://127.0.0.1:${await port(8404)}/metrics`;
    const runtimeSocket = join(dir, 'haproxy.sock');
    const deadline = Date.now() + 30_000;
    while (!(await fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) }).then((r) => r.ok, () => false))) {
      if (Date.now() > deadline) throw new Error(`HAProxy on the manager did not answer: ${await exec(manager, ['logs', '--tail', '20', 'haproxy']).catch((e: unknown) => String(e))}`);
      await sleep(300);
    }

    return {
      dir,
      manager,
      workers,
      managerSocket: join(dir, 'docker.sock'),
      proxySocket: join(dir, 'proxy', 'docker.sock'),
      api: new Docker({ socketPath: join(dir, 'docker.sock') }),
      overlay,
      backend,
      runtimeSocket,
      configFile: join(dir, 'haproxy.cfg'),
      frontendUrl,
      metricsUrl,
      exec,
      async kill(node) {
        await hostDockerCli(['kill', node.name]);
      },
      loadImages: (images) => loadImages(nodes, images, join(dir, `images-${Date.now()}.tar`)),
      remove,
    };
  } catch (error) {
    await remove();
    throw error;
  }
}
