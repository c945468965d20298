import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import { isSecretName, redactedValue, redactQuery } from '../secrets.ts';

/** Attributes that hold a URL, a path or a query string, across old and new conventions. */
const urlAttributes = new Set([
  'url.full',
  'url.query',
  'url.original',
  'http.url',
  'http.target',
  'db.connection_string',
]);
const headerPrefixes = ['http.request.header.', 'http.response.header.'];

/**
 * Takes secrets out of every span before it is exported, whichever instrumentation made
 * it (server, client, fetch, a database): secret query values and URL credentials in the
 * URL attributes, and captured headers whose name is a secret. The instrumentations' own
 * redaction lists are short and case-sensitive (http's misses `token`, `password`,
 * `api_key`); this applies the kit's one list to all of them.
 *
 * Runs in `onEnding`, while the span can still be changed. A span without a query string
 * or captured header costs a few property reads and searches (a client span's URL went
 * through `redactQuery` every time: 4 µs of every call, --cpu-prof of bench/client.ts).
 */
export class RedactingSpanProcessor implements SpanProcessor {
  onStart(_span: Span, _parentContext: Context): void {}

  onEnding(span: Span): void {
    const attributes = span.attributes;
    // One walk over the names; only those starting with h, u or d can hold a secret.
    for (const name in attributes) {
      const first = name.charCodeAt(0);
      if (first !== 104 /* h */ && first !== 117 /* u */ && first !== 100 /* d */) continue;
      if (urlAttributes.has(name)) {
        const value = attributes[name];
        if (typeof value !== 'string' || !mayHoldSecret(value, name)) continue;
        const redacted = name === 'url.query' ? redactQuery(`?${value}`).slice(1) : redactQuery(value);
        if (redacted !== value) span.setAttribute(name, redacted);
      } else if (first === 104) {
        for (const prefix of headerPrefixes) {
          if (name.startsWith(prefix) && isSecretName(name.slice(prefix.length))) {
            span.setAttribute(name, redactedValue);
          }
        }
      }
    }
  }

  onEnd(_span: ReadableSpan): void {}

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** Whether `redactQuery` could change the URL attribute `value`: a query, a fragment or credentials. */
function mayHoldSecret(value: string, name: string): boolean {
  if (name === 'url.query') return value !== '';
  return value.includes('?') || value.includes('#') || value.includes('@');
}
