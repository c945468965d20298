import { context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger, type LoggerOptions } from 'pino';
import { kitConfig, logLevels, readEnum, serviceIdentity } from '../config.ts';
import { redactSecrets } from '../secrets.ts';
import { getLogContext } from './logContext.ts';
import { turnDestination } from './turnDestination.ts';

export type { Logger } from 'pino';

// pino's isoTime formats a new Date for every line (2.9 µs of each line, --cpu-prof); lines
// written within the same millisecond share one string, and the date and minute are
// formatted once a minute (a new millisecond: 2.5 -> 0.3 µs).
let lastMs = 0;
let lastTime = '';
function isoTime(): string {
  const now = Date.now();
  if (now !== lastMs) {
    lastMs = now;
    lastTime = `,"time":"${formatIsoTime(now)}"`;
  }
  return lastTime;
}

let minuteStart = Number.NaN;
let minutePrefix = '';

/** `new Date(ms).toISOString()`, with the part up to the minute kept from the previous call. */
export function formatIsoTime(ms: number): string {
  const inMinute = ms - minuteStart;
  if (!(inMinute >= 0 && inMinute < 60_000)) {
    minuteStart = ms - (((ms % 60_000) + 60_000) % 60_000);
    minutePrefix = new Date(minuteStart).toISOString().slice(0, 17);
    return formatIsoTime(ms);
  }
  const seconds = Math.floor(inMinute / 1000);
  const millis = inMinute - seconds * 1000;
  return `${minutePrefix}${seconds < 10 ? '0' : ''}${seconds}.${millis < 10 ? '00' : millis < 100 ? '0' : ''}${millis}Z`;
}

/**
 * What every line gets besides its own fields: the trace fields of the current span and
 * the log context (`withLogContext`). Returns the context's own frozen object when there is
 * no span, else a fresh object with the trace fields first.
 *
 * The kit's logger adds the trace fields itself, in the names and form the pino
 * instrumentation uses (`trace_id`, `span_id`, `trace_flags`), and takes that
 * instrumentation's mixin off its own loggers (`createLogger`): the instrumentation's
 * mixin made an object and merged it with this one through a rest-parameter wrapper on
 * every line (4.4 µs of a "request completed" line under bench/server.ts, --cpu-prof).
 * The app's own pino loggers keep the instrumentation's.
 */
function lineContext(): object {
  const fields = getLogContext();
  const span = trace.getSpanContext(context.active());
  if (span === undefined || !isSpanContextValid(span)) return fields;
  return {
    trace_id: span.traceId,
    span_id: span.spanId,
    trace_flags: `0${span.traceFlags.toString(16)}`,
    ...fields,
  };
}

/** The options of the root logger; exported so tests can build one writing elsewhere. */
export function loggerOptions(
  env: Readonly<Record<string, string | undefined>> = process.env,
): LoggerOptions {
  const id = serviceIdentity(env);
  // Not `service`: InstrumentedClient's lines use `service` for the dependency called.
  const base: Record<string, string> = { service_name: id.name };
  if (id.version !== undefined) base.service_version = id.version;
  if (id.environment !== undefined) base.environment = id.environment;
  return {
    level: env === process.env ? kitConfig().logLevel : readEnum(env, 'LOG_LEVEL', logLevels, 'info'),
    base,
    timestamp: isoTime,
    formatters: {
      level: (label) => ({ level: label }),
      // Secrets out of every line and every child's bindings, whatever the case of the
      // field's name and however deep (within 6 levels): pino's own `redact` takes exact
      // paths only, and an axios error carries `err.config.headers.Authorization`.
      // A line without secrets is returned as it is, nothing copied.
      log: redactSecrets,
      bindings: redactSecrets,
    },
    // Called for every line: the context's own frozen object, no copy, outside a span...
    mixin: lineContext,
    // ...which pino's default strategy would mutate. A frozen object is the context's (copy
    // it, or skip it when empty); anything else is a fresh object (trace fields plus the
    // context's), safe to merge into.
    mixinMergeStrategy: (mergeObject, mixinObject) => {
      if (!Object.isFrozen(mixinObject)) return Object.assign(mixinObject, mergeObject);
      for (const _ in mixinObject) return { ...mixinObject, ...mergeObject };
      return mergeObject;
    },
  };
}

// Synchronous writes to stdout (pino's own default for stdout is asynchronous), one per
// busy turn of the event loop (turnDestination): a line is out before the loop waits for
// I/O again, and a warn/error line before the call returns. It is also cheaper where
// lines are spread out, as in a service: an asynchronous write is a thread-pool round trip
// per line (bench/client.ts: 0.47 of bare undici asynchronous, 0.55 synchronous).
/**
 * The root logger: pino JSON lines on stdout, level from `LOG_LEVEL` (default `info`),
 * ISO time, `service_name`/`service_version`/`environment` on every line, `trace_id`/`span_id`/
 * `trace_flags` inside a span,
 * the fields of `withLogContext`/`bindLogContext`, and secrets redacted.
 *
 * @example
 * const log = logger.child({ order_id: id });
 * log.info({ amount }, 'payment captured');
 */
export const logger: Logger = createLogger(loggerOptions(), stdoutDestination());

/**
 * A pino logger with `options` whose children's bindings are redacted too: pino applies
 * `formatters.bindings` to the root only, and a child bound to a request's headers or a
 * connection string must not write them on every line.
 */
export function createLogger(options: LoggerOptions, destination: pino.DestinationStream): Logger {
  const root = pino(options, destination);
  // The pino instrumentation wraps the mixin of every logger made with its trace fields;
  // the kit's lines get them from lineContext already.
  if (options.mixin !== undefined)
    (root as unknown as Record<symbol, unknown>)[pino.symbols.mixinSym] = options.mixin;
  const child = root.child;
  // Children are made with Object.create(parent), so they inherit this one too.
  root.child = function redactedChild(this: Logger, bindings, childOptions) {
    return child.call(this, redactSecrets(bindings), childOptions);
  } as Logger['child'];
  return root;
}

/** fd 1, written synchronously once per busy turn; or `process.stdout` itself when something (a test runner) has wrapped its `write`, as pino does. */
function stdoutDestination(): pino.DestinationStream {
  const stdout = process.stdout;
  if (stdout.write !== Object.getPrototypeOf(stdout).write) return stdout;
  return turnDestination(pino.destination({ dest: 1, sync: true }));
}
