// The preload's choices as a user makes them: the instrumentation set by env, runtime
// metrics on /metrics, resource detectors, and a service's own instrumentation added.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Child, cleanEnv, fixturePath, freePort, registerPath, startFixture } from './helpers/child.ts';
import { oneShot } from './helpers/httpClient.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, scrape } from './helpers/prometheusText.ts';
import { promtool, requireBinary } from './helpers/prometheusTools.ts';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

/** The Express fixture under `env`, answering one request to `path`; its body, and its spans at the receiver after SIGTERM. */
async function expressSpans(service: string, env: Record<string, string>, path = '/items/42') {
  const child = startFixture('server-express.mjs', {
    OTEL_SERVICE_NAME: service,
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    ...env,
  });
  try {
    const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
    const response = await oneShot(`http://127.0.0.1:${ready.port}${path}`);
    assert.equal(response.status, 200);
    child.kill('SIGTERM');
    const exit = await child.exited;
    assert.equal(exit.code, 0, child.stderr);
    await receiver
      .waitFor((all) => all.some((s) => s.resource['service.name'] === service), 5000)
      .catch(() => []);
    return {
      child,
      body: response.body,
      spans: receiver.spans.filter((s) => s.resource['service.name'] === service),
    };
  } finally {
    await child.stop();
  }
}

test('OTEL_NODE_DISABLED_INSTRUMENTATIONS=http,express: no server spans, the app serves', async () => {
  const on = await expressSpans('set-default', {});
  assert.ok(on.spans.some((s) => s.kind === SpanKind.SERVER && s.name === 'GET /items/:id'));
  // The app's own middleware gets a span; the kit's (requestLogging, health) does not.
  const layers = on.spans
    .filter((s) => s.scope === '@opentelemetry/instrumentation-express')
    .map((s) => s.name);
  assert.ok(layers.includes('middleware - jsonParser'), layers.join(', '));
  assert.ok(
    layers.some((name) => name.startsWith('request handler')),
    layers.join(', '),
  );
  assert.deepEqual(
    layers.filter((name) => name.includes('otelServiceKit') || name.includes('anonymous')),
    [],
  );

  const off = await expressSpans('set-no-http', { OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'http,express' });
  assert.deepEqual(
    off.spans.filter(
      (s) => s.kind === SpanKind.SERVER || s.scope === '@opentelemetry/instrumentation-express',
    ),
    [],
  );
  assert.equal(off.child.stderrLines().length, 0, off.child.stderr);
});

test("Express under its instrumentation: a middleware's next is req.next, as res.format relies on", async () => {
  const { body, spans } = await expressSpans('express-next', {}, '/format');
  assert.deepEqual(JSON.parse(body), { sameNext: true });
  assert.ok(
    spans.some(
      (s) => s.scope === '@opentelemetry/instrumentation-express' && s.attributes['http.route'] === '/format',
    ),
  );
});

test('an unknown instrumentation name: one warning naming it, the app runs', async () => {
  const { child } = await expressSpans('set-unknown', {
    OTEL_NODE_ENABLED_INSTRUMENTATIONS: 'http,expresss',
  });
  const warnings = child.stderrLines().filter((l) => l.includes('expresss'));
  assert.equal(warnings.length, 1, child.stderr);
  assert.match(warnings[0] ?? '', /"level":"(warn|error)".*instrumentation-expresss.*not found/);
});

test('runtime and process metrics on /metrics, valid for promtool', async (t) => {
  const bin = requireBinary(t, 'promtool');
  if (bin === undefined) return;
  const port = await freePort();
  const child = startFixture('telemetry-app.mjs', {
    OTEL_SERVICE_NAME: 'runtime-metrics',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
  });
  t.after(() => child.stop());
  await child.waitForLine((l) => l.msg === 'fixture ready');
  // The event-loop delay gauges report once the histogram has a few samples.
  let page = '';
  const deadline = Date.now() + 10_000;
  do {
    page = await scrape(port);
    if (page.includes('nodejs_eventloop_delay_p99')) break;
    await new Promise((r) => setTimeout(r, 200));
  } while (Date.now() < deadline);
  const families = parseExposition(page);
  for (const name of [
    'nodejs_eventloop_delay_p50',
    'nodejs_eventloop_delay_p99',
    'nodejs_eventloop_utilization',
    'v8js_gc_duration',
    'v8js_memory_heap_used',
    'v8js_memory_heap_limit',
    'process_cpu_time_total',
    'process_memory_usage',
    'otel_sdk_processor_span_queue_size',
  ]) {
    assert.ok(families.has(name), `${name} on /metrics; got ${[...families.keys()].join(', ')}`);
  }
  const check = promtool(bin, ['check', 'metrics'], page);
  assert.equal(check.status, 0, check.output);
});

test('resource: service.instance.id by default, no command line; OTEL_NODE_RESOURCE_DETECTORS chooses, a bad name warns', async () => {
  const run = async (service: string, env: Record<string, string>) => {
    const port = await freePort();
    const child = new Child(
      ['--import', registerPath, fixturePath('telemetry-app.mjs'), '--db-url=postgres://app:hunter2@db/x'],
      cleanEnv({
        OTEL_SERVICE_NAME: service,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_PROMETHEUS_PORT: String(port),
        OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
        ...env,
      }),
    );
    try {
      await child.waitForLine((l) => l.msg === 'fixture ready');
      const target = parseExposition(await scrape(port)).get('target_info')?.samples[0]?.labels ?? {};
      return { target, stderr: child.stderrLines() };
    } finally {
      await child.stop();
    }
  };
  const plain = await run('detectors-default', {});
  assert.match(plain.target.service_instance_id ?? '', /^[0-9a-f-]{36}$/);
  assert.ok(plain.target.host_name, 'host detector');
  assert.ok(plain.target.process_pid, 'process detector');
  assert.equal(plain.target.process_command_args, undefined);
  assert.equal(plain.target.process_command_line, undefined);

  const some = await run('detectors-some', { OTEL_NODE_RESOURCE_DETECTORS: 'env,serviceinstance,nosuch' });
  assert.equal(some.target.service_name, 'detectors-some');
  assert.ok(some.target.service_instance_id);
  assert.equal(some.target.host_name, undefined, 'host detector not asked for');
  assert.equal(
    some.stderr.filter((l) => l.includes('nosuch') && l.includes('OTEL_NODE_RESOURCE_DETECTORS')).length,
    1,
  );

  const withArgs = await run('detectors-args', { TELEMETRY_RESOURCE_COMMAND_LINE: 'true' });
  assert.match(withArgs.target.process_command_args ?? '', /db-url/);
  assert.ok(
    !(withArgs.target.process_command_args ?? '').includes('hunter2'),
    'URL credentials still redacted',
  );
});

test('a service adds its own instrumentation from a preload of its own, before the app loads', async (t) => {
  const child = new Child(
    [
      '--import',
      registerPath,
      '--import',
      fixturePath('extension-preload.mjs'),
      fixturePath('extension-app.mjs'),
    ],
    cleanEnv({
      OTEL_SERVICE_NAME: 'extension',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    }),
  );
  t.after(() => child.stop());
  const line = await child.waitForLine((l) => l.msg === 'escaped');
  assert.equal(line.escaped, 'a%20b');
  assert.equal((await child.exited).code, 0, child.stderr);
  const spans = await receiver.waitFor((all) =>
    all.some((s) => s.resource['service.name'] === 'extension' && s.name === 'querystring.escape'),
  );
  assert.equal(spans.find((s) => s.name === 'querystring.escape')?.scope, 'escape-instrumentation');
});

test('span limits from the environment hold for the attributes a span starts with', async () => {
  const short = await expressSpans('limits-length', { OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '4' });
  const server = short.spans.find((s) => s.kind === SpanKind.SERVER && s.name === 'GET /items/:id');
  assert.equal(server?.attributes['url.path'], '/ite');
  const few = await expressSpans('limits-count', { OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '3' });
  const counted = few.spans.find((s) => s.kind === SpanKind.SERVER && s.name === 'GET /items/:id');
  assert.ok(counted !== undefined);
  assert.equal(Object.keys(counted.attributes).length, 3, JSON.stringify(counted.attributes));
});
