// Request logging and health, the same tests for a node:http, an Express and a Fastify
// service, each run as users run it: `node --import ./dist/register.js`, a loopback OTLP
// receiver, a downstream peer called through InstrumentedClient.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { type Child, freePort, startFixture } from './helpers/child.ts';
import { getJson, oneShot, rawRequest, uuidPattern } from './helpers/httpClient.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, scrape } from './helpers/prometheusText.ts';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

const frameworks = [
  { name: 'node', templated: false },
  { name: 'express', templated: true },
  { name: 'fastify', templated: true },
] as const;

/**
 * Probe `url` until `accept` takes the answer: the fixture's checks are cached (150 ms),
 * so a change of a check's state shows on the probe some time after it is made.
 */
async function probeUntil(
  url: string,
  accept: (answer: { status: number; body: Record<string, unknown> }) => boolean,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await getJson(url);
    if (accept(answer)) return answer;
    if (Date.now() > deadline) throw new Error(`probe never accepted: ${JSON.stringify(answer)}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const linesOf = (child: Child, id: string) => child.lines.filter((l) => l.request_id === id);
const completion = (child: Child, id: string) =>
  child.waitForLine(
    (l) => l.request_id === id && (l.msg === 'request completed' || l.msg === 'request failed'),
  );

for (const { name, templated } of frameworks) {
  describe(`${name} service`, () => {
    const service = `server-test-${name}`;
    let child: Child;
    let base: string;
    let metricsPort: number;

    before(async () => {
      metricsPort = await freePort();
      child = startFixture(`server-${name}.mjs`, {
        OTEL_SERVICE_NAME: service,
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
        OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
        OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
        LOG_LEVEL: 'debug',
        // Spans reach the receiver within the test that makes them.
        OTEL_BSP_SCHEDULE_DELAY: '200',
      });
      const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
      base = `http://127.0.0.1:${ready.port}`;
    });
    after(() => child.stop());

    test('readiness is 503 "not ready" until markReady(), liveness 200 all along', async () => {
      assert.deepEqual(await getJson(`${base}/health/ready`), { status: 503, body: { status: 'not ready' } });
      assert.deepEqual(await getJson(`${base}/health/live`), { status: 200, body: { status: 'ok' } });
      await oneShot(`${base}/test/control?ready=1`, { method: 'POST' });
      const ready = await getJson(`${base}/health/ready`);
      assert.equal(ready.status, 200);
      assert.equal(ready.body.status, 'ready');
      assert.deepEqual(Object.keys(ready.body.checks as object).sort(), ['cache', 'db']);
      const head = await oneShot(`${base}/health/live`, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(head.headers['cache-control'], 'no-store');
    });

    test('a valid X-Request-ID is echoed and on every line of the request, InstrumentedClient lines included', async () => {
      const id = `req-${name}.42:ok_1`;
      const res = await oneShot(`${base}/items/42`, { headers: { 'x-request-id': id } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-request-id'], id);
      const done = await completion(child, id);
      const lines = linesOf(child, id);
      assert.deepEqual(
        lines.map((l) => l.msg),
        ['loading item', 'downstream request completed', 'item loaded', 'request completed'],
      );
      // And no line of this request without it.
      const untagged = child.lines.filter(
        (l) => (l.item === '42' || l.path === '/stock/42') && l.request_id !== id,
      );
      assert.deepEqual(untagged, []);
      const downstream = lines.find((l) => l.msg === 'downstream request completed');
      assert.equal(downstream?.service, 'inventory');
      assert.equal(done.level, 'info');
      assert.equal(done.method, 'GET');
      assert.equal(done.path, templated ? '/items/:id' : '/items/42');
      assert.equal(done.status_code, 200);
      assert.equal(typeof done.duration_ms, 'number');
      assert.equal(Math.round((done.duration_ms as number) * 100) / 100, done.duration_ms);
      assert.match(
        String(done.trace_id),
        /^[0-9a-f]{32}$/,
        'the completion line is correlated with the span',
      );
    });

    test('path is the route template with its mount prefix where the framework knows it', async () => {
      const id = `prefix-${name}`;
      await oneShot(`${base}/api/orders/7?verbose=1`, { headers: { 'x-request-id': id } });
      const done = await completion(child, id);
      assert.equal(done.path, templated ? '/api/orders/:id' : '/api/orders/7');
    });

    test('without X-Request-ID a UUID is made, echoed and logged', async () => {
      const res = await oneShot(`${base}/fast`);
      const id = String(res.headers['x-request-id']);
      assert.match(id, uuidPattern);
      const done = await completion(child, id);
      assert.equal(done.path, '/fast');
    });

    test('a hostile X-Request-ID is replaced: never echoed, never logged', async () => {
      const hostile: { marker: string; value: Buffer }[] = [
        { marker: 'HOSTILE-long', value: Buffer.from(`HOSTILE-long${'x'.repeat(10 * 1024)}`) },
        { marker: 'HOSTILE-129', value: Buffer.from(`HOSTILE-129${'a'.repeat(118)}`) },
        { marker: 'HOSTILE-json', value: Buffer.from('HOSTILE-json","level":"fatal","msg":"forged') },
        { marker: 'HOSTILE-utf8', value: Buffer.from('HOSTILE-utf8-é中文') },
        { marker: 'HOSTILE-latin1', value: Buffer.from('HOSTILE-latin1-\xe9\xff', 'latin1') },
        { marker: 'HOSTILE-space', value: Buffer.from('HOSTILE-space with spaces, and a comma') },
        { marker: 'HOSTILE-cr', value: Buffer.from('HOSTILE-cr\rX-Injected: 1') },
        { marker: 'HOSTILE-lf', value: Buffer.from('HOSTILE-lf\nX-Injected: 1') },
        { marker: 'HOSTILE-fold', value: Buffer.from('HOSTILE-fold\r\n X-Injected: 1') },
        { marker: 'HOSTILE-nul', value: Buffer.from('HOSTILE-nul\0') },
      ];
      const port = Number(new URL(base).port);
      let answered = 0;
      for (const { marker, value } of hostile) {
        const head = Buffer.concat([
          Buffer.from('GET /fast HTTP/1.1\r\nHost: localhost\r\nX-Request-ID: '),
          value,
        ]);
        const res = await rawRequest(port, head);
        assert.ok(!res.raw.includes(marker), `${marker} echoed in ${res.raw.slice(0, 300)}`);
        // Node's parser turns the worst away itself (400); what reaches the app is replaced.
        if (res.status === 400) continue;
        assert.equal(res.status, 200, marker);
        assert.match(res.headers['x-request-id'] ?? '', uuidPattern, marker);
        assert.equal(res.headers['x-injected'], undefined);
        await completion(child, res.headers['x-request-id'] ?? '');
        answered++;
      }
      assert.ok(answered >= 6, `only ${answered} hostile requests reached the app`);
      for (const { marker } of hostile) assert.ok(!child.stdout.includes(marker), `${marker} logged`);
      assert.ok(!child.stdout.includes('forged'));
    });

    test('a handler that throws: "request failed" at error, with the error', async () => {
      const id = `boom-${name}`;
      const res = await oneShot(`${base}/boom`, { headers: { 'x-request-id': id } });
      assert.equal(res.status, 500);
      assert.equal(res.headers['x-request-id'], id);
      const failed = await completion(child, id);
      assert.equal(failed.msg, 'request failed');
      assert.equal(failed.level, 'error');
      assert.equal(failed.status_code, 500);
      assert.equal(failed.path, '/boom');
      assert.match(String(failed.error), /boom: the handler broke/);
    });

    test('the request context survives a body that arrives after the headers', async () => {
      const id = `body-${name}`;
      // The body comes in a later packet, so the framework reads it from socket events,
      // which run in the connection's async context, not the request's.
      async function* slowBody() {
        await new Promise((r) => setTimeout(r, 50));
        yield Buffer.from(JSON.stringify({ a: 1, b: 2 }));
      }
      const res = await oneShot(`${base}/echo`, {
        method: 'POST',
        headers: { 'x-request-id': id, 'content-type': 'application/json' },
        body: Readable.from(slowBody()),
      });
      assert.equal(res.status, 200);
      await completion(child, id);
      assert.deepEqual(
        linesOf(child, id).map((l) => l.msg),
        ['body received', 'request completed'],
      );
    });

    test('probes are logged at debug only', async () => {
      const live = await oneShot(`${base}/health/live`, { headers: { 'x-request-id': `live-${name}` } });
      const ready = await oneShot(`${base}/health/ready?full=1`, {
        headers: { 'x-request-id': `ready-${name}` },
      });
      assert.equal(live.status, 200);
      assert.equal(ready.status, 200);
      for (const [id, path] of [
        [`live-${name}`, '/health/live'],
        [`ready-${name}`, '/health/ready'],
      ] as const) {
        const done = await completion(child, id);
        assert.equal(done.level, 'debug');
        assert.equal(done.path, path);
      }
    });

    test('checks: non-critical failing → 200 degraded, critical failing → 503, no error text in the body', async () => {
      const control = (q: string) => oneShot(`${base}/test/control?${q}`, { method: 'POST' });
      await control('cache=fail');
      const degraded = await probeUntil(`${base}/health/ready`, (a) => a.body.status !== 'ready');
      assert.equal(degraded.status, 200);
      const body = degraded.body as { status: string; checks: Record<string, Record<string, unknown>> };
      assert.equal(body.status, 'degraded');
      assert.deepEqual(body.checks.cache, {
        status: 'failing',
        critical: false,
        duration_ms: body.checks.cache?.duration_ms,
        error: 'ECONNREFUSED',
      });
      assert.equal(body.checks.db?.status, 'ok');
      assert.ok(!JSON.stringify(body).includes('hunter2'));
      const logged = await child.waitForLine((l) => l.msg === 'health check failing' && l.check === 'cache');
      assert.equal(logged.level, 'warn');
      assert.match(String(logged.error), /ECONNREFUSED/);

      await control('db=fail');
      const down = await probeUntil(`${base}/health/ready`, (a) => a.body.status !== 'degraded');
      assert.equal(down.status, 503);
      assert.equal(down.body.status, 'not ready');
      assert.equal((down.body.checks as Record<string, { status: string }>).db?.status, 'failing');

      await control('db=ok&cache=ok');
      await probeUntil(`${base}/health/ready`, (a) => a.status === 200 && a.body.status === 'ready');
      await child.waitForLine((l) => l.msg === 'health check recovered' && l.check === 'db');
    });

    test('a check that hangs: /health/ready still answers, 503 with its 300 ms timeout', async () => {
      const control = (q: string) =>
        oneShot(`${base}/test/control?${q}`, { method: 'POST' }).then((a) => JSON.parse(a.body));
      await control('db=hang');
      // The check never settles: an answer at all is the timeout's doing (its length is
      // tested in process with a clock, in health.test.ts).
      const res = await probeUntil(`${base}/health/ready`, (a) => a.status !== 200);
      assert.equal(res.status, 503);
      const db = (res.body.checks as Record<string, Record<string, unknown>>).db;
      assert.equal(db?.error, 'timed out after 300 ms');
      await control('db=ok');
      await probeUntil(`${base}/health/ready`, (a) => a.status === 200);
    });

    test('a probe storm runs each check once per cache period', async () => {
      const calls = async () =>
        JSON.parse((await oneShot(`${base}/test/control`, { method: 'POST' })).body) as { db: number };
      // Start at the beginning of a cache period: probe until the check has run afresh.
      const before = (await calls()).db;
      for (let i = 0; (await calls()).db === before; i++) {
        assert.ok(i < 1000, 'the cached result never expired');
        await getJson(`${base}/health/ready`);
      }
      const answers = await Promise.all(Array.from({ length: 40 }, () => oneShot(`${base}/health/ready`)));
      assert.ok(answers.every((a) => a.status === 200));
      const ran = (await calls()).db - before;
      assert.ok(ran >= 1 && ran <= 2, `db check ran ${ran} times for 40 probes`);
    });

    test("a caller's traceparent: the server span continues its trace with the HTTP server attributes; line and metric agree", async () => {
      const traceId = randomBytes(16).toString('hex');
      const callerSpan = randomBytes(8).toString('hex');
      const id = `w3c-${name}`;
      const res = await oneShot(`${base}/items/9?token=s3cret&page=2`, {
        headers: {
          traceparent: `00-${traceId}-${callerSpan}-01`,
          'x-request-id': id,
          'user-agent': 'kit-test/1.0',
        },
      });
      assert.equal(res.status, 200);
      const done = await completion(child, id);
      assert.equal(done.trace_id, traceId, "the line is in the caller's trace");
      const failed = await oneShot(`${base}/boom`, {
        headers: { traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': `${id}-boom` },
      });
      assert.equal(failed.status, 500);
      const servers = (
        await receiver.waitFor(
          (all) =>
            all.filter(
              (s) =>
                s.traceId === traceId &&
                s.kind === SpanKind.SERVER &&
                (s.attributes['url.path'] === '/items/9' || s.attributes['url.path'] === '/boom'),
            ).length === 2,
        )
      ).filter((s) => s.traceId === traceId && s.kind === SpanKind.SERVER);
      const item = servers.find((s) => s.attributes['url.path'] === '/items/9');
      assert.ok(item, 'the server span of /items/9');
      assert.equal(item.parentSpanId, callerSpan);
      assert.equal(item.spanId, done.span_id);
      assert.equal(item.name, templated ? 'GET /items/:id' : 'GET');
      assert.equal(item.statusCode, 0);
      const port = Number(new URL(base).port);
      const expected: Record<string, unknown> = {
        'http.request.method': 'GET',
        'url.scheme': 'http',
        'url.path': '/items/9',
        'url.query': 'token=REDACTED&page=2',
        'server.address': '127.0.0.1',
        'server.port': port,
        'client.address': '127.0.0.1',
        'network.peer.address': '127.0.0.1',
        'network.protocol.version': '1.1',
        'user_agent.original': 'kit-test/1.0',
        'http.response.status_code': 200,
        ...(templated ? { 'http.route': '/items/:id' } : {}),
      };
      const { 'network.peer.port': peerPort, ...rest } = item.attributes;
      assert.equal(typeof peerPort, 'number');
      for (const [key, value] of Object.entries(expected)) assert.equal(rest[key], value, key);
      const boom = servers.find((s) => s.attributes['url.path'] === '/boom');
      assert.equal(boom?.attributes['http.response.status_code'], 500);
      assert.equal(boom?.attributes['error.type'], '500');
      assert.equal(boom?.statusCode, 2, 'a 5xx answer is an error');

      const series = (
        parseExposition(await scrape(metricsPort)).get('http_server_request_duration')?.samples ?? []
      )
        .filter((s) => s.name.endsWith('_count'))
        .map((s) => s.labels);
      const itemLabels = {
        http_request_method: 'GET',
        url_scheme: 'http',
        http_response_status_code: '200',
        network_protocol_version: '1.1',
        ...(templated ? { http_route: '/items/:id' } : {}),
      };
      assert.ok(
        series.some((l) => Object.entries(itemLabels).every(([k, v]) => l[k] === v)),
        `a series labelled ${JSON.stringify(itemLabels)} among ${JSON.stringify(series)}`,
      );
      assert.ok(
        series.some((l) => l.http_response_status_code === '500' && l.error_type === '500'),
        'the 500 is counted with its error.type',
      );
    });

    test('SIGTERM: exit 0, probes made no spans, requests did; routes name the spans and label the metric', async () => {
      const page = parseExposition(await scrape(metricsPort));
      const routes = (page.get('http_server_request_duration')?.samples ?? [])
        .map((sample) => sample.labels.http_route)
        .filter((route) => route !== undefined);
      if (templated) assert.ok(routes.includes('/items/:id'), `http_route labels: ${routes.join(', ')}`);
      child.kill('SIGTERM');
      const exit = await child.exited;
      assert.equal(exit.code, 0, child.stderr);
      const mine = (
        await receiver.waitFor((all) =>
          all.some((s) => s.resource['service.name'] === service && s.attributes['url.path'] === '/items/42'),
        )
      ).filter((s) => s.resource['service.name'] === service);
      const serverPaths = mine
        .filter((s) => s.kind === SpanKind.SERVER)
        .map((s) => String(s.attributes['url.path']));
      assert.ok(serverPaths.includes('/fast'));
      const item = mine.find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/items/42');
      if (templated) {
        // Express 5 by its instrumentation, Fastify 5 by its diagnostics channel.
        assert.equal(item?.name, 'GET /items/:id');
        assert.equal(item?.attributes['http.route'], '/items/:id');
      } else assert.equal(item?.name, 'GET');
      assert.deepEqual(
        serverPaths.filter((p) => p.startsWith('/health')),
        [],
      );
      assert.ok(child.lines.some((l) => l.msg === 'graceful shutdown completed'));
    });
  });
}
