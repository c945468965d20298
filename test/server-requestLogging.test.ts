// requestLogging in process, on loopback servers, with the lines captured in memory:
// the edges the child-process tests (server.test.ts) do not reach.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { request } from 'undici';
import { getLogContext } from '../src/logging/logContext.ts';
import { Health } from '../src/server/health.ts';
import { isSaneRequestId, requestIdFrom } from '../src/server/requestId.ts';
import { requestLogging } from '../src/server/requestLogging.ts';
import { oneShot, uuidPattern } from './helpers/httpClient.ts';
import { logSink } from './helpers/logSink.ts';
import { serve } from './helpers/serve.ts';

async function until<T>(get: () => T | undefined, ms = 2000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('requestIdFrom keeps sane ids and replaces everything else', () => {
  for (const ok of [
    'abc',
    'f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
    '01ARZ3NDEKTSV4RRFFQ69G5FAV',
    'a.b_c:d-e',
    'x'.repeat(128),
  ]) {
    assert.equal(requestIdFrom(ok), ok);
  }
  for (const bad of ['', 'x'.repeat(129), 'a b', 'a,b', 'a\r\nb', 'a"b', '{"a":1}', 'é', 'a/b', 'a;b']) {
    assert.equal(isSaneRequestId(bad), false, JSON.stringify(bad));
    assert.match(requestIdFrom(bad), uuidPattern);
  }
  assert.match(requestIdFrom(undefined), uuidPattern);
  assert.match(requestIdFrom(['a', 'b']), uuidPattern);
});

test('node:http: the handler sees request_id in its log context; a thrown error → 500 and "request failed"', async (t) => {
  const { logger, lines } = logSink();
  let seen: unknown;
  const base = await serve(
    t,
    requestLogging(
      (req, res) => {
        seen = getLogContext().request_id;
        if (req.url === '/sync') throw new Error('sync failure');
        if (req.url === '/async') return Promise.reject(new Error('async failure'));
        res.end('ok');
        return undefined;
      },
      { logger },
    ),
  );
  const ok = await oneShot(`${base}/fine`, { headers: { 'x-request-id': 'ctx-1' } });
  assert.equal(ok.status, 200);
  assert.equal(seen, 'ctx-1');
  for (const path of ['/sync', '/async']) {
    const res = await oneShot(`${base}${path}`, {
      headers: { 'x-request-id': `fail${path.replace('/', '-')}` },
    });
    assert.equal(res.status, 500);
    assert.equal(res.body, '{"error":"internal server error"}');
    const line = await until(() => lines.find((l) => l.request_id === `fail${path.replace('/', '-')}`));
    assert.equal(line.msg, 'request failed');
    assert.equal(line.level, 'error');
    assert.equal(line.status_code, 500);
    assert.match(String(line.error), /failure/);
    assert.match(String(line.stack), /requestLogging\.test\.ts/);
  }
});

test('node:http: an error after the headers went out cuts the response and is logged', async (t) => {
  const { logger, lines } = logSink();
  const base = await serve(
    t,
    requestLogging(
      async (_req, res) => {
        res.writeHead(200);
        res.write('partial');
        await new Promise((r) => setTimeout(r, 10));
        throw new Error('mid-stream failure');
      },
      { logger },
    ),
  );
  await assert.rejects(
    request(`${base}/stream`, { headers: { 'x-request-id': 'mid' } }).then((r) => r.body.text()),
  );
  const line = await until(() => lines.find((l) => l.request_id === 'mid'));
  assert.equal(line.msg, 'request failed');
  assert.match(String(line.error), /mid-stream failure/);
});

test('a client that goes away before the answer: "request aborted" at warn', async (t) => {
  const { logger, lines } = logSink();
  const base = await serve(
    t,
    requestLogging(
      (_req, res) => {
        setTimeout(() => res.end('late'), 300).unref();
      },
      { logger },
    ),
  );
  const abort = new AbortController();
  const pending = request(`${base}/slow`, { headers: { 'x-request-id': 'gone' }, signal: abort.signal });
  setTimeout(() => abort.abort(), 50);
  await assert.rejects(pending);
  const line = await until(() => lines.find((l) => l.request_id === 'gone'));
  assert.equal(line.msg, 'request aborted');
  assert.equal(line.level, 'warn');
});

test('quietPaths and every probe path (a custom readyPath of Health too) at debug, the rest at info', async (t) => {
  const { logger, lines } = logSink();
  new Health({ readyPath: '/ready-custom' });
  const base = await serve(
    t,
    requestLogging((_req, res) => res.end('ok'), { logger, quietPaths: ['/internal/ping'] }),
  );
  await oneShot(`${base}/internal/ping?probe=1`, { headers: { 'x-request-id': 'q1' } });
  await oneShot(`${base}/health/live`, { headers: { 'x-request-id': 'q2' } });
  await oneShot(`${base}/ready-custom`, { headers: { 'x-request-id': 'q3' } });
  await oneShot(`${base}/version`, { headers: { 'x-request-id': 'q4' } });
  assert.equal((await until(() => lines.find((l) => l.request_id === 'q1'))).level, 'debug');
  assert.equal((await until(() => lines.find((l) => l.request_id === 'q2'))).level, 'debug');
  assert.equal((await until(() => lines.find((l) => l.request_id === 'q3'))).level, 'debug');
  assert.equal((await until(() => lines.find((l) => l.request_id === 'q4'))).level, 'info');
});

test("Express: 4xx errors are the client's (completed), 5xx ones are failures", async (t) => {
  const { logger, lines } = logSink();
  const app = express();
  app.use(requestLogging.express({ logger }));
  app.get('/bad', () => {
    throw Object.assign(new Error('bad input'), { status: 400 });
  });
  app.get('/broken', () => {
    throw new Error('broken');
  });
  app.use(requestLogging.expressErrors());
  app.use(
    (
      error: { status?: number },
      _req: express.Request,
      res: express.Response,
      _next: express.NextFunction,
    ) => {
      res.status(error.status ?? 500).json({ error: 'x' });
    },
  );
  const base = await serve(t, app);
  assert.equal((await oneShot(`${base}/bad`, { headers: { 'x-request-id': 'e400' } })).status, 400);
  assert.equal((await oneShot(`${base}/broken`, { headers: { 'x-request-id': 'e500' } })).status, 500);
  assert.equal((await oneShot(`${base}/nowhere?x=1`, { headers: { 'x-request-id': 'e404' } })).status, 404);
  const bad = await until(() => lines.find((l) => l.request_id === 'e400'));
  assert.deepEqual(
    [bad.msg, bad.level, bad.status_code, bad.path],
    ['request completed', 'info', 400, '/bad'],
  );
  const broken = await until(() => lines.find((l) => l.request_id === 'e500'));
  assert.deepEqual([broken.msg, broken.level, broken.status_code], ['request failed', 'error', 500]);
  const missing = await until(() => lines.find((l) => l.request_id === 'e404'));
  assert.deepEqual([missing.msg, missing.path, missing.status_code], ['request completed', '/nowhere', 404]);
});

test('Fastify: validation errors are completed 400s, unknown routes log their path', async (t) => {
  const { logger, lines } = logSink();
  const app = Fastify();
  await app.register(requestLogging.fastify, { logger });
  app.post(
    '/orders',
    { schema: { body: { type: 'object', required: ['sku'], properties: { sku: { type: 'string' } } } } },
    async () => ({ ok: true }),
  );
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const invalid = await oneShot(`${base}/orders`, {
    method: 'POST',
    headers: { 'x-request-id': 'f400', 'content-type': 'application/json' },
    body: '{}',
  });
  assert.equal(invalid.status, 400);
  assert.equal(invalid.headers['x-request-id'], 'f400');
  const line = await until(() => lines.find((l) => l.request_id === 'f400'));
  assert.deepEqual(
    [line.msg, line.level, line.path, line.status_code],
    ['request completed', 'info', '/orders', 400],
  );
  await oneShot(`${base}/missing/42?q=1`, { headers: { 'x-request-id': 'f404' } });
  const missing = await until(() => lines.find((l) => l.request_id === 'f404'));
  assert.deepEqual([missing.path, missing.status_code], ['/missing/42', 404]);
});

test('lines logged in request and response event listeners carry request_id (node:http, Express, Fastify)', async (t) => {
  const { logger, lines } = logSink();
  // The usual node:http way to read a body, and a listener on the response.
  const readByEvents = (req: IncomingMessage, res: ServerResponse, done: () => void) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    req.once('end', () => {
      logger.info({ size }, 'body read');
      res.once('finish', () => logger.info('response finished'));
      res.end('ok');
      done();
    });
  };
  const node = await serve(
    t,
    requestLogging((req, res) => readByEvents(req, res, () => {}), { logger }),
  );
  const app = express();
  app.use(requestLogging.express({ logger }));
  app.post('/body', (req, res, next) => readByEvents(req, res, next));
  const viaExpress = await serve(t, app);
  const fastify = Fastify();
  await fastify.register(requestLogging.fastify, { logger });
  // A raw body: Fastify leaves the stream to the handler.
  fastify.addContentTypeParser('application/octet-stream', (_request, _payload, done) => done(null));
  fastify.post('/body', (request, reply) => {
    reply.hijack();
    readByEvents(request.raw, reply.raw, () => {});
  });
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => fastify.close());
  const viaFastify = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`;
  for (const [name, base] of [
    ['node', node],
    ['express', viaExpress],
    ['fastify', viaFastify],
  ] as const) {
    const res = await oneShot(`${base}/body`, {
      method: 'POST',
      headers: { 'x-request-id': `ev-${name}`, 'content-type': 'application/octet-stream' },
      body: 'x'.repeat(100_000),
    });
    assert.equal(res.status, 200, name);
    const read = await until(() => lines.find((l) => l.msg === 'body read' && l.request_id === `ev-${name}`));
    assert.equal(read.size, 100_000);
    await until(() => lines.find((l) => l.msg === 'response finished' && l.request_id === `ev-${name}`));
  }
  // No line of these requests without its id.
  assert.deepEqual(
    lines.filter((l) => l.request_id === undefined),
    [],
  );
});
