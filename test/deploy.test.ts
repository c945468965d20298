// The compose stack cannot run here (no Docker engine), so it is checked statically
// against the code, and its parts (Prometheus config, rules) are checked with promtool.
// test/e2e-prometheus.test.ts runs them for real outside containers.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { repoRoot } from './helpers/child.ts';
import { promtool, requireBinary } from './helpers/prometheusTools.ts';

type Service = {
  build?: unknown;
  image?: string;
  command?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  profiles?: string[];
};
const compose = parse(readFileSync(join(repoRoot, 'docker-compose.yml'), 'utf8')) as {
  services: Record<string, Service>;
};
const services = compose.services;
const service = (name: string): Service => {
  const s = services[name];
  assert.ok(s, `compose has a ${name} service`);
  return s;
};
const env = (name: string) => service(name).environment ?? {};
const hostPorts = (name: string) => (service(name).ports ?? []).map((p) => Number(p.split(':')[0]));
const containerPorts = (name: string) => (service(name).ports ?? []).map((p) => Number(p.split(':').at(-1)));
const read = (rel: string) => readFileSync(join(repoRoot, rel), 'utf8');

/** The `.ts` files under `dir`, concatenated: what the code actually reads. */
function sources(dir: string): string {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const entry of readdirSync(join(repoRoot, rel))) {
      const path = join(rel, entry);
      if (statSync(join(repoRoot, path)).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) out.push(read(path));
    }
  };
  walk(dir);
  return out.join('\n');
}

/** Whether `code` reads `variable` (`'NAME'` passed to a reader, or `env.NAME`). */
const reads = (code: string, variable: string) =>
  code.includes(`'${variable}'`) || code.includes(`.${variable}`);

test('the compose file has the stack example/README.md promises', () => {
  for (const name of ['app', 'payment-api', 'jaeger', 'prometheus', 'grafana', 'minio', 'minio-init'])
    service(name);
  assert.match(service('jaeger').image ?? '', /^jaegertracing\/jaeger:2\./, 'Jaeger v2 (OTLP built in)');
  assert.deepEqual(containerPorts('jaeger').sort(), [16686, 4317, 4318].sort());
  assert.ok(hostPorts('prometheus').includes(9090));
  assert.ok(hostPorts('grafana').includes(3000));
});

test('what the compose file wires matches the code: ports and endpoints', () => {
  const app = env('app');
  assert.ok(containerPorts('app').includes(Number(app.PORT)), 'the app port is published');
  assert.ok(
    containerPorts('app').includes(Number(app.OTEL_EXPORTER_PROMETHEUS_PORT)),
    'the metrics port is published',
  );
  assert.equal(app.OTEL_EXPORTER_OTLP_ENDPOINT, 'http://jaeger:4318');
  const payment = new URL(app.PAYMENT_API_URL ?? '');
  assert.equal(payment.hostname, 'payment-api');
  assert.equal(payment.port, env('payment-api').PAYMENT_API_PORT);
  assert.ok(containerPorts('payment-api').includes(Number(payment.port)));
  const s3 = new URL(app.S3_ENDPOINT ?? '');
  assert.equal(s3.hostname, 'minio');
  assert.ok(containerPorts('minio').includes(Number(s3.port)));
  assert.match(
    (service('minio-init').command ?? []).join(' '),
    new RegExp(`mb --ignore-existing local/${app.RECEIPTS_BUCKET}\\b`),
  );
  assert.equal(new URL(env('load').LOAD_TARGET ?? '').port, app.PORT);

  const prometheus = parse(read('deploy/prometheus/prometheus.yml')) as {
    scrape_configs: { static_configs: { targets: string[] }[] }[];
  };
  const targets = prometheus.scrape_configs.flatMap((c) => c.static_configs.flatMap((s) => s.targets));
  assert.deepEqual(targets, [`app:${app.OTEL_EXPORTER_PROMETHEUS_PORT}`]);
  const datasources = parse(read('deploy/grafana/provisioning/datasources/datasources.yml')) as {
    datasources: { uid: string; url: string }[];
  };
  assert.deepEqual(
    datasources.datasources.map((d) => [d.uid, d.url]),
    [
      ['prometheus', 'http://prometheus:9090'],
      ['jaeger', 'http://jaeger:16686'],
    ],
  );
});

test('every environment variable the compose file sets is one the code reads, documented where it belongs', () => {
  const kit = sources('src') + read('register.ts');
  const code = kit + sources('example');
  // The kit's variables and the standard ones are documented with the kit's
  // configuration; the ones only the demo reads, with the demo.
  const configuration = read('docs/configuration.md');
  const demo = ['example/README.md', 'docs/alerts.md']
    .filter((doc) => existsSync(join(repoRoot, doc)))
    .map(read)
    .join('\n');
  const standard =
    /^(OTEL_[A-Z_]+|AWS_(REGION|ACCESS_KEY_ID|SECRET_ACCESS_KEY|REQUEST_CHECKSUM_CALCULATION|RESPONSE_CHECKSUM_VALIDATION)|NODE_ENV)$/;
  const documented = (doc: string, variable: string, perDependency: boolean) =>
    doc.includes(`\`${variable}\``) || (perDependency && doc.includes('`<NAME>_TIMEOUT_MS`'));
  for (const name of ['app', 'payment-api', 'load']) {
    for (const variable of Object.keys(env(name))) {
      const timeout = /^(.+)_TIMEOUT_MS$/.exec(variable);
      const perDependency = timeout !== null && !variable.startsWith('SHUTDOWN_');
      if (standard.test(variable) || perDependency || reads(kit, variable)) {
        assert.ok(
          documented(configuration, variable, perDependency),
          `docs/configuration.md documents ${variable}`,
        );
      } else {
        assert.ok(
          documented(demo, variable, false),
          `example/README.md (or docs/alerts.md, for a fault) documents ${variable}`,
        );
      }
      if (standard.test(variable)) continue;
      if (perDependency) {
        assert.ok(
          code.includes(`timeouts.get('${timeout[1]}'`) || code.includes(`timeouts.get("${timeout[1]}"`),
          `${variable}: some call site asks timeouts.get('${timeout[1]}')`,
        );
      } else {
        assert.ok(reads(code, variable), `the code reads ${variable}`);
      }
    }
  }
});

test('the files the stack builds from and mounts exist', () => {
  for (const s of Object.values(services)) {
    for (const volume of s.volumes ?? []) {
      const host = volume.split(':')[0] ?? '';
      if (host.startsWith('.')) assert.ok(existsSync(join(repoRoot, host)), `${host} exists`);
    }
    if (s.build !== undefined) {
      const command = s.command ?? [];
      for (const arg of command)
        if (/\.(ts|js)$/.test(arg)) assert.ok(existsSync(join(repoRoot, arg)), `${arg} exists`);
    }
  }
  const dockerfile = read('Dockerfile');
  for (const m of dockerfile.matchAll(/^COPY\s+(.+)\s+\S+$/gm)) {
    for (const src of (m[1] ?? '').split(/\s+/))
      assert.ok(existsSync(join(repoRoot, src)), `Dockerfile COPY ${src}`);
  }
  const dashboards = readdirSync(join(repoRoot, 'deploy/grafana/dashboards'));
  assert.ok(dashboards.length > 0);
  for (const f of dashboards) {
    const d = JSON.parse(read(`deploy/grafana/dashboards/${f}`)) as {
      panels: { targets: { expr: string; datasource: { uid: string } }[] }[];
    };
    for (const p of d.panels) for (const t of p.targets) assert.equal(t.datasource.uid, 'prometheus');
  }
});

test('promtool check config and check rules pass on deploy/', (t) => {
  const bin = requireBinary(t, 'promtool');
  if (bin === undefined) return;
  // The counts promtool must report follow the files, so adding a rule needs no edit here.
  const config = parse(read('deploy/prometheus/prometheus.yml')) as { rule_files?: string[] };
  const ruleFiles = config.rule_files ?? [];
  const checked = promtool(bin, ['check', 'config', join(repoRoot, 'deploy/prometheus/prometheus.yml')]);
  assert.equal(checked.status, 0, checked.output);
  assert.match(checked.output, new RegExp(`SUCCESS: ${ruleFiles.length} rule files? found`));
  for (const file of ruleFiles) {
    const path = `deploy/prometheus/${file}`;
    const { groups } = parse(read(path)) as { groups: { rules: unknown[] }[] };
    const count = groups.reduce((n, g) => n + g.rules.length, 0);
    assert.ok(count > 0, `${path} has rules`);
    const rules = promtool(bin, ['check', 'rules', join(repoRoot, path)]);
    assert.equal(rules.status, 0, rules.output);
    assert.match(rules.output, new RegExp(`SUCCESS: ${count} rules? found`));
  }
});
