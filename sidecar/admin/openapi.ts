// The admin API described in OpenAPI 3.0, served at /v1/openapi.json. A unit test checks that
// every route the router answers is documented here and the other way round.

const error = { $ref: '#/components/schemas/Error' };
const json = (schema: object): object => ({ 'application/json': { schema } });
const errors = (...codes: number[]): Record<string, object> =>
  Object.fromEntries(codes.map((code) => [String(code), { description: ERROR_TEXT[code] ?? 'error', content: json(error) }]));
const ERROR_TEXT: Record<number, string> = {
  400: 'malformed input',
  401: 'missing or wrong bearer token',
  404: 'unknown backend or server',
  409: 'refused: e.g. draining the last ready server of a backend without force',
  502: 'HAProxy or the Data Plane API did not answer as expected',
};
const serverPath = [
  { name: 'backend', in: 'path', required: true, schema: { type: 'string' } },
  { name: 'server', in: 'path', required: true, schema: { type: 'string' } },
];
const bearer = [{ bearer: [] }];

export const ADMIN_OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'haproxy-scaling-sidecar admin API',
    version: '1',
    description: 'Backends and servers the sidecar manages, draining. Mutating routes need the bearer token (http.adminToken).',
  },
  paths: {
    '/v1/backends': {
      get: { summary: 'Managed backends and their servers', responses: { '200': { description: 'backends', content: json({ type: 'array', items: { $ref: '#/components/schemas/Backend' } }) }, ...errors(502) } },
    },
    '/v1/backends/{backend}/servers/{server}': {
      get: { summary: 'One server', parameters: serverPath, responses: { '200': { description: 'the server', content: json({ $ref: '#/components/schemas/Server' }) }, ...errors(404, 502) } },
    },
    '/v1/backends/{backend}/servers/{server}/drain': {
      get: { summary: 'Progress of the drain in progress or the last one', parameters: serverPath, responses: { '200': { description: 'progress', content: json({ $ref: '#/components/schemas/DrainProgress' }) }, ...errors(404) } },
      post: {
        summary: 'Drain the server: no new traffic; done when HAProxy shows no session and no queue on it, forced to maintenance at the deadline',
        security: bearer,
        parameters: serverPath,
        requestBody: {
          required: false,
          content: json({
            type: 'object',
            additionalProperties: false,
            properties: {
              wait: { type: 'boolean', description: 'answer when the drain ended (200) instead of at once (202)' },
              force: { type: 'boolean', description: 'drain even the last ready server of the backend' },
              deadlineSeconds: { type: 'number', minimum: 1, maximum: 86400 },
            },
          }),
        },
        responses: {
          '200': { description: 'drain ended (wait)', content: json({ $ref: '#/components/schemas/DrainAnswer' }) },
          '202': { description: 'drain started', content: json({ $ref: '#/components/schemas/DrainAnswer' }) },
          ...errors(400, 401, 404, 409, 502),
        },
      },
    },
    '/v1/backends/{backend}/servers/{server}/undrain': {
      post: { summary: 'Back to ready; ends a drain in progress', security: bearer, parameters: serverPath, responses: { '200': { description: 'the server', content: json({ $ref: '#/components/schemas/Server' }) }, ...errors(400, 401, 404, 502) } },
    },
    '/v1/resync': {
      post: { summary: 'Ask for a reconcile pass now', security: bearer, responses: { '202': { description: 'requested', content: json({ type: 'object' }) }, ...errors(401) } },
    },
    '/v1/autoscaler': {
      get: { summary: 'Autoscaler state, policy and the recent decisions with their inputs and reasons', responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(404) } },
    },
    '/v1/autoscaler/dry-run': {
      get: { summary: 'The decision and the actions it would take now, applying nothing', responses: { '200': { description: 'decision', content: json({ $ref: '#/components/schemas/Decision' }) }, ...errors(404) } },
    },
    '/v1/autoscaler/pause': {
      post: { summary: 'Stop acting on decisions (they are still made and recorded)', security: bearer, responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(401, 404) } },
    },
    '/v1/autoscaler/resume': {
      post: { summary: 'Act on the policy again (ends a manual count)', security: bearer, responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(401, 404) } },
    },
    '/v1/autoscaler/replicas': {
      put: {
        summary: 'Set the replica count by hand, within min and max; the policy pauses until resume',
        security: bearer,
        requestBody: { required: true, content: json({ type: 'object', required: ['replicas'], properties: { replicas: { type: 'integer' } } }) },
        responses: { '200': { description: 'the decision applied', content: json({ $ref: '#/components/schemas/Decision' }) }, ...errors(400, 401, 404) },
      },
    },
    '/v1/openapi.json': { get: { summary: 'This document', responses: { '200': { description: 'OpenAPI 3.0 document', content: json({ type: 'object' }) } } } },
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
    schemas: {
      Error: { type: 'object', required: ['error', 'message'], properties: { error: { type: 'string' }, message: { type: 'string' } } },
      Backend: { type: 'object', properties: { name: { type: 'string' }, servers: { type: 'array', items: { $ref: '#/components/schemas/Server' } } } },
      Server: {
        type: 'object',
        properties: {
          name: { type: 'string' },
          address: { type: 'string' },
          port: { type: 'integer', nullable: true },
          managed: { type: 'boolean', description: 'created by the sidecar (false: written into haproxy.cfg by hand)' },
          adminState: { type: 'string', enum: ['ready', 'drain', 'maint'], nullable: true },
          operationalState: { type: 'string', enum: ['up', 'down', 'stopping'], nullable: true },
          sessions: { type: 'integer', nullable: true },
          queue: { type: 'integer', nullable: true },
          container: { type: 'string', nullable: true },
          drain: { allOf: [{ $ref: '#/components/schemas/DrainProgress' }], nullable: true },
        },
      },
      DrainProgress: {
        type: 'object',
        properties: {
          backend: { type: 'string' },
          server: { type: 'string' },
          reason: { type: 'string' },
          startedAt: { type: 'integer', description: 'ms since the epoch' },
          deadlineAt: { type: 'integer', description: 'ms since the epoch' },
          load: { type: 'object', nullable: true, properties: { sessions: { type: 'integer' }, queue: { type: 'integer' } } },
          state: { type: 'string', enum: ['draining', 'drained', 'forced', 'cancelled', 'failed'] },
        },
      },
      Decision: {
        type: 'object',
        properties: {
          at: { type: 'integer' },
          mode: { type: 'string', enum: ['auto', 'paused', 'manual', 'dry-run'] },
          current: { type: 'integer' },
          desired: { type: 'integer' },
          direction: { type: 'string', enum: ['up', 'down', 'none'] },
          stage: { type: 'string' },
          reason: { type: 'string' },
          inputs: { type: 'object' },
          problems: { type: 'array', items: { type: 'string' } },
          actions: { type: 'array', items: { type: 'object' } },
          applied: { type: 'boolean' },
        },
      },
      DrainAnswer: {
        type: 'object',
        properties: {
          progress: { allOf: [{ $ref: '#/components/schemas/DrainProgress' }], nullable: true },
          outcome: { type: 'object', properties: { outcome: { type: 'string' }, durationMs: { type: 'integer' }, sessionsCut: { type: 'integer' }, queueCut: { type: 'integer' } } },
        },
      },
    },
  },
} as const;
