import type { AsyncLocalStorage } from 'node:async_hooks';
import { EventEmitter } from 'node:events';
import type { Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { type BindEmitter, emitterBinder } from '../logging/emitterBinder.ts';
import { type KitContextStorage, kitContextStorageKey } from '../logging/logContext.ts';

type Fn = (...args: unknown[]) => unknown;
type Run = (context: Context, fn: Fn, thisArg: unknown, args: ArrayLike<unknown>) => unknown;

/**
 * Wrappers with the target's arity as a literal parameter list: `length` comes for free,
 * where upstream's `Object.defineProperty(wrapper, 'length', …)` turns every wrapper into a
 * dictionary-mode function.
 */
const byArity: ((run: Run, context: Context, target: Fn) => Fn)[] = [
  (run, context, target) =>
    function (this: unknown) {
      // biome-ignore lint/complexity/noArguments: passed through as they came, no array made
      return run(context, target, this, arguments);
    },
  (run, context, target) =>
    function (this: unknown, _a: unknown) {
      // biome-ignore lint/complexity/noArguments: as above
      return run(context, target, this, arguments);
    },
  (run, context, target) =>
    function (this: unknown, _a: unknown, _b: unknown) {
      // biome-ignore lint/complexity/noArguments: as above
      return run(context, target, this, arguments);
    },
  (run, context, target) =>
    function (this: unknown, _a: unknown, _b: unknown, _c: unknown) {
      // biome-ignore lint/complexity/noArguments: as above
      return run(context, target, this, arguments);
    },
  (run, context, target) =>
    function (this: unknown, _a: unknown, _b: unknown, _c: unknown, _d: unknown) {
      // biome-ignore lint/complexity/noArguments: as above
      return run(context, target, this, arguments);
    },
];

type Published = { [kitContextStorageKey]?: KitContextStorage };

/**
 * The SDK's `AsyncLocalStorageContextManager`, with a cheaper `bind`:
 *
 * - `bind(context, fn)`: every listener added to a request's or response's emitter goes
 *   through it, several per request. Upstream makes a closure per call and redefines the
 *   wrapper's `length`; this one calls `AsyncLocalStorage.run` with the target directly.
 *   Measured with `node --cpu-prof` under bench/server.ts: `_bindFunction` 7.7 µs of every
 *   request before.
 * - `bind(context, emitter)`: shared replacement methods (`emitterBinder`), and binding an
 *   emitter again changes the context of the listeners added after, where upstream keeps
 *   the first. While enabled it publishes its storage, so the kit's log fields
 *   (`withLogContext`) are carried in the OpenTelemetry context and `requestLogging`
 *   re-binds the request the http instrumentation bound.
 */
export class KitContextManager extends AsyncLocalStorageContextManager {
  readonly #run: Run;
  readonly #storage: AsyncLocalStorage<Context>;
  readonly #bindEmitter: BindEmitter<Context>;

  constructor() {
    super();
    const storage = (this as unknown as { _asyncLocalStorage: AsyncLocalStorage<Context> })
      ._asyncLocalStorage;
    this.#storage = storage;
    // Called where `context` is the active one already, `fn` is called as it is (no new
    // async context frame).
    this.#run = (context, fn, thisArg, args) =>
      storage.getStore() === context
        ? Reflect.apply(fn, thisArg, args)
        : storage.run(context, Reflect.apply, fn, thisArg, args);
    this.#bindEmitter = emitterBinder(storage);
  }

  /**
   * Upstream binds `fn` to `thisArg` for every call that passes one (InstrumentedClient's
   * calls do); this passes it through, and calls `fn` as it is where `context` is the
   * active one already.
   */
  override with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(
    context: Context,
    fn: F,
    thisArg?: ThisParameterType<F>,
    ...args: A
  ): ReturnType<F> {
    return this.#run(context, fn as unknown as Fn, thisArg, args) as ReturnType<F>;
  }

  override bind<T>(context: Context, target: T): T {
    if (target instanceof EventEmitter) {
      this.#bindEmitter(target, context);
      return target;
    }
    if (typeof target !== 'function') return target;
    const make = byArity[(target as Fn).length];
    return make === undefined ? super.bind(context, target) : (make(this.#run, context, target as Fn) as T);
  }

  override enable(): this {
    super.enable();
    (globalThis as Published)[kitContextStorageKey] = {
      storage: this.#storage,
      bindEmitter: this.#bindEmitter,
    };
    return this;
  }

  override disable(): this {
    const published = globalThis as Published;
    if (published[kitContextStorageKey]?.storage === this.#storage) delete published[kitContextStorageKey];
    return super.disable();
  }
}
