// The admin API described in OpenAPI 3.0, served at /v1/openapi.json. A unit test checks that
// every route the router answers is documented here and the other way round; schemathesis
// (test/integration/admin-fuzz.test.ts) checks every answer against it. What depends on the
// configuration (the replica bounds) is filled in by adminOpenApi(), so that a request the
// document calls valid is one the sidecar accepts.

const error = { $ref: '#/components/schemas/Error' };
const json = (schema: object, example?: object): object => ({ 'application/json': example === undefined ? { schema } : { schema, example } });
const errors = (...codes: number[]): Record<string, object> =>
  Object.fromEntries(codes.map((code) => [String(code), { description: ERROR_TEXT[code] ?? 'error', content: json(error) }]));
const ERROR_TEXT: Record<number, string> = {
  400: 'malformed input',
  401: 'missing or wrong bearer token',
  404: 'not found: an unknown backend, server or rollout, no drain on record, autoscaling disabled, no replica to replace, or an image not on the Docker host',
  409: 'refused: e.g. draining the last ready server of a backend without force, or a rollout while another runs',
  503: 'Docker or HAProxy could not be read or written now; nothing was changed',
  502: 'HAProxy or the Data Plane API did not answer as expected',
};
// Examples make a fuzzer's examples phase send requests an operator would (schemathesis runs it
// before generating its own).
const serverPath = [
  { name: 'backend', in: 'path', required: true, schema: { type: 'string' }, example: 'be_app' },
  { name: 'server', in: 'path', required: true, schema: { type: 'string' }, example: 'hsc-web-1' },
];
const bearer = [{ bearer: [] }];
const rolloutId = { name: 'id', in: 'path', required: true, schema: { type: 'string' }, example: 'r-20261206T0700-ab12' };
const replicasBody = (minimum: number, maximum: number): object => ({
  type: 'object',
  required: ['replicas'],
  additionalProperties: false,
  properties: { replicas: { type: 'integer', minimum, maximum } },
});
// From a backend and its first server in GET /v1/backends to the operations on that server, so
// a stateful client (schemathesis' stateful phase) reaches servers that exist.
const fromListing = { backend: '$response.body#/0/name', server: '$response.body#/0/servers/0/name' };
const fromRequest = { backend: '$request.path.backend', server: '$request.path.server' };
const serverLinks = (parameters: Record<string, string>): Record<string, object> => ({
  GetServer: { operationId: 'getServer', parameters },
  GetDrain: { operationId: 'getDrain', parameters },
  DrainServer: { operationId: 'drainServer', parameters },
  UndrainServer: { operationId: 'undrainServer', parameters },
});

export const ADMIN_OPENAPI = {
  openapi: '3.0.3',
  info: {
    title: 'haproxy-scaling-sidecar admin API',
    version: '1',
    description: 'Backends and servers the sidecar manages, draining. Mutating routes need the bearer token (http.adminToken).',
  },
  paths: {
    '/v1/backends': {
      get: {
        operationId: 'listBackends',
        summary: 'Managed backends and their servers',
        responses: {
          '200': { description: 'backends', content: json({ type: 'array', items: { $ref: '#/components/schemas/Backend' } }), links: serverLinks(fromListing) },
          ...errors(502),
        },
      },
    },
    '/v1/records': {
      get: {
        operationId: 'listRecords',
        summary: 'Operations in progress, as stored in the state file: scale-down retirements and operator drains; and the autoscaler mode an operator set',
        responses: { '200': { description: 'records', content: json({ $ref: '#/components/schemas/Records' }) } },
      },
    },
    '/v1/backends/{backend}/servers/{server}': {
      get: { operationId: 'getServer', summary: 'One server', parameters: serverPath, responses: { '200': { description: 'the server', content: json({ $ref: '#/components/schemas/Server' }) }, ...errors(404, 502) } },
    },
    '/v1/backends/{backend}/servers/{server}/drain': {
      get: { operationId: 'getDrain', summary: 'Progress of the drain in progress or the last one', parameters: serverPath, responses: { '200': { description: 'progress', content: json({ $ref: '#/components/schemas/DrainProgress' }) }, ...errors(404) } },
      post: {
        operationId: 'drainServer',
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
          }, { wait: false, force: false, deadlineSeconds: 60 }),
        },
        responses: {
          '200': { description: 'drain ended (wait)', content: json({ $ref: '#/components/schemas/DrainAnswer' }), links: serverLinks(fromRequest) },
          '202': { description: 'drain started', content: json({ $ref: '#/components/schemas/DrainAnswer' }), links: serverLinks(fromRequest) },
          ...errors(400, 401, 404, 409, 502),
        },
      },
    },
    '/v1/backends/{backend}/servers/{server}/undrain': {
      post: {
        operationId: 'undrainServer',
        summary: 'Back to ready; ends a drain in progress',
        security: bearer,
        parameters: serverPath,
        responses: { '200': { description: 'the server', content: json({ $ref: '#/components/schemas/Server' }), links: serverLinks(fromRequest) }, ...errors(400, 401, 404, 502) },
      },
    },
    '/v1/resync': {
      post: { operationId: 'resync', summary: 'Ask for a reconcile pass now', security: bearer, responses: { '202': { description: 'requested', content: json({ type: 'object' }) }, ...errors(401) } },
    },
    '/v1/autoscaler': {
      get: { operationId: 'getAutoscaler', summary: 'Autoscaler state, policy and the recent decisions with their inputs and reasons', responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(404) } },
    },
    '/v1/autoscaler/dry-run': {
      get: { operationId: 'dryRun', summary: 'The decision and the actions it would take now, applying nothing', responses: { '200': { description: 'decision', content: json({ $ref: '#/components/schemas/Decision' }) }, ...errors(404) } },
    },
    '/v1/autoscaler/pause': {
      post: { operationId: 'pauseAutoscaler', summary: 'Stop acting on decisions (they are still made and recorded)', security: bearer, responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(401, 404) } },
    },
    '/v1/autoscaler/resume': {
      post: { operationId: 'resumeAutoscaler', summary: 'Act on the policy again (ends a manual count)', security: bearer, responses: { '200': { description: 'state', content: json({ type: 'object' }) }, ...errors(401, 404) } },
    },
    '/v1/autoscaler/replicas': {
      put: {
        operationId: 'setReplicas',
        summary: 'Set the replica count by hand, within min and max; the policy pauses until resume',
        security: bearer,
        requestBody: { required: true, content: json(replicasBody(0, 1000), { replicas: 2 }) },
        responses: { '200': { description: 'the decision applied', content: json({ $ref: '#/components/schemas/Decision' }) }, ...errors(400, 401, 404) },
      },
    },
    '/v1/rollouts': {
      get: {
        operationId: 'listRollouts',
        summary: 'The rollout in progress, if any, then the last ones that ended, newest first',
        responses: { '200': { description: 'rollouts', content: json({ type: 'object', required: ['rollouts'], properties: { rollouts: { type: 'array', items: { $ref: '#/components/schemas/Rollout' } } } }) } },
      },
      post: {
        operationId: 'startRollout',
        summary:
          "Replace the service's replicas with a new image and/or environment, a batch at a time: each batch's new replicas serve (optionally as a canary at a lower weight) and are watched on HAProxy's per-server figures for the bake time, then the old ones are drained, removed and stopped; worse figures, or new replicas not serving in time, roll it back on its own. On a Swarm service (docker.mode swarm) Swarm's own rolling update replaces the tasks (start-first, `batch` at a time; no canary weight), watched and rolled back the same way; the image is not checked, the nodes must have it or pull it",
        security: bearer,
        requestBody: {
          required: true,
          content: json(
            {
              type: 'object',
              additionalProperties: false,
              // A new image, a new environment, or both: nothing to change is refused.
              anyOf: [{ required: ['image'] }, { required: ['env'] }],
              properties: {
                image: { type: 'string', pattern: '^\\S+$', maxLength: 512, description: 'the new image, on the Docker host already (Compose); on Swarm the nodes must have it or pull it, not checked' },
                env: { type: 'array', minItems: 1, maxItems: 100, items: { type: 'string', pattern: '^[^=\\s]+=', maxLength: 4096 }, description: 'KEY=VALUE set over the current environment' },
                batch: { type: 'integer', minimum: 1, maximum: 100, description: 'old replicas replaced at a time; as many new ones run beside them' },
                canaryPercent: { type: 'integer', minimum: 1, maximum: 100, description: "the first batch's weight while it bakes (100: no canary)" },
                bakeSeconds: { type: 'number', minimum: 0, maximum: 86400 },
                readyTimeoutSeconds: { type: 'number', minimum: 1, maximum: 3600 },
                maxErrorRatio: { type: 'number', minimum: 0, maximum: 1 },
                maxLatencyRatio: { type: 'number', minimum: 1, maximum: 1000 },
              },
            },
            { image: 'hsc/nginx:next', batch: 1, bakeSeconds: 30 },
          ),
        },
        responses: { '202': { description: 'rollout started', content: json({ $ref: '#/components/schemas/Rollout' }) }, ...errors(400, 401, 404, 409, 503) },
      },
    },
    '/v1/rollouts/{id}': {
      get: { operationId: 'getRollout', summary: 'One rollout', parameters: [rolloutId], responses: { '200': { description: 'the rollout', content: json({ $ref: '#/components/schemas/Rollout' }) }, ...errors(404) } },
    },
    '/v1/rollouts/{id}/rollback': {
      post: {
        operationId: 'rollBack',
        summary: "Roll the rollout in progress back: old-version replicas started for those already replaced, then every new one drained and stopped (on Swarm: the service's spec set back to the old version, and Swarm's rolling update replaces the new tasks)",
        security: bearer,
        parameters: [rolloutId],
        responses: { '202': { description: 'rolling back', content: json({ $ref: '#/components/schemas/Rollout' }) }, ...errors(401, 404, 503) },
      },
    },
    '/v1/openapi.json': { get: { operationId: 'openapi', summary: 'This document', responses: { '200': { description: 'OpenAPI 3.0 document', content: json({ type: 'object' }) } } } },
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
      Records: {
        type: 'object',
        required: ['records', 'autoscaler'],
        properties: {
          records: {
            type: 'array',
            items: {
              type: 'object',
              required: ['kind', 'startedAt'],
              description: 'a retirement or a drain (backend, server, stage, deadlineAt), or a rollout in progress (the Rollout schema)',
              properties: {
                kind: { type: 'string', enum: ['retirement', 'drain', 'rollout'] },
                backend: { type: 'string' },
                server: { type: 'string' },
                containerId: { type: 'string', description: 'retirements: the container stopped once its server is removed' },
                stage: { type: 'string', enum: ['draining', 'drained', 'removed', 'forced'] },
                phase: { type: 'string', description: 'rollouts: see the Rollout schema' },
                reason: { type: 'string' },
                startedAt: { type: 'integer', description: 'ms since the epoch' },
                deadlineAt: { type: 'integer', description: 'ms since the epoch' },
                quietReads: { type: 'integer' },
                forced: { type: 'boolean' },
              },
            },
          },
          autoscaler: {
            type: 'object',
            nullable: true,
            properties: { mode: { type: 'string', enum: ['paused', 'manual'] }, replicas: { type: 'integer' }, since: { type: 'integer' } },
          },
        },
      },
      Rollout: {
        type: 'object',
        required: ['id', 'backend', 'service', 'phase', 'batch', 'old', 'from', 'to', 'settings', 'startedAt', 'reason'],
        properties: {
          id: { type: 'string' },
          via: { type: 'string', enum: ['swarm'], description: "swarm: Swarm's own rolling update replaces the tasks; absent: the sidecar replaces Compose replicas batch by batch" },
          backend: { type: 'string' },
          service: { type: 'string' },
          project: { type: 'string' },
          phase: { type: 'string', enum: ['starting', 'baking', 'retiring', 'rolling-back', 'succeeded', 'rolled-back'] },
          batch: { type: 'integer', description: 'the batch in progress, 0 first' },
          batches: { type: 'integer' },
          old: { type: 'array', items: { type: 'string' }, description: 'the containers of the old version it replaces, oldest first' },
          from: { $ref: '#/components/schemas/Version' },
          to: { $ref: '#/components/schemas/Version' },
          settings: { type: 'object' },
          startedAt: { type: 'integer', description: 'ms since the epoch' },
          phaseSince: { type: 'integer', description: 'ms since the epoch' },
          endedAt: { type: 'integer', description: 'ms since the epoch' },
          reason: { type: 'string', description: 'why it is in its phase (the cause of a rollback)' },
          envChanged: { type: 'array', items: { type: 'string' }, description: 'the environment variables it sets or changes (names only: values may be secrets)' },
          bake: { type: 'object', description: "answers and errors of the new and the old replicas over the current batch's bake" },
          progressAt: { type: 'integer', description: 'Swarm: when one more new task was last seen serving (ms since the epoch)' },
          previous: { type: 'string', description: 'Swarm: the rollout whose labels the service carried before this one (a rollback sets them back)' },
        },
      },
      Version: { type: 'object', properties: { image: { type: 'string' } } },
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

/** The document as this sidecar serves it: the replica count's bounds are the policy's. */
export function adminOpenApi(replicas?: { readonly min: number; readonly max: number }): object {
  if (replicas === undefined) return ADMIN_OPENAPI;
  const paths = ADMIN_OPENAPI.paths;
  const put = paths['/v1/autoscaler/replicas'].put;
  return {
    ...ADMIN_OPENAPI,
    paths: {
      ...paths,
      '/v1/autoscaler/replicas': { put: { ...put, requestBody: { ...put.requestBody, content: json(replicasBody(replicas.min, replicas.max), { replicas: replicas.min }) } } },
    },
  };
}
