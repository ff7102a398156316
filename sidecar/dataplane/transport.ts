// The fetch that the Data Plane API client runs on: basic auth, a timeout per attempt, and
// retries with backoff for the failures that are worth retrying. Everything else (4xx) is
// returned at once, to be handled as a value by the caller.
import pRetry, { AbortError } from 'p-retry';

export interface TransportOptions {
  readonly username: string;
  readonly password: string;
  readonly timeoutMs: number;
  /** Attempts after the first one. */
  readonly retries: number;
  /** Base delay of the exponential backoff (tests pass a small one). */
  readonly minRetryDelayMs?: number;
  readonly fetch?: typeof fetch;
  readonly onRetry?: (info: { method: string; url: string; attempt: number; reason: string }) => void;
}

/** Thrown by the transport when every attempt failed without an HTTP answer. */
export class TransportError extends Error {
  constructor(
    readonly kind: 'timeout' | 'network',
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

const IDEMPOTENT = new Set(['GET', 'HEAD', 'PUT', 'DELETE', 'OPTIONS']);

function retryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * A request that timed out may have been applied; only idempotent methods are sent again.
 * A connection that was refused was never applied, so any method is.
 */
function classify(error: unknown, method: string): { kind: 'timeout' | 'network'; retry: boolean; message: string } {
  const name = error instanceof Error ? error.name : '';
  if (name === 'TimeoutError' || name === 'AbortError') {
    return { kind: 'timeout', retry: IDEMPOTENT.has(method), message: 'request timed out' };
  }
  const cause = error instanceof Error ? (error.cause as { code?: string } | undefined) : undefined;
  const code = cause?.code ?? '';
  const message = error instanceof Error ? `${error.message}${code === '' ? '' : ` (${code})`}` : String(error);
  const neverSent = code === 'ECONNREFUSED' || code === 'ENOTFOUND' || code === 'EAI_AGAIN';
  return { kind: 'network', retry: neverSent || IDEMPOTENT.has(method), message };
}

export function createTransport(options: TransportOptions): (request: Request) => Promise<Response> {
  const baseFetch = options.fetch ?? globalThis.fetch;
  const authorization = `Basic ${Buffer.from(`${options.username}:${options.password}`).toString('base64')}`;

  return async (request: Request): Promise<Response> => {
    const method = request.method.toUpperCase();
    // The body is read once so each attempt can send it again.
    const body = method === 'GET' || method === 'HEAD' ? undefined : await request.arrayBuffer();
    const headers = new Headers(request.headers);
    headers.set('authorization', authorization);

    const attempt = async (): Promise<Response> => {
      let response: Response;
      try {
        response = await baseFetch(request.url, {
          method,
          headers,
          ...(body === undefined || body.byteLength === 0 ? {} : { body }),
          signal: AbortSignal.timeout(options.timeoutMs),
        });
      } catch (error) {
        const { kind, retry, message } = classify(error, method);
        const failure = new TransportError(kind, `${method} ${request.url}: ${message}`, { cause: error });
        throw retry ? failure : new AbortError(failure);
      }
      if (retryableStatus(response.status)) {
        // Keep the last answer for the caller when retries run out.
        const text = await response.text();
        const error = new RetryableStatus(response.status, text, response.headers);
        throw error;
      }
      return response;
    };

    try {
      return await pRetry(attempt, {
        retries: options.retries,
        minTimeout: options.minRetryDelayMs ?? 200,
        maxTimeout: 5_000,
        factor: 2,
        randomize: true,
        onFailedAttempt: (error) => {
          if (error.retriesLeft > 0) {
            options.onRetry?.({ method, url: request.url, attempt: error.attemptNumber, reason: error.message });
          }
        },
      });
    } catch (error) {
      if (error instanceof RetryableStatus) {
        return new Response(error.body, { status: error.status, headers: error.headers });
      }
      throw error instanceof AbortError ? error.originalError : error;
    }
  };
}

class RetryableStatus extends Error {
  constructor(
    readonly status: number,
    readonly body: string,
    readonly headers: Headers,
  ) {
    super(`HTTP ${status}`);
    this.name = 'RetryableStatus';
  }
}
