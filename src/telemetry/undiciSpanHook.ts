import { type Attributes, type Context, context, createContextKey } from '@opentelemetry/api';
import {
  ATTR_HTTP_REQUEST_RESEND_COUNT,
  ATTR_URL_FULL,
  ATTR_URL_QUERY,
} from '@opentelemetry/semantic-conventions';
import { redactQuery } from '../secrets.ts';

/**
 * The context key of a resend: InstrumentedClient sets it around the 2nd, 3rd... attempt
 * of a call, so that the undici instrumentation's span for that attempt carries
 * `http.request.resend_count` (the span is created inside undici, where nothing else of
 * ours can reach it).
 */
export const resendCountKey: symbol = createContextKey('otel-service-kit http.request.resend_count');

/** `ctx` marking the requests started in it as resend number `count` (1 for the first retry). */
export function withResendCount(ctx: Context, count: number): Context {
  return ctx.setValue(resendCountKey, count);
}

const none: Attributes = Object.freeze({});

/**
 * The undici instrumentation's `startSpanHook`: adds `http.request.resend_count` on
 * resends, and replaces `url.full`/`url.query` by their redacted form when the query
 * carries a secret (token, signature, ...). It runs inside undici for every request, so
 * the common case (no query, not a resend) allocates nothing.
 *
 * @example
 * new UndiciInstrumentation({ startSpanHook: undiciStartSpanHook })
 */
export function undiciStartSpanHook(request: { origin?: unknown; path: string }): Attributes {
  const resend = context.active().getValue(resendCountKey);
  const path = request.path;
  const q = path.indexOf('?');
  if (resend === undefined && q === -1) return none;
  const attributes: Attributes = {};
  if (typeof resend === 'number') attributes[ATTR_HTTP_REQUEST_RESEND_COUNT] = resend;
  if (q !== -1) {
    const redacted = redactQuery(path);
    if (redacted !== path) {
      const rq = redacted.indexOf('?');
      attributes[ATTR_URL_QUERY] = rq === -1 ? '' : redacted.slice(rq + 1);
      attributes[ATTR_URL_FULL] = `${String(request.origin ?? '')}${redacted}`;
    }
  }
  return attributes;
}
