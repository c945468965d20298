/**
 * The delay a `Retry-After` header asks for, in ms: delta-seconds (`120`) or an HTTP
 * date (`Wed, 21 Oct 2015 07:28:00 GMT`, 0 when already past). `undefined` when the
 * header is absent or unreadable, so the caller falls back to its own backoff.
 *
 * @example
 * retryAfterMs('2')                                     // 2000
 * retryAfterMs('Wed, 21 Oct 2015 07:28:00 GMT', now)    // ms until then, or 0
 */
export function retryAfterMs(
  header: string | string[] | undefined,
  now: number = Date.now(),
): number | undefined {
  const value = (Array.isArray(header) ? header[0] : header)?.trim();
  if (value === undefined || value === '') return undefined;
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP date always names the weekday or month in letters; this keeps Date.parse
  // from reading odd numbers ("-1", "1.5") as years.
  if (!/[A-Za-z]/.test(value)) return undefined;
  const at = Date.parse(value);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
