// The package as users get it: `npm pack`, the tarball installed into a fresh app, ESM
// and CommonJS apps started with `node --import otel-service-kit/register`, serving
// /metrics, exporting spans and writing correlated log lines.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { Child, cleanEnv, freePort, repoRoot } from './helpers/child.ts';
import { isRequestSpan, OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, sampleValue, scrape } from './helpers/prometheusText.ts';

let app: string;
let receiver: OtlpReceiver;

before(async () => {
  app = mkdtempSync(join(tmpdir(), 'osk-pack-'));
  // `npm test` has built dist/ (tsc and the preload bundle), what is published. Not again
  // here (prepack): other tests run the built preload meanwhile.
  execFileSync('npm', ['pack', '--silent', '--ignore-scripts', '--pack-destination', app], {
    cwd: repoRoot,
    stdio: 'pipe',
  });
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
  const body = (
    name: string,
  ) => `const server = createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1', async () => {
  const res = await fetch('http://127.0.0.1:' + server.address().port + '/hello');
  await res.text();
  recordHttpClientRequest('${name}', 'GET', res.status, undefined, 0.02);
  logger.info({ status: res.status }, 'packed app ready');
});
`;
  writeFileSync(
    join(app, 'app.js'),
    `import { createServer } from 'node:http';
import { logger, recordHttpClientRequest } from 'otel-service-kit';
${body('packed-esm')}`,
  );
  writeFileSync(
    join(app, 'app.cjs'),
    `const { createServer } = require('node:http');
const { logger, recordHttpClientRequest } = require('otel-service-kit');
${body('packed-cjs')}`,
  );
  receiver = await OtlpReceiver.start();
});

after(async () => {
  await receiver?.close();
  if (app) rmSync(app, { recursive: true, force: true });
});

for (const [file, name] of [
  ['app.js', 'packed-esm'],
  ['app.cjs', 'packed-cjs'],
] as const) {
  test(`the installed tarball preloads ${file}: /metrics, spans and correlated logs`, async (t) => {
    const metricsPort = await freePort();
    const child = new Child(
      ['--import', 'otel-service-kit/register', file],
      cleanEnv({
        OTEL_SERVICE_NAME: name,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      }),
      app,
    );
    t.after(() => child.stop());
    const ready = await child.waitForLine((l) => l.msg === 'packed app ready');
    const families = parseExposition(await scrape(metricsPort));
    assert.equal(
      sampleValue(families, 'http_client_requests_total', {
        service: name,
        method: 'GET',
        status_class: 'success',
      }),
      1,
    );
    child.kill('SIGTERM');
    await child.exited;
    const spans = await receiver.waitFor((all) =>
      all.some((s) => s.resource['service.name'] === name && s.kind === SpanKind.SERVER),
    );
    const mine = spans.filter((s) => s.resource['service.name'] === name);
    const client = mine.find(isRequestSpan);
    const server = mine.find((s) => s.kind === SpanKind.SERVER);
    assert.equal(
      client?.attributes['url.full'],
      `http://127.0.0.1:${String(client?.attributes['server.port'])}/hello`,
    );
    assert.equal(server?.traceId, client?.traceId, 'the server span continues the trace of the client span');
    assert.equal(ready.trace_id, undefined, 'the ready line is logged outside any span');
    assert.equal(child.stderrLines().length, 0, child.stderr);
  });
}

test('the install is small: the SDK and instrumentations are inside the preload, one copy of each OpenTelemetry package', () => {
  // Each copy of a package loads its own files, and a copy of @opentelemetry/instrumentation
  // installs its own require hook: none is nested, and only the API packages the public
  // API imports are installed at all.
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
  assert.deepEqual([...copies.keys()].sort(), ['api', 'semantic-conventions']);
  const repeated = [...copies].filter(([, paths]) => paths.length > 1);
  assert.deepEqual(repeated, []);
});
