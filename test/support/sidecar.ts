// Helpers for tests that run a real sidecar in-process: its logger, and a small client for its
// admin HTTP API (bearer token on mutating routes, JSON both ways).
import { destination, pino } from 'pino';
import { join } from 'node:path';
import { silentLogger, type Logger } from '../../sidecar/log/logger.js';

/**
 * Silent by default. With HSC_TEST_SIDECAR_LOG_DIR set, the sidecar logs at debug level to
 * <dir>/<name>.log (JSON lines), to find out why a run misbehaved.
 */
export function sidecarLogger(name: string): Logger {
  const dir = process.env.HSC_TEST_SIDECAR_LOG_DIR;
  if (dir === undefined || dir === '') return silentLogger;
  return pino(
    { level: 'debug', timestamp: pino.stdTimeFunctions.isoTime, base: { test: name } },
    destination({ dest: join(dir, `${name}.log`), mkdir: true, sync: true }),
  );
}

export interface AdminAnswer {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

export interface AdminClient {
  readonly base: string;
  get(path: string): Promise<AdminAnswer>;
  post(path: string, body?: unknown, timeoutMs?: number): Promise<AdminAnswer>;
}

/** The admin API of a sidecar listening on the loopback at `port`. */
export function adminClient(port: number, token: string): AdminClient {
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body: unknown, timeoutMs: number): Promise<AdminAnswer> => {
    const response = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  return {
    base,
    get: (path) => call('GET', path, undefined, 10_000),
    post: (path, body, timeoutMs = 10_000) => call('POST', path, body ?? {}, timeoutMs),
  };
}
