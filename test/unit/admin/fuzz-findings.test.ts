// Regressions for what schemathesis found in the admin API (test/integration/admin-fuzz.test.ts).
import { describe, expect, it } from 'vitest';
import { startAdminApi } from '../../support/admin-api.js';

describe('admin API: what the fuzzer found', () => {
  it('keeps the drain deadline a whole number of milliseconds when deadlineSeconds has a fraction', async () => {
    const { call } = await startAdminApi();
    const drained = await call('POST', '/v1/backends/be_app/servers/hsc-nginx-1/drain', { wait: true, deadlineSeconds: 7982.380270462884 });
    expect(drained.status).toBe(200);
    const progress = drained.body.progress as { startedAt: number; deadlineAt: number };
    expect(Number.isInteger(progress.deadlineAt)).toBe(true);
    expect(progress.deadlineAt - progress.startedAt).toBe(7_982_380);
    const listed = await call('GET', '/v1/backends/be_app/servers/hsc-nginx-1');
    expect(Number.isInteger((listed.body.drain as { deadlineAt: number }).deadlineAt)).toBe(true);
  });
});
