import { type SpanContext, trace } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanProcessor } from '@opentelemetry/sdk-trace';
import { internalLog } from './internalLog.ts';
import { shutdownTelemetry, telemetryState } from './telemetryState.ts';

/** The longest a crash waits for telemetry to flush before the process exits, in ms. */
const crashFlushLimitMs = 2000;

/**
 * The preload's exit hooks: flush on `beforeExit`, and on SIGTERM/SIGINT when no
 * graceful-shutdown owner claimed them. After a signal the process still dies of that
 * signal (the status a supervisor expects), unless the app handles the signal itself.
 */
export function installExitHooks(): void {
  const state = telemetryState();
  if (state?.shutdownSdk === undefined) return;

  process.once('beforeExit', () => {
    void shutdownTelemetry().then((flushed) => {
      // The app has finished. A collector that does not answer, or one known to be down,
      // leaves sockets and the exporter's retry timers behind: they must not hold the
      // process (a refused collector once added a second to every short-lived script).
      if (!flushed) {
        internalLog('warn', `telemetry not flushed within ${state.flushTimeoutMs} ms; exiting anyway`);
        process.exit();
      }
      if (state.collectorDown()) process.exit();
    });
  });

  const onSignal = (signal: NodeJS.Signals) => {
    if (state.signalOwner !== undefined) return;
    const appHandlesIt = process.listenerCount(signal) > 1;
    void shutdownTelemetry().finally(() => {
      if (appHandlesIt || state.signalOwner !== undefined) return;
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/**
 * What a crash leaves behind: an uncaught exception (or an unhandled rejection, which Node
 * raises as one) writes one JSON `fatal` line on stderr with the error, its stack and the
 * `trace_id`/`span_id` of the span it happened in, flushes the telemetry of what finished
 * before (within 2 s at most), and exits with status 1, as Node would.
 *
 * An app that listens for `uncaughtException` itself owns its crashes: the kit then does
 * nothing. `TELEMETRY_CRASH_HANDLER=false` turns this off altogether.
 */
export function installCrashHandler(): void {
  let crashing = false;
  const onCrash = (error: unknown, origin: string) => {
    if (process.listenerCount('uncaughtException') > 1) return;
    writeFatal(error, origin);
    if (crashing) process.exit(1);
    crashing = true;
    const limit = Math.min(telemetryState()?.flushTimeoutMs ?? crashFlushLimitMs, crashFlushLimitMs);
    void shutdownTelemetry(limit).finally(() => process.exit(1));
  };
  process.on('uncaughtException', onCrash);
}

/**
 * The spans that recorded an exception lately, by its stack. An error thrown in a request
 * handler reaches `uncaughtException` after the http instrumentation has recorded it on
 * the request's span, ended that span and left its context: the crash line finds the
 * trace here. Spans without events cost one length check.
 */
const recentExceptions = new Map<string, SpanContext>();

/** Remembers the spans that recorded an exception (see `recentExceptions`). */
export const exceptionSpans: SpanProcessor = {
  onStart(_span: Span): void {},
  onEnding(span: Span): void {
    const events = span.events;
    if (events.length === 0) return;
    for (const event of events) {
      const stack = event.name === 'exception' ? event.attributes?.['exception.stacktrace'] : undefined;
      if (typeof stack !== 'string') continue;
      if (recentExceptions.size >= 16)
        recentExceptions.delete(recentExceptions.keys().next().value as string);
      recentExceptions.set(stack, span.spanContext());
    }
  },
  onEnd(_span: ReadableSpan): void {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

function writeFatal(error: unknown, origin: string): void {
  const span =
    trace.getActiveSpan()?.spanContext() ??
    (error instanceof Error && error.stack !== undefined ? recentExceptions.get(error.stack) : undefined);
  const err =
    error instanceof Error
      ? { type: error.name, message: error.message, stack: error.stack }
      : { type: typeof error, message: String(error) };
  internalLog('fatal', origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception', {
    err,
    ...(span === undefined ? {} : { trace_id: span.traceId, span_id: span.spanId }),
  });
}
