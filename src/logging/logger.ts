import pino, { type Logger, type LoggerOptions } from 'pino';
import { logLevels, readEnum, serviceIdentity } from '../config.ts';
import { getLogContext } from './logContext.ts';

export type { Logger } from 'pino';

/** Field names whose values never reach a log line, wherever they appear (top level or one or two levels down). */
export const redactedKeys = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'api_key',
  'apiKey',
  'password',
  'passwd',
  'secret',
  'client_secret',
  'token',
  'access_token',
  'refresh_token',
  'id_token',
] as const;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of redactedKeys) {
    const ref = /^[A-Za-z_$][\w$]*$/.test(key) ? key : `["${key}"]`;
    const dotted = ref.startsWith('[') ? ref : `.${ref}`;
    paths.push(ref, `*${dotted}`, `*.*${dotted}`);
  }
  return paths;
}

/** The options of the root logger; exported so tests can build one writing elsewhere. */
export function loggerOptions(
  env: Readonly<Record<string, string | undefined>> = process.env,
): LoggerOptions {
  const id = serviceIdentity(env);
  const base: Record<string, string> = { service: id.name };
  if (id.version !== undefined) base.version = id.version;
  if (id.environment !== undefined) base.environment = id.environment;
  return {
    level: readEnum(env, 'LOG_LEVEL', logLevels, 'info'),
    base,
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: redactPaths(), censor: '[REDACTED]' },
    // Called for every line: returns the context's own frozen object, no copy...
    mixin: getLogContext,
    // ...which pino's default strategy would mutate. A frozen object is ours (copy it,
    // or skip it when empty); anything else is the fresh object of the pino
    // instrumentation's mixin (trace fields plus ours), safe to merge into.
    mixinMergeStrategy: (mergeObject, mixinObject) => {
      if (!Object.isFrozen(mixinObject)) return Object.assign(mixinObject, mergeObject);
      for (const _ in mixinObject) return { ...mixinObject, ...mergeObject };
      return mergeObject;
    },
  };
}

/**
 * The root logger: pino JSON lines on stdout, level from `LOG_LEVEL` (default `info`),
 * ISO time, `service`/`version`/`environment` on every line, `trace_id`/`span_id`/
 * `trace_flags` inside a span (added by the pino instrumentation the preload installs),
 * the fields of `withLogContext`/`bindLogContext`, and secrets redacted.
 *
 * @example
 * const log = logger.child({ order_id: id });
 * log.info({ amount }, 'payment captured');
 */
export const logger: Logger = pino(loggerOptions());
