import type { EventEmitter } from 'node:events';
import { getLogContext, type LogFields, runInLogContext } from '../logging/logContext.ts';

type Listener = (...args: unknown[]) => unknown;
type AddListener = (this: EventEmitter, event: string | symbol, listener: Listener) => EventEmitter;

const adders = ['on', 'addListener', 'prependListener', 'once', 'prependOnceListener'] as const;
const removers = ['removeListener', 'off'] as const;
type MethodName = (typeof adders)[number] | (typeof removers)[number];
const methods: readonly MethodName[] = [...adders, ...removers];

/** What one bound emitter keeps: the fields to log with, its own methods, the wrappers made. */
interface Bound {
  fields: LogFields;
  readonly originals: Partial<Record<MethodName, AddListener>>;
  /** Per event: the listener as given → the one registered. Made at the first listener. */
  wrappers: Map<string | symbol, WeakMap<Listener, Listener>> | undefined;
  /** `once` registers through `this.on`: that inner call passes its listener through as is. */
  adding: boolean;
}

const state = Symbol('otel-service-kit.boundEmitter');
type Emitter = EventEmitter & { [state]?: Bound } & Record<MethodName, AddListener>;

// The replacement methods are made once and shared by every bound emitter: binding a
// request costs one small object and a few property writes, not a dozen closures and an
// AsyncLocalStorage snapshot (an AsyncResource: 14 µs of every request, measured with
// --cpu-prof under bench/server.ts).
const replacements = {} as Record<MethodName, AddListener>;
for (const name of adders) {
  replacements[name] = function boundAdd(this: Emitter, event, listener) {
    const bound = this[state] as Bound;
    const original = bound.originals[name] as AddListener;
    if (bound.adding || typeof listener !== 'function') return original.call(this, event, listener);
    bound.wrappers ??= new Map();
    let forEvent = bound.wrappers.get(event);
    if (forEvent === undefined) {
      forEvent = new WeakMap();
      bound.wrappers.set(event, forEvent);
    }
    let wrapped = forEvent.get(listener);
    if (wrapped === undefined) {
      const fields = bound.fields;
      wrapped = function (this: unknown, ...args: unknown[]) {
        return runInLogContext(fields, listener, this, args);
      };
      forEvent.set(listener, wrapped);
    }
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
    const bound = this[state] as Bound;
    const original = bound.originals[name] as AddListener;
    return original.call(this, event, bound.wrappers?.get(event)?.get(listener) ?? listener);
  };
}

/**
 * Run the listeners added to `emitter` from now on with the log fields current now
 * (`withLogContext`, the request's `request_id`).
 *
 * A request's `'data'`, `'end'`, `'finish'` and `'close'` events are emitted from the
 * socket's callbacks, in the context of the connection, not of the request: without
 * this a line logged in `req.on('end', ...)` has no `request_id`. The trace context is
 * bound the same way by the OpenTelemetry http instrumentation (`context.bind(ctx,
 * emitter)`), so such a line carries `trace_id` too. Listeners are unwrapped again by
 * `removeListener`/`off`. Binding an emitter again only changes the fields.
 */
export function bindEmitterToContext(emitter: EventEmitter): void {
  const target = emitter as Emitter;
  const existing = target[state];
  if (existing !== undefined) {
    existing.fields = getLogContext();
    return;
  }
  const originals: Partial<Record<MethodName, AddListener>> = {};
  for (const name of methods) {
    const original = target[name];
    if (typeof original !== 'function') continue;
    originals[name] = original;
    target[name] = replacements[name];
  }
  target[state] = { fields: getLogContext(), originals, wrappers: undefined, adding: false };
}
