import type { RetryOptions } from './HttpRetryPolicy.ts';

/** The part of a client `callWithRetry` needs: `InstrumentedClient` fits. */
export interface RetryingClient<Options extends { retry?: boolean | RetryOptions | undefined }, Response> {
  request(method: string, path: string, options?: Options): Promise<Response>;
}

/**
 * Make one call through `client` with retries, whatever the client's own `retry` option:
 * `options.retry` when it is an object, else the client's retry options when it has
 * some, else `defaultRetryOptions` (3 attempts, ~0.5 s then ~1 s apart, on timeouts,
 * network errors and 429/502/503/504, `Retry-After` honoured).
 * Non-idempotent requests without an `Idempotency-Key` are retried only when the request
 * was not sent, unless `retryNonIdempotent` is set.
 *
 * The retries are attempts inside the call's one span, so a trace shows one call with
 * its retry events rather than one span per attempt.
 *
 * @example
 * const res = await callWithRetry(payments, 'GET', '/v1/charges/ch_1');
 */
export function callWithRetry<Options extends { retry?: boolean | RetryOptions | undefined }, Response>(
  client: RetryingClient<Options, Response>,
  method: string,
  path: string,
  options?: Options,
): Promise<Response> {
  // `true` asks the client for its own retry options, or the defaults.
  return client.request(method, path, { ...options, retry: options?.retry || true } as Options);
}
