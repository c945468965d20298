import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import { isSecretName, redactedValue, redactQuery } from '../secrets.ts';

/** Attributes that hold a URL, a path or a query string, across old and new conventions. */
const urlAttributes = [
  'url.full',
  'url.query',
  'url.original',
  'http.url',
  'http.target',
  'db.connection_string',
];
const headerPrefixes = ['http.request.header.', 'http.response.header.'];

/**
 * Takes secrets out of every span before it is exported, whichever instrumentation made
 * it (server, client, fetch, a database): secret query values and URL credentials in the
 * URL attributes, and captured headers whose name is a secret. The instrumentations' own
 * redaction lists are short and case-sensitive (http's misses `token`, `password`,
 * `api_key`); this applies the kit's one list to all of them.
 *
 * Runs in `onEnding`, while the span can still be changed. A span without a query string
 * or captured header costs a few property reads.
 */
export class RedactingSpanProcessor implements SpanProcessor {
  onStart(_span: Span, _parentContext: Context): void {}

  onEnding(span: Span): void {
    const attributes = span.attributes;
    for (const name of urlAttributes) {
      const value = attributes[name];
      if (typeof value !== 'string') continue;
      const redacted = name === 'url.query' ? redactQuery(`?${value}`).slice(1) : redactQuery(value);
      if (redacted !== value) span.setAttribute(name, redacted);
    }
    for (const name in attributes) {
      if (name.charCodeAt(0) !== 104 /* h */) continue;
      for (const prefix of headerPrefixes) {
        if (name.startsWith(prefix) && isSecretName(name.slice(prefix.length))) {
          span.setAttribute(name, redactedValue);
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
