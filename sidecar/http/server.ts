// The sidecar's HTTP listener: liveness, readiness and Prometheus metrics. JSON in and out; every
// error is a JSON body with a message. The admin API mounts its routes here too.
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { http } from '../edge/node-http.js';
import type { Registry } from 'prom-client';

export interface Readiness {
  readonly ready: boolean;
  readonly detail: Readonly<Record<string, unknown>>;
}

export interface HttpServerOptions {
  readonly registry: Registry;
  /** Told about a request that failed inside the sidecar (the client only hears "internal error"). */
  readonly onError?: (error: unknown, method: string, path: string) => void;
  readonly readiness: () => Readiness;
  /** More routes (the admin API), tried before the built-in ones; true when it handled the request. */
  readonly routes?: (request: IncomingMessage, response: ServerResponse, path: string) => Promise<boolean>;
}

export interface HttpServer {
  /** Resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  close(): Promise<void>;
}

export function sendJson(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  response.end(text);
}

/**
 * The path of an origin-form request target (/path?query), or undefined for anything else. Parsed
 * against a fixed origin, so "//host/v1/..." stays that path instead of naming a host, and a
 * target URL cannot parse (such as "//[") is a client error, not a 500.
 */
export function requestPath(target: string | undefined): string | undefined {
  const raw = target ?? '/';
  if (!raw.startsWith('/')) return undefined;
  try {
    return new URL(`http://sidecar${raw}`).pathname;
  } catch {
    return undefined;
  }
}

export function createHttpServer(options: HttpServerOptions): HttpServer {
  const server: Server = http.createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      options.onError?.(error, request.method ?? '', requestPath(request.url) ?? '');
      // The cause stays in the sidecar's log: an internal message may name what a client should
      // not learn (a file, an upstream address).
      if (!response.headersSent) sendJson(response, 500, { error: 'internal', message: 'internal error; the sidecar logged the cause' });
      else response.destroy();
    });
  });
  // Keep-alive connections must not hold shutdown open.
  server.keepAliveTimeout = 5_000;

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = requestPath(request.url);
    if (path === undefined) return sendJson(response, 400, { error: 'bad-request', message: 'the request target must be a path (origin form, /...)' });
    if (options.routes !== undefined && (await options.routes(request, response, path))) return;
    const routes: Record<string, () => Promise<void> | void> = {
      '/healthz': () => sendJson(response, 200, { status: 'ok' }),
      '/readyz': () => {
        const readiness = options.readiness();
        sendJson(response, readiness.ready ? 200 : 503, { ready: readiness.ready, ...readiness.detail });
      },
      '/metrics': async () => {
        const text = await options.registry.metrics();
        response.writeHead(200, { 'content-type': options.registry.contentType });
        response.end(text);
      },
    };
    const route = routes[path];
    if (route === undefined) return sendJson(response, 404, { error: 'not-found', message: `no route ${path}` });
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      return sendJson(response, 405, { error: 'method-not-allowed', message: `${path} accepts GET` });
    }
    await route();
  }

  return {
    listen(host, port) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address();
          resolve(typeof address === 'object' && address !== null ? address.port : port);
        });
      });
    },
    close() {
      return new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
    },
  };
}
