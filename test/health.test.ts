// The health registry in process, on real loopback servers: node:http, Express, Fastify.
import assert from 'node:assert/strict';
import type { RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import express from 'express';
import Fastify from 'fastify';
import { Health } from '../src/server/health.ts';
import { deferred } from './helpers/deferred.ts';
import { FakeClock } from './helpers/fakeClock.ts';
import { oneShot } from './helpers/httpClient.ts';
import { logSink } from './helpers/logSink.ts';
import { serve } from './helpers/serve.ts';

/** A node:http server answering the probes through `health.handle`, 404 otherwise. */
function nodeApp(health: Health): RequestListener {
  return (req, res) => {
    if (health.handle(req, res)) return;
    res.statusCode = 404;
    res.end('not a probe');
  };
}

test('liveness 200 always; readiness 503 until markReady, then 200 with the checks', async (t) => {
  const health = new Health({ logger: logSink().logger });
  const base = await serve(t, nodeApp(health));
  const live = await oneShot(`${base}/health/live`);
  assert.equal(live.status, 200);
  assert.equal(live.body, '{"status":"ok"}');
  assert.equal(live.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(live.headers['cache-control'], 'no-store');
  const notReady = await oneShot(`${base}/health/ready`);
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body, '{"status":"not ready"}');
  health.markReady();
  const ready = await oneShot(`${base}/health/ready?verbose=1`);
  assert.equal(ready.status, 200);
  assert.equal(ready.body, '{"status":"ready","checks":{}}');
});

test('from the first moment of shutdown: readiness 503 "not ready", liveness still 200', async (t) => {
  const health = new Health({ logger: logSink().logger });
  health.addCheck('db', () => true);
  health.markReady();
  const base = await serve(t, nodeApp(health));
  assert.equal((await oneShot(`${base}/health/ready`)).status, 200);
  health.markShuttingDown();
  assert.equal(health.isShuttingDown, true);
  const ready = await oneShot(`${base}/health/ready`);
  assert.equal(ready.status, 503);
  assert.equal(ready.body, '{"status":"not ready"}');
  assert.equal((await oneShot(`${base}/health/live`)).status, 200);
});

test('a shutdown that begins while the checks run: 503', async () => {
  const health = new Health({ logger: logSink().logger });
  const check = deferred();
  health.addCheck('slow', () => check.promise);
  health.markReady();
  const pending = health.readiness();
  health.markShuttingDown();
  check.resolve();
  assert.deepEqual(await pending, { statusCode: 503, body: { status: 'not ready' } });
});

test('failing checks: critical → 503 not ready, non-critical → 200 degraded; reasons without messages', async () => {
  const health = new Health({ cacheMs: 0, logger: logSink().logger });
  const state = { db: true as boolean | 'throw' | 'code', cache: true as boolean };
  health.addCheck('db', () => {
    if (state.db === 'throw') throw new Error('password=hunter2 rejected');
    if (state.db === 'code') throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    return state.db;
  });
  health.addCheck('cache', async () => state.cache, { critical: false });
  health.markReady();

  let r = await health.readiness();
  assert.equal(r.statusCode, 200);
  assert.equal(r.body.status, 'ready');
  assert.equal(r.body.checks?.db?.status, 'ok');
  assert.equal(r.body.checks?.cache?.critical, false);

  state.cache = false;
  r = await health.readiness();
  assert.equal(r.statusCode, 200);
  assert.equal(r.body.status, 'degraded');
  assert.equal(r.body.checks?.cache?.error, 'returned false');

  state.db = 'code';
  r = await health.readiness();
  assert.equal(r.statusCode, 503);
  assert.equal(r.body.status, 'not ready');
  assert.equal(r.body.checks?.db?.error, 'ECONNREFUSED');

  state.db = 'throw';
  r = await health.readiness();
  assert.equal(r.body.checks?.db?.error, 'threw');
  assert.ok(!JSON.stringify(r.body).includes('hunter2'));
});

test('a check that hangs: readiness answers when its timeout is up, and the check is told to stop', async (t) => {
  const clock = new FakeClock();
  const health = new Health({ logger: logSink().logger, clock });
  let aborted: unknown;
  const called = deferred();
  health.addCheck(
    'db',
    (signal) =>
      new Promise((_resolve, reject) => {
        called.resolve();
        signal.addEventListener('abort', () => {
          aborted = signal.reason;
          reject(signal.reason);
        });
      }),
    { timeoutMs: 100 },
  );
  health.markReady();
  const base = await serve(t, nodeApp(health));
  let answered = false;
  const answer = oneShot(`${base}/health/ready`).finally(() => {
    answered = true;
  });
  await called.promise;
  clock.advance(99);
  await new Promise((r) => setImmediate(r));
  assert.equal(answered, false, 'no answer before the timeout');
  assert.equal(aborted, undefined);
  clock.advance(1);
  const res = await answer;
  assert.equal(res.status, 503);
  assert.equal(JSON.parse(res.body).checks.db.error, 'timed out after 100 ms');
  assert.equal(JSON.parse(res.body).checks.db.duration_ms, 100);
  assert.match(String(aborted), /health check "db" timed out after 100 ms/);
  assert.equal(clock.pending, 0, 'no timer left behind');
});

test('checks that ignore their signal and never settle: at most 3 calls are left running', async () => {
  const clock = new FakeClock();
  const health = new Health({ cacheMs: 0, logger: logSink().logger, clock });
  let calls = 0;
  health.addCheck(
    'stuck',
    () => {
      calls++;
      return new Promise(() => {});
    },
    { timeoutMs: 10 },
  );
  health.markReady();
  for (let i = 0; i < 6; i++) {
    const answer = health.readiness();
    clock.advance(10);
    await answer;
  }
  assert.equal(calls, 3);
  const r = await health.readiness();
  assert.equal(r.body.checks?.stuck?.error, 'earlier calls still running');
});

test('a probe storm runs a check once; its result is reused for cacheMs', async (t) => {
  const clock = new FakeClock();
  const health = new Health({ cacheMs: 300, logger: logSink().logger, clock });
  let calls = 0;
  let running = deferred();
  health.addCheck('db', () => {
    calls++;
    return running.promise;
  });
  health.markReady();
  // Concurrent probes while the check runs share its one run.
  const storm = Array.from({ length: 25 }, () => health.readiness());
  running.resolve();
  const answers = await Promise.all(storm);
  assert.ok(answers.every((a) => a.statusCode === 200));
  assert.equal(calls, 1);
  // Later probes, over HTTP, get the cached result until cacheMs has passed.
  running = deferred();
  running.resolve();
  const base = await serve(t, nodeApp(health));
  const cached = await Promise.all(Array.from({ length: 25 }, () => oneShot(`${base}/health/ready`)));
  assert.ok(cached.every((a) => a.status === 200));
  clock.advance(299);
  await oneShot(`${base}/health/ready`);
  assert.equal(calls, 1, 'still cached');
  clock.advance(1);
  await oneShot(`${base}/health/ready`);
  assert.equal(calls, 2, 'run again once the cache expired');
});

test('a failing check is logged once when it starts failing and once when it recovers', async () => {
  const { logger, lines } = logSink();
  const health = new Health({ cacheMs: 0, logger });
  let ok = false;
  health.addCheck('db', () => {
    if (!ok) throw Object.assign(new Error('connect ECONNREFUSED 10.0.0.9:5432'), { code: 'ECONNREFUSED' });
  });
  health.markReady();
  for (let i = 0; i < 5; i++) await health.readiness();
  ok = true;
  for (let i = 0; i < 5; i++) await health.readiness();
  assert.deepEqual(
    lines.map((l) => [l.level, l.msg, l.check]),
    [
      ['warn', 'health check failing', 'db'],
      ['info', 'health check recovered', 'db'],
    ],
  );
  assert.match(String(lines[0]?.error), /ECONNREFUSED 10\.0\.0\.9:5432/);
});

test('handle() serves GET and HEAD of the two paths only', async (t) => {
  const health = new Health({ logger: logSink().logger });
  const base = await serve(t, nodeApp(health));
  const head = await oneShot(`${base}/health/live`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');
  assert.equal((await oneShot(`${base}/health/live`, { method: 'POST' })).status, 404);
  assert.equal((await oneShot(`${base}/health/lively`)).status, 404);
  assert.equal((await oneShot(`${base}/`)).status, 404);
});

test('custom paths', async (t) => {
  const health = new Health({ livePath: '/livez', readyPath: '/readyz', logger: logSink().logger });
  health.markReady();
  const base = await serve(t, nodeApp(health));
  assert.equal((await oneShot(`${base}/livez`)).status, 200);
  assert.equal((await oneShot(`${base}/readyz`)).status, 200);
  assert.equal((await oneShot(`${base}/health/live`)).status, 404);
});

test('bad options are refused at once', () => {
  const health = new Health();
  health.addCheck('db', () => true);
  assert.throws(() => health.addCheck('db', () => true), /a check named "db" is already registered/);
  assert.throws(() => health.addCheck('x', () => true, { timeoutMs: 0 }), RangeError);
  assert.throws(() => new Health({ cacheMs: -1 }), RangeError);
  assert.equal(health.removeCheck('db'), true);
  assert.equal(health.removeCheck('db'), false);
});

test('Express adapter: the probes, and next() for the rest', async (t) => {
  const health = new Health({ logger: logSink().logger });
  health.addCheck('cache', () => false, { critical: false });
  const app = express();
  app.use(health.express());
  app.get('/other', (_req, res) => {
    res.send('app');
  });
  const base = await serve(t, app);
  assert.equal((await oneShot(`${base}/health/ready`)).status, 503);
  health.markReady();
  const ready = await oneShot(`${base}/health/ready`);
  assert.equal(ready.status, 200);
  assert.equal(JSON.parse(ready.body).status, 'degraded');
  assert.equal((await oneShot(`${base}/health/live`)).body, '{"status":"ok"}');
  assert.equal((await oneShot(`${base}/other`)).body, 'app');
});

test('Fastify adapter: the two routes, HEAD included', async (t) => {
  const health = new Health({ logger: logSink().logger });
  const app = Fastify();
  await app.register(health.fastify);
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(() => app.close());
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  const notReady = await oneShot(`${base}/health/ready`);
  assert.equal(notReady.status, 503);
  assert.equal(notReady.body, '{"status":"not ready"}');
  assert.equal(notReady.headers['content-type'], 'application/json; charset=utf-8');
  assert.equal(notReady.headers['cache-control'], 'no-store');
  health.markReady();
  assert.deepEqual(JSON.parse((await oneShot(`${base}/health/ready`)).body), { status: 'ready', checks: {} });
  const live = await oneShot(`${base}/health/live`, { method: 'HEAD' });
  assert.equal(live.status, 200);
  assert.equal((await oneShot(`${base}/health/live`)).body, '{"status":"ok"}');
});
