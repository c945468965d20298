import { AsyncLocalStorage } from 'node:async_hooks';
import type { EventEmitter } from 'node:events';
import { type Context, createContextKey, ROOT_CONTEXT } from '@opentelemetry/api';
import { emitterBinder } from './emitterBinder.ts';

/**
 * Fields that belong to the current request (or job) rather than to one call site:
 * kept with the async context, so every log line written in that async context
 * carries them without a logger being passed around.
 */
export type LogFields = Readonly<Record<string, unknown>>;

const empty: LogFields = Object.freeze({});

/**
 * Where the fields live. Under the kit's preload, in the OpenTelemetry context, as a
 * value of it: one async context per request instead of two, and the request and
 * response emitters the http instrumentation binds carry them too (re-bound, not
 * wrapped a second time: binding a logged request 3.9 -> 0.6 µs, --cpu-prof under
 * bench/server.ts). Without it (no SDK, or another context manager), in
 * an `AsyncLocalStorage` of their own.
 */
interface Store {
  get(): LogFields;
  run<T>(fields: LogFields, fn: () => T): T;
  enter(fields: LogFields): void;
  bindEmitter(emitter: EventEmitter): void;
}

/** The name under which `KitContextManager` publishes its storage while it is enabled. */
export const kitContextStorageKey: unique symbol = Symbol.for('otel-service-kit.contextStorage') as never;
/** The key of the log fields in an OpenTelemetry context. */
const fieldsKey = createContextKey('otel-service-kit.logFields');
/**
 * The key of a request's log fields holder in its server span's context: the kit's
 * server-span path puts an empty one there, `requestLogging` fills it (see
 * `addRequestLogFields`).
 */
const requestFieldsKey = createContextKey('otel-service-kit.requestLogFields');

/** A request's own log fields, filled in place once its context exists. */
interface RequestLogFields {
  fields: LogFields;
}

/** The published storage of the OpenTelemetry context and its emitter binder. */
export interface KitContextStorage {
  readonly storage: AsyncLocalStorage<Context>;
  bindEmitter(emitter: EventEmitter, context: Context): void;
}

/**
 * `parent` with one value set: what `parent.setValue(key, value)` gives, without the copy
 * of the parent's map and the three closures the API's `BaseContext` makes for each
 * context (about 1.5 µs of every request `requestLogging` handles, --cpu-prof under
 * bench/server.ts). A value read walks the links up to the first context that has it.
 */
class LinkedContext implements Context {
  readonly #parent: Context;
  readonly #key: symbol;
  readonly #value: unknown;

  constructor(parent: Context, key: symbol, value: unknown) {
    this.#parent = parent;
    this.#key = key;
    this.#value = value;
  }

  getValue(key: symbol): unknown {
    return key === this.#key ? this.#value : this.#parent.getValue(key);
  }

  setValue(key: symbol, value: unknown): Context {
    return new LinkedContext(this, key, value);
  }

  deleteValue(key: symbol): Context {
    return new LinkedContext(this, key, undefined);
  }
}

/** The log fields of `ctx`: those set on it or above it, else its request's. */
function fieldsIn(ctx: Context | undefined): LogFields {
  if (ctx === undefined) return empty;
  const fields = ctx.getValue(fieldsKey) as LogFields | undefined;
  if (fields !== undefined) return fields;
  return (ctx.getValue(requestFieldsKey) as RequestLogFields | undefined)?.fields ?? empty;
}

function inOtelContext(kit: KitContextStorage): Store {
  const { storage } = kit;
  const current = () => storage.getStore() ?? ROOT_CONTEXT;
  return {
    get: () => fieldsIn(storage.getStore()),
    run: (fields, fn) => storage.run(new LinkedContext(current(), fieldsKey, fields), fn),
    enter: (fields) => storage.enterWith(new LinkedContext(current(), fieldsKey, fields)),
    bindEmitter: (emitter) => kit.bindEmitter(emitter, current()),
  };
}

const own = new AsyncLocalStorage<LogFields>();
const bindOwn = emitterBinder(own);
const ownStore: Store = {
  get: () => own.getStore() ?? empty,
  run: (fields, fn) => own.run(fields, fn),
  enter: (fields) => own.enterWith(fields),
  bindEmitter: (emitter) => bindOwn(emitter, own.getStore() ?? empty),
};

let published: KitContextStorage | undefined;
let otelStore: Store | undefined;

/** The store in use now: the kit's context manager may be enabled after this module loads. */
function store(): Store {
  const kit = (globalThis as { [kitContextStorageKey]?: KitContextStorage })[kitContextStorageKey];
  if (kit === undefined) return ownStore;
  if (kit !== published) {
    published = kit;
    otelStore = inOtelContext(kit);
  }
  return otelStore as Store;
}

/** The fields bound in the current async context: a frozen object, shared, never to be mutated. */
export function getLogContext(): LogFields {
  return store().get();
}

/**
 * The fields bound in `ctx`, an OpenTelemetry context, under the kit's context manager;
 * without it (the fields live in an async context of their own), the current ones.
 */
export function logContextOf(ctx: Context): LogFields {
  const s = store();
  return s === ownStore ? s.get() : fieldsIn(ctx);
}

/**
 * `ctx` with an empty log fields holder of its request's, for `addRequestLogFields` to
 * fill: the kit's server-span path makes one for every request it traces.
 */
export function withRequestLogFields(ctx: Context): Context {
  const holder: RequestLogFields = { fields: empty };
  return new LinkedContext(ctx, requestFieldsKey, holder);
}

/**
 * Add `fields` to the current request's log fields in place, when the current context's
 * fields are its request's (under the kit's preload, a request the server span path
 * traced, and no fields set since): its lines, its listeners and its callbacks see them
 * without an async context of their own and without binding the request and the response
 * again (`requestLogging`: about 3 µs of every request, --cpu-prof of bench/server.ts).
 * False when they are not: `withLogContext` is the way then.
 */
export function addRequestLogFields(fields: LogFields): boolean {
  if (store() === ownStore) return false;
  const ctx = (published as KitContextStorage).storage.getStore();
  if (ctx === undefined || ctx.getValue(fieldsKey) !== undefined) return false;
  const holder = ctx.getValue(requestFieldsKey) as RequestLogFields | undefined;
  if (holder === undefined) return false;
  holder.fields = Object.freeze({ ...holder.fields, ...fields });
  return true;
}

/**
 * Run `fn` with `fields` added to every log line written in its async context, including
 * lines written by the kit's clients and by callbacks that `fn` starts.
 *
 * @example
 * withLogContext({ request_id: id }, () => handle(req, res));
 */
export function withLogContext<T>(fields: LogFields, fn: () => T): T {
  const s = store();
  return s.run(Object.freeze({ ...s.get(), ...fields }), fn);
}

/**
 * Add `fields` to every log line written from here on in the current async context
 * (and in the contexts it starts). Prefer `withLogContext` where a callback fits: this
 * one changes the context of the caller (`AsyncLocalStorage.enterWith`), so the fields
 * stay bound after the function that called it returns.
 */
export function bindLogContext(fields: LogFields): void {
  const s = store();
  s.enter(Object.freeze({ ...s.get(), ...fields }));
}

/**
 * Run the listeners added to `emitter` from now on in the current async context: with
 * the log fields current now (the request's `request_id`) and, under the preload, the
 * current trace context.
 *
 * A request's `'data'`, `'end'`, `'finish'` and `'close'` events are emitted from the
 * socket's callbacks, in the context of the connection, not of the request: without
 * this a line logged in `req.on('end', ...)` has no `request_id`. The http
 * instrumentation binds the request and response to the server span's context; this
 * binds them again, to the same context with the log fields, so such a line carries
 * `trace_id` too. Listeners are unwrapped again by `removeListener`/`off`. Binding an
 * emitter again changes the context of the listeners added after.
 */
export function bindEmitterToLogContext(emitter: EventEmitter): void {
  store().bindEmitter(emitter);
}
