// The monitoring configuration, checked by the real tools of the Debian packages the stack
// uses (prometheus 2.42: promtool; prometheus-alertmanager 0.25: amtool): the Prometheus
// configuration with the rule files it resolves, every rule file, every unit-test file in
// stack/prometheus/tests (whoever added it), Alertmanager's configuration and its routing.
// Beside the tools, the conventions the tools do not enforce: every alert has a severity the
// routing knows and readable annotations, and a unit test that fires it and one that does not.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const root = fileURLToPath(new URL('../..', import.meta.url));
const prometheusDir = join(root, 'stack', 'prometheus');
const rulesDir = join(prometheusDir, 'rules');
const testsDir = join(prometheusDir, 'tests');
const alertmanagerConfig = join(root, 'stack', 'alertmanager', 'alertmanager.yml');

// Read when the file is collected, so each file gets its own test case.
const ruleFiles = readdirSync(rulesDir).filter((name) => /\.ya?ml$/.test(name)).sort();
const testFiles = readdirSync(testsDir).filter((name) => /\.test\.ya?ml$/.test(name)).sort();

interface ToolResult {
  readonly code: number;
  readonly output: string;
}

/** Runs a tool without a shell; never throws, so a failure shows the tool's own output. */
function run(command: string, args: readonly string[], cwd = root): Promise<ToolResult> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd, timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      const missing = error !== null && error.code === 'ENOENT' ? `${command} is not installed: run devenv/setup.sh\n` : '';
      resolve({ code, output: `${missing}$ ${command} ${args.join(' ')}\n${stdout}${stderr}` });
    });
  });
}

function expectSuccess(result: ToolResult): void {
  expect(result.code, result.output).toBe(0);
}

function escapeRegExp(value: string): string {
  return value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

interface AlertRule {
  readonly file: string;
  readonly name: string;
  readonly labels: Record<string, unknown>;
  readonly annotations: Record<string, unknown>;
}

interface RecordingRule {
  readonly file: string;
  readonly name: string;
}

function readRules(): { alerts: AlertRule[]; recordings: RecordingRule[] } {
  const alerts: AlertRule[] = [];
  const recordings: RecordingRule[] = [];
  for (const file of ruleFiles) {
    const document: unknown = parseYaml(readFileSync(join(rulesDir, file), 'utf8'));
    for (const group of list(isRecord(document) ? document.groups : undefined)) {
      for (const rule of list(isRecord(group) ? group.rules : undefined)) {
        if (!isRecord(rule)) continue;
        if (typeof rule.alert === 'string') {
          alerts.push({
            file,
            name: rule.alert,
            labels: isRecord(rule.labels) ? rule.labels : {},
            annotations: isRecord(rule.annotations) ? rule.annotations : {},
          });
        } else if (typeof rule.record === 'string') {
          recordings.push({ file, name: rule.record });
        }
      }
    }
  }
  return { alerts, recordings };
}

/** For each alert name: whether some test expects it to fire, and some test expects it not to. */
function alertCoverage(): Map<string, { fires: boolean; quiet: boolean }> {
  const coverage = new Map<string, { fires: boolean; quiet: boolean }>();
  for (const file of testFiles) {
    const document: unknown = parseYaml(readFileSync(join(testsDir, file), 'utf8'));
    for (const test of list(isRecord(document) ? document.tests : undefined)) {
      for (const check of list(isRecord(test) ? test.alert_rule_test : undefined)) {
        if (!isRecord(check) || typeof check.alertname !== 'string') continue;
        const entry = coverage.get(check.alertname) ?? { fires: false, quiet: false };
        if (list(check.exp_alerts).length > 0) entry.fires = true;
        else entry.quiet = true;
        coverage.set(check.alertname, entry);
      }
    }
  }
  return coverage;
}

describe('Prometheus configuration (promtool)', () => {
  it('prometheus.yml is valid and its rule_files glob loads every rule file', async () => {
    const result = await run('promtool', ['check', 'config', join(prometheusDir, 'prometheus.yml')]);
    expectSuccess(result);
    for (const file of ruleFiles) expect(result.output, result.output).toContain(join('rules', file));
  });

  it.each(ruleFiles)('rules/%s passes promtool check rules', async (file) => {
    expectSuccess(await run('promtool', ['check', 'rules', join(rulesDir, file)]));
  });

  it.each(testFiles)('tests/%s passes promtool test rules', async (file) => {
    // promtool resolves a test file's rule_files relative to the test file.
    expectSuccess(await run('promtool', ['test', 'rules', join(testsDir, file)]));
  });
});

describe('alert and recording rule conventions', () => {
  const { alerts, recordings } = readRules();

  it('finds the rules', () => {
    expect(alerts.length).toBeGreaterThan(0);
    expect(recordings.length).toBeGreaterThan(0);
  });

  it('every alert has a routed severity and a summary and description', () => {
    const problems = alerts.flatMap((alert) => {
      const found: string[] = [];
      if (alert.labels.severity !== 'critical' && alert.labels.severity !== 'warning') {
        found.push(`${alert.file} ${alert.name}: severity must be critical or warning`);
      }
      for (const key of ['summary', 'description']) {
        const value = alert.annotations[key];
        if (typeof value !== 'string' || value.trim() === '') found.push(`${alert.file} ${alert.name}: no ${key} annotation`);
      }
      return found;
    });
    expect(problems).toEqual([]);
  });

  it('every alert has a unit test that fires it and one that does not', () => {
    const coverage = alertCoverage();
    const missing = alerts.flatMap((alert) => {
      const entry = coverage.get(alert.name);
      return [
        ...(entry?.fires === true ? [] : [`${alert.file} ${alert.name}: no test expects it to fire`]),
        ...(entry?.quiet === true ? [] : [`${alert.file} ${alert.name}: no test expects it to stay quiet`]),
      ];
    });
    expect(missing).toEqual([]);
  });

  it("uses only the sidecar metric names of the contract (docs/metrics.md)", () => {
    const contract = new Set(readFileSync(join(root, 'docs', 'metrics.md'), 'utf8').match(/\bhsc_[a-z0-9_]+/g) ?? []);
    const used = new Set<string>();
    for (const file of ruleFiles) {
      // Names not preceded or followed by a colon: metric names, not recording rule names.
      for (const [name] of readFileSync(join(rulesDir, file), 'utf8').matchAll(/(?<![:\w])hsc_[a-z0-9_]+(?![:\w])/g)) used.add(name);
    }
    expect(used.size).toBeGreaterThan(0);
    expect([...used].filter((name) => !contract.has(name))).toEqual([]);
  });

  it('recording rules are named level:metric:operations', () => {
    const badNames = recordings.map((rule) => rule.name).filter((name) => !/^[a-z_]*:[a-z0-9_]+:[a-z0-9_]+$/.test(name));
    expect(badNames).toEqual([]);
  });
});

describe('Alertmanager configuration (amtool)', () => {
  it('passes amtool check-config', async () => {
    expectSuccess(await run('amtool', ['check-config', alertmanagerConfig]));
  });

  it.each([
    ['severity=critical', 'critical'],
    ['severity=warning', 'warning'],
    // An alert without a severity still reaches someone.
    ['component=unknown', 'warning'],
  ])('routes an alert with %s to the %s receiver', async (label, receiver) => {
    const result = await run('amtool', [
      'config',
      'routes',
      'test',
      `--config.file=${alertmanagerConfig}`,
      `--verify.receivers=${receiver}`,
      'alertname=Probe',
      'backend=be_app',
      label,
    ]);
    expectSuccess(result);
  });

  it('inhibits only with alert names the rules define', () => {
    const { alerts } = readRules();
    const names = new Set(alerts.map((alert) => alert.name));
    const document: unknown = parseYaml(readFileSync(alertmanagerConfig, 'utf8'));
    const unknown = list(isRecord(document) ? document.inhibit_rules : undefined)
      .flatMap((rule) => (isRecord(rule) ? [...list(rule.source_matchers), ...list(rule.target_matchers)] : []))
      .flatMap((matcher) => {
        const match = typeof matcher === 'string' ? /^alertname(=~?)"(.*)"$/.exec(matcher) : null;
        if (match === null) return [];
        // A regex matcher lists alternatives (or a prefix): each must match a defined alert,
        // so renaming an alert cannot silently switch its inhibition off.
        const alternatives = match[1] === '=' ? [escapeRegExp(match[2] ?? '')] : (match[2] ?? '').split('|');
        return alternatives
          .filter((alternative) => ![...names].some((name) => new RegExp(`^(?:${alternative})$`).test(name)))
          .map((alternative) => `${String(matcher)}: ${alternative}`);
      });
    expect(unknown).toEqual([]);
  });
});
