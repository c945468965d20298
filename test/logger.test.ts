import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { context, createContextKey, ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { lineBuffer } from '../src/logging/lineBuffer.ts';
import { bindLogContext, getLogContext, withLogContext } from '../src/logging/logContext.ts';
import {
  createLogger,
  formatIsoTime,
  loggerOptions,
  type TraceFields,
  writeLine,
} from '../src/logging/logger.ts';
import { KitContextManager } from '../src/telemetry/KitContextManager.ts';
import { cleanEnv, repoRoot } from './helpers/child.ts';

/** A pino logger with the kit's options writing into an array of parsed lines. */
function sink(env: Record<string, string> = {}) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      cb();
    },
  });
  return { log: createLogger(loggerOptions({ OTEL_SERVICE_NAME: 'checkout', ...env }), stream), lines };
}

test('lines carry the level name, ISO time, service identity and message', () => {
  const { log, lines } = sink({ OTEL_RESOURCE_ATTRIBUTES: 'service.version=2.0.1', NODE_ENV: 'production' });
  log.info({ order_id: 7 }, 'order placed');
  assert.equal(lines.length, 1);
  const [line] = lines;
  assert.equal(line?.level, 'info');
  assert.equal(line?.msg, 'order placed');
  assert.equal(line?.service_name, 'checkout');
  assert.equal(line?.service_version, '2.0.1');
  assert.equal(line?.environment, 'production');
  assert.equal(line?.order_id, 7);
  assert.ok(!Number.isNaN(Date.parse(String(line?.time))));
  assert.match(String(line?.time), /Z$/);
});

test('LOG_LEVEL filters, and an invalid one throws naming the variable', () => {
  const { log, lines } = sink({ LOG_LEVEL: 'warn' });
  log.info('hidden');
  log.warn('shown');
  assert.deepEqual(
    lines.map((l) => l.msg),
    ['shown'],
  );
  assert.throws(() => loggerOptions({ LOG_LEVEL: 'loud' }), /invalid LOG_LEVEL="loud"/);
});

test('secret-bearing fields are redacted at the top level and nested', () => {
  const { log, lines } = sink();
  log.info(
    {
      authorization: 'Bearer abc',
      password: 'hunter2',
      headers: { cookie: 'sid=1', 'set-cookie': 'sid=2', 'x-api-key': 'k', accept: 'json' },
      req: { headers: { authorization: 'Basic xyz' } },
      token: 't',
    },
    'secrets',
  );
  const raw = JSON.stringify(lines[0]);
  for (const secret of ['Bearer abc', 'hunter2', 'sid=1', 'sid=2', '"k"', 'Basic xyz', '"t"']) {
    assert.ok(!raw.includes(secret), `${secret} leaked: ${raw}`);
  }
  assert.equal((lines[0]?.headers as Record<string, string> | undefined)?.accept, 'json');
  assert.equal(lines[0]?.authorization, '[REDACTED]');
});

test('secrets are redacted whatever the case of their name, deep in an axios-shaped error and in child bindings', () => {
  const { log, lines } = sink();
  // What axios puts on a failed request's error: headers on a class instance with their
  // original case, the raw request head, the response with its config again.
  class AxiosHeaders {
    [name: string]: unknown;
    constructor(init: Record<string, string>) {
      Object.assign(this, init);
    }
  }
  const config = {
    url: 'https://api.example/v1/charges?api_key=k1&page=2',
    headers: new AxiosHeaders({ Authorization: 'Bearer zzz', Accept: 'application/json' }),
  };
  const err = Object.assign(new Error('Request failed with status code 401'), {
    code: 'ERR_BAD_REQUEST',
    config,
    request: { _header: 'POST /v1/charges HTTP/1.1\r\nAuthorization: Bearer zzz\r\nCookie: sid=abc\r\n\r\n' },
    response: { status: 401, config, headers: { 'Set-Cookie': 'sid=abc' } },
  });
  log.info(
    { headers: { Authorization: 'Bearer zzz', Cookie: 'sid=abc', 'X-Api-Key': 'k1', Accept: 'json' } },
    'h',
  );
  log.error({ err }, 'payment failed');
  log.child({ DB_PASSWORD: 'hunter2', url: 'postgres://app:hunter2@db/x' }).info('bound');
  log.info({ url: '/x?token=s3cret&Password=hunter2' }, 'query');
  const raw = JSON.stringify(lines);
  for (const secret of ['zzz', 'sid=abc', 'k1', 'hunter2', 's3cret']) {
    assert.ok(!raw.includes(secret), `${secret} leaked: ${raw}`);
  }
  const [headersLine, errLine] = lines;
  assert.equal((headersLine?.headers as Record<string, string> | undefined)?.Accept, 'json');
  const loggedErr = errLine?.err as Record<string, unknown>;
  assert.equal(loggedErr.type, 'Error', 'still serialized as an Error');
  assert.equal(loggedErr.message, 'Request failed with status code 401');
  assert.equal(loggedErr.code, 'ERR_BAD_REQUEST', 'a field called code is not a secret');
  assert.match(String((loggedErr.config as Record<string, unknown>).url), /page=2/);
  assert.equal(err.config.headers.Authorization, 'Bearer zzz', 'the logged object is not mutated');
});

test('child loggers bind fields; withLogContext puts fields on every line of an async context', async () => {
  const { log, lines } = sink();
  const child = log.child({ component: 'payments' });
  await withLogContext({ request_id: 'r-1' }, async () => {
    child.info('first');
    await new Promise((r) => setTimeout(r, 5));
    await withLogContext({ user_id: 'u-9' }, async () => log.info('nested'));
    log.info({ request_id: 'explicit' }, 'call fields win');
  });
  log.info('outside');
  assert.deepEqual(
    lines.map((l) => [l.msg, l.component, l.request_id, l.user_id]),
    [
      ['first', 'payments', 'r-1', undefined],
      ['nested', undefined, 'r-1', 'u-9'],
      ['call fields win', undefined, 'explicit', undefined],
      ['outside', undefined, undefined, undefined],
    ],
  );
  assert.deepEqual(getLogContext(), {});
});

test('bindLogContext binds for the rest of the current async context only', async () => {
  const { log, lines } = sink();
  await Promise.all([
    (async () => {
      bindLogContext({ request_id: 'a' });
      await new Promise((r) => setTimeout(r, 5));
      log.info('from a');
    })(),
    (async () => {
      bindLogContext({ request_id: 'b' });
      log.info('from b');
    })(),
  ]);
  const byMsg = Object.fromEntries(lines.map((l) => [l.msg, l.request_id]));
  assert.deepEqual(byMsg, { 'from a': 'a', 'from b': 'b' });
  // The shared context object is never mutated by a line's own fields.
  await withLogContext({ request_id: 'x' }, async () => {
    log.info({ extra: 1 }, 'one');
    assert.deepEqual(getLogContext(), { request_id: 'x' });
  });
});

/** Runs `code` (an ES module next to the repo's src) and returns the `msg` of each stdout line. */
function linesOf(
  code: string,
  env: Record<string, string> = {},
): { msgs: string[]; signal: NodeJS.Signals | null; status: number | null } {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], {
    cwd: repoRoot,
    env: { ...cleanEnv(), ...env },
    encoding: 'utf8',
  });
  const msgs = r.stdout
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { msg: string }).msg);
  return { msgs, signal: r.signal, status: r.status };
}

test('with LOG_BUFFER_MS=0 each line is written before the call returns: none lost to a kill, order kept with console output', () => {
  // SIGKILL runs no exit handler: a line still held or queued for an asynchronous write is gone.
  const r = linesOf(
    `
    import { logger } from './src/index.ts';
    logger.info('first');
    console.log(JSON.stringify({ msg: 'from console.log' }));
    for (let i = 0; i < 50; i++) logger.info({ i }, 'burst');
    logger.info('last');
    process.kill(process.pid, 'SIGKILL');
  `,
    { LOG_BUFFER_MS: '0' },
  );
  assert.equal(r.signal, 'SIGKILL');
  assert.deepEqual(r.msgs, ['first', 'from console.log', ...Array(50).fill('burst'), 'last']);
});

test('a warn or error line is written before the call returns, with the info lines held before it', () => {
  const r = linesOf(`
    import { logger } from './src/index.ts';
    logger.info('first');
    logger.info('held');
    logger.error('failed');
    process.kill(process.pid, 'SIGKILL');
  `);
  assert.equal(r.signal, 'SIGKILL');
  assert.deepEqual(r.msgs, ['first', 'held', 'failed']);
});

test('held lines are written at exit: process.exit, an uncaught exception, the end of the event loop', () => {
  // The kit's own lines (writeLine) are held with pino's.
  const exit = linesOf(`
    import { logger } from './src/index.ts';
    import { writeLine } from './src/logging/logger.ts';
    for (let i = 0; i < 3; i++) logger.info('line');
    writeLine(logger, 'info', { n: 1 }, 'kit line');
    process.exit(3);
  `);
  assert.equal(exit.status, 3);
  assert.deepEqual(exit.msgs, ['line', 'line', 'line', 'kit line']);
  const thrown = linesOf(`
    import { logger } from './src/index.ts';
    import { writeLine } from './src/logging/logger.ts';
    logger.info('a');
    writeLine(logger, 'info', { n: 1 }, 'b');
    throw new Error('boom');
  `);
  assert.equal(thrown.status, 1);
  assert.deepEqual(thrown.msgs, ['a', 'b']);
  // A held line does not keep the process alive, and is not lost when it ends.
  const ended = linesOf(
    `
    import { logger } from './src/index.ts';
    logger.info('last words');
  `,
    { LOG_BUFFER_MS: '60000' },
  );
  assert.equal(ended.status, 0);
  assert.deepEqual(ended.msgs, ['last words']);
});

/** `field` of each line of one `write`. */
function fieldOfEachLine(written: string | undefined, field: string): unknown[] {
  return String(written)
    .trim()
    .split('\n')
    .map((l) => (JSON.parse(l) as Record<string, unknown>)[field]);
}

test('info lines are held for LOG_BUFFER_MS and written with one write; past 16 kB, or at a warn line, at once', (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const writes: string[] = [];
  const destination = lineBuffer({ write: (data: string) => writes.push(data) }, 10);
  const log = createLogger(loggerOptions({ LOG_LEVEL: 'info' }), destination);
  for (let i = 0; i < 20; i++) log.info({ i }, 'line');
  assert.equal(writes.length, 0);
  t.mock.timers.tick(9);
  assert.equal(writes.length, 0);
  t.mock.timers.tick(1);
  assert.equal(writes.length, 1);
  assert.deepEqual(
    fieldOfEachLine(writes[0], 'i'),
    Array.from({ length: 20 }, (_, i) => i),
  );

  writes.length = 0;
  const big = 'x'.repeat(6000);
  for (let i = 0; i < 3; i++) log.info({ big }, 'big');
  assert.equal(writes.length, 1, 'the held lines and the third, once past 16 kB');
  log.info('held');
  log.warn('now');
  assert.equal(writes.length, 2);
  assert.deepEqual(fieldOfEachLine(writes[1], 'msg'), ['held', 'now']);
  t.mock.timers.tick(10);
  assert.equal(writes.length, 2, 'nothing left to write');
  destination.flushSync();
});

test("writeLine's lines are held in order with pino's, with the context and time of their call", (t) => {
  const manager = new KitContextManager().enable();
  context.setGlobalContextManager(manager);
  t.mock.timers.enable({ apis: ['Date'], now: Date.UTC(2026, 11, 1, 12, 0, 0, 5) });
  try {
    const writes: string[] = [];
    const destination = lineBuffer({ write: (data: string) => writes.push(data) }, 10);
    const log = createLogger(loggerOptions({ LOG_LEVEL: 'debug' }), destination);
    const span = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
    context.with(trace.setSpanContext(context.active(), span), () =>
      withLogContext({ request_id: 'r-1' }, () => writeLine(log, 'info', { n: 1 }, 'first')),
    );
    t.mock.timers.tick(7);
    log.info('by pino');
    writeLine(log, 'debug', { n: 2 }, 'second');
    writeLine(log, 'info', { n: 3 }, 'third');
    writeLine(log, 'warn', { n: 4 }, 'at once');
    assert.equal(writes.length, 1, 'the warn line is written at once, with every line before it');
    writeLine(log, 'info', { n: 5 }, 'later');
    assert.equal(writes.length, 1, 'then held');
    destination.flushSync();
    const lines = writes
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(
      lines.map(({ msg, n, trace_id, request_id, time, level }) => ({
        msg,
        n,
        trace_id,
        request_id,
        time,
        level,
      })),
      [
        {
          msg: 'first',
          n: 1,
          trace_id: span.traceId,
          request_id: 'r-1',
          time: '2026-12-01T12:00:00.005Z',
          level: 'info',
        },
        {
          msg: 'by pino',
          n: undefined,
          trace_id: undefined,
          request_id: undefined,
          time: '2026-12-01T12:00:00.012Z',
          level: 'info',
        },
        {
          msg: 'second',
          n: 2,
          trace_id: undefined,
          request_id: undefined,
          time: '2026-12-01T12:00:00.012Z',
          level: 'debug',
        },
        {
          msg: 'third',
          n: 3,
          trace_id: undefined,
          request_id: undefined,
          time: '2026-12-01T12:00:00.012Z',
          level: 'info',
        },
        {
          msg: 'at once',
          n: 4,
          trace_id: undefined,
          request_id: undefined,
          time: '2026-12-01T12:00:00.012Z',
          level: 'warn',
        },
        {
          msg: 'later',
          n: 5,
          trace_id: undefined,
          request_id: undefined,
          time: '2026-12-01T12:00:00.012Z',
          level: 'info',
        },
      ],
    );
  } finally {
    context.disable();
  }
});

test('line times are ISO 8601, as Date#toISOString gives them, across minutes, days and years', () => {
  const start = Date.UTC(2026, 11, 31, 23, 58, 59, 990);
  const times = [Date.now(), 0, 999, 1000, 59_999, 60_000, start];
  for (let t = start; t < start + 3 * 60_000; t += 997) times.push(t);
  times.push(start - 1, start + 5, Date.UTC(2027, 0, 1), Date.UTC(2027, 0, 1) - 1);
  for (const t of times) assert.equal(formatIsoTime(t), new Date(t).toISOString(), String(t));
});

test("inside a span, the kit's lines carry its trace fields beside the log context, without the pino instrumentation", () => {
  const manager = new KitContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    const { log, lines } = sink();
    const span = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
    context.with(trace.setSpanContext(context.active(), span), () =>
      withLogContext({ request_id: 'r-7' }, () => log.child({ component: 'c' }).info({ n: 1 }, 'inside')),
    );
    log.info('outside');
    assert.deepEqual(
      lines.map(({ trace_id, span_id, trace_flags, request_id, component, n, msg }) => ({
        trace_id,
        span_id,
        trace_flags,
        request_id,
        component,
        n,
        msg,
      })),
      [
        {
          trace_id: span.traceId,
          span_id: span.spanId,
          trace_flags: '01',
          request_id: 'r-7',
          component: 'c',
          n: 1,
          msg: 'inside',
        },
        {
          trace_id: undefined,
          span_id: undefined,
          trace_flags: undefined,
          request_id: undefined,
          component: undefined,
          n: undefined,
          msg: 'outside',
        },
      ],
    );
  } finally {
    context.disable();
  }
});

test("writeLine writes the kit's lines byte for byte as pino does, and leaves to pino what only pino knows", () => {
  const manager = new KitContextManager().enable();
  context.setGlobalContextManager(manager);
  try {
    const raw: string[] = [];
    const options = loggerOptions({ OTEL_SERVICE_NAME: 'checkout', LOG_LEVEL: 'debug', NODE_ENV: 'test' });
    const log = createLogger(options, { write: (line: string) => raw.push(line) });
    let viaPino = 0;
    const info = log.info;
    log.info = function counted(this: typeof log, ...args: Parameters<typeof info>) {
      viaPino++;
      return info.apply(this, args);
    } as typeof info;
    // The time field is the only part that may differ between two calls.
    const untimed = (line: string | undefined) => String(line).replace(/"time":"[^"]*"/, '"time":"T"');
    const same = (fields: Record<string, unknown>, expectPino: boolean, traceFields?: TraceFields) => {
      raw.length = 0;
      const before = viaPino;
      writeLine(log, 'info', { ...fields }, 'downstream "request" completed', traceFields);
      const ownPath = viaPino === before;
      log.info({ ...fields, ...traceFields }, 'downstream "request" completed');
      assert.equal(raw.length, 2, JSON.stringify(fields));
      assert.equal(untimed(raw[0]), untimed(raw[1]), JSON.stringify(fields));
      assert.equal(ownPath, !expectPino, `own path for ${JSON.stringify(fields)}`);
    };
    const plain = {
      service: 'payments',
      method: 'GET',
      path: '/v1/charges/"x"\\y',
      status_code: 502,
      status_class: '5xx',
      duration_ms: 12.5,
      retried: true,
      missing: undefined,
      nothing: null,
      nan: Number.NaN,
      big: Number.POSITIVE_INFINITY,
    };
    same(plain, false);
    same({ ...plain, path: `/long/${'é'.repeat(120)}`, note: 'tab\there', lone: '\ud800x' }, false);
    same({ ...plain, password: 'hunter2', url: 'https://user:pass@api.example.com/v1?token=abc&x=1' }, false);
    const span = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: 1 };
    context.with(trace.setSpanContext(context.active(), span), () => {
      same(plain, false);
      withLogContext({ request_id: 'r-7', api_key: 'k-1', tenant: 'acme' }, () => {
        // request_id in both: the field's value, at the context's place.
        same({ request_id: 'r-8', ...plain }, false);
        // The undici span's trace fields over the active span's.
        same({ ...plain, trace_id: 'f'.repeat(32), span_id: 'e'.repeat(16), trace_flags: '00' }, false);
      });
    });
    withLogContext({ request_id: 'r-9' }, () => same(plain, false));
    // The undici span's trace fields handed in: last without an active span, first with one.
    const undiciSpan = { trace_id: 'a'.repeat(32), span_id: 'b'.repeat(16), trace_flags: '01' };
    same(plain, false, undiciSpan);
    withLogContext({ request_id: 'r-10' }, () => same(plain, false, undiciSpan));
    context.with(trace.setSpanContext(context.active(), span), () => same(plain, false, undiciSpan));
    // A context handed in (requestLogging's, from a listener that runs outside it): its
    // span and log fields, as pino writes them inside it; and the same through pino.
    const handed = context.with(trace.setSpanContext(context.active(), span), () =>
      withLogContext({ request_id: 'r-11' }, () => context.active()),
    );
    for (const fields of [plain, { ...plain, detail: { a: 1 } }]) {
      raw.length = 0;
      writeLine(log, 'info', { ...fields }, 'request completed', undefined, handed);
      context.with(handed, () => log.info({ ...fields }, 'request completed'));
      assert.equal(untimed(raw[0]), untimed(raw[1]));
      assert.match(String(raw[0]), /"trace_id":"0af7651916cd43dd8448eb211c80319c".*"request_id":"r-11"/);
    }
    // Not hex (a caller's own traceparent header): escaped as any field.
    same(plain, false, { trace_id: 'x"y', span_id: 'b'.repeat(16), trace_flags: '01' });
    // A log context's own trace_id over the active span's.
    context.with(trace.setSpanContext(context.active(), span), () =>
      withLogContext({ trace_id: 'from-context' }, () => same(plain, false)),
    );
    // Only pino knows these: an object, pino's `err` serializer, an integer-like key.
    same({ ...plain, detail: { a: 1 } }, true);
    same({ ...plain, err: new Error('x') }, true);
    same({ ...plain, 42: 'answer' }, true);
    withLogContext({ nested: { deep: 1 } }, () => same(plain, true));

    // Below the level: nothing.
    raw.length = 0;
    log.level = 'warn';
    writeLine(log, 'info', plain, 'quiet');
    assert.equal(raw.length, 0);
    writeLine(log, 'error', plain, 'loud');
    assert.equal(JSON.parse(String(raw[0])).level, 'error');

    // A logger not made with the kit's options (a child here) goes through pino.
    const child = log.child({ component: 'c' });
    raw.length = 0;
    writeLine(child, 'error', plain, 'from a child');
    assert.equal(JSON.parse(String(raw[0])).component, 'c');
  } finally {
    context.disable();
  }
});

test("under the kit's context manager a log context is an OpenTelemetry context: values set, read and deleted over it", () => {
  context.setGlobalContextManager(new KitContextManager().enable());
  try {
    const key = createContextKey('key');
    const other = createContextKey('other');
    context.with(ROOT_CONTEXT.setValue(other, 1), () =>
      withLogContext({ a: 1 }, () => {
        const ctx = context.active();
        assert.equal(ctx.getValue(other), 1);
        const set = ctx.setValue(key, 'v');
        assert.equal(set.getValue(key), 'v');
        assert.equal(set.getValue(other), 1);
        assert.equal(ctx.getValue(key), undefined);
        const deleted = set.deleteValue(other);
        assert.equal(deleted.getValue(other), undefined);
        assert.equal(deleted.getValue(key), 'v');
        assert.deepEqual(getLogContext(), { a: 1 });
        withLogContext({ b: 2 }, () => {
          assert.deepEqual(getLogContext(), { a: 1, b: 2 });
          assert.equal(context.active().getValue(other), 1);
        });
      }),
    );
  } finally {
    context.disable();
  }
});
