/**
 * The one list of secret names. Log fields, query parameters, headers and resource
 * attributes whose name matches are never written out: not in a log line, a span, a
 * metric label or a resource attribute.
 *
 * Names are compared case-insensitively and with `-` and `_` ignored, so `Authorization`,
 * `X-API-KEY`, `api_key` and `apiKey` all match. A name matches when it contains one of
 * `secretWords` (`db_password`, `X-Auth-Token`, `stripeSecret`) or equals one of
 * `secretNames`.
 */

/** A name that contains one of these (after normalising) is a secret. */
export const secretWords: readonly string[] = Object.freeze([
  'authorization',
  'cookie',
  'password',
  'passwd',
  'secret',
  'token',
  'apikey',
  'credential',
  'signature',
  'privatekey',
]);

/** A name equal to one of these (after normalising) is a secret. */
export const secretNames: readonly string[] = Object.freeze(['pwd', 'jwt', 'sessionid', 'awsaccesskeyid']);

/**
 * Short names that are secrets only as URL query parameters (`?key=`, `?code=` of an OAuth
 * redirect, `?sig=`): as log fields they are ordinary (`err.code`, an S3 object `key`).
 */
export const secretQueryOnlyNames: readonly string[] = Object.freeze([
  'key',
  'code',
  'sig',
  'auth',
  'session',
]);

/** What a secret value is replaced by, as the semantic conventions spell it for `url.full`. */
export const redactedValue = 'REDACTED';

const words = secretWords;
const exact = new Set(secretNames);
const queryOnly = new Set(secretQueryOnlyNames);

function normalise(name: string): string {
  return name.toLowerCase().replace(/[-_\s]/g, '');
}

function matches(normalised: string): boolean {
  if (exact.has(normalised)) return true;
  for (const word of words) if (normalised.includes(word)) return true;
  return false;
}

// Field names repeat from line to line: the verdict is cached per name, so a log line
// pays one Map lookup per field. Bounded: past the cap, names are judged afresh.
const verdicts = new Map<string, boolean>();
const verdictCap = 4096;

/** True when a field, header or attribute called `name` holds a secret. */
export function isSecretName(name: string): boolean {
  let verdict = verdicts.get(name);
  if (verdict === undefined) {
    verdict = matches(normalise(name));
    if (verdicts.size < verdictCap) verdicts.set(name, verdict);
  }
  return verdict;
}

/** True when a URL query parameter called `name` holds a secret. */
function isSecretQueryParam(name: string): boolean {
  if (isSecretName(name)) return true;
  return queryOnly.has(normalise(name));
}

function paramName(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * A path or URL with the values of secret query parameters replaced by `REDACTED`, URL
 * credentials (`user:pass@`) replaced too, and any fragment dropped. Without a query,
 * fragment or credentials the string is returned as it is, so the common case costs a
 * few `indexOf`s.
 *
 * @example
 * redactQuery('/v1/files?token=abc&page=2') // '/v1/files?token=REDACTED&page=2'
 */
export function redactQuery(target: string): string {
  target = redactCredentials(target);
  const q = target.indexOf('?');
  if (q === -1) {
    const hash = target.indexOf('#');
    return hash === -1 ? target : target.slice(0, hash);
  }
  const hash = target.indexOf('#', q);
  const query = hash === -1 ? target.slice(q + 1) : target.slice(q + 1, hash);
  const redacted = redactQueryString(query);
  if (redacted === query && hash === -1) return target;
  return `${target.slice(0, q + 1)}${redacted}`;
}

/** A query string (without `?`) with the values of secret parameters replaced by `REDACTED`. */
function redactQueryString(query: string): string {
  const parts = query.split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    if (isSecretQueryParam(paramName(part.slice(0, eq)))) {
      parts[i] = `${part.slice(0, eq + 1)}${redactedValue}`;
      changed = true;
    }
  }
  return changed ? parts.join('&') : query;
}

/** `scheme://user:pass@host/...` with the user and password replaced by `REDACTED`. */
function redactCredentials(target: string): string {
  const scheme = target.indexOf('://');
  if (scheme === -1) return target;
  const start = scheme + 3;
  // Most URLs have no '@' at all: one search, no array (3 µs of every client span, --cpu-prof).
  if (target.indexOf('@', start) === -1) return target;
  let end = target.length;
  for (const c of ['/', '?', '#']) {
    const i = target.indexOf(c, start);
    if (i !== -1 && i < end) end = i;
  }
  const at = target.lastIndexOf('@', end);
  if (at < start) return target;
  return `${target.slice(0, start)}${redactedValue}:${redactedValue}${target.slice(at)}`;
}

// A raw HTTP header block in a string (`ClientRequest#_header` in an axios error).
const headerLine = /^([\w-]+)[ \t]*:[ \t]*([^\r\n]*)$/gm;

/**
 * A free-text value with secrets taken out: URLs get `redactQuery`, and lines of a raw
 * header block whose header is a secret (`Authorization: Bearer …`) lose their value.
 * Returns the string itself when there is nothing to take out.
 */
export function redactText(value: string): string {
  let out = value;
  if (out.includes('://') || (out.includes('?') && out.includes('='))) {
    // Each URL-ish word on its own, so a sentence around it is kept.
    out = out.replace(/[^\s"'<>]*[?@][^\s"'<>]*/g, (word) => redactQuery(word));
  }
  if (out.includes('\n') && out.includes(':')) {
    out = out.replace(headerLine, (line, name: string) =>
      isSecretName(name) ? `${name}: ${redactedValue}` : line,
    );
  }
  return out;
}

/** What a secret field of a log line is replaced by. */
const redactedField = '[REDACTED]';

/** How deep `redactSecrets` looks into nested objects (`err.response.config.headers.Authorization` is 4). */
const maxDepth = 6;
/** How many elements of an array it looks at. */
const maxElements = 64;

/**
 * `value` with every secret taken out: fields whose name is a secret (at any depth up to
 * 6, in plain objects, errors and class instances alike) become `[REDACTED]`, and strings
 * go through `redactText`. Nothing is mutated: an object that holds a secret is copied
 * (keeping its prototype, so an Error stays an Error), one that holds none is returned
 * as it is, so a line without secrets allocates nothing.
 */
export function redactSecrets<T>(value: T): T {
  return redactValue(value, 0) as T;
}

/** What `redactSecrets` makes of the field `key` of a line, whose value is `value`. */
export function redactField(key: string, value: unknown): unknown {
  return redactEntry(key, value, 1);
}

/** A field of an object at `depth`: a secret by its name, or its value redacted. */
function redactEntry(key: string, value: unknown, depth: number): unknown {
  return isSecretName(key) ? (value == null ? value : redactedField) : redactValue(value, depth);
}

function redactValue(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return value.length < 8 ? value : redactText(value);
  if (value === null || typeof value !== 'object' || depth >= maxDepth) return value;
  if (Array.isArray(value)) {
    let out: unknown[] | undefined;
    const n = Math.min(value.length, maxElements);
    for (let i = 0; i < n; i++) {
      const v = value[i];
      const r = redactValue(v, depth + 1);
      if (r !== v) {
        out ??= value.slice();
        out[i] = r;
      }
    }
    return out ?? value;
  }
  if (ArrayBuffer.isView(value) || value instanceof Map || value instanceof Set || value instanceof Date)
    return value;
  let out: Record<string, unknown> | undefined;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    let v: unknown;
    try {
      v = record[key];
    } catch {
      continue;
    }
    const r = redactEntry(key, v, depth + 1);
    if (r !== v) {
      out ??= copyOf(record);
      setOwn(out, key, r, true);
    }
  }
  if (value instanceof Error) {
    // message and stack are not enumerable, and pino writes both. A copy gets them as
    // plain values: V8's `stack` accessor reads a slot that only the original has.
    const message = redactText(value.message);
    const stack = typeof value.stack === 'string' ? redactText(value.stack) : value.stack;
    if (out !== undefined || message !== value.message || stack !== value.stack) {
      out ??= copyOf(record);
      setOwn(out, 'message', message, false);
      setOwn(out, 'stack', stack, false);
    }
  }
  return out ?? value;
}

function copyOf(record: Record<string, unknown>): Record<string, unknown> {
  const proto = Object.getPrototypeOf(record) as object | null;
  if (proto === Object.prototype || proto === null) return { ...record };
  return Object.create(proto, Object.getOwnPropertyDescriptors(record)) as Record<string, unknown>;
}

function setOwn(target: Record<string, unknown>, key: string, value: unknown, enumerable: boolean): void {
  try {
    Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable });
  } catch {
    // A non-configurable property copied from a class instance: drop the field rather
    // than let its value through.
    try {
      delete target[key];
    } catch {
      // nothing more can be done without throwing into the logger
    }
  }
}
