import { context, type Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_URL_FULL,
} from '@opentelemetry/semantic-conventions';
import { type CircuitBreakerPolicy, isBrokenCircuitError } from 'cockatiel';
import { type Dispatcher, errors, Pool } from 'undici';
import { logger } from '../logging/logger.ts';
import { type CircuitBreakerOptions, createCircuitBreaker } from '../resilience/createCircuitBreaker.ts';
import { HttpRetryPolicy, type RetryOptions } from '../resilience/HttpRetryPolicy.ts';
import { timeouts } from '../resilience/timeouts.ts';
import { describeError, isTimeoutError, transportErrorCode } from '../resilience/transportErrors.ts';
import { redactQuery } from '../secrets.ts';
import { classifyStatus } from '../telemetry/classifyStatus.ts';
import { recordHttpClientRequest } from '../telemetry/instruments.ts';
import { recordResilienceEvent } from '../telemetry/resilienceInstruments.ts';
import { withResendCount } from '../telemetry/undiciSpanHook.ts';

/** How to build an `InstrumentedClient`. `service` and `baseUrl` are required; see `defaultClientOptions`. */
export interface InstrumentedClientOptions {
  /**
   * The dependency's name: the `service` label and log field, and the key of its
   * timeout (`payment-api` reads `PAYMENT_API_TIMEOUT_MS`). Required.
   */
  service: string;
  /** Origin and optional base path, e.g. `https://payments.internal/v1`. No credentials, query or fragment. Required. */
  baseUrl: string;
  /**
   * Per-attempt timeout in ms, for connecting and for the wait from sending the request
   * to its response headers; also the longest pause between two body chunks.
   * Default: `timeouts.get(service)` (`<SERVICE>_TIMEOUT_MS`, else the built-in default).
   */
  timeoutMs?: number;
  /** Retries for every call: `true` for `defaultRetryOptions`, options, or `false`. Default false (a call may still ask). */
  retry?: boolean | RetryOptions;
  /**
   * A circuit breaker around every attempt: one shared breaker from `createCircuitBreaker`,
   * `true` for one named after the service with the defaults, options, or `false`. Default false.
   */
  circuitBreaker?: boolean | CircuitBreakerPolicy | (Omit<CircuitBreakerOptions, 'name'> & { name?: string });
  /** Most connections kept open to the origin; `null` for no limit. Default null (undici's). */
  connections?: number | null;
  /** How long an idle keep-alive connection is kept, in ms. Default 4000 (undici's). */
  keepAliveTimeoutMs?: number;
}

/** The defaults of `InstrumentedClientOptions` (`timeoutMs` defaults to `timeouts.get(service)`). */
export const defaultClientOptions = Object.freeze({
  retry: false,
  circuitBreaker: false,
  connections: null,
  keepAliveTimeoutMs: 4000,
} as const satisfies Omit<InstrumentedClientOptions, 'service' | 'baseUrl' | 'timeoutMs'>);

/** Options of one call. */
export interface ClientRequestOptions {
  /** Request headers; never logged. */
  headers?: Dispatcher.RequestOptions['headers'];
  /** Request body. A stream cannot be sent twice, so a call with one is not retried. */
  body?: Dispatcher.RequestOptions['body'];
  /** Aborts the call, and stops its retries. */
  signal?: AbortSignal;
  /** This call's per-attempt timeout in ms, in place of the client's. */
  timeoutMs?: number;
  /**
   * This call's retries: `false` for none, `true` for the client's retry options (or the
   * defaults when it has none), or options. Default: the client's.
   */
  retry?: boolean | RetryOptions;
}

/** undici's response: `statusCode`, `headers`, `body` (read it, or `body.dump()` it, to free the connection). */
export type ClientResponse = Dispatcher.ResponseData;

const tracer = trace.getTracer('otel-service-kit');
const noOptions: ClientRequestOptions = Object.freeze({});
const canonicalMethods = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'DELETE',
  'PATCH',
  'OPTIONS',
  'TRACE',
  'QUERY',
]);
/** `peer.service`: the name Jaeger's dependency graph draws an outbound call to. */
const ATTR_PEER_SERVICE = 'peer.service';
let defaultRetryPolicy: HttpRetryPolicy | undefined;
/** Per-call retry options become a policy once per options object. */
const callPolicies = new WeakMap<RetryOptions, HttpRetryPolicy>();

/**
 * An outbound HTTP client for one dependency, on an undici keep-alive pool: the seed's
 * instrumented client with retries, a circuit breaker and per-dependency timeouts.
 *
 * Each call is one span (`<METHOD> <service>`, INTERNAL) around one undici CLIENT span
 * per attempt (`http.request.resend_count` on resends). Each attempt records
 * `http_client_requests_total{service,method,status_class}` and
 * `http_client_request_duration_seconds{service,method}` and logs "downstream request
 * completed" (info: `service`, `method`, `path`, `status_code`, `status_class`,
 * `duration_ms`), or "downstream request timed out" / "downstream request failed"
 * (error). Headers are never logged; secret query parameters are redacted from logged
 * paths and span URLs. Timings run to the response headers.
 *
 * @example
 * const payments = new InstrumentedClient({ service: 'payment-api', baseUrl: 'https://payments.internal', retry: true, circuitBreaker: true });
 * const res = await payments.request('GET', '/v1/charges/ch_1');
 * const charge = await res.body.json();
 */
export class InstrumentedClient {
  /** The dependency's name, as in labels and logs. */
  readonly service: string;
  /** The per-attempt timeout in force, in ms. */
  readonly timeoutMs: number;
  /** The breaker around every attempt, if any. */
  readonly circuitBreaker: CircuitBreakerPolicy | undefined;
  readonly #pool: Pool;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #retry: HttpRetryPolicy | undefined;
  readonly #spanNames = new Map<string, string>();

  constructor(options: InstrumentedClientOptions) {
    const o = { ...defaultClientOptions, ...options };
    if (typeof o.service !== 'string' || o.service.trim() === '')
      throw new TypeError('InstrumentedClient: service is required');
    this.service = o.service;
    const url = parseBaseUrl(o.baseUrl);
    this.#origin = url.origin;
    this.#basePath = url.pathname === '/' ? '' : url.pathname.replace(/\/+$/, '');
    this.timeoutMs = o.timeoutMs ?? timeouts.get(o.service);
    if (!isTimeout(this.timeoutMs)) throw timeoutRangeError(this.timeoutMs);
    this.#retry =
      o.retry === false ? undefined : o.retry === true ? sharedDefaultRetry() : new HttpRetryPolicy(o.retry);
    this.circuitBreaker = resolveBreaker(o.circuitBreaker, o.service);
    this.#pool = new Pool(this.#origin, {
      connections: o.connections,
      keepAliveTimeout: o.keepAliveTimeoutMs,
      bodyTimeout: this.timeoutMs,
      connect: { timeout: this.timeoutMs },
    });
  }

  /**
   * Send `method path` (relative to `baseUrl`), with the client's retries and breaker.
   * Resolves with undici's response once its headers arrive, whatever the status (the
   * last attempt's, when retries are spent); rejects with the last attempt's error, or
   * cockatiel's `BrokenCircuitError` when the breaker is open.
   */
  request(
    method: Dispatcher.HttpMethod,
    path: string,
    options: ClientRequestOptions = noOptions,
  ): Promise<ClientResponse> {
    const m = canonicalMethods.has(method) ? method : method.toUpperCase();
    if (!path.startsWith('/')) path = `/${path}`;
    const fullPath = this.#basePath === '' ? path : this.#basePath + path;
    const loggedPath = redactQuery(fullPath);
    if (options.timeoutMs !== undefined && !isTimeout(options.timeoutMs))
      return Promise.reject(timeoutRangeError(options.timeoutMs));
    const span = tracer.startSpan(this.#spanName(m), {
      kind: SpanKind.INTERNAL,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: m,
        [ATTR_URL_FULL]: this.#origin + loggedPath,
        [ATTR_PEER_SERVICE]: this.service,
      },
    });
    return context.with(
      trace.setSpan(context.active(), span),
      this.#call,
      this,
      m,
      fullPath,
      loggedPath,
      options,
      span,
    );
  }

  /** Close the pool: calls in flight finish, later ones reject. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  async #call(
    method: string,
    fullPath: string,
    loggedPath: string,
    options: ClientRequestOptions,
    span: Span,
  ): Promise<ClientResponse> {
    try {
      const response = await this.#execute(method, fullPath, loggedPath, options, span);
      if (span.isRecording()) {
        span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, response.statusCode);
        if (response.statusCode >= 400) {
          span.setAttribute(ATTR_ERROR_TYPE, String(response.statusCode));
          span.setStatus({ code: SpanStatusCode.ERROR });
        }
      }
      return response;
    } catch (error) {
      if (span.isRecording()) {
        span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
        if (error instanceof Error) span.recordException(error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: describeError(error) });
      }
      throw error;
    } finally {
      span.end();
    }
  }

  #execute(
    method: string,
    fullPath: string,
    loggedPath: string,
    options: ClientRequestOptions,
    span: Span,
  ): Promise<ClientResponse> {
    const policy = this.#retryFor(options.retry);
    if (policy === undefined || !replayable(options.body)) {
      return this.#guarded(method, fullPath, loggedPath, options, 0);
    }
    return policy.execute({
      dependency: this.service,
      method,
      path: loggedPath,
      idempotent: policy.isIdempotent(method, options.headers),
      span,
      signal: options.signal,
      attempt: (resend) => this.#guarded(method, fullPath, loggedPath, options, resend),
    });
  }

  #guarded(
    method: string,
    fullPath: string,
    loggedPath: string,
    options: ClientRequestOptions,
    resend: number,
  ): Promise<ClientResponse> {
    const breaker = this.circuitBreaker;
    if (breaker === undefined) return this.#attempt(method, fullPath, loggedPath, options, resend);
    return breaker.execute(() => this.#attempt(method, fullPath, loggedPath, options, resend));
  }

  async #attempt(
    method: string,
    fullPath: string,
    loggedPath: string,
    options: ClientRequestOptions,
    resend: number,
  ): Promise<ClientResponse> {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    // undici's own headersTimeout runs on its coarse timers (about a second late for a
    // 200 ms limit) and does not cover waiting for a connection: the attempt's deadline is
    // a plain timer that aborts it.
    const deadline = new AbortController();
    const timer = setTimeout(abortAttempt, timeoutMs, deadline, timeoutMs);
    timer.unref();
    const request: Dispatcher.RequestOptions = {
      method,
      path: fullPath,
      headers: options.headers,
      body: options.body,
      signal:
        options.signal === undefined ? deadline.signal : AbortSignal.any([options.signal, deadline.signal]),
    };
    if (options.timeoutMs !== undefined) request.bodyTimeout = options.timeoutMs;
    const start = performance.now();
    let response: ClientResponse;
    try {
      response =
        resend === 0
          ? await this.#pool.request(request)
          : // The undici span of this attempt is created inside this call: the context
            // tells the span hook it is a resend.
            await context.with(withResendCount(context.active(), resend), () => this.#pool.request(request));
      clearTimeout(timer);
    } catch (error) {
      clearTimeout(timer);
      const ms = performance.now() - start;
      recordHttpClientRequest(this.service, method, undefined, error, ms / 1000);
      const timedOut = isTimeoutError(error);
      if (timedOut) recordResilienceEvent(this.service, 'timeout', 'timeout');
      if (logger.isLevelEnabled('error')) {
        const fields: Record<string, unknown> = {
          service: this.service,
          method,
          path: loggedPath,
          duration_ms: Math.round(ms * 100) / 100,
          error: describeError(error),
        };
        const code = transportErrorCode(error);
        if (code !== undefined) fields.error_code = code;
        if (resend > 0) fields.retry_attempt = resend;
        logger.error(fields, timedOut ? 'downstream request timed out' : 'downstream request failed');
      }
      throw error;
    }
    const ms = performance.now() - start;
    const statusCode = response.statusCode;
    recordHttpClientRequest(this.service, method, statusCode, undefined, ms / 1000);
    if (logger.isLevelEnabled('info')) {
      logger.info(
        {
          service: this.service,
          method,
          path: loggedPath,
          status_code: statusCode,
          status_class: classifyStatus(statusCode),
          duration_ms: Math.round(ms * 100) / 100,
        },
        'downstream request completed',
      );
    }
    return response;
  }

  #retryFor(retry: boolean | RetryOptions | undefined): HttpRetryPolicy | undefined {
    if (retry === undefined) return this.#retry;
    if (retry === false) return undefined;
    if (retry === true) return this.#retry ?? sharedDefaultRetry();
    let policy = callPolicies.get(retry);
    if (policy === undefined) {
      policy = new HttpRetryPolicy(retry);
      callPolicies.set(retry, policy);
    }
    return policy;
  }

  #spanName(method: string): string {
    let name = this.#spanNames.get(method);
    if (name === undefined) {
      name = `${method} ${this.service}`;
      if (this.#spanNames.size < 32) this.#spanNames.set(method, name);
    }
    return name;
  }
}

function abortAttempt(deadline: AbortController, ms: number): void {
  deadline.abort(new errors.HeadersTimeoutError(`no response within ${ms} ms`));
}

function sharedDefaultRetry(): HttpRetryPolicy {
  defaultRetryPolicy ??= new HttpRetryPolicy();
  return defaultRetryPolicy;
}

function resolveBreaker(
  option: InstrumentedClientOptions['circuitBreaker'],
  service: string,
): CircuitBreakerPolicy | undefined {
  if (option === undefined || option === false) return undefined;
  if (option === true) return createCircuitBreaker({ name: service });
  if (typeof (option as CircuitBreakerPolicy).execute === 'function') return option as CircuitBreakerPolicy;
  const given = option as Omit<CircuitBreakerOptions, 'name'> & { name?: string };
  return createCircuitBreaker({ ...given, name: given.name ?? service });
}

function parseBaseUrl(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`InstrumentedClient: baseUrl ${JSON.stringify(baseUrl)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new TypeError(`InstrumentedClient: baseUrl must be http or https, got ${url.protocol}`);
  // Credentials in a URL end up in logs and spans; a header is the place for them.
  if (url.username !== '' || url.password !== '')
    throw new TypeError(
      'InstrumentedClient: baseUrl must not carry credentials; send an Authorization header',
    );
  if (url.search !== '' || url.hash !== '')
    throw new TypeError('InstrumentedClient: baseUrl must not carry a query or fragment');
  return url;
}

function isTimeout(ms: number): boolean {
  return Number.isSafeInteger(ms) && ms >= 1;
}

function timeoutRangeError(ms: number): RangeError {
  return new RangeError(`InstrumentedClient: timeoutMs must be a positive whole number of ms, got ${ms}`);
}

/** Bodies that can be sent again on a retry: none, strings, bytes and form data, not streams. */
function replayable(body: ClientRequestOptions['body']): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    ArrayBuffer.isView(body) ||
    body instanceof FormData
  );
}

function errorType(error: unknown): string {
  // cockatiel's error keeps the name "Error"; its guard knows it.
  if (isBrokenCircuitError(error)) return 'BrokenCircuitError';
  return transportErrorCode(error) ?? (error instanceof Error ? error.name : 'Error');
}
