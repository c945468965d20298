/**
 * A failed or dropped trace export, already reported once per outage by
 * FailFastSpanExporter: the global error handler and shutdown do not report it again.
 * Its `name` says why (`collector_down`, `timeout`, `export_failed`): the batch processor
 * counts failed spans by it on `otel_sdk_processor_span_processed_total{error_type}`.
 */
export class TraceExportFailedError extends Error {
  override readonly name: TraceExportFailure;
  readonly code = 'OSK_TRACE_EXPORT_FAILED';

  constructor(reason: TraceExportFailure, message: string) {
    super(message);
    this.name = reason;
  }
}

/**
 * Why spans were not exported: the collector was known to be down and the batch was not
 * tried (`collector_down`), the export did not finish within the export timeout
 * (`timeout`), or the collector refused or answered with an error (`export_failed`).
 */
export type TraceExportFailure = 'collector_down' | 'timeout' | 'export_failed';

/** True for a `TraceExportFailedError`, also one from another copy of the package. */
export function isTraceExportFailedError(e: unknown): boolean {
  return e instanceof Error && (e as { code?: unknown }).code === 'OSK_TRACE_EXPORT_FAILED';
}
