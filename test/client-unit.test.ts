// InstrumentedClient's behaviour in-process, against real loopback servers (no SDK here:
// telemetry is a no-op; what it records is tested in client.test.ts under the preload).
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import { context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { ClientRequestOptions } from '../src/clients/InstrumentedClient.ts';
import { KitContextManager } from '../src/telemetry/KitContextManager.ts';
import { freePort } from './helpers/child.ts';
import { FaultServer } from './helpers/faultServer.ts';

process.env.LOG_LEVEL = 'silent';
const { callWithRetry, InstrumentedClient, redactQuery, timeouts, undiciStartSpanHook } = await import(
  '../src/index.ts'
);
const { dispatchAsKit, isKitRequest, withKitRequest } = await import('../src/telemetry/undiciSpanHook.ts');

let server: FaultServer;
before(async () => {
  server = await FaultServer.start();
});
after(() => server.close());

const fast = { initialDelayMs: 1, maxDelayMs: 5 };

test('redactQuery: secret values replaced, everything else kept, fragments dropped', () => {
  assert.equal(redactQuery('/a/b'), '/a/b');
  assert.equal(redactQuery('/a?page=2&sort=asc'), '/a?page=2&sort=asc');
  assert.equal(
    redactQuery('/a?token=t&Page=2&API_KEY=k&X-Amz-Signature=s&x-amz-credential=c&code=1'),
    '/a?token=REDACTED&Page=2&API_KEY=REDACTED&X-Amz-Signature=REDACTED&x-amz-credential=REDACTED&code=REDACTED',
  );
  assert.equal(redactQuery('/a?client%5Fsecret=s&flag'), '/a?client%5Fsecret=REDACTED&flag');
  assert.equal(redactQuery('/a?sig=s#frag'), '/a?sig=REDACTED');
  assert.equal(redactQuery('/a#token=x'), '/a');
  assert.equal(redactQuery('/a?bad=%E0%A4%A&password=p'), '/a?bad=%E0%A4%A&password=REDACTED');
});

test('undiciStartSpanHook: url.full and url.query redacted when the query holds a secret, nothing in the common case', () => {
  assert.deepEqual(undiciStartSpanHook({ origin: 'http://h:1', path: '/x' }), {});
  assert.deepEqual(undiciStartSpanHook({ origin: 'http://h:1', path: '/x?page=1' }), {});
  assert.deepEqual(undiciStartSpanHook({ origin: 'http://h:1', path: '/x?key=k' }), {
    'url.query': 'key=REDACTED',
    'url.full': 'http://h:1/x?key=REDACTED',
  });
});

test('isKitRequest: only while InstrumentedClient creates its request, or in the context it marked', () => {
  assert.equal(isKitRequest(), false);
  assert.equal(
    dispatchAsKit(() => isKitRequest()),
    true,
  );
  assert.equal(isKitRequest(), false, "once the call into undici has returned, a request is not the kit's");
  assert.throws(() =>
    dispatchAsKit(() => {
      throw new Error('undici threw');
    }),
  );
  assert.equal(isKitRequest(), false, 'not left set by a throw');
  const manager = new KitContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    assert.equal(
      context.with(withKitRequest(context.active()), () => isKitRequest()),
      true,
    );
    assert.equal(isKitRequest(), false);
  } finally {
    context.disable();
  }
});

test("an attempt's traceparent goes out beside the caller's headers, whatever their form, in place of one the caller set", async () => {
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  context.setGlobalContextManager(new KitContextManager().enable());
  try {
    const client = new InstrumentedClient({ service: 'headers-api', baseUrl: server.url });
    // No SDK: the attempt's span is the caller's, so its traceparent is the caller's.
    const caller = trace.wrapSpanContext({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: 1,
    });
    const forms: Record<string, ClientRequestOptions['headers']> = {
      none: undefined,
      object: { 'x-a': '1', TraceParent: 'caller-set' },
      flat: ['x-a', '1', 'traceparent', 'caller-set'],
      entries: new Map([
        ['x-a', '1'],
        ['traceparent', 'caller-set'],
      ]),
    };
    for (const [form, headers] of Object.entries(forms)) {
      await context.with(trace.setSpan(context.active(), caller), async () => {
        const res = await client.request('GET', `/headers-${form}`, { headers });
        await res.body.text();
      });
      const [hit] = server.hits(`/headers-${form}`);
      assert.equal(hit?.headers.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', form);
      assert.equal(hit?.headers['x-a'], form === 'none' ? undefined : '1', form);
    }
    await client.close();
  } finally {
    context.disable();
    propagation.disable();
  }
});

test('constructor: checks its options; the default timeout comes from timeouts by service name', async () => {
  assert.throws(() => new InstrumentedClient({ service: '', baseUrl: server.url }), /service is required/);
  assert.throws(() => new InstrumentedClient({ service: 's', baseUrl: 'not a url' }), /not a URL/);
  assert.throws(() => new InstrumentedClient({ service: 's', baseUrl: 'ftp://h' }), /http or https/);
  assert.throws(() => new InstrumentedClient({ service: 's', baseUrl: 'http://u:p@h' }), /credentials/);
  assert.throws(() => new InstrumentedClient({ service: 's', baseUrl: 'http://h/?a=1' }), /query/);
  assert.throws(
    () => new InstrumentedClient({ service: 's', baseUrl: server.url, timeoutMs: 0 }),
    RangeError,
  );
  const users = new InstrumentedClient({ service: 'user-service', baseUrl: server.url });
  assert.equal(users.timeoutMs, timeouts.get('USER_SERVICE'));
  assert.equal(users.timeoutMs, 10_000, 'no built-in default: the fallback');
  // A bad per-call value rejects the call rather than throwing synchronously.
  const call = users.request('GET', '/', { timeoutMs: -1 });
  assert.ok(call instanceof Promise);
  await assert.rejects(call, RangeError);
  await users.close();
});

test('base path, method case and keep-alive: calls go to baseUrl + path on kept-alive connections', async () => {
  const client = new InstrumentedClient({ service: 'paths', baseUrl: `${server.url}/api/v1/` });
  try {
    for (let i = 0; i < 6; i++) {
      const res = await client.request('get' as 'GET', 'items');
      assert.equal(res.statusCode, 200);
      assert.equal(await res.body.text(), 'ok');
    }
    const hits = server.hits('/api/v1/items');
    assert.deepEqual(
      hits.map((h) => h.method),
      Array(6).fill('GET'),
    );
    const connections = new Set(hits.map((h) => h.remotePort)).size;
    assert.ok(connections < hits.length, `${hits.length} calls on ${connections} kept-alive connections`);
  } finally {
    await client.close();
  }
});

test('retries: idempotent methods and Idempotency-Key are retried; a plain POST is not', async () => {
  const client = new InstrumentedClient({ service: 'charges', baseUrl: server.url, retry: fast });
  try {
    server.script('/put', { status: 503 }, { status: 200 });
    assert.equal((await client.request('PUT', '/put', { body: 'x' })).statusCode, 200);
    assert.equal(server.hits('/put').length, 2);

    server.script('/post', { status: 503 }, { status: 200 });
    const once = await client.request('POST', '/post', { body: '{"amount":1}' });
    assert.equal(once.statusCode, 503, 'a POST without a key is not retried: it may have been charged');
    await once.body.text();
    assert.equal(server.hits('/post').length, 1);

    server.script('/keyed', { status: 503 }, { status: 502 }, { status: 201 });
    const keyed = await client.request('POST', '/keyed', {
      body: '{"amount":1}',
      headers: { 'Idempotency-Key': 'order-17' },
    });
    assert.equal(keyed.statusCode, 201);
    const hits = server.hits('/keyed');
    assert.equal(hits.length, 3);
    assert.deepEqual(
      hits.map((h) => h.headers['idempotency-key']),
      ['order-17', 'order-17', 'order-17'],
    );

    server.script('/forced', { status: 503 }, { status: 200 });
    const forced = await client.request('POST', '/forced', { retry: { ...fast, retryNonIdempotent: true } });
    assert.equal(forced.statusCode, 200);
    assert.equal(server.hits('/forced').length, 2);

    server.script('/off', { status: 503 }, { status: 200 });
    assert.equal((await client.request('GET', '/off', { retry: false })).statusCode, 503);
    assert.equal(server.hits('/off').length, 1);
  } finally {
    await client.close();
  }
});

test('retries: a refused connection is retried even for POST (nothing was sent); then the error surfaces', async () => {
  const port = await freePort();
  const client = new InstrumentedClient({
    service: 'down',
    baseUrl: `http://127.0.0.1:${port}`,
    retry: fast,
  });
  try {
    const t0 = performance.now();
    await assert.rejects(client.request('POST', '/x', { body: 'b' }), (e: unknown) => {
      const code = (e as { code?: string }).code ?? (e as AggregateError).errors?.[0]?.code;
      return code === 'ECONNREFUSED';
    });
    assert.ok(performance.now() - t0 < 2000);
  } finally {
    await client.close();
  }
});

test('timeouts: per-call timeoutMs aborts a silent server, and a timed-out GET is retried', async () => {
  const client = new InstrumentedClient({ service: 'slowpoke', baseUrl: server.url, timeoutMs: 5000 });
  try {
    server.script('/silent', 'hang');
    const t0 = performance.now();
    await assert.rejects(client.request('GET', '/silent', { timeoutMs: 100 }), {
      code: 'UND_ERR_HEADERS_TIMEOUT',
    });
    const took = performance.now() - t0;
    assert.ok(took >= 90 && took < 600, `gave up after ${took} ms`);

    server.script('/flaky', 'hang', 'reset', { status: 200, body: 'third time' });
    const res = await callWithRetry(client, 'GET', '/flaky', { timeoutMs: 100, retry: fast });
    assert.equal(await res.body.text(), 'third time');
    assert.equal(server.hits('/flaky').length, 3);
  } finally {
    await client.close();
  }
});

test('a stream body is sent once (it cannot be replayed); an abort stops the call and its retries', async () => {
  const client = new InstrumentedClient({ service: 'uploads', baseUrl: server.url, retry: fast });
  try {
    server.script('/upload', { status: 503 }, { status: 200 });
    const res = await client.request('PUT', '/upload', { body: Readable.from(['a', 'b']) });
    assert.equal(res.statusCode, 503);
    await res.body.dump();
    assert.equal(server.hits('/upload').length, 1);

    server.fallback('/abort', 'hang');
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 50).unref();
    await assert.rejects(client.request('GET', '/abort', { signal: controller.signal }), (e: unknown) =>
      ['AbortError', 'RequestAbortedError'].includes((e as Error).name),
    );
    assert.equal(server.hits('/abort').length, 1, 'the abort is not retried');

    // A signal aborted before the call: nothing is sent.
    await assert.rejects(client.request('GET', '/abort', { signal: AbortSignal.abort() }), {
      name: 'AbortError',
    });
    assert.equal(server.hits('/abort').length, 1);
  } finally {
    await client.close();
  }
});

test('close(): later calls reject', async () => {
  const client = new InstrumentedClient({ service: 'closing', baseUrl: server.url });
  await client.close();
  await assert.rejects(client.request('GET', '/late'), (e: unknown) =>
    /^UND_ERR_(CLOSED|DESTROYED)$/.test(String((e as { code?: unknown }).code)),
  );
});
