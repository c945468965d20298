import { isBrokenCircuitError } from 'cockatiel';

/**
 * What a failed attempt's error says about the request: it timed out, it was aborted by
 * the caller, it never left (no connection), or the network failed in a way that a new
 * attempt may get past. Errors are recognised by their `code`/`name`, so undici's,
 * Node's and cockatiel's errors are told apart across duplicate package copies.
 */

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

function nameOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

const timeoutCodes = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
]);

/** Errors raised before a connection existed: the request was certainly not sent. */
const connectCodes = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
]);

/** Transient network failures worth another attempt (undici's own retry list, plus timeouts). */
const retryableCodes = new Set([
  ...connectCodes,
  ...timeoutCodes,
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'UND_ERR_SOCKET',
]);

/**
 * The first code found on the error or, for an `AggregateError` (Node's happy-eyeballs
 * connect tries every address), on its inner errors.
 */
export function transportErrorCode(error: unknown): string | undefined {
  const code = codeOf(error);
  if (code !== undefined) return code;
  const inner = (error as { errors?: unknown } | null)?.errors;
  if (Array.isArray(inner)) {
    for (const e of inner) {
      const c = codeOf(e);
      if (c !== undefined) return c;
    }
  }
  return undefined;
}

/** An attempt that ran out of time: connect, response headers or body. */
export function isTimeoutError(error: unknown): boolean {
  const code = transportErrorCode(error);
  return (code !== undefined && timeoutCodes.has(code)) || nameOf(error) === 'TimeoutError';
}

/** Aborted through the caller's `AbortSignal`: never retried, not the dependency's fault. */
export function isAbortError(error: unknown): boolean {
  const name = nameOf(error);
  return name === 'AbortError' || codeOf(error) === 'UND_ERR_ABORTED' || codeOf(error) === 'ABORT_ERR';
}

/** No connection could be made, so the request was not sent: safe to retry whatever the method. */
export function isConnectError(error: unknown): boolean {
  const code = transportErrorCode(error);
  return code !== undefined && connectCodes.has(code);
}

/** A transient network failure or timeout: another attempt may succeed. */
export function isRetryableError(error: unknown): boolean {
  if (isAbortError(error)) return false;
  const code = transportErrorCode(error);
  return (code !== undefined && retryableCodes.has(code)) || nameOf(error) === 'TimeoutError';
}

/** A short text for a log line or a span status: the message, else the code, else the name. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    if (error.message !== '') return error.message;
    return transportErrorCode(error) ?? error.name;
  }
  return String(error);
}

/**
 * The `error.type` of a span or span event: the error's code (undici's, Node's), else its
 * name; `BrokenCircuitError` for cockatiel's, whose name is plain `Error`.
 */
export function errorType(error: unknown): string {
  if (isBrokenCircuitError(error)) return 'BrokenCircuitError';
  return transportErrorCode(error) ?? (error instanceof Error ? error.name : 'Error');
}
