import { diag } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';

/**
 * Wraps the OTLP span exporter so that a collector outage costs the app nothing.
 *
 * The OTLP exporter retries each failed batch with backoff until its timeout, and the
 * batch processor queues the next batches behind it: with the collector down, a
 * process that has finished its work is held alive by export chains for tens of
 * seconds, and every failed batch is reported. After a failed export this wrapper
 * drops the following batches at once for `coolDownMs` (one export is tried again
 * after that), and says so once per outage.
 */
export class FailFastSpanExporter implements SpanExporter {
  readonly #inner: SpanExporter;
  readonly #coolDownMs: number;
  #downUntil = 0;
  #down = false;
  /** Spans dropped without an export attempt since the outage began. */
  dropped = 0;

  constructor(inner: SpanExporter, coolDownMs = 5000) {
    this.#inner = inner;
    this.#coolDownMs = coolDownMs;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#down && Date.now() < this.#downUntil) {
      this.dropped += spans.length;
      resultCallback({ code: ExportResultCode.FAILED, error: new TraceExportFailedError('batch dropped') });
      return;
    }
    this.#inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#down) {
          diag.info(`trace export recovered; ${this.dropped} spans were dropped during the outage`);
          this.#down = false;
          this.dropped = 0;
        }
      } else {
        if (!this.#down) {
          diag.warn(
            `trace export failed (${result.error?.message ?? 'unknown error'}); dropping spans while the collector is unreachable, retrying every ${this.#coolDownMs} ms`,
          );
        }
        this.#down = true;
        this.#downUntil = Date.now() + this.#coolDownMs;
        result = {
          code: result.code,
          error: new TraceExportFailedError(result.error?.message ?? 'unknown error'),
        };
      }
      resultCallback(result);
    });
  }

  shutdown(): Promise<void> {
    return this.#inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.#inner.forceFlush?.() ?? Promise.resolve();
  }
}

/**
 * A failed or dropped trace export, already reported once per outage by
 * FailFastSpanExporter: the global error handler and shutdown do not report it again.
 */
export class TraceExportFailedError extends Error {
  override readonly name = 'TraceExportFailedError';
  readonly code = 'OSK_TRACE_EXPORT_FAILED';
}

/** True for a `TraceExportFailedError`, also one from another copy of the package. */
export function isTraceExportFailedError(e: unknown): boolean {
  return e instanceof Error && (e as { code?: unknown }).code === 'OSK_TRACE_EXPORT_FAILED';
}
