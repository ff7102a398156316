// The runtime socket client against a tiny node:net server on 127.0.0.1 that answers the way
// HAProxy's stats socket does (texts captured from HAProxy 2.6.12 and 3.0.11): one command per
// connection, the answer, then the server closes.
import { createServer, type Server, type Socket } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createRuntimeSocket, parseSocketAddress } from '../../../sidecar/runtime/socket.js';

type Reply = string | { readonly hang: true } | { readonly closeSilently: true };

interface FakeHaproxy {
  readonly address: string;
  /** Commands received, and whether the client had half-closed when the answer went out. */
  readonly received: Array<{ command: string; halfClosed: boolean }>;
  close(): Promise<void>;
}

const servers: Server[] = [];
const connections = new Set<Socket>();
afterEach(async () => {
  // Half-open connections (allowHalfOpen) would keep close() waiting.
  for (const socket of connections) socket.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

async function fakeHaproxy(reply: (command: string) => Reply, listenOn: string | number = 0): Promise<FakeHaproxy> {
  const received: FakeHaproxy['received'] = [];
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    connections.add(socket);
    socket.once('close', () => connections.delete(socket));
    let buffer = '';
    let halfClosed = false;
    socket.on('end', () => (halfClosed = true));
    socket.on('data', (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      if (!buffer.includes('\n')) return;
      const command = buffer.slice(0, buffer.indexOf('\n'));
      // A moment for a half-close to arrive, so the test sees whether the client sent one.
      setTimeout(() => {
        received.push({ command, halfClosed });
        const answer = reply(command);
        if (typeof answer === 'string') socket.end(answer);
        else if ('closeSilently' in answer) socket.end();
      }, 20);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => (typeof listenOn === 'string' ? server.listen(listenOn, resolve) : server.listen(listenOn, '127.0.0.1', resolve)));
  const address = server.address();
  return {
    address: typeof address === 'string' ? address : `127.0.0.1:${address?.port ?? 0}`,
    received,
    close: async () => {
      for (const socket of connections) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

// Answers as HAProxy writes them: text, a newline, and the empty line that ends an answer.
const haproxyText = (text: string): string => (text === '' ? '\n' : `${text}\n\n`);

describe('parseSocketAddress', () => {
  it.each([
    ['/run/haproxy/admin.sock', { path: '/run/haproxy/admin.sock' }],
    ['unix:/run/haproxy/admin.sock', { path: '/run/haproxy/admin.sock' }],
    ['tcp:127.0.0.1:9999', { host: '127.0.0.1', port: 9999 }],
    ['127.0.0.1:9999', { host: '127.0.0.1', port: 9999 }],
    ['[::1]:9999', { host: '::1', port: 9999 }],
    ['tcp:[::1]:9999', { host: '::1', port: 9999 }],
    ['haproxy:9999', { host: 'haproxy', port: 9999 }],
  ])('%s', (address, expected) => {
    expect(parseSocketAddress(address)).toEqual(expected);
  });

  it.each(['', 'unix:relative.sock', 'relative.sock', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', '::1:9999', 'tcp:', 'host:port'])(
    'refuses %j',
    (address) => {
      expect(parseSocketAddress(address)).toBeUndefined();
    },
  );

  it('refuses to be created with a bad address', () => {
    expect(() => createRuntimeSocket({ address: 'nowhere', timeoutMs: 100 })).toThrow(/not a runtime socket address/);
  });
});

describe('runtime socket client', () => {
  it('sends one command per connection, without half-closing, and returns the answer without its trailing blank line', async () => {
    const fake = await fakeHaproxy(() => haproxyText('3.0.11-1+deb13u4'));
    const socket = createRuntimeSocket({ address: `tcp:${fake.address}`, timeoutMs: 2_000 });
    expect(await socket.query('show version')).toEqual({ ok: true, value: '3.0.11-1+deb13u4' });
    expect(await socket.query('show info')).toEqual({ ok: true, value: '3.0.11-1+deb13u4' });
    // HAProxy 3.0 answers `wait …` with "Interrupted." to a client that half-closed.
    expect(fake.received).toEqual([
      { command: 'show version', halfClosed: false },
      { command: 'show info', halfClosed: false },
    ]);
  });

  it('talks to a unix socket too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'hsc-unit-socket-'));
    try {
      const path = join(dir, 'haproxy.sock');
      await fakeHaproxy(() => haproxyText(''), path);
      const socket = createRuntimeSocket({ address: `unix:${path}`, timeoutMs: 2_000 });
      expect(await socket.execute('enable server be_app/hsc-a')).toEqual({ ok: true, value: undefined });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each(['', 'New server registered.', 'Server deleted.'])('takes %j as a successful write', async (text) => {
    const fake = await fakeHaproxy(() => haproxyText(text));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 });
    expect(await socket.execute('del server be_app/hsc-a')).toEqual({ ok: true, value: undefined });
  });

  // Every text below was answered by HAProxy 2.6.12 and 3.0.11 alike.
  it.each([
    ['add server be_app/hsc-a 127.0.0.1:8080', 'Already exists a server with the same name in backend.', 'exists'],
    ['add server be_x/hsc-a 127.0.0.1:8080', 'No such backend.', 'not-found'],
    ['enable server be_app/nope', 'No such server.', 'not-found'],
    ['del server be_app/hsc-a', 'Only servers in maintenance mode can be deleted.', 'unavailable'],
    ['del server be_app/hsc-a', 'Server still has connections attached to it, cannot remove it.', 'unavailable'],
    ['add server be_app/hsc-a 127.0.0.1:8080 bogus', "unknown keyword 'bogus'.", 'invalid'],
    ['add server be_app/hsc-a 127.0.0.1:x', "invalid character 'x' in port number 'x' in '127.0.0.1:x'", 'invalid'],
    ['add server be_app/hsc-a 127.0.0.1:8080 cookie a', "'cookie' option is not accepted for dynamic server", 'invalid'],
    ['set server be_app/hsc-a state up', "'set server <srv> state' expects 'ready', 'drain' and 'maint'.", 'invalid'],
    ['add server be_static/hsc-a 127.0.0.1:8080', 'Backend must use a dynamic load balancing to support dynamic servers.', 'unsupported'],
    ['del server be_app/hsc-a', 'Permission denied', 'unauthorized'],
    ['enable server be_app/hsc-a', 'something HAProxy never said', 'invalid'],
  ])('maps the answer to %s', async (command, text, kind) => {
    const fake = await fakeHaproxy(() => haproxyText(text));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 });
    expect(await socket.execute(command)).toEqual({ ok: false, error: { kind, message: text, operation: command } });
  });

  it("maps a read's error texts, and keeps only the first line of an unknown command's help listing", async () => {
    const unknown =
      "Unknown command: 'wait', but maybe one of the following ones is a better match:\n" +
      '  help [<command>]                        : list matching or all commands\n' +
      '  quit                                    : disconnect';
    const fake = await fakeHaproxy((command) => haproxyText(command.startsWith('wait') ? unknown : "Can't find backend."));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 });
    expect(await socket.query('show servers state be_x')).toEqual({
      ok: false,
      error: { kind: 'not-found', message: "Can't find backend.", operation: 'show servers state be_x' },
    });
    expect(await socket.query('wait 2000 srv-removable be_app/hsc-a')).toEqual({
      ok: false,
      error: { kind: 'unsupported', message: unknown.split('\n')[0], operation: 'wait 2000 srv-removable be_app/hsc-a' },
    });
  });

  it('passes a read answer it does not know as a value (the caller interprets it)', async () => {
    const fake = await fakeHaproxy(() => haproxyText('Wait delay expired.'));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 });
    expect(await socket.query('wait 10 srv-removable be_app/hsc-a')).toEqual({ ok: true, value: 'Wait delay expired.' });
  });

  it('does not take a connection closed without an answer for an empty success', async () => {
    const fake = await fakeHaproxy(() => ({ closeSilently: true }));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 });
    const result = await socket.execute('enable server be_app/hsc-a');
    expect(result).toMatchObject({ ok: false, error: { kind: 'unavailable', operation: 'enable server be_app/hsc-a' } });
  });

  it('times out when no complete answer comes, and a longer timeout can be asked for one command', async () => {
    const fake = await fakeHaproxy((command) => (command.startsWith('wait') ? haproxyText('Done.') : { hang: true }));
    const socket = createRuntimeSocket({ address: fake.address, timeoutMs: 150 });
    const started = Date.now();
    const result = await socket.query('show info');
    expect(result).toEqual({ ok: false, error: { kind: 'timeout', message: 'no complete answer within 150 ms', operation: 'show info' } });
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await socket.query('wait 100 srv-removable be_app/hsc-a', { timeoutMs: 2_000 })).toEqual({ ok: true, value: 'Done.' });
  });

  it('reports a refused connection and a missing unix socket as network errors', async () => {
    const fake = await fakeHaproxy(() => haproxyText(''));
    await fake.close();
    const refused = await createRuntimeSocket({ address: fake.address, timeoutMs: 2_000 }).query('show info');
    expect(refused).toMatchObject({ ok: false, error: { kind: 'network', operation: 'show info' } });
    const missing = await createRuntimeSocket({ address: '/nonexistent/hsc/haproxy.sock', timeoutMs: 2_000 }).query('show info');
    expect(missing).toMatchObject({ ok: false, error: { kind: 'network', message: expect.stringContaining('ENOENT') as string } });
  });

  it('refuses a command that would smuggle a second one into the connection', async () => {
    const socket = createRuntimeSocket({ address: '127.0.0.1:1', timeoutMs: 100 });
    await expect(socket.execute('set server be_app/a state ready; del server be_app/a')).rejects.toThrow(/separator/);
    await expect(socket.query('show info\nshow stat')).rejects.toThrow(/separator/);
  });
});
