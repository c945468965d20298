import type { Instrumentation } from '@opentelemetry/instrumentation';

type Handle = (...args: unknown[]) => unknown;
interface Layer {
  handle?: Handle;
  [key: symbol]: unknown;
}
interface WithApplyPatch {
  _applyPatch(layer: Layer, layerPath?: string): void;
}

const kShimmed = Symbol('otel-service-kit.reqNext');

/**
 * Keeps `req.next` the `next` a router-level Express middleware is handed.
 *
 * Express's instrumentation hands each router-level layer a wrapped `next` (it ends the layer
 * span), while the router's `req.next` stays the bare one; `res.format`'s `default` callback is
 * called with `req.next`, so `next` seen there is not the `next` the middleware got (Express's
 * own suite: 4 of its `res.format` tests fail under the upstream instrumentation alone). The
 * kit wraps each layer's handle, inside the instrumentation's wrapper, so that `req.next` is
 * set to whatever `next` the layer receives — the wrapped one when traced, the router's own
 * otherwise, as bare Express has it. Error handlers (arity 4) keep their arity.
 */
export function keepReqNext(instrumentation: Instrumentation): void {
  const target = instrumentation as unknown as WithApplyPatch;
  const applyPatch = target._applyPatch;
  if (typeof applyPatch !== 'function') return;
  target._applyPatch = function (this: unknown, layer: Layer, layerPath?: string) {
    const handle = layer?.handle;
    if (typeof handle === 'function' && layer[kShimmed] !== true) {
      layer[kShimmed] = true;
      layer.handle = withReqNext(handle);
    }
    return applyPatch.call(this, layer, layerPath);
  };
}

function withReqNext(handle: Handle): Handle {
  const shim =
    handle.length === 4
      ? function (this: unknown, _err: unknown, req: { next?: unknown }, _res: unknown, next: unknown) {
          if (req !== null && typeof req === 'object' && typeof next === 'function') req.next = next;
          // biome-ignore lint/complexity/noArguments: the layer's own arguments, whatever their number
          return handle.apply(this, arguments as unknown as unknown[]);
        }
      : function (this: unknown, req: { next?: unknown }, _res: unknown, next: unknown) {
          if (req !== null && typeof req === 'object' && typeof next === 'function') req.next = next;
          // biome-ignore lint/complexity/noArguments: the layer's own arguments, whatever their number
          return handle.apply(this, arguments as unknown as unknown[]);
        };
  // A mounted router or app is a function with properties (stack, params, …) tools read
  // through layer.handle: keep them reachable, as the instrumentation's own wrapper does.
  for (const key in handle) {
    Object.defineProperty(shim, key, {
      enumerable: true,
      configurable: true,
      get: () => (handle as unknown as Record<string, unknown>)[key],
      set: (value) => {
        (handle as unknown as Record<string, unknown>)[key] = value;
      },
    });
  }
  return shim as Handle;
}
