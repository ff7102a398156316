// The client of HAProxy's runtime API (the stats socket). One command per connection, in
// HAProxy's non-interactive mode: connect, write `command\n`, read until HAProxy closes. HAProxy
// answers failures as plain text, so this module is where those texts become EdgeErrors; every
// other runtime module works with Results only.
import { createConnection } from 'node:net';
import { fail, ok, type EdgeErrorKind, type Result } from '../edge/result.js';

export type SocketAddress = { readonly path: string } | { readonly host: string; readonly port: number };

/**
 * Sends one command and resolves with HAProxy's raw answer; never rejects. Tests inject one to
 * record commands; the default talks to a real socket.
 */
export type RuntimeTransport = (command: string, timeoutMs: number) => Promise<Result<string>>;

export interface RuntimeSocketOptions {
  /** `/path`, `unix:/path`, `tcp:host:port`, `host:port` or `[v6]:port`. */
  readonly address: string;
  /** Longest wait for one command's whole answer. */
  readonly timeoutMs: number;
  readonly transport?: RuntimeTransport;
}

export interface CommandOptions {
  /** Overrides the socket's timeout for a command that waits on purpose (`wait …`). */
  readonly timeoutMs?: number;
}

export interface RuntimeSocket {
  /** A read: HAProxy's answer (trailing blank lines removed), unless it is one of its error texts. */
  query(command: string, options?: CommandOptions): Promise<Result<string>>;
  /** A write: ok only when HAProxy answered one of the texts it gives on success. */
  execute(command: string, options?: CommandOptions): Promise<Result<void>>;
}

/** Parses a socket address; undefined when it is none of the accepted forms. */
export function parseSocketAddress(address: string): SocketAddress | undefined {
  if (address.startsWith('/')) return { path: address };
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length);
    return path.startsWith('/') ? { path } : undefined;
  }
  const rest = address.startsWith('tcp:') ? address.slice('tcp:'.length) : address;
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d{1,5})$/.exec(rest);
  if (match === null) return undefined;
  const port = Number(match[3]);
  if (port < 1 || port > 65_535) return undefined;
  return { host: match[1] ?? match[2] ?? '', port };
}

// Verified on HAProxy 2.6.12 and 3.0.11: the texts a failed command answers with, by what the
// caller can do about them. Matched on the answer's first line (an unknown command is followed
// by a help listing).
const errorTexts: ReadonlyArray<readonly [RegExp, EdgeErrorKind]> = [
  [/^No such (backend|server)\./, 'not-found'],
  [/^Can't find backend\./, 'not-found'],
  [/^Already exists a server with the same name in backend\./, 'exists'],
  // Refusals that pass: sessions end, or the server is put into maintenance first.
  [/^Server still has connections attached to it/, 'unavailable'],
  [/^Only servers in maintenance mode can be deleted\./, 'unavailable'],
  [/^Unknown command/, 'unsupported'],
  [/^Backend must use a dynamic load balancing to support dynamic servers\./, 'unsupported'],
  [/^Permission denied/, 'unauthorized'],
];

// What a write answers when it worked: nothing (set/enable/shutdown), or these two lines. Any
// other text is a failure: the CLI has no status codes, and taking an unknown answer for
// success would hide a change that did not happen.
const successTexts: ReadonlySet<string> = new Set(['', 'New server registered.', 'Server deleted.']);

const firstLine = (answer: string): string => answer.split('\n', 1)[0] ?? '';

function knownError(answer: string): EdgeErrorKind | undefined {
  const line = firstLine(answer);
  return errorTexts.find(([pattern]) => pattern.test(line))?.[1];
}

function socketErrorKind(code: string | undefined): EdgeErrorKind {
  return code === 'EACCES' || code === 'EPERM' ? 'unauthorized' : 'network';
}

/** The transport over a real unix or TCP socket. */
export function netTransport(target: SocketAddress): RuntimeTransport {
  return (command, timeoutMs) =>
    new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let settled = false;
      const settle = (result: Result<string>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      const socket = 'path' in target ? createConnection(target.path) : createConnection(target.port, target.host);
      // A deadline for the whole answer, not an idle timeout: a peer that trickles bytes must
      // not hold a reconcile pass forever.
      const timer = setTimeout(() => settle(fail(command, 'timeout', `no complete answer within ${timeoutMs} ms`)), timeoutMs);
      // write, not end: HAProxy 3.0 answers `wait …` with "Interrupted." when the client
      // half-closes its side; it closes the connection itself after one command.
      socket.once('connect', () => socket.write(`${command}\n`));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.once('error', (error: NodeJS.ErrnoException) => settle(fail(command, socketErrorKind(error.code), error.message)));
      socket.once('close', () => settle(ok(Buffer.concat(chunks).toString('utf8'))));
    });
}

export function createRuntimeSocket(options: RuntimeSocketOptions): RuntimeSocket {
  let transport = options.transport;
  if (transport === undefined) {
    const target = parseSocketAddress(options.address);
    // The configuration loader validates the address with parseSocketAddress first.
    if (target === undefined) throw new Error(`not a runtime socket address: ${options.address}`);
    transport = netTransport(target);
  }
  const send = transport;

  const answer = async (command: string, commandOptions: CommandOptions | undefined): Promise<Result<string>> => {
    // A newline or ';' would smuggle a second command into the one connection: names come from
    // our own naming scheme, so this is a bug, not bad input.
    if (/[\r\n;]/.test(command)) throw new Error(`runtime command contains a separator: ${JSON.stringify(command)}`);
    const sent = await send(command, commandOptions?.timeoutMs ?? options.timeoutMs);
    if (!sent.ok) return sent;
    // Even an empty answer is one newline; no byte at all means the connection was closed
    // before HAProxy answered (a worker stopping), which must not pass for an empty success.
    if (sent.value === '') return fail(command, 'unavailable', 'HAProxy closed the connection without an answer');
    return ok(sent.value.replace(/\s+$/, ''));
  };

  return {
    async query(command, commandOptions) {
      const result = await answer(command, commandOptions);
      if (!result.ok) return result;
      const kind = knownError(result.value);
      return kind === undefined ? result : fail(command, kind, firstLine(result.value));
    },
    async execute(command, commandOptions) {
      const result = await answer(command, commandOptions);
      if (!result.ok) return result;
      if (successTexts.has(result.value)) return ok(undefined);
      return fail(command, knownError(result.value) ?? 'invalid', firstLine(result.value) || result.value);
    },
  };
}
