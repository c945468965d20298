import type { Span } from '@opentelemetry/api';
import {
  DelegateBackoff,
  ExponentialBackoff,
  type FailureReason,
  type GeneratorFn,
  handleWhen,
  type IBackoff,
  type IRetryBackoffContext,
  type Policy,
  retry,
} from 'cockatiel';
import { logger } from '../logging/logger.ts';
import { recordResilienceEvent } from '../telemetry/resilienceInstruments.ts';
import { retryAfterMs } from './retryAfter.ts';
import { errorMessage, errorType, isConnectError, isRetryableError } from './transportErrors.ts';

/** How a call is retried. Every field is optional; see `defaultRetryOptions`. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 3. */
  attempts?: number;
  /** Mean delay before the first retry, in ms; each later one doubles it. Default 500. */
  initialDelayMs?: number;
  /** Longest delay in ms, also the cap on a server's `Retry-After`. Default 10 000. */
  maxDelayMs?: number;
  /** Response statuses that are retried. Default 429, 502, 503, 504. */
  retryStatuses?: readonly number[];
  /**
   * Retry non-idempotent requests (POST, PATCH...) that carry no `Idempotency-Key` as
   * if they were idempotent. Default false: such a request is retried only when no
   * connection could be made, because a retried payment can be a double charge.
   */
  retryNonIdempotent?: boolean;
}

/** The defaults of `RetryOptions`: three attempts, about 0.5 s then 1 s apart, 10 s cap. */
export const defaultRetryOptions: Readonly<Required<RetryOptions>> = Object.freeze({
  attempts: 3,
  initialDelayMs: 500,
  maxDelayMs: 10_000,
  retryStatuses: Object.freeze([429, 502, 503, 504]),
  retryNonIdempotent: false,
});

/** Methods that RFC 9110 defines as idempotent: a repeat has the effect of one request. */
export const idempotentMethods: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'OPTIONS',
  'PUT',
  'DELETE',
  'TRACE',
]);

/** The part of a response the policy reads: undici's `ResponseData` fits. */
export interface RetryableResponse {
  readonly statusCode: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: { dump(): Promise<unknown> };
}

/** One call run through the policy: what it logs and counts, and how to make an attempt. */
export interface RetryCall<T extends RetryableResponse> {
  /** The `dependency` label and the `service` log field. */
  readonly dependency: string;
  readonly method: string;
  /** As logged: secrets already redacted. */
  readonly path: string;
  /**
   * True when any retryable failure may be retried; false when only failures that prove
   * the request was not sent (no connection) may be.
   */
  readonly idempotent: boolean;
  /** The call's span, for the `retry` and `retry.give_up` events. */
  readonly span?: Span | undefined;
  /** The caller's signal: once aborted, no further attempt is made. */
  readonly signal?: AbortSignal | undefined;
  /** Make attempt number `resend` + 1 (`resend` is 0 for the first attempt). */
  attempt(resend: number): Promise<T>;
}

type Resolved = Readonly<Required<RetryOptions>>;

function resolve(input: RetryOptions): Resolved {
  const options = { ...defaultRetryOptions, ...input };
  const wholeAtLeast = (name: keyof RetryOptions, value: number, min: number) => {
    if (!Number.isSafeInteger(value) || value < min)
      throw new RangeError(`retry.${name} must be a whole number >= ${min}, got ${value}`);
  };
  wholeAtLeast('attempts', options.attempts, 1);
  wholeAtLeast('initialDelayMs', options.initialDelayMs, 0);
  wholeAtLeast('maxDelayMs', options.maxDelayMs, 0);
  if (options.maxDelayMs < options.initialDelayMs)
    throw new RangeError(
      `retry.maxDelayMs (${options.maxDelayMs}) must not be below retry.initialDelayMs (${options.initialDelayMs})`,
    );
  return Object.freeze({ ...options, retryStatuses: Object.freeze([...options.retryStatuses]) });
}

/**
 * Exponential backoff with jitter: retry n waits a uniform draw from
 * [0.5, 1.5) × initialDelay × 2^(n-1), capped at maxDelay. The mean follows the plain
 * doubling; the spread keeps a fleet of clients from retrying in lockstep.
 */
const jitteredDoubling: GeneratorFn<number> = (attempt = 0, options) => [
  Math.min(options.maxDelay, options.initialDelay * 2 ** attempt * (0.5 + Math.random())),
  attempt + 1,
];

const noop = () => {};

/**
 * Retries HTTP calls on timeouts, network errors and retryable statuses (429, 502, 503,
 * 504 by default), built on cockatiel's `RetryPolicy`. A `Retry-After` header (seconds
 * or an HTTP date) replaces the backoff, up to `maxDelayMs`. Before each sleep it logs
 * "retrying downstream call" at warn (`retry_attempt`, `delay_ms`, `status_code` or
 * `error`), counts `resilience_events_total{policy="retry",event="retry"}` and adds a
 * `retry` event to the call's span; after the last failed attempt it logs "giving up on
 * downstream call" at error and counts `give_up`. A `BrokenCircuitError` is never retried.
 *
 * Usually reached through `InstrumentedClient`'s `retry` option or `callWithRetry`.
 */
export class HttpRetryPolicy {
  /** The options in force, defaults filled in. */
  readonly options: Resolved;
  readonly #retryStatuses: ReadonlySet<number>;
  readonly #anyFailure: Policy;
  readonly #notSent: Policy;
  readonly #backoff: DelegateBackoff<IRetryBackoffContext<unknown>, IBackoff<unknown>>;

  constructor(options: RetryOptions = {}) {
    this.options = resolve(options);
    const statuses = new Set(this.options.retryStatuses);
    this.#retryStatuses = statuses;
    this.#anyFailure = handleWhen(isRetryableError).orWhenResult(
      (r) => typeof r === 'object' && r !== null && statuses.has((r as RetryableResponse).statusCode),
    );
    this.#notSent = handleWhen(isConnectError);
    const exponential = new ExponentialBackoff({
      generator: jitteredDoubling,
      initialDelay: this.options.initialDelayMs,
      maxDelay: this.options.maxDelayMs,
    });
    const cap = this.options.maxDelayMs;
    this.#backoff = new DelegateBackoff((ctx, previous?: IBackoff<unknown>) => {
      const next = previous === undefined ? exponential.next() : previous.next(ctx);
      const asked =
        'value' in ctx.result
          ? retryAfterMs((ctx.result.value as RetryableResponse).headers['retry-after'])
          : undefined;
      return { delay: Math.round(asked === undefined ? next.duration : Math.min(asked, cap)), state: next };
    });
  }

  /**
   * Whether every retryable failure of this request may be retried: an idempotent method,
   * an `Idempotency-Key` header, or `retryNonIdempotent`. Otherwise only failures where
   * the request was certainly not sent are.
   */
  retriesAnyFailure(method: string, headers: unknown): boolean {
    return (
      this.options.retryNonIdempotent ||
      idempotentMethods.has(method.toUpperCase()) ||
      hasHeader(headers, 'idempotency-key')
    );
  }

  /** Whether this status would be retried. */
  retriesStatus(statusCode: number): boolean {
    return this.#retryStatuses.has(statusCode);
  }

  /**
   * Run `call.attempt` until it succeeds, fails in a way that is not retried, or the
   * attempts are spent; the last outcome (a response or an error) is the result.
   */
  execute<T extends RetryableResponse>(call: RetryCall<T>): Promise<T> {
    // One cockatiel policy per call: its retry/give-up events carry no call identity, and
    // the log lines must name the call. Only calls that may retry pay for it.
    const policy = retry(call.idempotent ? this.#anyFailure : this.#notSent, {
      maxAttempts: this.options.attempts - 1,
      backoff: this.#backoff,
    });
    let made = 0;
    policy.onRetry((event) => this.#onRetry(call, event));
    policy.onGiveUp((reason) => this.#onGiveUp(call, reason, made));
    return policy.execute(({ attempt }) => {
      // The backoff sleep cannot be interrupted; a caller who gave up meanwhile gets their
      // abort reason instead of another attempt.
      if (call.signal?.aborted) throw call.signal.reason;
      made = attempt + 1;
      return call.attempt(attempt);
    }, call.signal);
  }

  #onRetry<T extends RetryableResponse>(
    call: RetryCall<T>,
    event: FailureReason<unknown> & { delay: number; attempt: number },
  ): void {
    const fields: Record<string, unknown> = {
      service: call.dependency,
      method: call.method,
      path: call.path,
      retry_attempt: event.attempt,
      delay_ms: event.delay,
    };
    const spanAttributes: Record<string, string | number> = {
      'retry.attempt': event.attempt,
      'retry.delay_ms': event.delay,
    };
    if ('value' in event) {
      const response = event.value as RetryableResponse;
      fields.status_code = response.statusCode;
      spanAttributes['http.response.status_code'] = response.statusCode;
      // The response is dropped: read its body off the connection so it can be reused.
      response.body.dump().then(noop, noop);
    } else {
      fields.error = errorMessage(event.error);
      spanAttributes['error.type'] = errorType(event.error);
    }
    logger.warn(fields, 'retrying downstream call');
    recordResilienceEvent(call.dependency, 'retry', 'retry');
    call.span?.addEvent('retry', spanAttributes);
  }

  #onGiveUp<T extends RetryableResponse>(
    call: RetryCall<T>,
    reason: FailureReason<unknown>,
    attempts: number,
  ): void {
    const fields: Record<string, unknown> = {
      service: call.dependency,
      method: call.method,
      path: call.path,
      attempts,
    };
    if ('value' in reason) fields.status_code = (reason.value as RetryableResponse).statusCode;
    else fields.error = errorMessage(reason.error);
    logger.error(fields, 'giving up on downstream call');
    recordResilienceEvent(call.dependency, 'retry', 'give_up');
    call.span?.addEvent('retry.give_up', { 'retry.attempts': attempts });
  }
}

/** Whether undici-style `headers` (an object, a flat array or pairs) name `lowerName`. */
function hasHeader(headers: unknown, lowerName: string): boolean {
  if (headers === null || headers === undefined || typeof headers !== 'object') return false;
  if (Array.isArray(headers)) {
    if (Array.isArray(headers[0])) {
      // [[name, value], ...]
      for (const pair of headers as unknown[][]) if (String(pair[0]).toLowerCase() === lowerName) return true;
      return false;
    }
    // [name, value, name, value, ...]
    for (let i = 0; i < headers.length; i += 2)
      if (String(headers[i]).toLowerCase() === lowerName) return true;
    return false;
  }
  if (
    typeof (headers as { get?: unknown }).get === 'function' &&
    typeof (headers as Headers).has === 'function'
  )
    return (headers as Headers).has(lowerName);
  for (const key in headers) if (key.toLowerCase() === lowerName) return true;
  return false;
}
