// An outside fuzzer against the admin API: schemathesis (PyPI, pinned in devenv/versions.env,
// installed by devenv/setup.sh) reads the sidecar's own /v1/openapi.json from a real sidecar
// (runtime driver, real HAProxy, real labelled containers, the autoscaler in dry-run so a
// replica count set by the fuzzer acts on nothing) and throws generated requests at every
// operation, stateless (examples, coverage, fuzzing) and stateful (the document's links), with
// the admin token. Every check it has must pass: no 5xx, every answer a documented status with a
// body that matches the documented schema (errors: {error, message}), negative data refused,
// secured operations refusing a request without the token. Then, without schemathesis, every
// mutating operation is sent without a token and with a wrong one: 401 and the error schema,
// and nothing changed in HAProxy.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNginx, type TestContainer } from '../../devenv/containers.js';
import { startLocalHaproxy, type LocalHaproxy } from '../../devenv/localenv.js';
import { labelledContainersEnv } from '../../devenv/sidecar-env.js';
import { cacheDirectory } from '../../devenv/versions.js';
import { loadConfig } from '../../sidecar/config/index.js';
import { startSidecar, type RunningSidecar } from '../../sidecar/main.js';
import { eventually } from '../support/http.js';
import { runtimeServerStates } from '../support/runtime.js';
import { sidecarLogger } from '../support/sidecar.js';

const run = promisify(execFile);
const schemathesis = join(cacheDirectory(), 'venv', 'bin', 'schemathesis');

interface Operation {
  readonly method: string;
  readonly path: string;
  readonly secured: boolean;
}

interface OpenApiDocument {
  readonly paths: Record<string, Record<string, { readonly security?: readonly unknown[] }>>;
}

/** The JSON run report's parts this test reads (schemathesis --report json). */
interface RunReport {
  readonly [key: string]: unknown;
}

describe('the admin API under schemathesis, against a real sidecar', () => {
  const prefix = `hsc-test-${randomBytes(3).toString('hex')}`;
  const token = randomBytes(24).toString('base64url');
  let haproxy: LocalHaproxy;
  let sidecar: RunningSidecar | undefined;
  let reportDir = '';
  const containers: TestContainer[] = [];
  const base = (): string => `http://127.0.0.1:${sidecar?.port ?? 0}`;

  beforeAll(async () => {
    haproxy = await startLocalHaproxy({ withDataplane: false });
    reportDir = await mkdtemp(join(tmpdir(), `${prefix}-fuzz-`));
    for (const role of ['a', 'b', 'c']) {
      containers.push(await startNginx({ name: `${prefix}-${role}`, labels: { [`${prefix}.enable`]: 'true' } }));
    }
    const config = loadConfig({
      env: {
        ...labelledContainersEnv(haproxy, 'runtime', prefix),
        HSC_RESYNC_INTERVAL_MS: '2000',
        HSC_RECONCILE_DEBOUNCE_MS: '100',
        HSC_DRAIN_DEADLINE_MS: '1000',
        HSC_DRAIN_POLL_MS: '100',
        HSC_AUTOSCALE_ENABLED: 'true',
        HSC_AUTOSCALE_DRY_RUN: 'true',
        HSC_AUTOSCALE_SERVICE: `fuzz-${prefix}`,
        HSC_AUTOSCALE_INTERVAL_MS: '60000',
        HSC_HTTP_PORT: '0',
        HSC_ADMIN_TOKEN: token,
      },
    });
    sidecar = await startSidecar(config, { logger: sidecarLogger('admin-fuzz') });
    const converged = await eventually(async () => (await runtimeServerStates(haproxy)).filter((s) => s.name.startsWith(`hsc-${prefix}`)).length === 3, 30_000, 200);
    if (!converged) throw new Error('the sidecar did not add the three labelled containers');
  });

  afterAll(async () => {
    await sidecar?.stop();
    await haproxy?.stop();
    await Promise.all(containers.map((c) => c.remove()));
    if (reportDir !== '') await rm(reportDir, { recursive: true, force: true });
  });

  it('finds nothing: stateless and stateful phases, every check, bounded in examples and time', async () => {
    expect(existsSync(schemathesis), `${schemathesis} (run devenv/setup.sh)`).toBe(true);
    const reportPath = join(reportDir, 'report.json');
    const args = [
      'run',
      `${base()}/v1/openapi.json`,
      '--phases=examples,coverage,fuzzing,stateful',
      '--checks=all',
      '--max-examples=40',
      '--max-time=90',
      '--request-timeout=10',
      '--workers=1',
      '--seed=20261129',
      '--suppress-health-check=too_slow',
      '--report=json,junit',
      `--report-json-path=${reportPath}`,
      `--report-junit-path=${join(reportDir, 'junit.xml')}`,
      '--header',
      `Authorization: Bearer ${token}`,
    ];
    // In the report directory: schemathesis keeps a cache (.schemathesis/) in its working directory.
    const outcome = await run(schemathesis, args, { cwd: reportDir, timeout: 150_000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, NO_COLOR: '1', SCHEMATHESIS_TELEMETRY: 'false' } }).then(
      ({ stdout }) => ({ code: 0, stdout }),
      (error: { code?: number; stdout?: string; stderr?: string }) => ({ code: error.code ?? 1, stdout: `${error.stdout ?? ''}\n${error.stderr ?? ''}` }),
    );
    const summary = outcome.stdout.split('\n').filter((line) => /test cases|operations|passed|failed|Test Phases|Warnings|seconds/i.test(line));
    process.stdout.write(`[admin-fuzz] schemathesis: ${summary.join(' | ')}\n`);
    if (existsSync(reportPath)) {
      const report = JSON.parse(await readFile(reportPath, 'utf8')) as RunReport;
      process.stdout.write(`[admin-fuzz] test cases: ${JSON.stringify(report.test_cases)}; phases: ${JSON.stringify(report.phases)}; failures: ${JSON.stringify(report.failures).slice(0, 2000)}\n`);
    }
    expect(outcome.code, outcome.stdout.slice(-20_000)).toBe(0);
  }, 180_000);

  it('answers 401 with the error schema to every mutating operation without the token or with a wrong one, and changes nothing', async () => {
    const document = (await (await fetch(`${base()}/v1/openapi.json`)).json()) as OpenApiDocument;
    const operations: Operation[] = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ method: method.toUpperCase(), path, secured: (operation.security?.length ?? 0) > 0 })),
    );
    const mutating = operations.filter((o) => !['GET', 'HEAD'].includes(o.method));
    expect(mutating.length).toBeGreaterThanOrEqual(6);
    // Every operation that changes something says so in the document.
    for (const operation of mutating) expect(operation.secured, `${operation.method} ${operation.path}`).toBe(true);
    const server = `hsc-${prefix}-a`;
    // Whatever the fuzzer left draining settles first (a drain ends at once without traffic, or
    // at the 1 s deadline).
    await new Promise((done) => setTimeout(done, 2_000));
    const adminStates = async (): Promise<string> => JSON.stringify((await runtimeServerStates(haproxy)).map((s) => `${s.name} ${s.admin}`));
    const before = await adminStates();
    const wrong = [undefined, '', 'Bearer', 'Bearer ', `Bearer ${token}x`, `Bearer ${token.slice(1)}`, `bearer ${token}`, `Basic ${Buffer.from(`admin:${token}`).toString('base64')}`, token];
    for (const operation of mutating) {
      const path = operation.path.replace('{backend}', haproxy.backend).replace('{server}', server);
      for (const authorization of wrong) {
        const body = path.endsWith('/replicas') ? { replicas: 2 } : path.endsWith('/drain') ? { force: true } : {};
        const answer = await fetch(`${base()}${path}`, {
          method: operation.method,
          headers: { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) },
          body: JSON.stringify(body),
        });
        const text = await answer.text();
        expect(answer.status, `${operation.method} ${path} with ${JSON.stringify(authorization?.replace(token, '<token>'))}`).toBe(401);
        expect(answer.headers.get('content-type')).toMatch(/^application\/json/);
        const parsed = JSON.parse(text) as { error?: unknown; message?: unknown };
        expect(parsed).toEqual({ error: 'unauthorized', message: expect.any(String) as unknown });
        expect(text).not.toContain(token);
      }
    }
    expect(await adminStates()).toBe(before);
  });
});
