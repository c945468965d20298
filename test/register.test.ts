// The preload, tested only as users run it: child processes started with
// `node --import ./dist/register.js <app>`, a loopback OTLP receiver, a real scrape.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, before, describe, type TestContext, test } from 'node:test';
import { Child, cleanEnv, freePort, registerPath, startFixture } from './helpers/child.ts';
import { isRequestSpan, OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { describeFamilies, parseExposition, scrape } from './helpers/prometheusText.ts';
import { promtool, requireBinary } from './helpers/prometheusTools.ts';

const catalogue = [
  'http_client_requests_total',
  'http_client_request_duration_seconds',
  's3_requests_total',
  's3_request_duration_seconds',
  's3_bytes_transferred_total',
];
const golden = readFileSync(new URL('./golden/catalogue.txt', import.meta.url), 'utf8');

let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

const cases = [
  { fixture: 'telemetry-app.mjs', protocol: 'http/protobuf', contentType: 'application/x-protobuf' },
  { fixture: 'telemetry-app.mjs', protocol: 'http/json', contentType: 'application/json' },
  { fixture: 'telemetry-app.cjs', protocol: 'http/protobuf', contentType: 'application/x-protobuf' },
  { fixture: 'telemetry-app.cjs', protocol: 'http/json', contentType: 'application/json' },
];

for (const { fixture, protocol, contentType } of cases) {
  describe(`${fixture} over ${protocol}`, () => {
    test('metrics, spans and correlated logs, flushed on SIGTERM', async (t) => {
      const metricsPort = await freePort();
      const service = `fixture-${fixture.replace('.', '-')}-${protocol.replace('/', '-')}`;
      const child = startFixture(fixture, {
        OTEL_SERVICE_NAME: service,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol,
        OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
        OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      });
      t.after(() => child.stop());
      await child.waitForLine((l) => l.msg === 'fixture ready');

      // a. The catalogue, exactly, and promtool finds nothing wrong with the page.
      const page = await scrape(metricsPort);
      assert.equal(describeFamilies(parseExposition(page), catalogue), golden);
      const bin = requireBinary(t, 'promtool');
      if (bin !== undefined) {
        const check = promtool(bin, ['check', 'metrics'], page);
        assert.equal(check.status, 0, check.output);
        assert.equal(check.output.trim(), '', 'promtool reports problems');
      }

      // SIGTERM with no graceful-shutdown owner: the preload flushes, then the process
      // still dies of the signal, as it would without the kit.
      child.kill('SIGTERM');
      const exit = await child.exited;
      assert.equal(exit.signal, 'SIGTERM');

      // b. The spans arrived, in the protocol asked for.
      const mine = (
        await receiver.waitFor((all) =>
          all.some((s) => s.resource['service.name'] === service && s.name === 'fixture-work'),
        )
      ).filter((s) => s.resource['service.name'] === service);
      for (const s of mine) assert.equal(s.contentType, contentType);
      const work = mine.find((s) => s.name === 'fixture-work');
      assert.ok(work);
      const clients = mine.filter(isRequestSpan);
      assert.equal(
        clients.length,
        2,
        `one CLIENT span per request, got ${clients.map((s) => `${s.scope}:${s.name}`).join(', ')}`,
      );
      for (const c of clients) {
        assert.equal(c.parentSpanId, work.spanId);
        assert.equal(c.traceId, work.traceId);
        assert.equal(c.scope, '@opentelemetry/instrumentation-undici');
      }
      const paths = mine.filter((s) => s.kind === SpanKind.SERVER).map((s) => s.attributes['url.path']);
      assert.deepEqual(paths.sort(), ['/via-fetch', '/via-undici'], 'the scrape of /metrics is not traced');

      // c. The log line written inside the span carries that span's ids.
      const line = child.lines.find((l) => l.msg === 'inside span');
      assert.ok(line);
      assert.equal(line.trace_id, work.traceId);
      assert.equal(line.span_id, work.spanId);
      assert.equal(line.trace_flags, '01');
      assert.equal(line.service_name, service);
      assert.equal(line.level, 'info');
      assert.match(String(line.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      assert.equal(child.stderrLines().length, 0, child.stderr);
    });
  });
}

/** The ESM fixture with a metrics port and service name of its own, up and past its span. */
async function startTelemetryApp(t: TestContext, serviceName: string, env: Record<string, string>) {
  const metricsPort = await freePort();
  const child = startFixture('telemetry-app.mjs', {
    ...env,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_SERVICE_NAME: serviceName,
  });
  t.after(() => child.stop());
  const inSpan = await child.waitForLine((l) => l.msg === 'inside span');
  await child.waitForLine((l) => l.msg === 'fixture ready');
  return { child, metricsPort, inSpan };
}

/** SIGTERM the app, wait for its exit (and its flush), and count the spans the receiver got from it. */
async function spansAfterExit(child: Child, serviceName: string): Promise<number> {
  child.kill('SIGTERM');
  await child.exited;
  return receiver.spans.filter((s) => s.resource['service.name'] === serviceName).length;
}

test('OTEL_SDK_DISABLED=true: the app runs and logs, no metrics server is started, no span is sent', async (t) => {
  // The metrics port is taken: a started SDK would say so on stderr (as in 'metrics port
  // already taken' below), so a clean stderr at exit shows that nothing tried to listen.
  const blocker = createServer().listen(0, '127.0.0.1');
  await new Promise((r) => blocker.once('listening', r));
  t.after(() => blocker.close());
  const child = startFixture('telemetry-app.mjs', {
    OTEL_SDK_DISABLED: 'true',
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: String((blocker.address() as { port: number }).port),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_SERVICE_NAME: 'disabled-app',
  });
  t.after(() => child.stop());
  const inSpan = await child.waitForLine((l) => l.msg === 'inside span');
  await child.waitForLine((l) => l.msg === 'fixture ready');
  assert.equal(inSpan.service_name, 'disabled-app');
  assert.equal(inSpan.trace_id, undefined);
  assert.equal(await spansAfterExit(child, 'disabled-app'), 0);
  assert.deepEqual(child.stderrLines(), []);
});

test('OTEL_TRACES_EXPORTER=none: no spans and no warning; metrics and logs go on', async (t) => {
  const { child, metricsPort, inSpan } = await startTelemetryApp(t, 'no-traces-app', {
    OTEL_TRACES_EXPORTER: 'none',
  });
  assert.equal(inSpan.trace_id, undefined);
  const page = await scrape(metricsPort);
  assert.match(page, /^http_client_requests_total\{.*service="payments".*\} 1$/m);
  assert.equal(await spansAfterExit(child, 'no-traces-app'), 0);
  const warnings = child.lines.filter((l) => l.level === 'warn' || l.level === 'error');
  assert.deepEqual(warnings, []);
  assert.equal(child.stderrLines().length, 0, child.stderr);
});

test('metrics port already taken: the app starts and serves, with one clear error line', async (t) => {
  const blocker = createServer().listen(0, '0.0.0.0');
  await new Promise((r) => blocker.once('listening', r));
  t.after(() => blocker.close());
  const port = (blocker.address() as { port: number }).port;
  const child = startFixture('telemetry-app.mjs', {
    OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
  });
  t.after(() => child.stop());
  const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
  const res = await fetch(`http://127.0.0.1:${ready.downstream}/still-serving`);
  assert.equal(res.status, 200);
  await child.waitForStderrLine((l) => l.includes('metrics endpoint not served'));
  // Everything it had to say is out once it has exited.
  child.kill('SIGTERM');
  await child.exited;
  const errors = child.stderrLines();
  assert.equal(errors.length, 1, child.stderr);
  assert.match(
    errors[0] ?? '',
    new RegExp(`metrics endpoint not served: cannot listen on 0\\.0\\.0\\.0:${port} \\(EADDRINUSE\\)`),
  );
});

test('a bad kit variable stops start-up with one line naming it', async () => {
  const child = startFixture('telemetry-app.mjs', { LOG_LEVEL: 'loud' });
  const exit = await child.exited;
  assert.equal(exit.code, 1);
  assert.deepEqual(child.stderrLines(), [
    'otel-service-kit: invalid LOG_LEVEL="loud": expected one of trace, debug, info, warn, error, fatal, silent',
  ]);
  assert.equal(child.stdout, '');
});

test('a bad timeout variable stops start-up with one line naming it', async () => {
  const child = startFixture('telemetry-app.mjs', { PAYMENT_API_TIMEOUT_MS: '5s' });
  const exit = await child.exited;
  assert.equal(exit.code, 1);
  assert.deepEqual(child.stderrLines(), [
    'otel-service-kit: invalid PAYMENT_API_TIMEOUT_MS="5s": expected a positive whole number of milliseconds',
  ]);
});

test('a bad OTEL_* value warns and uses the default', async (t) => {
  const metricsPort = await freePort();
  const child = startFixture('telemetry-app.mjs', {
    OTEL_SERVICE_NAME: 'bad-otel-value',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'carrier-pigeon',
    OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
  });
  t.after(() => child.stop());
  await child.waitForLine((l) => l.msg === 'fixture ready');
  child.kill('SIGTERM');
  await child.exited;
  const spans = await receiver.waitFor((all) =>
    all.some((s) => s.resource['service.name'] === 'bad-otel-value'),
  );
  const mine = spans.filter((s) => s.resource['service.name'] === 'bad-otel-value');
  assert.ok(
    mine.every((s) => s.contentType === 'application/x-protobuf'),
    'the default protocol is used',
  );
  const warnings = child.stderrLines().map((l) => JSON.parse(l) as { level: string; msg: string });
  assert.equal(warnings.length, 1, child.stderr);
  assert.equal(warnings[0]?.level, 'warn');
  assert.match(
    warnings[0]?.msg ?? '',
    /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL="carrier-pigeon".*using http\/protobuf/,
  );
});

test('a script that finishes on its own has its spans flushed at exit (beforeExit)', async (t) => {
  const child = startFixture('telemetry-app.mjs', {
    FIXTURE_MODE: 'many',
    FIXTURE_REQUESTS: '3',
    OTEL_SERVICE_NAME: 'short-lived',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    // Far longer than the script lives: only the exit-time flush can deliver the spans.
    OTEL_BSP_SCHEDULE_DELAY: '60000',
  });
  t.after(() => child.stop());
  const exit = await child.exited;
  assert.equal(exit.code, 0, child.stderr);
  const spans = receiver.spans.filter((s) => s.resource['service.name'] === 'short-lived');
  assert.equal(spans.filter(isRequestSpan).length, 3);
  assert.equal(spans.filter((s) => s.kind === SpanKind.SERVER).length, 3);
});

test('SIGINT with no shutdown owner: flushed, and the process still dies of SIGINT', async (t) => {
  const child = startFixture('telemetry-app.mjs', {
    OTEL_SERVICE_NAME: 'sigint-app',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    OTEL_BSP_SCHEDULE_DELAY: '60000',
  });
  t.after(() => child.stop());
  await child.waitForLine((l) => l.msg === 'fixture ready');
  child.kill('SIGINT');
  assert.equal((await child.exited).signal, 'SIGINT');
  assert.ok(
    receiver.spans.some((s) => s.resource['service.name'] === 'sigint-app' && s.name === 'fixture-work'),
  );
});

test('log lines go over OTLP only when OTEL_LOGS_EXPORTER asks for it', async (t) => {
  const run = async (service: string, logsExporter: string | undefined) => {
    const child = startFixture('telemetry-app.mjs', {
      OTEL_SERVICE_NAME: service,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
      OTEL_LOGS_EXPORTER: logsExporter,
    });
    t.after(() => child.stop());
    await child.waitForLine((l) => l.msg === 'fixture ready');
    const before = receiver.requests.filter((r) => r.path === '/v1/logs').length;
    child.kill('SIGTERM');
    await child.exited;
    // stdout has the lines either way.
    assert.ok(child.lines.some((l) => l.msg === 'inside span'));
    return receiver.requests.filter((r) => r.path === '/v1/logs').length - before;
  };
  assert.equal(await run('logs-stdout-only', undefined), 0);
  assert.ok((await run('logs-over-otlp', 'otlp')) >= 1, 'OTEL_LOGS_EXPORTER=otlp sends the lines');
});

test('calls through both undici and node:http share one http_client_request_duration family, with no metadata warning', async (t) => {
  const metricsPort = await freePort();
  const code = `
    import { get } from 'node:http';
    import { createServer } from 'node:http';
    import { request } from 'undici';
    const server = createServer((_req, res) => res.end('ok')).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    const base = 'http://127.0.0.1:' + server.address().port;
    await (await request(base + '/via-undici')).body.text();
    await new Promise((r) => get(base + '/via-http', (res) => { res.resume(); res.on('end', r); }));
    console.log(JSON.stringify({ msg: 'calls done' }));
    await new Promise(() => {});
  `;
  const child = new Child(
    ['--import', registerPath, '--input-type=module', '-e', code],
    cleanEnv({
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    }),
  );
  t.after(() => child.stop());
  await child.waitForLine((l) => l.msg === 'calls done');
  const page = await scrape(metricsPort);
  const help = page.split('\n').filter((l) => l.startsWith('# HELP http_client_request_duration '));
  assert.deepEqual(help, ['# HELP http_client_request_duration Duration of HTTP client requests.']);
  const counts = page.split('\n').filter((l) => l.startsWith('http_client_request_duration_count{'));
  assert.equal(counts.length, 2, page);
  // A metadata warning would come from the scrape above; all output is out once it has exited.
  child.kill('SIGTERM');
  await child.exited;
  assert.deepEqual(
    child.lines.filter((l) => l.level === 'warn' || l.level === 'error'),
    [],
  );
  assert.equal(child.stderrLines().length, 0, child.stderr);
});
