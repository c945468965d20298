// The kit's changes to upstream code on the request path (.ci/build-preload.ts,
// upstreamPatches): each must give what the code it shortcuts gives.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { context, propagation, SpanKind, SpanStatusCode, TraceFlags, trace } from '@opentelemetry/api';
import {
  getRPCMetadata,
  RPCType,
  setRPCMetadata,
  suppressTracing,
  TraceState,
  W3CTraceContextPropagator,
} from '@opentelemetry/core';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { type ReadableSpan, type SpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { type HttpInstrumentationLike, incomingRequestFunction } from '../src/telemetry/httpServerSpans.ts';
import { internAttributes } from '../src/telemetry/internAttributes.ts';
import { KitContextManager } from '../src/telemetry/KitContextManager.ts';
import { encodeTraceExportRequest } from '../src/telemetry/otlpSpanEncoder.ts';
import { plainRequestTarget, plainRequestUrl } from '../src/telemetry/plainRequestTarget.ts';

const root = fileURLToPath(new URL('../', import.meta.url));

test('a plain request target gives the path and query new URL() gives; any other is left to new URL()', () => {
  const targets = [
    '/',
    '/items/42',
    '/items/42?',
    '/items/42?a=1&b=2',
    '/a?b?c',
    '/a%20b?q=%41',
    '/odd!$&()*+,;=:@~_-.chars?x=y*z',
    '/a/./b',
    '/a/../b',
    '/a/%2e%2E/b',
    '/a/.',
    '//evil.example/x',
    '/a b',
    '/a"b',
    '/a<b>',
    '/a#frag',
    '/a\\b',
    "/a?x='y'",
    '/a`b',
    '/a{b}',
    '/é',
    '/a?q=é',
    '*',
    'http://proxy.example/x?y',
    '',
  ];
  let plain = 0;
  for (const target of targets) {
    const fast = plainRequestTarget(target);
    if (fast === undefined) continue;
    plain++;
    const url = new URL(target, 'http://localhost:8080');
    assert.deepEqual(fast, { pathname: url.pathname, search: url.search }, target);
  }
  assert.equal(plain, 7);
  assert.equal(plainRequestTarget(undefined), undefined);
});

test('a plain origin and target give the URL parts new URL(path, origin) gives; any other is left to new URL()', () => {
  const cases: [string, string][] = [
    ['http://127.0.0.1:8080', '/tiny'],
    ['http://127.0.0.1:8080', '/tiny?x=1&y=%20'],
    ['https://api.example.com', '/v1/orders/42?'],
    ['http://payments.internal:3000', '/charge'],
    ['http://127.0.0.1:80', '/x'],
    ['https://api.example.com:443', '/x'],
    ['http://[::1]:8080', '/x'],
    ['http://user@host', '/x'],
    ['http://host:8080', '/a/../b'],
    ['http://host:8080', 'relative'],
  ];
  let plain = 0;
  for (const [origin, path] of cases) {
    const fast = plainRequestUrl(origin, path);
    if (fast === undefined) continue;
    plain++;
    const url = new URL(path, origin);
    const { protocol, hostname, port, pathname, search } = url;
    assert.deepEqual(
      {
        protocol: fast.protocol,
        hostname: fast.hostname,
        port: fast.port,
        pathname: fast.pathname,
        search: fast.search,
      },
      { protocol, hostname, port, pathname, search },
      `${origin} ${path}`,
    );
    assert.equal(fast.toString(), url.toString(), `${origin} ${path}`);
  }
  assert.equal(plain, 4);
});

test('metric attributes are interned: equal sets give one frozen object, the caller keeps its own', () => {
  const a = { 'http.request.method': 'GET', 'server.port': 8080, 'http.response.status_code': 200 };
  const b = { 'http.request.method': 'GET', 'server.port': 8080, 'http.response.status_code': 200 };
  const one = internAttributes(a);
  assert.equal(internAttributes(b), one);
  assert.ok(Object.isFrozen(one));
  assert.ok(!Object.isFrozen(a));
  assert.deepEqual(one, a);
  // A value's type counts, and so does a missing key against an undefined one.
  assert.notEqual(internAttributes({ ...a, 'server.port': '8080' }), one);
  assert.notEqual(internAttributes({ ...a, 'error.type': undefined }), one);
  // An array value: left as it is.
  const withArray = { 'http.request.method': 'GET', tags: ['x'] };
  assert.equal(internAttributes(withArray), withArray);
});

test('the kit span encoder writes the bytes of upstream OTLP protobuf serializer, for every kind of span', async () => {
  const spans: ReadableSpan[] = [];
  const collect: SpanProcessor = {
    onStart: () => {},
    onEnd: (span) => spans.push(span),
    forceFlush: async () => {},
    shutdown: async () => {},
  };
  const providers = [
    resourceFromAttributes({
      'service.name': 'checkout',
      'process.pid': 4242,
      'process.command_args': ['node', 'x.js'],
    }),
    resourceFromAttributes({ 'service.name': 'ünïcode', 'host.arch': 'amd64' }),
  ].map((resource) => new TracerProvider({ resource, spanProcessors: [collect] }));
  const [first, second] = providers as [TracerProvider, TracerProvider];
  const server = first.getTracer('@opentelemetry/instrumentation-http', '0.300.0');
  const span = server.startSpan('GET /items/:id', {
    kind: SpanKind.SERVER,
    attributes: {
      'http.request.method': 'GET',
      'server.port': 8080,
      'url.path': '/items/42',
      'user_agent.original': 'curl/8 ✓',
      'http.request.header.x-list': ['a', 'b'],
      'http.response.header.x-a-rather-long-custom-header-name': ['v'],
      ratio: 0.25,
      negative: -7,
      large: 2 ** 40,
      huge: 2 ** 70,
      ok: true,
      empty: '',
      long: 'x'.repeat(300),
      longer: 'é'.repeat(10_000),
      ints: [1, 2, 3],
      bools: [true, false],
      holes: [null, 'x', undefined] as unknown as string[],
    },
  });
  span.addEvent('exception', { 'exception.type': 'Error', 'exception.message': 'boom' });
  span.addEvent('plain');
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'it broke' });
  span.end();
  const remote = trace.setSpanContext(context.active(), {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('vendor=value,other=1'),
  });
  const child = server.startSpan('child', { kind: SpanKind.INTERNAL }, remote);
  child.addLink({ context: span.spanContext(), attributes: { 'link.kind': 'follows' } });
  child.setAttribute('nested', { a: 1, b: { c: 'd' } } as unknown as string);
  child.setAttribute('bytes', new Uint8Array([1, 2, 250]) as unknown as string);
  child.end();
  for (const [i, tracer] of [
    first.getTracer('kit', '1.0.0', { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' }),
    second.getTracer('plain'),
  ].entries())
    for (let k = 0; k < 40; k++)
      tracer
        .startSpan(`op ${i} ${k}`, { kind: SpanKind.CLIENT, attributes: { k, 'peer.service': 'stock' } })
        .end();
  assert.equal(spans.length, 82);
  const encoded = encodeTraceExportRequest(spans);
  assertUpstreamBytes(encoded, spans);
  // Each request has a buffer of its own: encoding the next leaves the last as it was.
  assertUpstreamBytes(encodeTraceExportRequest(spans.slice(0, 1)), spans.slice(0, 1));
  assertUpstreamBytes(encoded, spans);
  // Past 2 MB, the lengths of a request's outer messages take four bytes.
  const big = Array.from({ length: 300 }, () => spans[0] as ReadableSpan);
  const bigEncoded = encodeTraceExportRequest(big);
  assert.ok(bigEncoded.length > 2 ** 21);
  assertUpstreamBytes(bigEncoded, big);
  await Promise.all(providers.map((provider) => provider.shutdown()));
});

function assertUpstreamBytes(encoded: Uint8Array, spans: ReadableSpan[]): void {
  const upstream = ProtobufTraceSerializer.serializeRequest(spans) as Uint8Array;
  assert.ok(Buffer.from(encoded).equals(Buffer.from(upstream)), 'the bytes differ from upstream');
}

test("the kit's server-span path gives the spans, context and duration series of upstream's", async () => {
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const httpModule = (file: string) =>
    import(pathToFileURL(`${root}node_modules/@opentelemetry/instrumentation-http/dist/${file}`).href);
  const utils = await httpModule('utils.mjs');
  const { DEFAULT_QUERY_STRINGS_TO_REDACT } = await httpModule('internal-types.mjs');
  const manager = new KitContextManager().enable();
  context.setGlobalContextManager(manager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  try {
    const results = [];
    for (const variant of ['upstream', 'kit'] as const) {
      const spans: ReadableSpan[] = [];
      const provider = new TracerProvider({
        spanProcessors: [
          {
            onStart: () => {},
            onEnd: (span) => spans.push(span),
            forceFlush: async () => {},
            shutdown: async () => {},
          },
        ],
      });
      const reader = new PeriodicExportingMetricReader({
        exporter: new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE),
        exportIntervalMillis: 3_600_000,
      });
      const meterProvider = new MeterProvider({ readers: [reader] });
      const instrumentation = new HttpInstrumentation({
        enabled: false,
        ignoreIncomingRequestHook: (req: IncomingMessage) => req.url === '/health/live',
      });
      instrumentation.setTracerProvider(provider);
      instrumentation.setMeterProvider(meterProvider);
      type Emit = Parameters<typeof incomingRequestFunction>[2];
      const original = Server.prototype.emit as Emit;
      const upstream = (
        instrumentation as unknown as { _incomingRequestFunction(c: string, o: Emit): Emit }
      )._incomingRequestFunction('http', original);
      const emit =
        variant === 'upstream'
          ? upstream
          : incomingRequestFunction(
              instrumentation as unknown as HttpInstrumentationLike,
              'http',
              original,
              { ...utils, DEFAULT_QUERY_STRINGS_TO_REDACT, setRPCMetadata, RPCType, suppressTracing },
              upstream,
            );
      // What the handler sees: its span, and the context of a listener it adds to the request.
      const seen: Record<string, string | undefined> = {};
      const server = createServer((req, res) => {
        const active = trace.getActiveSpan()?.spanContext().spanId;
        if (req.url?.startsWith('/items/')) {
          const metadata = getRPCMetadata(context.active());
          if (metadata?.type === RPCType.HTTP) metadata.route = '/items/:id';
        }
        if (req.url === '/error') {
          res.on('error', () => {});
          res.emit('error', new Error('response broke'));
          res.destroy();
          return;
        }
        req.on('end', () => {
          seen[String(req.url).split('?')[0]] = `${active} ${trace.getActiveSpan()?.spanContext().spanId}`;
          res.statusCode = req.url === '/fail' ? 503 : 200;
          res.end('ok');
        });
        req.resume();
      });
      server.emit = emit as typeof server.emit;
      server.on('clientError', () => {});
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const headers = {
        traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
        'user-agent': 'kit-test',
      };
      for (const path of ['/items/7?token=x&Signature=y', '/fail', '/health/live', '/PLAIN'])
        await (await fetch(base + path, { headers, method: path === '/PLAIN' ? 'PATCH' : 'GET' })).text();
      await fetch(`${base}/error`).catch(() => {});
      // Every span ends when its response closes or fails: wait for all four.
      for (let i = 0; spans.length < 4 && i < 10_000; i++) await new Promise((r) => setImmediate(r));
      server.closeAllConnections();
      server.close();
      const { resourceMetrics } = await reader.collect();
      const points = resourceMetrics.scopeMetrics
        .flatMap((s) => s.metrics)
        .filter((m) => m.descriptor.name === 'http.server.request.duration')
        .flatMap((m) => m.dataPoints.map((p) => JSON.stringify(p.attributes)))
        .sort();
      const shape = spans
        .map((s) => {
          const { 'network.peer.port': peer, 'server.port': port, ...attributes } = s.attributes;
          assert.equal(typeof peer, 'number');
          assert.equal(typeof port, 'number');
          return JSON.stringify({
            name: s.name,
            kind: s.kind,
            attributes,
            status: s.status,
            parent: s.parentSpanContext?.spanId,
            trace: s.spanContext().traceId === '0af7651916cd43dd8448eb211c80319c',
            events: s.events.map((e) => [e.name, e.attributes?.['exception.message']]),
            handler:
              Object.entries(seen).find(([url]) => url === s.attributes['url.path'])?.[1] ===
              `${s.spanContext().spanId} ${s.spanContext().spanId}`,
          });
        })
        .sort();
      results.push({ spans: shape, points });
    }
    const [upstream, kit] = results as [(typeof results)[0], (typeof results)[0]];
    assert.equal(upstream.spans.length, 4, upstream.spans.join('\n'));
    assert.ok(upstream.spans.some((s) => s.includes('"GET /items/:id"') && s.includes('"handler":true')));
    assert.deepEqual(kit.spans, upstream.spans);
    assert.equal(upstream.points.length, 4, upstream.points.join('\n'));
    assert.deepEqual(kit.points, upstream.points);
  } finally {
    context.disable();
    propagation.disable();
    manager.disable();
  }
});
