import { randomUUID } from 'node:crypto';

/** The request-id header, as Node lower-cases it on `req.headers`. */
export const requestIdHeader = 'x-request-id';

/**
 * A sane request id: 1 to 128 characters of letters, digits and `.`, `_`, `:`, `-`.
 * UUIDs, ULIDs, hex trace ids and most gateway-made ids pass; anything that could
 * forge a log line or a header (CR/LF, quotes, braces, commas, spaces, non-ASCII) or
 * bloat every line of a request (kilobytes of it) does not.
 */
const sane = /^[A-Za-z0-9._:-]{1,128}$/;

/** True when `value` may be echoed and logged as it is. */
export function isSaneRequestId(value: unknown): value is string {
  return typeof value === 'string' && sane.test(value);
}

/**
 * The id of a request: the incoming `X-Request-ID` when it is sane, otherwise a new
 * UUID. The raw header is never returned, so it never reaches a log line or a
 * response. Several headers of that name arrive joined with `, ` and are replaced.
 */
export function requestIdFrom(header: string | readonly string[] | undefined): string {
  return isSaneRequestId(header) ? header : randomUUID();
}
