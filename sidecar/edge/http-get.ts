// A plain GET over node:http, for the edges that only read a short answer: HAProxy's exporter
// (every breach check, every two seconds) and a container's health path.
//
// Not fetch: Node's fetch is undici, loaded on first use, whose HTTP parser is WebAssembly. On the
// idle sidecar (runtime driver, autoscaler on) that cost about 18 MiB of RSS to load, and after
// about 90 s of scrapes V8 tiered the parser's WebAssembly up to TurboFan on a worker thread,
// leaving another ~10 MiB in that thread's malloc arena. node:http's parser is native and is
// loaded anyway (the admin API's server).
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import { http } from './node-http.js';

export interface HttpAnswer {
  readonly status: number;
  /** The body as UTF-8; empty when the caller asked for the status only. */
  readonly body: string;
}

export interface HttpGetOptions {
  /** The whole exchange, connection to last byte. */
  readonly timeoutMs: number;
  /** Only the status: the body is not read and the connection is closed (as fetch's body.cancel()). */
  readonly statusOnly?: boolean;
}

export type HttpGet = (url: string, options: HttpGetOptions) => Promise<HttpAnswer>;

/** The error a GET rejects with when it ran out of time; its name matches fetch's AbortSignal.timeout(). */
export class HttpTimeoutError extends Error {
  override readonly name = 'TimeoutError';
}

type Send = (url: URL, options: RequestOptions, answer: (response: IncomingMessage) => void) => ClientRequest;

/** https only when asked for: node:https loads TLS, which an http exporter never needs (and its ES import would load undici, node-http.ts). */
const sender = (url: URL): Send => (url.protocol === 'https:' ? process.getBuiltinModule('node:https').request : http.request);

/** Redirects are not followed: a 3xx is an answer like any other. Connection errors reject as node:http raises them. */
export const httpGet: HttpGet = (target, options) =>
  // Inside the executor, so that a malformed URL rejects like every other failure.
  new Promise<HttpAnswer>((resolve, reject) => {
    const url = new URL(target);
    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const request = sender(url)(url, { method: 'GET' }, (response) => {
      const status = response.statusCode ?? 0;
      if (options.statusOnly === true) {
        response.destroy();
        settle(() => resolve({ status, body: '' }));
        return;
      }
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => settle(() => resolve({ status, body })));
      response.on('error', (error) => settle(() => reject(error)));
      // A connection closed mid-body may end the response without an error on some paths.
      response.on('close', () => settle(() => reject(new Error(`${url.origin} closed the connection before the answer ended`))));
    });
    const timer = setTimeout(() => {
      const error = new HttpTimeoutError(`no answer from ${url.origin} within ${options.timeoutMs} ms`);
      settle(() => reject(error));
      request.destroy(error);
    }, options.timeoutMs);
    request.on('error', (error) => settle(() => reject(error)));
    request.end();
  });
