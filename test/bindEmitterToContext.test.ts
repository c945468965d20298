import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough, pipeline, Writable } from 'node:stream';
import { test } from 'node:test';
import { createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import {
  addRequestLogFields,
  bindEmitterToLogContext as bindEmitterToContext,
  getLogContext,
  logContextOf,
  withLogContext,
  withRequestLogFields,
} from '../src/logging/logContext.ts';
import { KitContextManager } from '../src/telemetry/KitContextManager.ts';

test('listeners added after binding run in the bound context, wherever the event is emitted from', async () => {
  const emitter = new EventEmitter();
  const seen: unknown[] = [];
  withLogContext({ request_id: 'bound' }, () => {
    bindEmitterToContext(emitter);
  });
  // Added outside the context, emitted from a timer outside it: still the bound context.
  emitter.on('e', () => seen.push(getLogContext().request_id));
  emitter.once('e', () => seen.push(`once:${String(getLogContext().request_id)}`));
  emitter.prependListener('e', () => seen.push(`first:${String(getLogContext().request_id)}`));
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      emitter.emit('e');
      emitter.emit('e');
      resolve();
    }, 1),
  );
  assert.deepEqual(seen, ['first:bound', 'bound', 'once:bound', 'first:bound', 'bound']);
});

test('removeListener/off remove what on/once added, and listenerCount follows', () => {
  const emitter = new EventEmitter();
  bindEmitterToContext(emitter);
  let calls = 0;
  const a = () => calls++;
  const b = () => calls++;
  emitter.on('e', a);
  emitter.once('e', b);
  assert.equal(emitter.listenerCount('e'), 2);
  emitter.removeListener('e', b);
  emitter.off('e', a);
  assert.equal(emitter.listenerCount('e'), 0);
  emitter.emit('e');
  assert.equal(calls, 0);
  // A listener added on two events is removed from the one named only.
  emitter.on('x', a);
  emitter.on('y', a);
  emitter.off('x', a);
  assert.deepEqual([emitter.listenerCount('x'), emitter.listenerCount('y')], [0, 1]);
});

/** Pipe 100 kB from `source` into a sink; the bytes received, the contexts `'data'` ran in, and the listeners left. */
async function pipe(source: PassThrough) {
  let received = 0;
  const contexts = new Set<unknown>();
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      received += chunk.length;
      callback();
    },
  });
  source.on('data', () => contexts.add(getLogContext().request_id));
  const done = new Promise<void>((resolve, reject) =>
    pipeline(source, sink, (error) => (error ? reject(error) : resolve())),
  );
  for (let i = 0; i < 100; i++) source.write(Buffer.alloc(1000));
  source.end();
  await done;
  const left = ['data', 'end', 'error', 'close', 'readable'].map((e) => source.listenerCount(e));
  return { received, contexts: [...contexts], left };
}

test('streams keep working when bound: pipeline moves every byte and leaves what it leaves unbound', async () => {
  const bound = new PassThrough();
  withLogContext({ request_id: 'stream' }, () => bindEmitterToContext(bound));
  const plain = await pipe(new PassThrough());
  const wrapped = await pipe(bound);
  assert.equal(wrapped.received, 100_000);
  assert.deepEqual(wrapped.contexts, ['stream']);
  assert.deepEqual(wrapped.left, plain.left);
});

test("the SDK's context manager (KitContextManager): a bound function keeps its arity, this and arguments, and runs in its context", async () => {
  const manager = new KitContextManager().enable();
  const key = createContextKey('test');
  const bound = ROOT_CONTEXT.setValue(key, 'bound');
  const calls: unknown[] = [];
  function listener(this: unknown, a: unknown, b: unknown) {
    calls.push([this, a, b, manager.active().getValue(key)]);
    return 'result';
  }
  const wrapped = manager.bind(bound, listener);
  assert.equal(wrapped.length, 2);
  const self = { name: 'self' };
  await new Promise<void>((resolve) => setTimeout(resolve, 1));
  assert.equal(wrapped.call(self, 1, 2), 'result');
  assert.deepEqual(calls, [[self, 1, 2, 'bound']]);
  // More arguments than parameters, and a wide function: all passed, arity kept.
  const wide = manager.bind(
    bound,
    (a: number, b: number, c: number, d: number, e: number, f: number) => a + b + c + d + e + f,
  );
  assert.equal(wide.length, 6);
  assert.equal(wide(1, 2, 3, 4, 5, 6), 21);
  // Emitters are still bound as emitters: a listener runs in the bound context, and off() removes it.
  const emitter = manager.bind(bound, new EventEmitter());
  const seen: unknown[] = [];
  const onEvent = () => seen.push(manager.active().getValue(key));
  emitter.on('e', onEvent);
  emitter.emit('e');
  emitter.off('e', onEvent);
  emitter.emit('e');
  assert.deepEqual(seen, ['bound']);
  assert.equal(manager.active(), ROOT_CONTEXT);
  manager.disable();
});

test('under KitContextManager, log fields ride in the OpenTelemetry context, and re-binding an emitter changes what later listeners see', async () => {
  const manager = new KitContextManager().enable();
  try {
    const key = createContextKey('span');
    const spanContext = ROOT_CONTEXT.setValue(key, 'server span');
    const emitter = new EventEmitter();
    const seen: unknown[] = [];
    const look = (tag: string) => () =>
      seen.push([tag, manager.active().getValue(key), getLogContext().request_id ?? null]);
    manager.with(spanContext, () => {
      // What the http instrumentation does for a request: bind it to the span's context.
      manager.bind(manager.active(), emitter);
      emitter.on('e', look('before'));
      // What requestLogging does inside it: add the request id and bind again.
      withLogContext({ request_id: 'r-1' }, () => {
        assert.equal(manager.active().getValue(key), 'server span');
        bindEmitterToContext(emitter);
        emitter.on('e', look('after'));
      });
    });
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
    emitter.emit('e');
    assert.deepEqual(seen, [
      ['before', 'server span', null],
      ['after', 'server span', 'r-1'],
    ]);
    // After removeAllListeners, a listener added again is bound anew, and off() finds it.
    const again = look('again');
    emitter.on('e', again);
    emitter.removeAllListeners('e');
    emitter.on('e', again);
    emitter.off('e', again);
    assert.equal(emitter.listenerCount('e'), 0);
  } finally {
    manager.disable();
  }
  // Disabled, the manager no longer carries the fields: they are kept in the log context's own storage.
  withLogContext({ request_id: 'own' }, () => assert.equal(getLogContext().request_id, 'own'));
});

test("a request's log fields holder: filled in place where the request's context is the current one, not under fields set since", async () => {
  // Without the kit's context manager there is no holder to fill.
  assert.equal(addRequestLogFields({ request_id: 'none' }), false);
  const manager = new KitContextManager().enable();
  try {
    const key = createContextKey('span');
    // What the kit's server-span path makes for a request: the span's context, with a holder.
    const requestContext = withRequestLogFields(ROOT_CONTEXT.setValue(key, 'server span'));
    const emitter = new EventEmitter();
    const seen: unknown[] = [];
    manager.with(requestContext, () => {
      manager.bind(manager.active(), emitter);
      emitter.on('e', () => seen.push(['listener', getLogContext().request_id]));
      assert.equal(addRequestLogFields({ request_id: 'r-1' }), true);
      assert.equal(getLogContext().request_id, 'r-1');
      assert.equal(manager.active(), requestContext, 'no context of its own');
      // Fields added later by the app over the request's, as before.
      withLogContext({ user: 'u-7' }, () => {
        assert.deepEqual(getLogContext(), { request_id: 'r-1', user: 'u-7' });
        // Under fields of their own the request's are not changed in place.
        assert.equal(addRequestLogFields({ request_id: 'r-2' }), false);
      });
      setTimeout(() => seen.push(['timer', getLogContext().request_id]), 1);
    });
    await new Promise<void>((resolve) => setTimeout(resolve, 5));
    emitter.emit('e');
    assert.deepEqual(seen, [
      ['timer', 'r-1'],
      ['listener', 'r-1'],
    ]);
    // A line written later with the request's context, as requestLogging's is.
    assert.equal(logContextOf(requestContext).request_id, 'r-1');
    // A context without a holder (a probe the server path does not trace).
    manager.with(ROOT_CONTEXT, () => assert.equal(addRequestLogFields({ request_id: 'r-3' }), false));
  } finally {
    manager.disable();
  }
});

test('requests and responses are bound through their prototypes: bound ones run in their context, unbound ones (a client response) as before', async (t) => {
  const seen: unknown[] = [];
  let ownMethods: string[] = [];
  const server = createServer((req, res) => {
    withLogContext({ request_id: 'proto' }, () => {
      bindEmitterToContext(req);
      bindEmitterToContext(res);
    });
    ownMethods = ['on', 'once', 'removeListener'].filter(
      (m) => Object.hasOwn(req, m) || Object.hasOwn(res, m),
    );
    // Added outside the log context: the events still run in the request's.
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    req.once('end', () => {
      seen.push(['end', getLogContext().request_id, size]);
      res.end('ok');
    });
    res.on('finish', () => seen.push(['finish', getLogContext().request_id]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => server.close());
  const { port } = server.address() as AddressInfo;
  const body = await new Promise<string>((resolve, reject) => {
    const req = request({ port, host: '127.0.0.1', method: 'POST', agent: false }, (res) => {
      // A client response is an IncomingMessage too, never bound: add and remove work as ever.
      const unused = () => {};
      res.on('aborted', unused);
      res.off('aborted', unused);
      assert.equal(res.listenerCount('aborted'), 0);
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
      });
      res.on('end', () => resolve(text));
    });
    req.on('error', reject);
    req.end(Buffer.alloc(50_000));
  });
  assert.equal(body, 'ok');
  assert.deepEqual(seen, [
    ['end', 'proto', 50_000],
    ['finish', 'proto'],
  ]);
  assert.deepEqual(ownMethods, [], 'binding wrote no methods on the request or the response');
});
