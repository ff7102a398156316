// The admin API's OpenAPI document: valid OpenAPI 3.0 (checked by oas-validator, which
// swagger2openapi brings), every operation named, every link pointing at an operation, and the
// replica bounds of the running policy in it (schemathesis found that a count the document
// called valid was refused with 400).
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ADMIN_OPENAPI, adminOpenApi } from '../../../sidecar/admin/openapi.js';
import { startAdminApi } from '../../support/admin-api.js';
import { world } from '../../support/autoscale-world.js';

interface Validator {
  validate(document: object, options: object): Promise<{ valid: boolean }>;
}
const validator = createRequire(import.meta.url)('oas-validator') as Validator;

type Operations = Record<string, { operationId?: string; responses: Record<string, { links?: Record<string, { operationId: string }> }> }>;

describe('the admin API document', () => {
  it.each([
    { name: 'without autoscaler', document: adminOpenApi() },
    { name: 'with replica bounds', document: adminOpenApi({ min: 2, max: 7 }) },
  ])('is valid OpenAPI 3.0 ($name)', async ({ document }) => {
    // As served (JSON), which is also a copy: the validator annotates what it walks.
    await expect(validator.validate(JSON.parse(JSON.stringify(document)) as object, { lint: false, resolve: false })).resolves.toMatchObject({ valid: true });
  });

  it('names every operation once, and every link points at one of them', () => {
    const paths = ADMIN_OPENAPI.paths as unknown as Record<string, Operations>;
    const operations = Object.values(paths).flatMap((methods) => Object.values(methods));
    const ids = operations.map((o) => o.operationId);
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    const targets = operations.flatMap((o) => Object.values(o.responses).flatMap((r) => Object.values(r.links ?? {}).map((l) => l.operationId)));
    expect(targets.length).toBeGreaterThan(0);
    for (const target of targets) expect(ids).toContain(target);
  });

  it('serves the policy’s replica bounds, and refuses a body the document refuses', async () => {
    const { call } = await startAdminApi({ autoscaler: world(2) });
    const doc = await call('GET', '/v1/openapi.json');
    const paths = doc.body.paths as Record<string, { put?: { requestBody: { content: Record<string, { schema: object }> } } }>;
    expect(paths['/v1/autoscaler/replicas']?.put?.requestBody.content['application/json']?.schema).toEqual({
      type: 'object',
      required: ['replicas'],
      additionalProperties: false,
      properties: { replicas: { type: 'integer', minimum: 2, maximum: 10 } },
    });
    // Its example (what a fuzzer's examples phase sends) is a count the sidecar takes.
    const example = (paths['/v1/autoscaler/replicas']?.put?.requestBody.content['application/json'] as { example?: unknown } | undefined)?.example;
    expect(example).toEqual({ replicas: 2 });
    expect(await call('PUT', '/v1/autoscaler/replicas', example)).toMatchObject({ status: 200 });
    expect(await call('PUT', '/v1/autoscaler/replicas', { replicas: 3, extra: true })).toMatchObject({ status: 400, body: { error: 'bad-request', message: expect.stringMatching(/unknown field\(s\): extra/) as unknown } });
    expect(await call('PUT', '/v1/autoscaler/replicas', [3])).toMatchObject({ status: 400, body: { error: 'bad-request' } });
    expect(await call('PUT', '/v1/autoscaler/replicas', 'null')).toMatchObject({ status: 400, body: { error: 'bad-request' } });
  });
});
