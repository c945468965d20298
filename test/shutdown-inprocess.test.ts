// GracefulShutdown in process, triggered with shutdown() and an injected exit: options,
// hook order, the timeout path, and what happens to idle keep-alive connections. The
// signals and the real exit are tested in child processes (shutdown.test.ts).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect, type Socket } from 'node:net';
import { test } from 'node:test';
import { isConfigError } from '../src/config.ts';
import { GracefulShutdown } from '../src/server/GracefulShutdown.ts';
import { Health } from '../src/server/health.ts';
import { deferred } from './helpers/deferred.ts';
import { tryConnect } from './helpers/httpClient.ts';
import { logSink } from './helpers/logSink.ts';

async function listen(t: { after: (fn: () => unknown) => void }, keepAliveTimeout = 5000): Promise<Server> {
  const server = createServer((_req, res) => res.end('ok'));
  server.keepAliveTimeout = keepAliveTimeout;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return server;
}

function setup(server: Server | undefined, options: { timeoutMs?: number; idleGraceMs?: number } = {}) {
  const { logger, lines, waitForLine } = logSink();
  const codes: number[] = [];
  /** Resolves with the first exit code, when the shutdown calls `exit`. */
  const exited = deferred<number>();
  const health = new Health({ logger });
  health.markReady();
  const shutdown = new GracefulShutdown({
    ...(server === undefined ? {} : { server }),
    exit: (code) => {
      codes.push(code);
      exited.resolve(code);
    },
    signals: [],
    health,
    logger,
    env: {},
    ...options,
  });
  return { shutdown, codes, lines, waitForLine, exited: exited.promise, health };
}

/** A raw keep-alive HTTP/1.1 connection: send one request at a time, read one answer. */
class RawConnection {
  readonly socket: Socket;
  #buffer = '';
  closed = false;
  constructor(port: number) {
    this.socket = connect(port, '127.0.0.1');
    this.socket.setEncoding('latin1');
    this.socket.on('data', (d: string) => {
      this.#buffer += d;
    });
    this.socket.on('error', () => {});
    this.socket.on('close', () => {
      this.closed = true;
    });
  }
  /** True once the client side has seen the connection close (within `ms`). */
  async closedWithin(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    return this.closed;
  }
  async get(path: string): Promise<string> {
    this.#buffer = '';
    this.socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
    const deadline = Date.now() + 2000;
    while (!/\r\n\r\n[\s\S]*ok$/.test(this.#buffer)) {
      if (this.closed || Date.now() > deadline) throw new Error(`no answer: ${JSON.stringify(this.#buffer)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    return this.#buffer;
  }
}

test('defaults from the environment, validated', () => {
  assert.throws(
    () => new GracefulShutdown({ env: { SHUTDOWN_TIMEOUT_MS: 'soon' }, signals: [] }),
    (e: unknown) => isConfigError(e) && /SHUTDOWN_TIMEOUT_MS="soon"/.test(String(e)),
  );
  assert.throws(
    () =>
      new GracefulShutdown({
        env: { SHUTDOWN_TIMEOUT_MS: '5000', SHUTDOWN_DRAIN_DELAY_MS: '5000' },
        signals: [],
      }),
    (e: unknown) => isConfigError(e) && /SHUTDOWN_DRAIN_DELAY_MS="5000": expected less than/.test(String(e)),
  );
  assert.throws(() => new GracefulShutdown({ timeoutMs: 1000, drainDelayMs: 1000, signals: [] }), RangeError);
  assert.throws(() => new GracefulShutdown({ timeoutMs: 0, signals: [] }), RangeError);
  assert.throws(() => new GracefulShutdown({ drainDelayMs: -1, signals: [] }), RangeError);
});

test('signal listeners are added, claimed, and released by dispose()', () => {
  const before = process.listenerCount('SIGTERM');
  const shutdown = new GracefulShutdown({ signals: ['SIGTERM'], exit: () => {} });
  assert.equal(process.listenerCount('SIGTERM'), before + 1);
  shutdown.dispose();
  assert.equal(process.listenerCount('SIGTERM'), before);
});

test('shutdown(): not ready, stop accepting, hooks last-first (a failing one logged), exit 0 once', async (t) => {
  const server = await listen(t);
  const port = (server.address() as AddressInfo).port;
  const { shutdown, codes, lines, health } = setup(server);
  const order: string[] = [];
  shutdown.onShutdown(() => order.push('first registered'));
  shutdown.onShutdown(async function failing() {
    order.push('failing');
    throw new Error('pool already closed');
  });
  shutdown.onShutdown(async () => {
    // Not finished within the turn it starts in: the next hook must wait for it.
    await new Promise((r) => setImmediate(r));
    order.push('last registered');
  });
  assert.equal(shutdown.isShuttingDown, false);
  const done = shutdown.shutdown('test');
  assert.equal(shutdown.isShuttingDown, true);
  assert.equal(health.isReady, false);
  assert.equal(shutdown.shutdown(), done, 'one shutdown');
  await done;
  assert.deepEqual(order, ['last registered', 'failing', 'first registered']);
  assert.deepEqual(codes, [0]);
  assert.equal(await tryConnect(port), 'refused');
  assert.deepEqual(
    lines.map((l) => l.msg),
    [
      'shutdown requested, starting graceful shutdown',
      'stopped accepting connections',
      'shutdown hook failed',
      'graceful shutdown completed',
    ],
  );
  assert.deepEqual([lines[0]?.timeout_ms, lines[0]?.drain_delay_ms, lines[0]?.reason], [30_000, 0, 'test']);
  assert.equal(lines[2]?.hook, 'failing');
  assert.match(String(lines[2]?.error), /pool already closed/);
  assert.equal(lines[3]?.telemetry_flushed, true);
});

test('past the timeout: warning, exit 1, and never exit 0 afterwards', async (t) => {
  const server = await listen(t);
  const { shutdown, codes, lines, exited } = setup(server, { timeoutMs: 200 });
  const stuck = deferred();
  shutdown.onShutdown(() => stuck.promise);
  const done = shutdown.shutdown();
  assert.equal(await exited, 1);
  // The hook that held the shutdown finishes late: the rest of the shutdown runs, and
  // must not exit a second time.
  stuck.resolve();
  await done;
  assert.deepEqual(codes, [1]);
  const warning = lines.find((l) => l.msg === 'graceful shutdown timed out, force exiting');
  assert.equal(warning?.level, 'warn');
  assert.equal(warning?.timeout_seconds, 0.2);
  assert.equal(
    lines.some((l) => l.msg === 'graceful shutdown completed'),
    false,
  );
});

// Regression: http.Server#close() destroys idle keep-alive connections at once (Node >= 19),
// resetting the request a pooled client may be sending on one at that moment.
test('an idle keep-alive connection stays open after close, and its next request is answered with Connection: close', async (t) => {
  const server = await listen(t);
  const conn = new RawConnection((server.address() as AddressInfo).port);
  t.after(() => conn.socket.destroy());
  assert.match(await conn.get('/first'), /Connection: keep-alive/);
  const { shutdown, codes, waitForLine } = setup(server);
  const done = shutdown.shutdown();
  await waitForLine((l) => l.msg === 'stopped accepting connections');
  assert.equal(conn.closed, false, 'not closed under the client');
  assert.deepEqual(codes, [], 'the shutdown waits for it');
  const answer = await conn.get('/second');
  assert.match(answer, /^HTTP\/1\.1 200/);
  assert.match(answer, /Connection: close/);
  await done;
  assert.deepEqual(codes, [0]);
  assert.equal(await conn.closedWithin(500), true);
});

test('an idle connection is closed once the keep-alive time it was advertised has run out', async (t) => {
  const server = await listen(t, 1000);
  const { shutdown, codes } = setup(server);
  const conn = new RawConnection((server.address() as AddressInfo).port);
  t.after(() => conn.socket.destroy());
  assert.match(await conn.get('/first'), /Keep-Alive: timeout=1/);
  const idleSince = performance.now();
  await shutdown.shutdown();
  const took = performance.now() - idleSince;
  assert.deepEqual(codes, [0]);
  assert.equal(await conn.closedWithin(500), true);
  // Node itself would wait for its 1 s buffer on top (2 s).
  assert.ok(took >= 950 && took < 1800, `closed ${Math.round(took)} ms after it went idle`);
});

test('idleGraceMs caps the wait for a long advertised keep-alive (Fastify says 72 s)', async (t) => {
  const server = await listen(t, 72_000);
  const { shutdown, codes } = setup(server, { idleGraceMs: 300 });
  const conn = new RawConnection((server.address() as AddressInfo).port);
  t.after(() => conn.socket.destroy());
  await conn.get('/first');
  const started = performance.now();
  await shutdown.shutdown();
  const took = performance.now() - started;
  assert.deepEqual(codes, [0]);
  assert.ok(took >= 280 && took < 1500, `took ${Math.round(took)} ms`);
});

test('the idle grace never takes more than half of the budget left; untracked connections are swept then', async (t) => {
  const server = await listen(t, 72_000);
  // Made before GracefulShutdown existed: not tracked, closed by the final sweep.
  const conn = new RawConnection((server.address() as AddressInfo).port);
  t.after(() => conn.socket.destroy());
  await conn.get('/first');
  const { shutdown, codes } = setup(server, { timeoutMs: 1000 });
  const started = performance.now();
  await shutdown.shutdown();
  const took = performance.now() - started;
  assert.deepEqual(codes, [0]);
  assert.ok(took >= 450 && took < 900, `took ${Math.round(took)} ms`);
});

test('without a server: hooks, flush and exit only', async () => {
  const { shutdown, codes, lines } = setup(undefined);
  let ran = false;
  shutdown.onShutdown(() => {
    ran = true;
  });
  await shutdown.shutdown();
  assert.equal(ran, true);
  assert.deepEqual(codes, [0]);
  assert.equal(
    lines.some((l) => l.msg === 'stopped accepting connections'),
    false,
  );
});
