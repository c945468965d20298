import diagnosticsChannel from 'node:diagnostics_channel';
import { type Context, context, isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger, type LoggerOptions } from 'pino';
import { kitConfig, logLevels, readEnum, serviceIdentity } from '../config.ts';
import { redactField, redactSecrets } from '../secrets.ts';
import { lineBuffer } from './lineBuffer.ts';
import { getLogContext, type LogFields, logContextOf } from './logContext.ts';

export type { Logger } from 'pino';

/** The options `loggerOptions` made: a logger made with them can take `writeLine`'s own path. */
const kitOptions = new WeakSet<LoggerOptions>();
/** Loggers made by `createLogger` with the kit's options (not their children). */
const lineLoggers = new WeakSet<Logger>();

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
  return lineContextIn(context.active(), getLogContext());
}

/** `lineContext()` for `ctx` and its log fields. */
function lineContextIn(ctx: Context, fields: LogFields): object {
  const span = trace.getSpanContext(ctx);
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
  const options: LoggerOptions = {
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
  kitOptions.add(options);
  return options;
}

// Synchronous writes to stdout (pino's own default for stdout is asynchronous), the
// info/debug lines of up to LOG_BUFFER_MS (10 ms) in one `write` (lineBuffer), warn and
// above at once. An asynchronous write is a thread-pool round trip and a wake-up of the
// event loop per line (bench/client.ts: 0.47 of bare undici asynchronous, 0.55 synchronous).
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
  if (kitOptions.has(options)) lineLoggers.add(root);
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

type LineLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * `log[level](fields, msg)`, for the kit's own lines ("request completed", "downstream
 * request completed", ...), whose fields are strings, numbers and booleans.
 *
 * On a logger made with the kit's options, the line is built here, byte for byte as pino
 * builds it from the same options (level, time, bindings, the trace fields and the log
 * context, `fields` over them, secrets redacted, message), and handed to the logger's
 * stream. Anything else, and any field that is not a plain string, number, boolean or
 * null, goes through pino itself.
 *
 * `traceFields` (the undici span's, for InstrumentedClient) go over the active span's, as
 * if they were the last of `fields`. `ctx` is the context to log in when it is not the
 * active one (requestLogging's listener, which runs outside the request's context).
 *
 * Where a process is idle between requests, pino's generic path (LOG, write, the mixin
 * merge, asJson) is cold for every line: `npm run bench -- split` measured the line of
 * InstrumentedClient at 61 µs of CPU per call through pino and 17 µs built here, the
 * "request completed" line at 40 and 30 µs (concurrency 1, medians of paired windows).
 */
export function writeLine(
  log: Logger,
  level: LineLevel,
  fields: Record<string, unknown>,
  msg: string,
  traceFields?: TraceFields,
  ctx?: Context,
): void {
  if (!lineLoggers.has(log)) {
    viaPino(log, level, withTraceFields(fields, traceFields), msg, ctx);
    return;
  }
  const internals = log as unknown as Record<symbol, unknown>;
  const num = log.levels.values[level] as number;
  if (num < log.levelVal) return;
  const stream = internals[pino.symbols.streamSym] as pino.DestinationStream & Record<symbol, unknown>;
  // A multistream (the pino instrumentation sending log records) reads what pino sets, and
  // subscribers of pino's asJson channel expect its call.
  if (stream[pino.symbols.needsMetadataGsym] === true || pinoAsJson.hasSubscribers) {
    viaPino(log, level, withTraceFields(fields, traceFields), msg, ctx);
    return;
  }
  const props = lineFieldsJson(fields, internals, traceFields, ctx ?? context.active());
  if (props === fallback) {
    viaPino(log, level, withTraceFields(fields, traceFields), msg, ctx);
    return;
  }
  stream.write(
    `${(internals[pino.symbols.lsCacheSym] as Record<number, string>)[num]}${(internals[pino.symbols.timeSym] as () => string)()}${internals[pino.symbols.chindingsSym] as string}${props},"msg":${jsonString(msg)}${internals[pino.symbols.endSym] as string}`,
  );
}

const fallback = Symbol('through pino');

/** `log[level](fields, msg)`, in `ctx` when one is given. */
function viaPino(log: Logger, level: LineLevel, fields: object, msg: string, ctx: Context | undefined): void {
  if (ctx === undefined) log[level](fields, msg);
  else context.with(ctx, () => log[level](fields, msg));
}

/** The trace fields a line carries: `trace_id`, `span_id`, `trace_flags`, in hex. */
export interface TraceFields {
  trace_id: string;
  span_id: string;
  trace_flags: string;
}

function withTraceFields(fields: Record<string, unknown>, traceFields: TraceFields | undefined) {
  return traceFields === undefined ? fields : Object.assign(fields, traceFields);
}

/**
 * `lineContext()` and `fields` (with `traceFields` over them, last) as `fieldsJson` writes
 * them. Trace fields, hex that redaction and escaping leave as they are, are written
 * straight, without the objects made for them (2-3 µs of a line, --cpu-prof under
 * bench/server.ts and bench/client.ts), unless `fields` or the log context has one.
 */
function lineFieldsJson(
  fields: Record<string, unknown>,
  internals: Record<symbol, unknown>,
  traceFields: TraceFields | undefined,
  c: Context,
): string | typeof fallback {
  const logFields = logContextOf(c) as Record<string, unknown>;
  const span = trace.getSpanContext(c);
  const active = span !== undefined && isSpanContextValid(span);
  if (hasTraceField(fields) || hasTraceField(logFields) || (traceFields !== undefined && !isHex(traceFields)))
    return fieldsJson(
      lineContextIn(c, logFields) as Record<string, unknown>,
      withTraceFields(fields, traceFields),
      internals,
    );
  const rest = fieldsJson(logFields, fields, internals);
  if (rest === fallback) return fallback;
  if (traceFields !== undefined) {
    const json = `,"trace_id":"${traceFields.trace_id}","span_id":"${traceFields.span_id}","trace_flags":"${traceFields.trace_flags}"`;
    // With a span active, pino puts the trace fields where its mixin has them: first.
    return active ? json + rest : rest + json;
  }
  if (!active) return rest;
  return `,"trace_id":"${span.traceId}","span_id":"${span.spanId}","trace_flags":"0${span.traceFlags.toString(16)}"${rest}`;
}

const hexDigits = /^[0-9a-f]+$/;

function isHex(fields: TraceFields): boolean {
  return (
    hexDigits.test(fields.trace_id) && hexDigits.test(fields.span_id) && hexDigits.test(fields.trace_flags)
  );
}

function hasTraceField(fields: Record<string, unknown>): boolean {
  return 'trace_id' in fields || 'span_id' in fields || 'trace_flags' in fields;
}

/**
 * The fields of a line as pino writes them: the context's (the mixin's) in their order with
 * `fields` over them, then the rest of `fields`; `fallback` when one is pino's business.
 */
function fieldsJson(
  context: Record<string, unknown>,
  fields: Record<string, unknown>,
  internals: Record<symbol, unknown>,
): string | typeof fallback {
  const serializers = internals[pino.symbols.serializersSym] as Record<string, unknown>;
  let props = '';
  for (const key in context) {
    if (!Object.hasOwn(context, key)) continue;
    const field = jsonField(key, Object.hasOwn(fields, key) ? fields[key] : context[key], serializers);
    if (field === fallback) return fallback;
    props += field;
  }
  for (const key in fields) {
    if (!Object.hasOwn(fields, key) || Object.hasOwn(context, key)) continue;
    const field = jsonField(key, fields[key], serializers);
    if (field === fallback) return fallback;
    props += field;
  }
  return props;
}
const pinoAsJson = diagnosticsChannel.tracingChannel('pino_asJson');

/** `,"key":value` as pino writes a redacted field; '' when pino leaves it out; `fallback` for what only pino knows. */
function jsonField(
  key: string,
  raw: unknown,
  serializers: Record<string, unknown>,
): string | typeof fallback {
  // Integer-like keys come first in an object (pino's order would differ), and a
  // serializer (`err`) or `__proto__` is pino's business.
  const first = key.charCodeAt(0);
  if ((first >= 48 && first <= 57) || key in serializers || key === '__proto__') return fallback;
  const value = redactField(key, raw);
  switch (typeof value) {
    case 'undefined':
      return '';
    case 'string':
      return keyPrefix(key) + jsonString(value);
    case 'number':
      return keyPrefix(key) + (Number.isFinite(value) ? value : 'null');
    case 'boolean':
      return keyPrefix(key) + value;
    default:
      return value === null ? `${keyPrefix(key)}null` : fallback;
  }
}

/** `,"key":` for each field name seen (the kit's lines use a dozen), escaped once. */
const keyPrefixes = new Map<string, string>();

function keyPrefix(key: string): string {
  let prefix = keyPrefixes.get(key);
  if (prefix === undefined) {
    prefix = `,${jsonString(key)}:`;
    if (keyPrefixes.size < 256) keyPrefixes.set(key, prefix);
  }
  return prefix;
}

/** A JSON string as pino's `asString` writes it (its output, for the same input). */
function jsonString(str: string): string {
  const length = str.length;
  if (length > 100) return JSON.stringify(str);
  let result = '';
  let last = 0;
  for (let i = 0; i < length; i++) {
    const point = str.charCodeAt(i);
    if (point < 32) return JSON.stringify(str);
    if (point === 34 || point === 92) {
      result += `${str.slice(last, i)}\\`;
      last = i;
    }
  }
  return result === '' ? `"${str}"` : `"${result}${str.slice(last)}"`;
}

/** fd 1, written synchronously (lineBuffer); or `process.stdout` itself when something (a test runner) has wrapped its `write`, as pino does. */
function stdoutDestination(): pino.DestinationStream {
  const stdout = process.stdout;
  if (stdout.write !== Object.getPrototypeOf(stdout).write) return stdout;
  return lineBuffer(pino.destination({ dest: 1, sync: true }), kitConfig().logBufferMs);
}
