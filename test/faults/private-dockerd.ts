// A Docker Engine of the test's own, so that restarting it touches nobody else's containers:
// its own socket, data and exec roots under a test directory, its own containerd, and its own
// bridge interface (a /24 no route uses yet). No iptables rules (they would be shared with the
// machine's daemon): HAProxy on the host reaches the containers on the bridge directly.
// --live-restore keeps the containers running while the daemon restarts, as in production.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { runningChildren } from '../../devenv/children.js';

export interface PrivateDockerd {
  readonly socket: string;
  readonly client: Docker;
  /** Stops the daemon (SIGTERM) and starts it again; how long it did not answer. */
  restart(): Promise<number>;
  /** Removes its containers, stops it, deletes its bridge and directory. */
  stop(): Promise<void>;
}

const which = (command: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};

/** Root, dockerd and ip(8): what starting a daemon and its bridge needs. */
export function privateDockerdPossible(): boolean {
  return process.getuid?.() === 0 && which('dockerd') && which('ip');
}

function freeSubnet(): string {
  const routes = execFileSync('ip', ['-4', 'route'], { encoding: 'utf8' });
  for (let attempt = 0; attempt < 50; attempt++) {
    const third = 10 + Math.floor(Math.random() * 240);
    const prefix = `10.213.${third}.`;
    if (!routes.includes(prefix)) return prefix;
  }
  throw new Error('no free 10.213.x.0/24 for a private bridge');
}

export async function startPrivateDockerd(dir: string, image: string): Promise<PrivateDockerd> {
  await mkdir(dir, { recursive: true });
  const bridge = `hscb${randomBytes(3).toString('hex')}`;
  const prefix = freeSubnet();
  execFileSync('ip', ['link', 'add', bridge, 'type', 'bridge']);
  execFileSync('ip', ['addr', 'add', `${prefix}1/24`, 'dev', bridge]);
  execFileSync('ip', ['link', 'set', bridge, 'up']);
  const socket = join(dir, 'docker.sock');
  const args = [
    '--host', `unix://${socket}`,
    '--data-root', join(dir, 'root'),
    '--exec-root', join(dir, 'exec'),
    '--pidfile', join(dir, 'docker.pid'),
    '--bridge', bridge,
    '--iptables=false', '--ip6tables=false', '--ip-masq=false',
    '--live-restore',
  ];
  const client = new Docker({ socketPath: socket });
  let daemon: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const log = createWriteStream(join(dir, 'dockerd.log'), { flags: 'a' });
    const child = spawn('dockerd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.pipe(log);
    child.stderr.pipe(log);
    runningChildren().add(child);
    child.once('exit', () => runningChildren().delete(child));
    daemon = child;
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      if (existsSync(socket) && (await client.ping().then(() => true, () => false))) return;
      if (child.exitCode !== null) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`the private dockerd did not answer within 30 s (see ${join(dir, 'dockerd.log')})`);
  };
  const halt = async (): Promise<void> => {
    const child = daemon;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await exited;
    clearTimeout(timer);
  };
  const stop = async (): Promise<void> => {
    const all = await client.listContainers({ all: true }).catch(() => []);
    await Promise.all(all.map((c) => client.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await halt();
    // dockerd mounts its data root over itself; the bridge outlives it.
    for (const command of [['umount', join(dir, 'root')], ['ip', 'link', 'del', bridge]]) {
      try {
        execFileSync(command[0] ?? '', command.slice(1), { stdio: 'ignore' });
      } catch {
        // Not mounted, or already gone.
      }
    }
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  try {
    await launch();
    // The image, from the machine's daemon (no registry here).
    await promisify(execFile)('sh', ['-c', `docker save ${image} | docker -H unix://${socket} load`], { maxBuffer: 1 << 20 });
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    socket,
    client,
    async restart() {
      const down = Date.now();
      await halt();
      await launch();
      return Date.now() - down;
    },
    stop,
  };
}
