// d. The package as users get it: `npm pack`, the tarball installed into a fresh app,
// `node --import otel-service-kit/register app.js` serving /metrics and exporting spans.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Child, cleanEnv, freePort, repoRoot } from './helpers/child.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, sampleValue, scrape } from './helpers/prometheusText.ts';

let app: string;
let receiver: OtlpReceiver;

before(async () => {
  app = mkdtempSync(join(tmpdir(), 'osk-pack-'));
  // prepack builds dist/ with tsc: what is published is the compiled JavaScript.
  execFileSync('npm', ['pack', '--silent', '--pack-destination', app], { cwd: repoRoot, stdio: 'pipe' });
  const tarball = readdirSync(app).find((f) => f.endsWith('.tgz'));
  assert.ok(tarball, 'npm pack produced a tarball');
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'packed-app', private: true, type: 'module' }),
  );
  execFileSync(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', `./${tarball}`],
    {
      cwd: app,
      stdio: 'pipe',
    },
  );
  writeFileSync(
    join(app, 'app.js'),
    `import { createServer } from 'node:http';
import { logger, recordHttpClientRequest } from 'otel-service-kit';
const server = createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
  const res = await fetch('http://127.0.0.1:' + server.address().port + '/hello');
  await res.text();
  recordHttpClientRequest('packed', 'GET', res.status, undefined, 0.02);
  logger.info({ status: res.status }, 'packed app ready');
});
`,
  );
  writeFileSync(
    join(app, 'app.cjs'),
    `const { logger, classifyStatus } = require('otel-service-kit');
logger.info({ status_class: classifyStatus(503) }, 'commonjs consumer');
`,
  );
  receiver = await OtlpReceiver.start();
});

after(async () => {
  await receiver?.close();
  if (app) rmSync(app, { recursive: true, force: true });
});

test('the installed tarball preloads, serves /metrics and exports spans', { timeout: 120_000 }, async (t) => {
  const metricsPort = await freePort();
  const child = new Child(
    ['--import', 'otel-service-kit/register', 'app.js'],
    cleanEnv({
      OTEL_SERVICE_NAME: 'packed-app',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    }),
    app,
  );
  t.after(() => child.stop());
  await child.waitForLine((l) => l.msg === 'packed app ready');
  const families = parseExposition(await scrape(metricsPort));
  assert.equal(
    sampleValue(families, 'http_client_requests_total', {
      service: 'packed',
      method: 'GET',
      status_class: 'success',
    }),
    1,
  );
  child.kill('SIGTERM');
  await child.exited;
  const spans = await receiver.waitFor((all) => all.some((s) => s.kind === SpanKind.CLIENT));
  const client = spans.find((s) => s.kind === SpanKind.CLIENT);
  assert.equal(client?.resource['service.name'], 'packed-app');
  assert.equal(
    client?.attributes['url.full'],
    `http://127.0.0.1:${String(client?.attributes['server.port'])}/hello`,
  );
  assert.equal(child.stderrLines().length, 0, child.stderr);
});

test('a CommonJS app can require the installed package', () => {
  const out = execFileSync(process.execPath, ['app.cjs'], { cwd: app, env: cleanEnv(), encoding: 'utf8' });
  const line = JSON.parse(out.trim()) as Record<string, unknown>;
  assert.equal(line.msg, 'commonjs consumer');
  assert.equal(line.status_class, 'server_error');
});

test('the install holds one copy of each OpenTelemetry package: one set of module hooks, nothing loaded twice', () => {
  // A core package pinned apart from the contrib instrumentations' range nests a copy of
  // @opentelemetry/instrumentation under each of them: every copy loads its own files and
  // installs its own require hook.
  const copies = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (entry.name === 'node_modules') {
        for (const scoped of readdirSync(path, { withFileTypes: true })) {
          if (!scoped.isDirectory()) continue;
          if (scoped.name === '@opentelemetry') {
            for (const pkg of readdirSync(join(path, scoped.name))) {
              const list = copies.get(pkg) ?? [];
              list.push(join(path, scoped.name, pkg));
              copies.set(pkg, list);
            }
          }
        }
      }
      walk(path);
    }
  };
  walk(app);
  assert.ok(copies.has('instrumentation'), 'the install has @opentelemetry/instrumentation');
  const repeated = [...copies].filter(([, paths]) => paths.length > 1);
  assert.deepEqual(repeated, []);
});
