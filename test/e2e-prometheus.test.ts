// End to end: the demo under load, scraped by the real Prometheus server started with
// the repo's own deploy/prometheus config (targets pointed at loopback). Every PromQL
// expression of the dashboard and of the alert rules, run through Prometheus's HTTP
// API, returns data; and one checkout arrives at an OTLP receiver as one trace.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { runLoad } from '../example/load.ts';
import { repoRoot } from './helpers/child.ts';
import { startDemo } from './helpers/demo.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { PrometheusServer } from './helpers/prometheusServer.ts';
import { requireBinary } from './helpers/prometheusTools.ts';

/** Every PromQL expression of the dashboards, with the panel it belongs to. */
function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(
    readFileSync(join(repoRoot, 'deploy/grafana/dashboards/otel-service-kit.json'), 'utf8'),
  ) as {
    panels: { title: string; targets: { expr: string }[] }[];
  };
  return dashboard.panels.flatMap((p) =>
    p.targets.map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })),
  );
}

/** `expr` cut at its top-level `and`s: the conditions of a multi-window alert. */
function conditions(expr: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    else if (depth === 0 && /\sand\s/.test(expr.slice(i - 1, i + 4))) {
      parts.push(expr.slice(start, i));
      start = i + 3;
    }
  }
  parts.push(expr.slice(start));
  return parts.map((p) => p.trim());
}

/**
 * Every recording rule, and every condition of every alert without its final comparison:
 * each query must return data whether the alert fires or not.
 */
function ruleExpressions(): { where: string; expr: string }[] {
  const rules = parse(readFileSync(join(repoRoot, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: { alert?: string; record?: string; expr: string }[] }[];
  };
  return rules.groups.flatMap((g) =>
    g.rules.flatMap((r) => {
      if (r.record !== undefined) return [{ where: `recording rule ${r.record}`, expr: r.expr }];
      return conditions(r.expr).map((condition) => {
        const query = condition.replace(/\s*(==|!=|>=|<=|>|<)\s*[\d.]+$/, '');
        assert.notEqual(query, condition, `${r.alert}: "${condition}" ends in a comparison with a threshold`);
        return { where: `alert ${r.alert}`, expr: query };
      });
    }),
  );
}

test('the demo under load: dashboards and alerts return data from a real Prometheus; one checkout is one trace', {
  timeout: 120_000,
}, async (t) => {
  const bin = requireBinary(t, 'prometheus');
  if (bin === undefined) return;
  const receiver = await OtlpReceiver.start();
  t.after(() => receiver.close());
  const { demo, metricsPort, target } = await startDemo(t, receiver.endpoint, {
    OTEL_BSP_SCHEDULE_DELAY: '300',
    PAYMENT_FAILURE_RATE: '0.2',
    PAYMENT_RATE_LIMIT_RATE: '0',
  });

  const prometheus = await PrometheusServer.start(bin, { 'app:9464': `127.0.0.1:${metricsPort}` });
  t.after(() => prometheus.stop());

  // One checkout of our own, to follow through the trace. A fifth of the payment API's
  // answers are 503s, so a checkout fails after its three attempts now and then (0.8%):
  // place another then.
  let order: Response | undefined;
  let placed: { order_id?: string } = {};
  for (let tries = 0; tries < 5 && order?.status !== 201; tries++) {
    order = await fetch(`${target}/checkout`, { method: 'POST', body: JSON.stringify({ amount: 42 }) });
    placed = (await order.json()) as { order_id?: string };
  }
  assert.equal(order?.status, 201, JSON.stringify(placed));

  const load = await runLoad({ target, rps: 25, durationS: 8 });
  assert.ok(load.sent >= 100, `load sent ${load.sent}`);
  assert.ok((load.byStatus['201'] ?? 0) > 0, JSON.stringify(load.byStatus));

  const [scrapeTarget] = await prometheus.targets();
  assert.equal(scrapeTarget?.health, 'up', scrapeTarget?.lastError);
  for (const { where, expr } of [...dashboardExpressions(), ...ruleExpressions()]) {
    const result = await prometheus.query(expr);
    assert.ok(result.length > 0, `${where} returns no data: ${expr}`);
  }

  // The trace of our checkout: the server span, the payment call with its attempts and
  // the S3 calls, all one trace.
  const placedLine = await demo.waitForLine(
    (l) => l.msg === 'order placed' && l.order_id === placed.order_id,
  );
  const traceId = String(placedLine.trace_id);
  const spans = await receiver.waitFor((all) => {
    const mine = all.filter((s) => s.traceId === traceId);
    return (
      mine.some((s) => s.name === 'S3.GetObject') &&
      mine.some((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/checkout')
    );
  }, 15_000);
  const trace = spans.filter((s) => s.traceId === traceId);
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const root = trace.find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/checkout');
  assert.ok(root, 'the checkout server span');
  const underRoot = (s: (typeof trace)[number]) => {
    for (let p = byId.get(s.parentSpanId); p !== undefined; p = byId.get(p.parentSpanId))
      if (p === root) return true;
    return false;
  };
  const payment = trace.find((s) => s.name === 'POST payment-api');
  assert.ok(payment && underRoot(payment), 'the payment call span, under the server span');
  const attempts = trace.filter((s) => s.kind === SpanKind.CLIENT && s.parentSpanId === payment.spanId);
  assert.ok(attempts.length >= 1, 'one undici span per attempt under the payment call');
  for (const name of ['S3.PutObject', 'S3.GetObject']) {
    const s3 = trace.find((s) => s.name === name);
    assert.ok(s3 && underRoot(s3), `${name} under the server span`);
  }
});
