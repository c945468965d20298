// The alert rules' unit tests (deploy/prometheus/alerts.test.yml) run by promtool, and a
// check that they cover every rule: each alert is seen firing and seen not firing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from './helpers/child.ts';
import { promtool, requireBinary } from './helpers/prometheusTools.ts';

const dir = join(repoRoot, 'deploy/prometheus');

type Rule = { alert?: string; record?: string; annotations?: Record<string, string> };
type AlertTest = { alertname: string; exp_alerts?: unknown[] | null };

const rules = (
  parse(readFileSync(join(dir, 'alerts.yml'), 'utf8')) as { groups: { rules: Rule[] }[] }
).groups.flatMap((g) => g.rules);
const alerts = rules.filter((r) => r.alert !== undefined);

test('promtool test rules passes on deploy/prometheus/alerts.test.yml', (t) => {
  const bin = requireBinary(t, 'promtool');
  if (bin === undefined) return;
  const run = promtool(bin, ['test', 'rules', join(dir, 'alerts.test.yml')]);
  assert.equal(run.status, 0, run.output);
  assert.match(run.output, /SUCCESS/);
});

test('the unit tests see every alert firing and not firing', () => {
  const tests = (
    parse(readFileSync(join(dir, 'alerts.test.yml'), 'utf8')) as {
      tests: { alert_rule_test?: AlertTest[] }[];
    }
  ).tests.flatMap((g) => g.alert_rule_test ?? []);
  for (const { alert } of alerts) {
    const mine = tests.filter((c) => c.alertname === alert);
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length > 0),
      `${alert}: no test where it fires`,
    );
    assert.ok(
      mine.some((c) => (c.exp_alerts ?? []).length === 0),
      `${alert}: no test where it stays quiet`,
    );
  }
});

test('every alert has a summary, a description and a runbook line pointing into docs/alerts.md', () => {
  const docs = readFileSync(join(repoRoot, 'docs/alerts.md'), 'utf8');
  for (const { alert, annotations } of alerts) {
    assert.ok(annotations?.summary && annotations.description, `${alert}: summary and description`);
    const runbook = annotations.runbook ?? '';
    assert.match(runbook, /docs\/alerts\.md#/, `${alert}: runbook annotation`);
    const anchor = runbook.slice(runbook.indexOf('#') + 1);
    assert.equal(anchor, String(alert).toLowerCase(), `${alert}: the runbook links to its own section`);
    assert.ok(docs.includes(`## ${alert}`), `docs/alerts.md has a "## ${alert}" section`);
  }
});
