import { type Attributes, type Context, context, createContextKey } from '@opentelemetry/api';
import { ATTR_URL_FULL, ATTR_URL_QUERY } from '@opentelemetry/semantic-conventions';
import { redactQuery } from '../secrets.ts';

/** `peer.service`: the name Jaeger's dependency graph draws an outbound call to. */
export const ATTR_PEER_SERVICE = 'peer.service';

/**
 * Whether InstrumentedClient is creating an undici request: it sets this around its
 * synchronous call into undici, which creates the request (and runs the instrumentation's
 * hooks) before it returns. Shared through `globalThis`: the preload bundle's copy of this
 * module runs the hooks, the app's copy is InstrumentedClient's. A slot, not a context
 * value per call: a context costs about 3 µs, and a `context.with` 2.5 µs (--cpu-prof).
 */
const dispatchingKey = Symbol.for('otel-service-kit.kit-request');
const shared = globalThis as { [dispatchingKey]?: { kit: boolean } };
shared[dispatchingKey] ??= { kit: false };
const dispatching = shared[dispatchingKey];

/** `send()`, with the undici requests it creates (synchronously) marked as InstrumentedClient's. */
export function dispatchAsKit<T>(send: () => T): T {
  const was = dispatching.kit;
  dispatching.kit = true;
  try {
    return send();
  } finally {
    dispatching.kit = was;
  }
}

/**
 * A pool at its `connections` limit queues a request and creates it later, in the async
 * context it was queued in (undici's `QueuedRequest` is an `AsyncResource`): for such a
 * pool the request is marked in the context too. The key is a `Symbol.for`, shared by the
 * preload's copy of this module and the app's.
 */
const kitRequestKey: symbol = createContextKey('otel-service-kit request');

/** `ctx` marking the undici requests created in it as InstrumentedClient's. */
export function withKitRequest(ctx: Context): Context {
  return ctx.setValue(kitRequestKey, true);
}

/**
 * The undici instrumentation's `ignoreRequestHook` (exported as `undiciIgnoreRequestHook`):
 * InstrumentedClient's requests, which have a CLIENT span of the kit's already
 * (InstrumentedClient.ts says why).
 */
export function isKitRequest(): boolean {
  return dispatching.kit || context.active().getValue(kitRequestKey) === true;
}

const none: Attributes = Object.freeze({});

/**
 * The undici instrumentation's `startSpanHook`: `url.full`/`url.query` replaced by their
 * redacted form when the query carries a secret (token, signature, ...). It runs inside
 * undici for every request, so a request without a query allocates nothing.
 *
 * @example
 * new UndiciInstrumentation({ startSpanHook: undiciStartSpanHook, ignoreRequestHook: undiciIgnoreRequestHook })
 */
export function undiciStartSpanHook(request: { origin?: unknown; path: string }): Attributes {
  const path = request.path;
  const q = path.indexOf('?');
  if (q === -1) return none;
  const redacted = redactQuery(path);
  if (redacted === path) return none;
  const rq = redacted.indexOf('?');
  return {
    [ATTR_URL_QUERY]: rq === -1 ? '' : redacted.slice(rq + 1),
    [ATTR_URL_FULL]: `${String(request.origin ?? '')}${redacted}`,
  };
}
