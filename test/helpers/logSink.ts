import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { loggerOptions } from '../../src/logging/logger.ts';

type Line = Record<string, unknown>;

/**
 * A pino logger with the kit's options (level debug) writing into an array of parsed
 * lines; `waitForLine` resolves when a matching line is written (a test awaits the
 * event rather than sleeping until it has probably happened).
 */
export function logSink(env: Record<string, string> = {}): {
  logger: Logger;
  lines: Line[];
  waitForLine: (predicate: (line: Line) => boolean) => Promise<Line>;
} {
  const lines: Line[] = [];
  let waiters: { predicate: (line: Line) => boolean; resolve: (line: Line) => void }[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n')) {
        if (!l) continue;
        const line = JSON.parse(l) as Line;
        lines.push(line);
        waiters = waiters.filter((w) => {
          if (!w.predicate(line)) return true;
          w.resolve(line);
          return false;
        });
      }
      cb();
    },
  });
  const waitForLine = (predicate: (line: Line) => boolean): Promise<Line> => {
    const hit = lines.find(predicate);
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ predicate, resolve }));
  };
  return {
    logger: pino(loggerOptions({ OTEL_SERVICE_NAME: 'sink', LOG_LEVEL: 'debug', ...env }), stream),
    lines,
    waitForLine,
  };
}
