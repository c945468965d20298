import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { loggerOptions } from '../../src/logging/logger.ts';

/** A pino logger with the kit's options (level debug) writing into an array of parsed lines. */
export function logSink(env: Record<string, string> = {}): {
  logger: Logger;
  lines: Record<string, unknown>[];
} {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return {
    logger: pino(loggerOptions({ OTEL_SERVICE_NAME: 'sink', LOG_LEVEL: 'debug', ...env }), stream),
    lines,
  };
}
