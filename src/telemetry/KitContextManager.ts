import { EventEmitter } from 'node:events';
import type { Context } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';

type Fn = (...args: unknown[]) => unknown;
type Run = (context: Context, fn: Fn, thisArg: unknown, args: IArguments) => unknown;

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

/**
 * The SDK's `AsyncLocalStorageContextManager`, with a cheaper `bind(context, fn)`: every
 * listener added to a request's or response's emitter goes through it (the http
 * instrumentation binds both), several per request. Upstream makes a closure per call and
 * redefines the wrapper's `length`; this one calls `AsyncLocalStorage.run` with the
 * target directly. Measured with `node --cpu-prof` under bench/server.ts: `_bindFunction`
 * 7.7 µs of every request before.
 */
export class KitContextManager extends AsyncLocalStorageContextManager {
  readonly #run: Run;

  constructor() {
    super();
    const storage = (this as unknown as { _asyncLocalStorage: { run: Fn } })._asyncLocalStorage;
    this.#run = (context, fn, thisArg, args) => storage.run(context, Reflect.apply, fn, thisArg, args);
  }

  override bind<T>(context: Context, target: T): T {
    if (typeof target !== 'function' || target instanceof EventEmitter) return super.bind(context, target);
    const make = byArity[(target as Fn).length];
    return make === undefined ? super.bind(context, target) : (make(this.#run, context, target as Fn) as T);
  }
}
