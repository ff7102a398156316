// A Unix socket in front of the Docker Engine's, for the sidecar under test only: every
// connection is piped through to the daemon until the test cuts them all (the event stream
// breaks mid-run, like a daemon that went away) or makes the socket refuse new ones for a while.
import { createConnection, createServer, type Socket } from 'node:net';

export interface DockerProxy {
  readonly path: string;
  /** Destroys every open connection (the event stream among them). */
  cut(): void;
  /** While on, every new connection is closed at once, before a byte is read. */
  refuse(on: boolean): void;
  /** How many connections were cut or refused. */
  readonly broken: number;
  close(): Promise<void>;
}

export async function startDockerProxy(path: string, upstream: string): Promise<DockerProxy> {
  const open = new Set<Socket>();
  let refusing = false;
  let broken = 0;
  const server = createServer((client) => {
    if (refusing) {
      broken++;
      client.destroy();
      return;
    }
    const daemon = createConnection(upstream);
    open.add(client);
    open.add(daemon);
    const end = (): void => {
      client.destroy();
      daemon.destroy();
      open.delete(client);
      open.delete(daemon);
    };
    client.on('error', end).on('close', end);
    daemon.on('error', end).on('close', end);
    client.pipe(daemon);
    daemon.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, resolve);
  });
  return {
    path,
    cut() {
      broken += open.size / 2;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    refuse(on) {
      refusing = on;
    },
    get broken() {
      return broken;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of open) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
