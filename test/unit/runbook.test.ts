// Every alert the stack's Prometheus can fire has its entry in the runbook (docs/operations.md),
// and the runbook lists no alert that does not exist.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

describe('the alert runbook', () => {
  it('has one entry per alert rule, no more, no less', () => {
    const rulesDir = join(root, 'stack/prometheus/rules');
    const alerts = readdirSync(rulesDir)
      .filter((f) => f.endsWith('.yml'))
      .flatMap((f) => [...readFileSync(join(rulesDir, f), 'utf8').matchAll(/^\s*-\s*alert:\s*(\S+)/gm)].map((m) => m[1] ?? ''));
    const runbook = readFileSync(join(root, 'docs/operations.md'), 'utf8').split('## Runbook')[1] ?? '';
    const entries = [...runbook.matchAll(/^\| `([A-Za-z]+)` \|/gm)].map((m) => m[1] ?? '');
    expect(alerts.length).toBeGreaterThan(0);
    expect([...entries].sort()).toEqual([...alerts].sort());
  });
});
