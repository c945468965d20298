import type { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import { IncomingMessage, ServerResponse } from 'node:http';

type Listener = ((...args: unknown[]) => unknown) & { listener?: Listener };
type Method = (this: EventEmitter, event: string | symbol, listener: Listener) => EventEmitter;

const adders = ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener'] as const;
const removers = ['removeListener', 'off'] as const;
type MethodName = (typeof adders)[number] | (typeof removers)[number];
const methods: readonly MethodName[] = [...adders, ...removers];

/**
 * The classes whose instances are bound on every request: their prototype gets the
 * replacement methods once, so binding an instance writes one property instead of seven.
 * Seven new own methods on a request and a response cost 5.4 µs per request, 1.1 µs
 * this way (--cpu-prof under bench/server.ts, `bindEmitter`), and left both objects with
 * a slower shape for the rest of the request.
 */
function sharedPrototypeOf(target: object): object | undefined {
  if (target instanceof IncomingMessage) return IncomingMessage.prototype;
  if (target instanceof ServerResponse) return ServerResponse.prototype;
  return undefined;
}

/** What one bound emitter keeps: the value its new listeners run with, and its own methods. */
interface Binding<T> {
  value: T;
  readonly originals: Partial<Record<MethodName, Method>>;
  /** `once` registers through `this.on`: that inner call passes its listener through as is. */
  adding: boolean;
}

/** Binds an emitter's future listeners to a value of `storage`; binding it again changes the value. */
export type BindEmitter<T> = (emitter: EventEmitter, value: T) => void;

/**
 * `bind(emitter, value)`: the listeners added to `emitter` from then on run with `value` as
 * the store of `storage`, wherever the event is emitted from; `removeListener`/`off` take
 * them off again by the listener given. Binding an emitter again only changes the value, for
 * the listeners added after.
 *
 * What the OpenTelemetry context managers do for `context.bind(ctx, emitter)`, with the
 * replacement methods made once per binder, not per emitter, and no map from listeners to
 * their wrappers (a wrapper carries its listener as `.listener`, as Node's `once` wrappers
 * do): binding a request costs one small object and a few property writes, adding a
 * listener one closure (upstream: closures per emitter and a WeakMap per event, 2.2 µs per
 * request for the request and the response; this binder's first version, with the maps,
 * 3.5 µs of its own per request; --cpu-prof under bench/server.ts). It can be re-bound,
 * which upstream ignores, so the request's log fields ride on the context the http
 * instrumentation bound.
 */
export function emitterBinder<T>(storage: AsyncLocalStorage<T>): BindEmitter<T> {
  const state = Symbol('otel-service-kit.boundEmitter');
  /** On a shared prototype given the replacements: the methods it had. */
  const prototypeOriginals = Symbol('otel-service-kit.boundEmitter.originals');
  type Originals = Partial<Record<MethodName, Method>>;
  type Emitter = EventEmitter & { [state]?: Binding<T>; [prototypeOriginals]?: Originals };
  const replacements = {} as Record<MethodName, Method>;
  /** An instance of a shared prototype that was never bound: the prototype's own method. */
  const unbound = (emitter: Emitter, name: MethodName) =>
    (emitter[prototypeOriginals] as Originals)[name] as Method;
  for (const name of adders) {
    replacements[name] = function boundAdd(this: Emitter, event, listener) {
      const bound = this[state];
      if (bound === undefined) return unbound(this, name).call(this, event, listener);
      const original = bound.originals[name] as Method;
      if (bound.adding || typeof listener !== 'function') return original.call(this, event, listener);
      const value = bound.value;
      const wrapped: Listener = function (this: unknown, ...args: unknown[]) {
        // Emitted where `value` is the store already, the listener is called as it is: a
        // new async context frame would change nothing. (A response's 'close' comes from
        // the connection's context, so it still gets one.)
        if (storage.getStore() === value) return Reflect.apply(listener, this, args);
        return storage.run(value, Reflect.apply, listener, this, args);
      };
      // How Node's own removeListener recognises a wrapper (its once wrappers carry it too).
      wrapped.listener = listener;
      bound.adding = true;
      try {
        return original.call(this, event, wrapped);
      } finally {
        bound.adding = false;
      }
    };
  }
  for (const name of removers) {
    replacements[name] = function boundRemove(this: Emitter, event, listener) {
      const bound = this[state];
      // Never bound (a client's response, say): it has no wrappers, Node finds its listeners.
      if (bound === undefined) return unbound(this, name).call(this, event, listener);
      const original = bound.originals[name] as Method;
      // The registered function: the listener itself, its wrapper, or the once wrapper of its
      // wrapper; the last one added first, as Node removes.
      const registered = this.rawListeners(event) as Listener[];
      for (let i = registered.length - 1; i >= 0; i--) {
        const r = registered[i] as Listener;
        if (r === listener || r.listener === listener || r.listener?.listener === listener)
          return original.call(this, event, r);
      }
      return original.call(this, event, listener);
    };
  }

  /** Per class of emitter: the originals of its shared prototype when that prototype's methods are the ones called. */
  const byClass = new WeakMap<object, Originals | null>();

  return function bindEmitter(emitter, value) {
    const target = emitter as Emitter;
    const existing = target[state];
    if (existing !== undefined) {
      existing.value = value;
      return;
    }
    const originals = sharedOriginals(target);
    if (originals !== undefined) {
      target[state] = { value, originals, adding: false };
      return;
    }
    target[state] = { value, originals: replaceMethods(target, false), adding: false };
  };

  function sharedOriginals(target: Emitter): Originals | undefined {
    const direct = Object.getPrototypeOf(target) as object | null;
    if (direct === null) return undefined;
    let found = byClass.get(direct);
    if (found === undefined) {
      const prototype = sharedPrototypeOf(target);
      const originals = prototype === undefined ? undefined : replaceMethods(prototype, true);
      // Unless a class in between has methods of its own, the prototype's are the ones called.
      const methodsOf = direct as Record<MethodName, Method | undefined>;
      found =
        originals !== undefined &&
        methods.every((name) => originals[name] === undefined || methodsOf[name] === replacements[name])
          ? originals
          : null;
      byClass.set(direct, found);
    }
    return found ?? undefined;
  }

  /** Give `target` the replacement methods (a shared prototype once); the methods it had. */
  function replaceMethods(target: object, shared: boolean): Originals {
    const inherited = (target as Emitter)[prototypeOriginals];
    if (inherited !== undefined && Object.hasOwn(target, prototypeOriginals)) return inherited;
    const own = target as Record<MethodName, Method | undefined>;
    const originals: Originals = {};
    for (const name of methods) {
      const original = own[name];
      if (typeof original !== 'function') continue;
      // Already the replacement, from a shared prototype: call what that prototype had.
      if (original === replacements[name]) {
        originals[name] = inherited?.[name];
        continue;
      }
      originals[name] = original;
      own[name] = replacements[name];
    }
    if (shared) (target as Emitter)[prototypeOriginals] = originals;
    return originals;
  }
}
