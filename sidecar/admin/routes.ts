// The admin API's HTTP layer (/v1/...): routing, JSON bodies, bearer-token checks on mutating
// routes, and errors as JSON with a message. What each route does is in service.ts.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { sendJson } from '../http/server.js';
import { adminOpenApi } from './openapi.js';
import type { Autoscaler } from '../autoscale/controller.js';
import type { ScalingPolicy } from '../autoscale/policy.js';
import type { AdminService, Answer } from './service.js';
import type { RolloutRequest, RolloutRunner } from '../records/rollouts.js';
import { rolloutView } from '../records/rollout.js';
import type { EdgeErrorKind, Result } from '../edge/result.js';

/** Handles the request and returns true, or returns false when the path is not an admin route. */
export type RouteHandler = (request: IncomingMessage, response: ServerResponse, path: string) => Promise<boolean>;

export interface AdminRoutesOptions {
  readonly service: AdminService;
  /** Empty: no token configured, so every mutating route answers 401. */
  readonly adminToken: string;
  readonly resync: (reason: string) => void;
  /** The records in progress (drains, scale-downs) and the autoscaler's stored mode; absent: the route answers 404. */
  readonly records?: () => unknown;
  /** `hsc rollout`; absent: the routes answer 404. */
  readonly rollouts?: Pick<RolloutRunner, 'begin' | 'rollBack' | 'list'>;
  /** Absent when autoscaling is disabled. */
  readonly autoscaler?: { readonly controller: Autoscaler; readonly policy: ScalingPolicy; readonly service: string };
}

const NAME = '([A-Za-z0-9_.:-]{1,128})';
const SERVER_PATH = new RegExp(`^/v1/backends/${NAME}/servers/${NAME}(/drain|/undrain)?$`);
const ROLLOUT_PATH = new RegExp(`^/v1/rollouts/${NAME}(/rollback)?$`);
/** The HTTP status of an edge error a rollout call returned. */
const STATUS_OF: Partial<Record<EdgeErrorKind, number>> = { invalid: 400, 'not-found': 404, conflict: 409, unsupported: 400 };
const MAX_BODY_BYTES = 16 * 1024;

class BadRequest extends Error {}

/**
 * Whether the token given is the one expected, in time that depends on neither: both are hashed
 * to SHA-256 digests of the same length first, so timingSafeEqual always compares 32 bytes and
 * neither the content nor the length of the expected token shows in the answer's timing.
 */
export function tokenMatches(given: string, expected: string): boolean {
  const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();
  return timingSafeEqual(digest(given), digest(expected)) && expected !== '';
}

export function createAdminRoutes(options: AdminRoutesOptions): RouteHandler {
  const policy = options.autoscaler?.policy;
  const document = adminOpenApi(policy === undefined ? undefined : { min: policy.minReplicas, max: policy.maxReplicas });

  const authorised = (request: IncomingMessage): string | undefined => {
    if (options.adminToken === '') return 'no admin token is configured on the sidecar (http.adminToken / HSC_ADMIN_TOKEN); mutating routes are disabled';
    const header = request.headers.authorization ?? '';
    const match = /^Bearer (.+)$/.exec(header);
    if (match === null) return 'missing bearer token (Authorization: Bearer <token>)';
    if (!tokenMatches(match[1] ?? '', options.adminToken)) return 'wrong token';
    return undefined;
  };

  const reply = <T>(response: ServerResponse, answer: Answer<T>): void => sendJson(response, answer.status, answer.body);

  async function autoscalerRoute(
    path: string,
    request: IncomingMessage,
    response: ServerResponse,
    allow: (methods: string) => boolean,
  ): Promise<void> {
    const scaler = options.autoscaler;
    if (scaler === undefined) {
      sendJson(response, 404, { error: 'not-found', message: 'autoscaling is disabled (autoscale.enabled)' });
      return;
    }
    const { controller } = scaler;
    switch (path) {
      case '/v1/autoscaler':
        if (allow('GET, HEAD')) sendJson(response, 200, { service: scaler.service, ...controller.state(), policy: scaler.policy, recent: controller.recent() });
        return;
      case '/v1/autoscaler/dry-run':
        if (allow('GET, HEAD')) sendJson(response, 200, await controller.dryRun());
        return;
      case '/v1/autoscaler/pause':
      case '/v1/autoscaler/resume':
        if (!allow('POST')) return;
        await readBody(request);
        if (path.endsWith('pause')) await controller.pause();
        else await controller.resume();
        sendJson(response, 200, controller.state());
        return;
      case '/v1/autoscaler/replicas': {
        if (!allow('PUT')) return;
        const body = await readBody(request);
        if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
        const unknown = Object.keys(body).filter((k) => k !== 'replicas');
        if (unknown.length > 0) throw new BadRequest(`unknown field(s): ${unknown.join(', ')} (allowed: replicas)`);
        const replicas = (body as { replicas?: unknown }).replicas;
        const { minReplicas: min, maxReplicas: max } = scaler.policy;
        if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < min || replicas > max) {
          throw new BadRequest(`body must be {"replicas": n} with n a whole number from ${min} to ${max}`);
        }
        sendJson(response, 200, await controller.setReplicas(replicas));
        return;
      }
      default:
        sendJson(response, 404, { error: 'not-found', message: `no route ${path}` });
    }
  }

  function answerResult(response: ServerResponse, result: Result<Parameters<typeof rolloutView>[0]>, status: number): void {
    if (result.ok) sendJson(response, status, rolloutView(result.value));
    else {
      const code = STATUS_OF[result.error.kind] ?? 503;
      sendJson(response, code, { error: code === 503 ? 'unavailable' : result.error.kind, message: result.error.message });
    }
  }

  async function rolloutRoute(path: string, request: IncomingMessage, response: ServerResponse, allow: (methods: string) => boolean): Promise<void> {
    const rollouts = options.rollouts;
    if (rollouts === undefined) {
      sendJson(response, 404, { error: 'not-found', message: 'rollouts are not available here' });
      return;
    }
    if (path === '/v1/rollouts') {
      if (!allow('GET, HEAD, POST')) return;
      if (request.method === 'POST') answerResult(response, await rollouts.begin(rolloutRequest(await readBody(request))), 202);
      else sendJson(response, 200, { rollouts: rollouts.list().map(rolloutView) });
      return;
    }
    const match = ROLLOUT_PATH.exec(path);
    const id = match?.[1];
    if (match === null || id === undefined) {
      sendJson(response, 404, { error: 'not-found', message: `no route ${path}` });
      return;
    }
    if (match[2] === '/rollback') {
      if (!allow('POST')) return;
      await readBody(request);
      answerResult(response, await rollouts.rollBack(id, 'asked by an operator'), 202);
      return;
    }
    if (!allow('GET, HEAD')) return;
    const found = rollouts.list().find((r) => r.id === id);
    if (found === undefined) sendJson(response, 404, { error: 'not-found', message: `no rollout ${id}` });
    else sendJson(response, 200, rolloutView(found));
  }

  return async (request, response, path) => {
    if (!path.startsWith('/v1/')) return false;
    const method = request.method ?? 'GET';
    const mutating = method !== 'GET' && method !== 'HEAD';
    const allow = (methods: string): boolean => {
      if (methods.split(', ').includes(method)) return true;
      response.setHeader('allow', methods);
      sendJson(response, 405, { error: 'method-not-allowed', message: `${path} accepts ${methods}` });
      return false;
    };
    if (mutating) {
      const refusal = authorised(request);
      if (refusal !== undefined) {
        response.setHeader('www-authenticate', 'Bearer');
        sendJson(response, 401, { error: 'unauthorized', message: refusal });
        return true;
      }
    }
    try {
      if (path === '/v1/openapi.json') {
        if (allow('GET, HEAD')) sendJson(response, 200, document);
        return true;
      }
      if (path === '/v1/backends') {
        if (allow('GET, HEAD')) reply(response, await options.service.listBackends());
        return true;
      }
      if (path === '/v1/records' && options.records !== undefined) {
        if (allow('GET, HEAD')) sendJson(response, 200, options.records());
        return true;
      }
      if (path === '/v1/resync') {
        if (!allow('POST')) return true;
        await readBody(request);
        options.resync('admin API');
        sendJson(response, 202, { status: 'reconcile requested' });
        return true;
      }
      if (path === '/v1/rollouts' || path.startsWith('/v1/rollouts/')) {
        await rolloutRoute(path, request, response, allow);
        return true;
      }
      if (path === '/v1/autoscaler' || path.startsWith('/v1/autoscaler/')) {
        await autoscalerRoute(path, request, response, allow);
        return true;
      }
      const match = SERVER_PATH.exec(path);
      if (match === null) {
        sendJson(response, 404, { error: 'not-found', message: `no route ${path}` });
        return true;
      }
      const [, backend = '', server = '', action] = match;
      if (action === undefined) {
        if (allow('GET, HEAD')) reply(response, await options.service.getServer(backend, server));
      } else if (action === '/undrain') {
        if (!allow('POST')) return true;
        await readBody(request);
        reply(response, await options.service.undrain(backend, server));
      } else if (method === 'GET' || method === 'HEAD') {
        reply(response, options.service.drainProgress(backend, server));
      } else if (allow('GET, HEAD, POST')) {
        const body = await readBody(request);
        reply(response, await options.service.drain(backend, server, drainCommand(body)));
      }
      return true;
    } catch (error) {
      if (!(error instanceof BadRequest)) throw error;
      sendJson(response, 400, { error: 'bad-request', message: error.message });
      return true;
    }
  };
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > MAX_BODY_BYTES) throw new BadRequest(`body larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8').trim();
  if (text === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new BadRequest('body is not valid JSON');
  }
}

/** The body of POST /v1/rollouts: seconds at the edge, milliseconds inside. */
function rolloutRequest(body: unknown): RolloutRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
  const fields = body as Record<string, unknown>;
  const allowed = ['image', 'env', 'batch', 'canaryPercent', 'bakeSeconds', 'readyTimeoutSeconds', 'maxErrorRatio', 'maxLatencyRatio'];
  const unknown = Object.keys(fields).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) throw new BadRequest(`unknown field(s): ${unknown.join(', ')} (allowed: ${allowed.join(', ')})`);
  const { image, env } = fields;
  if (image !== undefined && (typeof image !== 'string' || !/^\S+$/.test(image) || image.length > 512)) throw new BadRequest('image must be an image name (no spaces)');
  if (env !== undefined && (!Array.isArray(env) || env.length === 0 || env.length > 100 || !env.every((e) => typeof e === 'string' && /^[^=\s]+=/.test(e) && e.length <= 4096))) {
    throw new BadRequest('env must be a list of 1 to 100 KEY=VALUE strings');
  }
  const number = (name: string, min: number, max: number, integer: boolean): number | undefined => {
    const value = fields[name];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
      throw new BadRequest(`${name} must be ${integer ? 'a whole number' : 'a number'} from ${min} to ${max}`);
    }
    return value;
  };
  const bake = number('bakeSeconds', 0, 86_400, false);
  const ready = number('readyTimeoutSeconds', 1, 3_600, false);
  const settings = {
    batch: number('batch', 1, 100, true),
    canaryPercent: number('canaryPercent', 1, 100, true),
    bakeMs: bake === undefined ? undefined : Math.round(bake * 1000),
    readyTimeoutMs: ready === undefined ? undefined : Math.round(ready * 1000),
    maxErrorRatio: number('maxErrorRatio', 0, 1, false),
    maxLatencyRatio: number('maxLatencyRatio', 1, 1000, false),
  };
  const given = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined)) as Partial<Record<keyof typeof settings, number>>;
  if (image === undefined && (env === undefined || env.length === 0)) throw new BadRequest('give a new image, environment variables (env: ["KEY=VALUE"]), or both');
  return { ...(image === undefined ? {} : { image: image }), ...(env === undefined ? {} : { env }), settings: given };
}

function drainCommand(body: unknown): { wait: boolean; force: boolean; deadlineMs?: number } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new BadRequest('body must be a JSON object');
  const fields = body as Record<string, unknown>;
  const unknown = Object.keys(fields).filter((k) => !['wait', 'force', 'deadlineSeconds'].includes(k));
  if (unknown.length > 0) throw new BadRequest(`unknown field(s): ${unknown.join(', ')} (allowed: wait, force, deadlineSeconds)`);
  const flag = (name: string): boolean => {
    const value = fields[name];
    if (value === undefined) return false;
    if (typeof value !== 'boolean') throw new BadRequest(`${name} must be true or false`);
    return value;
  };
  const deadline = fields.deadlineSeconds;
  if (deadline !== undefined && (typeof deadline !== 'number' || !Number.isFinite(deadline) || deadline < 1 || deadline > 86_400)) {
    throw new BadRequest('deadlineSeconds must be a number of seconds from 1 to 86400');
  }
  // Whole milliseconds: a fractional deadline (7982.38 s) made deadlineAt a fraction, which the
  // document (and any client that reads it) types as an integer. Found by schemathesis.
  return { wait: flag('wait'), force: flag('force'), ...(deadline === undefined ? {} : { deadlineMs: Math.round(deadline * 1000) }) };
}
