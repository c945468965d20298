import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * Fields that belong to the current request (or job) rather than to one call site:
 * kept in an `AsyncLocalStorage`, so every log line written in that async context
 * carries them without a logger being passed around.
 */
export type LogFields = Readonly<Record<string, unknown>>;

const empty: LogFields = Object.freeze({});
const storage = new AsyncLocalStorage<LogFields>();

/** The fields bound in the current async context: a frozen object, shared, never to be mutated. */
export function getLogContext(): LogFields {
  return storage.getStore() ?? empty;
}

/**
 * Run `fn` with `fields` added to every log line written in its async context, including
 * lines written by the kit's clients and by callbacks that `fn` starts.
 *
 * @example
 * withLogContext({ request_id: id }, () => handle(req, res));
 */
export function withLogContext<T>(fields: LogFields, fn: () => T): T {
  return storage.run(Object.freeze({ ...getLogContext(), ...fields }), fn);
}

/**
 * Add `fields` to every log line written from here on in the current async context
 * (and in the contexts it starts). Prefer `withLogContext` where a callback fits: this
 * one changes the context of the caller (`AsyncLocalStorage.enterWith`), so the fields
 * stay bound after the function that called it returns.
 */
export function bindLogContext(fields: LogFields): void {
  storage.enterWith(Object.freeze({ ...getLogContext(), ...fields }));
}

/**
 * Call `fn` on `thisArg` with `args` and `fields` as the log context: how a listener bound
 * to a request's emitter runs (no closure per call).
 */
export function runInLogContext<R>(
  fields: LogFields,
  fn: (...args: never[]) => R,
  thisArg: unknown,
  args: unknown[],
): R {
  return storage.run(fields, Reflect.apply, fn, thisArg, args) as R;
}
