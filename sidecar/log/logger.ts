// The logging surface the sidecar's modules depend on: pino's (fields, message) call shape, so
// production passes a pino logger and tests pass plain functions that record lines.
import { pino } from 'pino';

type LogCall = (fields: Record<string, unknown>, message: string) => void;

export interface Logger {
  readonly debug: LogCall;
  readonly info: LogCall;
  readonly warn: LogCall;
  readonly error: LogCall;
}

/** JSON lines on stdout; anything that looks like a credential is censored. */
export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

export function createLogger(level: LogLevel): Logger {
  return pino({
    level,
    base: { service: 'haproxy-sidecar' },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['password', 'token', 'authorization', '*.password', '*.token', '*.authorization', '*.adminToken'],
      censor: '[redacted]',
    },
  });
}

/** A logger that drops everything, for code paths whose output a test does not inspect. */
export const silentLogger: Logger = { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} };
