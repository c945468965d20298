// GracefulShutdown with real servers and real signals: child processes started with
// `node --import ./dist/register.js`, a loopback OTLP receiver, undici keep-alive clients.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Client } from 'undici';
import { type Child, freePort, startFixture } from './helpers/child.ts';
import { deferred } from './helpers/deferred.ts';
import { getJson, oneShot, tryConnect } from './helpers/httpClient.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

async function start(
  fixture: string,
  env: Record<string, string>,
): Promise<{ child: Child; base: string; port: number }> {
  const child = startFixture(fixture, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    ...env,
  });
  const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
  const port = Number(ready.port);
  const base = `http://127.0.0.1:${port}`;
  await oneShot(`${base}/test/control?ready=1`, { method: 'POST' });
  return { child, base, port };
}

const lineIndex = (child: Child, msg: string) => child.lines.findIndex((l) => l.msg === msg);

for (const framework of ['node', 'express', 'fastify']) {
  describe(`${framework} service`, () => {
    test('SIGTERM with a 1 s request in flight: drain, refuse, finish it, flush its span, exit 0', async (t) => {
      const service = `shutdown-inflight-${framework}`;
      const { child, base, port } = await start(`server-${framework}.mjs`, {
        OTEL_SERVICE_NAME: service,
        SHUTDOWN_DRAIN_DELAY_MS: '400',
      });
      t.after(() => child.stop());

      const slow = oneShot(`${base}/slow?ms=1000`, { headers: { 'x-request-id': `slow-${framework}` } });
      await child.waitForLine((l) => l.msg === 'slow request started');
      child.kill('SIGTERM');
      const started = await child.waitForLine(
        (l) => l.msg === 'SIGTERM received, starting graceful shutdown',
      );
      assert.equal(started.signal, 'SIGTERM');

      // During the drain delay: still serving, readiness 503, liveness 200.
      assert.deepEqual(await getJson(`${base}/health/ready`), { status: 503, body: { status: 'not ready' } });
      assert.deepEqual(await getJson(`${base}/health/live`), { status: 200, body: { status: 'ok' } });
      assert.equal(
        lineIndex(child, 'stopped accepting connections'),
        -1,
        'the probes were answered during the drain',
      );

      // After close: new connections are refused while the slow request is still running.
      const stopped = await child.waitForLine((l) => l.msg === 'stopped accepting connections');
      assert.equal(stopped.in_flight_requests, 1);
      assert.equal(await tryConnect(port), 'refused');
      assert.equal(lineIndex(child, 'graceful shutdown completed'), -1);

      const res = await slow;
      assert.equal(res.status, 200);
      assert.deepEqual(JSON.parse(res.body), { slept: 1000 });
      assert.equal(res.headers.connection, 'close', 'the client is told not to reuse the connection');

      const exit = await child.exited;
      assert.equal(exit.code, 0, child.stderr);
      // The span of the slow request was received before the process ended: no waiting here.
      const span = receiver.spans.find(
        (s) =>
          s.resource['service.name'] === service &&
          s.kind === SpanKind.SERVER &&
          s.attributes['url.path'] === '/slow',
      );
      assert.ok(
        span,
        `the /slow span arrived before exit; got ${receiver.spans.map((s) => s.name).join(', ')}`,
      );
      const done = child.lines.find(
        (l) => l.msg === 'request completed' && l.request_id === `slow-${framework}`,
      );
      assert.equal(done?.status_code, 200);
      assert.equal(done?.trace_id, span.traceId);

      // Hooks ran last registered first, then the flush, then the final line.
      const hooks = child.lines.filter((l) => l.msg === 'hook ran').map((l) => l.hook);
      assert.deepEqual(hooks, ['closeInventory', 'closeDownstream']);
      const completed = child.lines.find((l) => l.msg === 'graceful shutdown completed');
      assert.equal(completed?.telemetry_flushed, true);
      assert.ok(lineIndex(child, 'stopped accepting connections') < lineIndex(child, 'hook ran'));
    });
  });
}

interface Outcome {
  id: string;
  status?: number;
  close?: boolean;
  error?: string;
  /** Responses the connection had carried before this request (for a failure: by then); 0 for a fresh connection. */
  reuse: number;
  afterSignal: boolean;
}

/**
 * Request loop of one worker on its own keep-alive connection (a pool of N connections,
 * one per worker, so that a failure can be traced to the connection it happened on).
 * Stops at its first error.
 */
async function worker(
  client: Client,
  name: string,
  signalled: () => boolean,
  results: Outcome[],
  onResult: () => void,
): Promise<void> {
  let reuse = 0;
  // A new connection, made or failed: what fails on it failed at connect time.
  const fresh = () => {
    reuse = 0;
  };
  client.on('connect', fresh);
  client.on('connectionError', fresh);
  for (let i = 0; ; i++) {
    const id = `${name}-${i}`;
    const afterSignal = signalled();
    try {
      const res = await client.request({ path: '/fast', method: 'GET', headers: { 'x-request-id': id } });
      await res.body.text();
      results.push({
        id,
        status: res.statusCode,
        close: res.headers.connection === 'close',
        reuse,
        afterSignal,
      });
      reuse++;
      onResult();
    } catch (error) {
      // A connection made for this request has emitted 'connect' (reuse back to 0) by now.
      results.push({ id, error: (error as NodeJS.ErrnoException).code ?? String(error), reuse, afterSignal });
      onResult();
      return;
    }
  }
}

for (const drainDelayMs of [0, 300]) {
  test(`keep-alive clients through SIGTERM (drain ${drainDelayMs} ms): no request the server accepted is reset`, async (t) => {
    const { child, base } = await start('server-node.mjs', {
      OTEL_SERVICE_NAME: 'shutdown-keepalive',
      SHUTDOWN_DRAIN_DELAY_MS: String(drainDelayMs),
    });
    t.after(() => child.stop());
    const clients = Array.from({ length: 6 }, () => new Client(base, { pipelining: 1 }));
    // One more keep-alive connection, idle when the signal comes.
    const idle = new Client(base);
    t.after(() => Promise.all([...clients, idle].map((c) => c.destroy())));
    const first = await idle.request({ path: '/fast', method: 'GET' });
    await first.body.text();

    let signalled = false;
    const results: Outcome[] = [];
    const prefix = `ka${drainDelayMs}`;
    // The signal comes once the service is under load: 60 requests answered (or a failure).
    const loaded = deferred();
    const onResult = () => {
      if (results.length >= 60 || results.some((r) => r.error !== undefined)) loaded.resolve();
    };
    const workers = clients.map((c, n) => worker(c, `${prefix}-${n}`, () => signalled, results, onResult));
    await loaded.promise;
    signalled = true;
    child.kill('SIGTERM');

    // A request on the connection that was idle all along, once the server stopped accepting.
    await child.waitForLine((l) => l.msg === 'stopped accepting connections');
    const late = await idle.request({
      path: '/fast',
      method: 'GET',
      headers: { 'x-request-id': 'idle-late' },
    });
    await late.body.text();
    assert.equal(late.statusCode, 200, 'the idle keep-alive connection was not reset');
    assert.equal(late.headers.connection, 'close');

    await Promise.all(workers);
    const exit = await child.exited;
    assert.equal(exit.code, 0, child.stderr);

    // Every request the server accepted got its answer...
    const ok = results.filter((r) => r.status === 200);
    const answered = new Set(ok.map((r) => r.id));
    const accepted = child.lines
      .filter((l) => l.msg === 'request completed' && String(l.request_id).startsWith(`${prefix}-`))
      .map((l) => String(l.request_id));
    assert.deepEqual(
      accepted.filter((id) => !answered.has(id)),
      [],
    );
    assert.equal(accepted.length, ok.length);
    // ...and the only failures are connections made after the server stopped accepting:
    // refused, or reset by the kernel straight away when the listening socket closed with
    // the connection still in its accept queue (the app never saw it). None on a
    // connection that had served a request.
    const failures = results.filter((r) => r.error !== undefined);
    assert.deepEqual(
      failures.filter((r) => !(r.error === 'ECONNREFUSED' || (r.error === 'ECONNRESET' && r.reuse === 0))),
      [],
    );
    assert.ok(ok.length > 50, `${ok.length} requests served`);
    // With a drain delay, requests sent after the signal are served, the last of them with
    // Connection: close. Without one, the signal can find every connection with a request
    // sent before it in flight: those are the answers that carry Connection: close.
    if (drainDelayMs > 0)
      assert.ok(
        ok.some((r) => r.afterSignal && r.close),
        'requests sent after the signal were served, with Connection: close',
      );
    else
      assert.ok(
        ok.some((r) => r.close),
        'the requests in flight at the signal were answered with Connection: close',
      );
    t.diagnostic(
      `served ${ok.length}, refused ${failures.filter((r) => r.error === 'ECONNREFUSED').length}, reset in the accept queue ${failures.filter((r) => r.error === 'ECONNRESET').length}`,
    );
  });
}

test('a hook that hangs: the timeout warning, exit status 1, within the timeout plus 1 s', async (t) => {
  const { child } = await start('server-node.mjs', {
    OTEL_SERVICE_NAME: 'shutdown-hang',
    SHUTDOWN_TIMEOUT_MS: '1500',
    FIXTURE_HANG_HOOK: '1',
  });
  t.after(() => child.stop());
  const sent = performance.now();
  child.kill('SIGTERM');
  const exit = await child.exited;
  const took = (child.exitedAt ?? 0) - sent;
  assert.equal(exit.code, 1);
  assert.ok(took >= 1400 && took < 2500, `exited after ${Math.round(took)} ms`);
  const warning = child.lines.find((l) => l.msg === 'graceful shutdown timed out, force exiting');
  assert.equal(warning?.level, 'warn');
  assert.equal(warning?.timeout_seconds, 1.5);
  assert.ok(child.lines.some((l) => l.msg === 'hook ran' && l.hook === 'hangs'));
  assert.equal(lineIndex(child, 'graceful shutdown completed'), -1);
});

test('a second SIGTERM exits at once with status 143', async (t) => {
  const { child } = await start('server-node.mjs', {
    OTEL_SERVICE_NAME: 'shutdown-twice',
    FIXTURE_HANG_HOOK: '1',
  });
  t.after(() => child.stop());
  child.kill('SIGTERM');
  await child.waitForLine((l) => l.msg === 'hook ran' && l.hook === 'hangs');
  const sent = performance.now();
  child.kill('SIGTERM');
  const exit = await child.exited;
  const took = (child.exitedAt ?? 0) - sent;
  assert.equal(exit.code, 143);
  assert.ok(took < 1000, `exited after ${Math.round(took)} ms`);
  const line = child.lines.find((l) => l.msg === 'SIGTERM received again, exiting now');
  assert.equal(line?.exit_code, 143);
});

test('SIGINT starts the same graceful shutdown', async (t) => {
  const { child } = await start('server-node.mjs', { OTEL_SERVICE_NAME: 'shutdown-sigint' });
  t.after(() => child.stop());
  child.kill('SIGINT');
  const exit = await child.exited;
  assert.equal(exit.code, 0, child.stderr);
  assert.ok(child.lines.some((l) => l.msg === 'SIGINT received, starting graceful shutdown'));
  assert.ok(child.lines.some((l) => l.msg === 'graceful shutdown completed'));
});

test('a drain delay not shorter than the timeout stops start-up with a ConfigError', async () => {
  const child = startFixture('server-node.mjs', {
    SHUTDOWN_TIMEOUT_MS: '1000',
    SHUTDOWN_DRAIN_DELAY_MS: '1000',
  });
  const exit = await child.exited;
  assert.equal(exit.code, 1);
  // The preload checks the combination too: one line, before the app starts.
  assert.deepEqual(child.stderrLines(), [
    'otel-service-kit: invalid SHUTDOWN_DRAIN_DELAY_MS="1000": expected less than the shutdown timeout (1000 ms)',
  ]);
});
