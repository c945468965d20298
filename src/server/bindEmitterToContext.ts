import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';

type Listener = (...args: unknown[]) => unknown;
type AddListener = (event: string | symbol, listener: Listener) => EventEmitter;

const adders = ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener'] as const;
const removers = ['removeListener', 'off'] as const;

/**
 * Run the listeners added to `emitter` from now on in the async context current now, with
 * every `AsyncLocalStorage` store in it: the request's log fields and its trace context.
 *
 * A request's `'data'`, `'end'`, `'finish'` and `'close'` events are emitted from the
 * socket's callbacks, in the context of the connection, not of the request: without
 * this a line logged in `req.on('end', ...)` has no `request_id`. The same wrapping
 * the OpenTelemetry context managers apply for their own context (`context.bind(ctx,
 * emitter)`), for all of them; listeners are unwrapped again by `removeListener`/`off`.
 */
export function bindEmitterToContext(emitter: EventEmitter): void {
  const runInContext = AsyncLocalStorage.snapshot();
  // Per event: the listener as given → the one registered.
  const wrappers = new Map<string | symbol, WeakMap<Listener, Listener>>();
  // `once` registers through `this.on`: that inner call passes its listener through as is.
  let adding = false;
  const target = emitter as unknown as Record<string, AddListener>;
  for (const name of adders) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function (this: EventEmitter, event, listener) {
      if (adding || typeof listener !== 'function') return original.call(this, event, listener);
      let forEvent = wrappers.get(event);
      if (forEvent === undefined) {
        forEvent = new WeakMap();
        wrappers.set(event, forEvent);
      }
      let wrapped = forEvent.get(listener);
      if (wrapped === undefined) {
        wrapped = function (this: unknown, ...args: unknown[]) {
          return runInContext(() => listener.apply(this, args));
        };
        forEvent.set(listener, wrapped);
      }
      adding = true;
      try {
        return original.call(this, event, wrapped);
      } finally {
        adding = false;
      }
    };
  }
  for (const name of removers) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    target[name] = function (this: EventEmitter, event, listener) {
      return original.call(this, event, wrappers.get(event)?.get(listener) ?? listener);
    };
  }
}
