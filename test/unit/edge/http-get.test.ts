import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpGet } from '../../../sidecar/edge/http-get.js';

describe('httpGet', () => {
  let server: Server;
  let base: string;

  beforeAll(async () => {
    server = createServer((request, response) => {
      if (request.url === '/text') response.end('größe 1\n'.repeat(10_000));
      else if (request.url === '/redirect') response.writeHead(302, { location: '/text' }).end();
      else if (request.url === '/missing') response.writeHead(503).end('down');
      else if (request.url === '/slow') setTimeout(() => response.end('late'), 2_000).unref();
      else if (request.url === '/stream') response.writeHead(200).write('never ends');
      else if (request.url === '/cut') {
        response.writeHead(200, { 'content-length': '1000' }).write('part');
        setTimeout(() => request.socket.destroy(), 20).unref();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('answers the status and the whole body as UTF-8', async () => {
    const answer = await httpGet(`${base}/text`, { timeoutMs: 2_000 });
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('größe 1\n'.repeat(10_000));
  });

  it('answers a non-2xx status as a value, and does not follow a redirect', async () => {
    expect(await httpGet(`${base}/missing`, { timeoutMs: 2_000 })).toEqual({ status: 503, body: 'down' });
    expect((await httpGet(`${base}/redirect`, { timeoutMs: 2_000 })).status).toBe(302);
  });

  it('with statusOnly, answers once the status is there, without waiting for a body that never ends', async () => {
    expect(await httpGet(`${base}/stream`, { timeoutMs: 2_000, statusOnly: true })).toEqual({ status: 200, body: '' });
  });

  it('rejects with a TimeoutError when the answer takes longer than the timeout, body included', async () => {
    await expect(httpGet(`${base}/slow`, { timeoutMs: 100 })).rejects.toMatchObject({ name: 'TimeoutError' });
    await expect(httpGet(`${base}/stream`, { timeoutMs: 100 })).rejects.toMatchObject({ name: 'TimeoutError' });
  });

  it('rejects when the connection is refused or cut before the answer ended', async () => {
    await expect(httpGet('http://127.0.0.1:9/metrics', { timeoutMs: 2_000 })).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(httpGet(`${base}/cut`, { timeoutMs: 2_000 })).rejects.toThrow();
  });
});
