// InstrumentedClient as a service uses it: a child process started with
// `node --import ./dist/register.js`, calling real loopback servers that script faults; its
// log lines read from stdout, its metrics scraped from /metrics, its spans received over OTLP.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Child, freePort, startFixture } from './helpers/child.ts';
import { FaultServer } from './helpers/faultServer.ts';
import { isRequestSpan, OtlpReceiver, type ReceivedSpan, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, sampleValue, scrape } from './helpers/prometheusText.ts';

type Line = Record<string, unknown>;
interface Result {
  status?: number;
  body?: string;
  elapsed_ms: number;
  error_name?: string;
  error_code?: string;
  broken_circuit?: boolean;
  timeout_ms?: number;
  fixture_error?: string;
}

let receiver: OtlpReceiver;
let server: FaultServer;
let child: Child;
let metricsPort: number;
let nextId = 0;

before(async () => {
  [receiver, server, metricsPort] = await Promise.all([
    OtlpReceiver.start(),
    FaultServer.start(),
    freePort(),
  ]);
  child = startFixture('client-driver.mjs', {
    OTEL_SERVICE_NAME: 'client-driver',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    // Spans reach the receiver within a tenth of a second rather than five.
    OTEL_BSP_SCHEDULE_DELAY: '100',
    PAYMENT_API_TIMEOUT_MS: '200',
  });
  await child.waitForLine((l) => l.msg === 'fixture ready');
});

after(async () => {
  await child.stop();
  await Promise.all([server.close(), receiver.close()]);
});

/** Run one fixture command; resolves with its result and the id its log lines carry as `cmd`. */
async function send(cmd: Record<string, unknown>): Promise<{ id: number; result: Result }> {
  const id = ++nextId;
  child.process.stdin?.write(`${JSON.stringify({ id, ...cmd })}\n`);
  const line = await child.waitForLine((l) => l.msg === 'fixture result' && l.cmd_id === id);
  const result = line.result as Result;
  assert.equal(result.fixture_error, undefined, result.fixture_error);
  return { id, result };
}

const linesOf = (id: number): Line[] => child.lines.filter((l) => l.cmd === id);
const withMsg = (lines: Line[], msg: string): Line[] => lines.filter((l) => l.msg === msg);

async function metrics() {
  return parseExposition(await scrape(metricsPort));
}

/** The call's logical span and the spans under it, once all have arrived. */
async function spansOfCall(
  name: string,
  clientSpans: number,
): Promise<{ call: ReceivedSpan; attempts: ReceivedSpan[] }> {
  let call: ReceivedSpan | undefined;
  let attempts: ReceivedSpan[] = [];
  await receiver.waitFor((spans) => {
    call = spans.find((s) => s.name === name && s.scope === 'otel-service-kit');
    if (call === undefined) return false;
    const parent = call.spanId;
    attempts = spans.filter((s) => s.parentSpanId === parent && isRequestSpan(s));
    return attempts.length >= clientSpans;
  });
  assert.ok(call);
  return { call, attempts };
}

/** The undici CLIENT span of a one-attempt call: the call's only span. */
async function clientSpanOf(service: string, path: string): Promise<ReceivedSpan> {
  let found: ReceivedSpan | undefined;
  await receiver.waitFor((spans) => {
    found = spans.find(
      (s) =>
        isRequestSpan(s) &&
        s.attributes['peer.service'] === service &&
        new URL(String(s.attributes['url.full'])).pathname === path,
    );
    return found !== undefined;
  });
  assert.ok(found);
  return found;
}

function assertAllCorrelated(lines: Line[], span: ReceivedSpan): void {
  assert.ok(lines.length > 0);
  for (const line of lines) {
    assert.equal(line.trace_id, span.traceId, `"${line.msg}" carries the call's trace_id`);
    assert.equal(line.span_id, span.spanId, `"${line.msg}" carries the call's span_id`);
  }
}

test('503, 503, 200: success on the third attempt, two retry lines, every attempt counted', async () => {
  await send({
    op: 'client',
    name: 'flaky',
    options: { service: 'flaky-api', baseUrl: server.url, retry: { initialDelayMs: 10, maxDelayMs: 50 } },
  });
  server.script('/charges', { status: 503 }, { status: 503 }, { status: 200, body: 'paid' });
  const { id, result } = await send({ op: 'request', client: 'flaky', method: 'GET', path: '/charges' });
  assert.equal(result.status, 200);
  assert.equal(result.body, 'paid');
  assert.equal(server.hits('/charges').length, 3);

  const lines = linesOf(id);
  const retries = withMsg(lines, 'retrying downstream call');
  assert.deepEqual(
    retries.map((l) => l.retry_attempt),
    [1, 2],
  );
  for (const r of retries) {
    assert.equal(r.level, 'warn');
    assert.equal(r.service, 'flaky-api');
    assert.equal(r.method, 'GET');
    assert.equal(r.path, '/charges');
    assert.equal(r.status_code, 503);
    assert.equal(typeof r.delay_ms, 'number');
    assert.ok((r.delay_ms as number) >= 5 && (r.delay_ms as number) <= 50, `delay_ms ${r.delay_ms}`);
  }
  const completed = withMsg(lines, 'downstream request completed');
  assert.deepEqual(
    completed.map((l) => [l.status_code, l.status_class]),
    [
      [503, 'server_error'],
      [503, 'server_error'],
      [200, 'success'],
    ],
  );
  for (const c of completed) {
    assert.equal(c.level, 'info');
    assert.deepEqual(
      Object.keys(c)
        .filter((k) => ['service', 'method', 'path', 'duration_ms'].includes(k))
        .sort(),
      ['duration_ms', 'method', 'path', 'service'],
    );
    assert.equal(c.service, 'flaky-api');
    assert.match(String(c.duration_ms), /^\d+(\.\d{1,2})?$/, 'duration_ms rounded to 2 decimals');
  }

  const m = await metrics();
  const requests = (status_class: string) =>
    sampleValue(m, 'http_client_requests_total', { service: 'flaky-api', method: 'GET', status_class });
  assert.equal(requests('server_error'), 2);
  assert.equal(requests('success'), 1);
  assert.equal(
    sampleValue(m, 'http_client_request_duration_seconds_count', { service: 'flaky-api', method: 'GET' }),
    3,
  );
  assert.equal(
    sampleValue(m, 'resilience_events_total', { dependency: 'flaky-api', policy: 'retry', event: 'retry' }),
    2,
  );

  // One logical span around three CLIENT spans of the kit's, one per attempt, each sent
  // downstream in the attempt's traceparent; the retry events; every line correlated.
  const { call, attempts } = await spansOfCall('GET flaky-api', 3);
  assert.equal(call.kind, SpanKind.INTERNAL);
  assert.equal(call.attributes['http.response.status_code'], 200);
  assert.equal(attempts.length, 3);
  attempts.sort(
    (a, b) =>
      Number(a.attributes['http.request.resend_count'] ?? 0) -
      Number(b.attributes['http.request.resend_count'] ?? 0),
  );
  assert.deepEqual(
    attempts.map((a) => [
      a.name,
      a.scope,
      a.traceId,
      a.attributes['http.request.resend_count'],
      a.attributes['http.response.status_code'],
      a.attributes['error.type'],
      a.statusCode,
    ]),
    [
      ['GET', 'otel-service-kit', call.traceId, undefined, 503, '503', 2],
      ['GET', 'otel-service-kit', call.traceId, 1, 503, '503', 2],
      ['GET', 'otel-service-kit', call.traceId, 2, 200, undefined, 0],
    ],
  );
  assert.deepEqual(
    server.hits('/charges').map((h) => h.headers.traceparent),
    attempts.map((a) => `00-${a.traceId}-${a.spanId}-01`),
  );
  assert.deepEqual(
    call.events.filter((e) => e.name === 'retry').map((e) => e.attributes['retry.attempt']),
    [1, 2],
  );
  assertAllCorrelated(lines, call);
});

test('429 with Retry-After: 1 waits about a second; 404 is not retried', async () => {
  await send({
    op: 'client',
    name: 'limited',
    options: { service: 'limited-api', baseUrl: server.url, retry: { initialDelayMs: 10, maxDelayMs: 5000 } },
  });
  server.script('/quota', { status: 429, headers: { 'retry-after': '1' } }, { status: 200 });
  const { id, result } = await send({ op: 'request', client: 'limited', method: 'GET', path: '/quota' });
  assert.equal(result.status, 200);
  const [first, second] = server.hits('/quota');
  assert.ok(first && second);
  const gap = second.at - first.at;
  assert.ok(gap >= 950 && gap < 3000, `the retry came ${gap.toFixed(0)} ms after the 429`);
  const [retry] = withMsg(linesOf(id), 'retrying downstream call');
  assert.equal(retry?.delay_ms, 1000);
  assert.equal(retry?.status_code, 429);

  server.script('/missing', { status: 404 });
  const missing = await send({ op: 'request', client: 'limited', method: 'GET', path: '/missing' });
  assert.equal(missing.result.status, 404);
  assert.equal(server.hits('/missing').length, 1);
  assert.equal(withMsg(linesOf(missing.id), 'retrying downstream call').length, 0);

  const m = await metrics();
  const requests = (status_class: string) =>
    sampleValue(m, 'http_client_requests_total', { service: 'limited-api', method: 'GET', status_class });
  assert.equal(requests('rate_limited'), 1);
  assert.equal(requests('success'), 1);
  assert.equal(requests('client_error'), 1);
});

test('PAYMENT_API_TIMEOUT_MS=200: a silent server is given up after ~200 ms; a reset is a network error', async () => {
  const created = await send({
    op: 'client',
    name: 'payments',
    options: { service: 'payment-api', baseUrl: server.url },
  });
  assert.equal(created.result.timeout_ms, 200, 'the timeout comes from PAYMENT_API_TIMEOUT_MS');

  server.script('/slow', 'hang');
  const { id, result } = await send({ op: 'request', client: 'payments', method: 'POST', path: '/slow' });
  assert.equal(result.error_code, 'UND_ERR_HEADERS_TIMEOUT');
  assert.ok(result.elapsed_ms >= 180 && result.elapsed_ms < 700, `aborted after ${result.elapsed_ms} ms`);
  const [timedOut] = withMsg(linesOf(id), 'downstream request timed out');
  assert.ok(timedOut, 'a "timed out" line');
  assert.equal(timedOut.level, 'error');
  assert.equal(timedOut.service, 'payment-api');
  assert.equal(timedOut.path, '/slow');
  assert.equal(typeof timedOut.error, 'string');
  const slowSpan = await clientSpanOf('payment-api', '/slow');
  assert.equal(slowSpan.attributes['error.type'], 'UND_ERR_HEADERS_TIMEOUT');
  assertAllCorrelated(linesOf(id), slowSpan);

  server.script('/reset', 'reset');
  const reset = await send({ op: 'request', client: 'payments', method: 'POST', path: '/reset' });
  assert.ok(reset.result.error_code, 'the reset surfaces as an error');
  const [failed] = withMsg(linesOf(reset.id), 'downstream request failed');
  assert.equal(failed?.level, 'error');

  const m = await metrics();
  assert.equal(
    sampleValue(m, 'http_client_requests_total', {
      service: 'payment-api',
      method: 'POST',
      status_class: 'network_error',
    }),
    2,
  );
  assert.equal(
    sampleValue(m, 'resilience_events_total', {
      dependency: 'payment-api',
      policy: 'timeout',
      event: 'timeout',
    }),
    1,
  );
});

test('five consecutive failures open the breaker; it fails fast; after the reset timeout a success closes it', async () => {
  await send({
    op: 'client',
    name: 'guarded',
    options: {
      service: 'ledger-api',
      baseUrl: server.url,
      circuitBreaker: { failMax: 5, resetTimeoutMs: 500 },
    },
  });
  server.fallback('/ledger', { status: 500 });
  const stateLines = () =>
    child.lines.filter((l) => l.msg === 'circuit breaker state changed' && l.breaker === 'ledger-api');
  for (let i = 0; i < 5; i++) {
    const { result } = await send({ op: 'request', client: 'guarded', method: 'GET', path: '/ledger' });
    assert.equal(result.status, 500);
    if (i < 4) assert.equal(stateLines().length, 0, `still closed after ${i + 1} failures`);
  }
  assert.equal(server.hits('/ledger').length, 5);
  assert.deepEqual(
    stateLines().map((l) => [l.level, l.old_state, l.new_state]),
    [['warn', 'closed', 'open']],
  );
  let m = await metrics();
  const gauge = (state: string) => sampleValue(m, 'circuit_breaker_state', { breaker: 'ledger-api', state });
  assert.deepEqual([gauge('closed'), gauge('open'), gauge('half_open')], [0, 1, 0]);

  const rejected = await send({ op: 'request', client: 'guarded', method: 'GET', path: '/ledger' });
  assert.equal(rejected.result.broken_circuit, true);
  // "Under 5 ms" on a quiet machine; this one is shared and noisy, so the bound is loose
  // and the proof that nothing was sent is the server's hit count.
  assert.ok(rejected.result.elapsed_ms < 50, `failed fast in ${rejected.result.elapsed_ms} ms`);
  assert.equal(server.hits('/ledger').length, 5, 'the open breaker did not reach the server');

  await sleep(600);
  server.fallback('/ledger', { status: 200 });
  const recovered = await send({ op: 'request', client: 'guarded', method: 'GET', path: '/ledger' });
  assert.equal(recovered.result.status, 200);
  assert.deepEqual(
    stateLines().map((l) => [l.old_state, l.new_state]),
    [
      ['closed', 'open'],
      ['open', 'half_open'],
      ['half_open', 'closed'],
    ],
  );
  m = await metrics();
  assert.deepEqual([gauge('closed'), gauge('open'), gauge('half_open')], [1, 0, 0]);
  const events = (event: string) =>
    sampleValue(m, 'resilience_events_total', { dependency: 'ledger-api', policy: 'circuit_breaker', event });
  assert.deepEqual(['open', 'rejected', 'half_open', 'close'].map(events), [1, 1, 1, 1]);

  // The transitions are logged inside the call that caused them, with its trace.
  const spans = await receiver.waitFor((all) => all.filter((s) => s.name === 'GET ledger-api').length === 7);
  const ledger = spans.filter((s) => s.name === 'GET ledger-api');
  const refused = ledger.filter((s) => s.attributes['error.type'] === 'BrokenCircuitError');
  assert.equal(refused.length, 1, 'the refused call is a span too, marked BrokenCircuitError');
  assert.equal(refused[0]?.kind, SpanKind.INTERNAL);
  assert.equal(
    spans.filter((s) => s.parentSpanId === refused[0]?.spanId && isRequestSpan(s)).length,
    0,
    'an open breaker sends nothing: no CLIENT span under the refused call',
  );
  const ok = ledger.find((s) => s.attributes['http.response.status_code'] === 200);
  assert.ok(ok);
  assertAllCorrelated(linesOf(recovered.id), ok);
  assert.deepEqual(
    ok.events
      .filter((e) => e.name === 'circuit_breaker.state_change')
      .map((e) => e.attributes['circuit_breaker.new_state']),
    ['half_open', 'closed'],
  );
});

test('a BrokenCircuitError is never retried', async () => {
  await send({
    op: 'client',
    name: 'both',
    options: {
      service: 'inventory-api',
      baseUrl: server.url,
      retry: { initialDelayMs: 5, maxDelayMs: 10 },
      circuitBreaker: { failMax: 2, resetTimeoutMs: 60_000 },
    },
  });
  server.fallback('/stock', { status: 503 });
  const first = await send({ op: 'request', client: 'both', method: 'GET', path: '/stock' });
  // Attempts 1 and 2 fail and open the breaker; the 3rd attempt is refused and ends the call.
  assert.equal(first.result.broken_circuit, true);
  assert.equal(server.hits('/stock').length, 2);
  assert.equal(withMsg(linesOf(first.id), 'retrying downstream call').length, 2);

  const second = await send({ op: 'request', client: 'both', method: 'GET', path: '/stock' });
  assert.equal(second.result.broken_circuit, true);
  assert.equal(server.hits('/stock').length, 2);
  assert.equal(withMsg(linesOf(second.id), 'retrying downstream call').length, 0);
});

test('secret query parameters and headers never reach a log line or the call span', async () => {
  await send({
    op: 'client',
    name: 'search',
    options: { service: 'search-api', baseUrl: `${server.url}/v2` },
  });
  const { id, result } = await send({
    op: 'request',
    client: 'search',
    method: 'GET',
    path: '/find?q=shoes&token=tok-4242&X-Amz-Signature=sig-4242',
    options: { headers: { authorization: 'Bearer hdr-4242', 'x-api-key': 'key-4242' } },
  });
  assert.equal(result.status, 200);
  assert.equal(server.hits('/v2/find')[0]?.url, '/v2/find?q=shoes&token=tok-4242&X-Amz-Signature=sig-4242');
  const [completed] = withMsg(linesOf(id), 'downstream request completed');
  assert.equal(completed?.path, '/v2/find?q=shoes&token=REDACTED&X-Amz-Signature=REDACTED');
  assert.doesNotMatch(child.stdout, /4242/);

  // One attempt: the call is one CLIENT span of the kit's, with peer.service and the HTTP
  // client attributes, and no span of the undici instrumentation; its line carries that
  // span's ids though it is not the active span; the caller's headers went out beside its
  // traceparent.
  const span = await clientSpanOf('search-api', '/v2/find');
  assert.equal(span.kind, SpanKind.CLIENT);
  assert.equal(span.scope, 'otel-service-kit');
  assert.equal(span.name, 'GET');
  const { port } = new URL(server.url);
  assert.deepEqual(span.attributes, {
    'http.request.method': 'GET',
    'url.full': `${server.url}/v2/find?q=shoes&token=REDACTED&X-Amz-Signature=REDACTED`,
    'server.address': '127.0.0.1',
    'server.port': Number(port),
    'peer.service': 'search-api',
    'http.response.status_code': 200,
  });
  const [hit] = server.hits('/v2/find');
  assert.equal(hit?.headers.traceparent, `00-${span.traceId}-${span.spanId}-01`);
  assert.equal(hit?.headers['x-api-key'], 'key-4242');
  assert.equal(span.parentSpanId, '', 'called outside any span: the CLIENT span is the root');
  const spans = await receiver.waitFor(() => true);
  assert.equal(spans.filter((s) => s.name === 'GET search-api').length, 0, 'no logical span for one attempt');
  assert.equal(
    spans.filter((s) => s.scope === '@opentelemetry/instrumentation-undici' && s.traceId === span.traceId)
      .length,
    0,
    "the undici instrumentation leaves the client's requests alone",
  );
  assertAllCorrelated(linesOf(id), span);
});

test("every attempt is in http.client.request.duration, the semantic conventions' family, with the undici instrumentation's attributes", async () => {
  await send({ op: 'client', name: 'teapot', options: { service: 'teapot-api', baseUrl: server.url } });
  server.script('/brew', { status: 418 });
  const { result } = await send({ op: 'request', client: 'teapot', method: 'GET', path: '/brew' });
  assert.equal(result.status, 418);
  const m = await metrics();
  const labels = {
    http_request_method: 'GET',
    server_address: '127.0.0.1',
    server_port: new URL(server.url).port,
    url_scheme: 'http',
    network_protocol_version: '1.1',
    http_response_status_code: '418',
    error_type: '418',
  };
  assert.equal(sampleValue(m, 'http_client_request_duration_count', labels), 1);
  const help = [...m.values()].filter((f) => f.name === 'http_client_request_duration').map((f) => f.help);
  assert.deepEqual(help, ['Duration of HTTP client requests.']);
});

test('attempt spans: http.request.resend_count on resends, secrets redacted from url.full', async () => {
  await send({
    op: 'client',
    name: 'hooked',
    options: { service: 'hooked-api', baseUrl: server.url, retry: { initialDelayMs: 5, maxDelayMs: 10 } },
  });
  server.script('/hooked', { status: 502 }, { status: 504 }, { status: 200 });
  const { result } = await send({
    op: 'request',
    client: 'hooked',
    method: 'GET',
    path: '/hooked?access_token=att-4242',
  });
  assert.equal(result.status, 200);
  const { attempts } = await spansOfCall('GET hooked-api', 3);
  assert.deepEqual(attempts.map((a) => a.attributes['http.request.resend_count']).sort(), [1, 2, undefined]);
  for (const a of attempts) {
    assert.equal(a.attributes['url.full'], `${server.url}/hooked?access_token=REDACTED`);
    assert.equal(a.attributes['peer.service'], 'hooked-api');
  }
});

test('a bad per-dependency timeout stops start-up with one clear line', async () => {
  const bad = startFixture('client-driver.mjs', { USER_SERVICE_TIMEOUT_MS: '0' });
  const exit = await bad.exited;
  assert.equal(exit.code, 1);
  assert.deepEqual(bad.stderrLines(), [
    'otel-service-kit: invalid USER_SERVICE_TIMEOUT_MS="0": expected a positive whole number of milliseconds',
  ]);
  assert.equal(bad.stdout, '');
});

test('a pool at its connection limit: the calls that wait for the connection get their own span and correlated line', async () => {
  await send({
    op: 'client',
    name: 'one-connection',
    options: { service: 'ledger-api', baseUrl: server.url, connections: 1, retry: false },
  });
  const slow = { status: 200, body: 'ok', delayMs: 50 };
  server.script('/queued', slow, slow, slow);
  // Sent together: the second and third wait in undici's queue for the one connection.
  const calls = await Promise.all(
    [1, 2, 3].map(() => send({ op: 'request', client: 'one-connection', method: 'GET', path: '/queued' })),
  );
  for (const { result } of calls) assert.equal(result.status, 200);
  const hits = server.hits('/queued');
  assert.equal(new Set(hits.map((h) => h.remotePort)).size, 1, 'one connection');
  assert.ok((hits[2]?.at ?? 0) - (hits[0]?.at ?? 0) >= 90, 'the third call waited for the first two');
  let spans: ReceivedSpan[] = [];
  await receiver.waitFor((all) => {
    spans = all.filter((s) => isRequestSpan(s) && String(s.attributes['url.full']).endsWith('/queued'));
    return spans.length === 3;
  });
  for (const span of spans) assert.equal(span.attributes['peer.service'], 'ledger-api');
  const lines = calls.map(({ id }) => withMsg(linesOf(id), 'downstream request completed'));
  assert.deepEqual(
    lines.map((l) => l.length),
    [1, 1, 1],
  );
  assert.deepEqual(
    new Set(lines.map(([line]) => `${line?.trace_id}/${line?.span_id}`)),
    new Set(spans.map((span) => `${span.traceId}/${span.spanId}`)),
  );
});
