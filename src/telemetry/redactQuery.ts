/**
 * Query parameters whose values never reach a log line or a span, compared
 * case-insensitively: credentials, tokens, OAuth codes and presigned-URL signatures.
 */
export const secretQueryParams: readonly string[] = Object.freeze([
  'token',
  'access_token',
  'refresh_token',
  'id_token',
  'jwt',
  'auth',
  'authorization',
  'api_key',
  'apikey',
  'api-key',
  'key',
  'sig',
  'signature',
  'x-amz-signature',
  'x-amz-credential',
  'x-amz-security-token',
  'x-goog-signature',
  'x-goog-credential',
  'password',
  'passwd',
  'pwd',
  'secret',
  'client_secret',
  'code',
  'session',
  'sessionid',
]);

const secret = new Set(secretQueryParams);

/** The value put in place of a secret, as the OpenTelemetry semantic conventions spell it for `url.full`. */
export const redactedValue = 'REDACTED';

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return raw.toLowerCase();
  }
}

/**
 * A path or URL with the values of secret query parameters replaced by `REDACTED` and
 * any fragment dropped. Without a query the string is returned as it is, so the common
 * case costs one `indexOf`.
 *
 * @example
 * redactQuery('/v1/files?token=abc&page=2') // '/v1/files?token=REDACTED&page=2'
 */
export function redactQuery(target: string): string {
  const q = target.indexOf('?');
  if (q === -1) {
    const hash = target.indexOf('#');
    return hash === -1 ? target : target.slice(0, hash);
  }
  const hash = target.indexOf('#', q);
  const query = hash === -1 ? target.slice(q + 1) : target.slice(q + 1, hash);
  const parts = query.split('&');
  let changed = hash !== -1;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (secret.has(paramName(part.slice(0, eq)))) {
      parts[i] = `${part.slice(0, eq + 1)}${redactedValue}`;
      changed = true;
    }
  }
  return changed ? `${target.slice(0, q + 1)}${parts.join('&')}` : target;
}
