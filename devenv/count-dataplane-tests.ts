// Reads the JSON reports of the integration and fault suites (every pass devenv/test.sh runs, on each
// HAProxy) and prints one line: how many Data Plane API tests ran and how many were skipped (no binary here). The suites that need the Data Plane API name it
// ("… through the dataplane driver …", "(dataplane)", "(dataplane driver)", "Data Plane API transactions …") so they can be counted.
import { readFileSync } from 'node:fs';

interface AssertionResult {
  readonly fullName: string;
  readonly status: string;
}
interface Report {
  readonly testResults: ReadonlyArray<{ readonly assertionResults: readonly AssertionResult[] }>;
}

const files = process.argv.slice(2);
if (files.length === 0) throw new Error('usage: count-dataplane-tests.ts <vitest-json-report>...');
const reports = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as Report);
const needsApi = /dataplane driver|\(dataplane\)|Data Plane API transactions/i;
const tests = reports.flatMap((report) => report.testResults.flatMap((r) => r.assertionResults)).filter((t) => needsApi.test(t.fullName));
const count = (status: string): number => tests.filter((t) => t.status === status).length;
const skipped = count('skipped') + count('pending') + count('todo');
process.stdout.write(
  `[test] Data Plane API tests: ${count('passed')} passed, ${count('failed')} failed, ${skipped} skipped` +
    (skipped > 0 && count('passed') === 0 ? ' (no Data Plane API binary: set HSC_DATAPLANEAPI_BIN or put dataplaneapi on PATH)' : '') +
    '\n',
);
