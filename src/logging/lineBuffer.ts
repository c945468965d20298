import type { DestinationStream } from 'pino';
import { internalLog } from '../telemetry/internalLog.ts';

/** What the lines are finally written to: pino's synchronous SonicBoom on fd 1. */
interface SyncSink {
  write(data: string): unknown;
}

/** Lines at `warn` and above start so (the kit's level formatter writes the level first). */
const urgentPrefixes = ['{"level":"warn"', '{"level":"error"', '{"level":"fatal"'] as const;

/**
 * Written at once past this many characters held: a burst holds a bounded amount
 * (SonicBoom writes at most 16 kB per system call anyway).
 */
const maxHeld = 16 * 1024;

/**
 * The root logger's destination: `info`, `debug` and `trace` lines are held for at most
 * `holdMs` and written together, with one `write`; `warn`, `error` and `fatal` lines are
 * written at once, after the lines held before them, so the line of a failure is out before
 * the call returns. Held lines are written on `exit` (`process.exit`, an uncaught
 * exception, the end of the event loop, the kit's graceful shutdown). A SIGKILL or a V8
 * abort loses the `info`/`debug` lines of the last `holdMs`. With `holdMs` 0 every line is
 * written before the call returns.
 *
 * A `write` is a system call per line otherwise: on the project's machine the kit's node:http
 * service spent 304 µs of CPU per request at concurrency 1 with a write per line, 291 µs
 * this way, and 268 against 246 at concurrency 8, where its throughput rose by 14%
 * (bench/server.ts, ten interleaved rounds; 254 and 217 µs without the line).
 *
 * `defer(line)` takes an `info`/`debug` line not yet formatted: `line()` formats it (or
 * writes it some other way and returns '') in the event loop's next check phase, before
 * any line written after it, so the order of lines is kept. `writeLineLater` uses it: a
 * call's "downstream request completed" line is then formatted after the
 * call has returned and the caller has sent its next request, while that request is on the
 * wire. InstrumentedClient at concurrency 1, built then against built at once, in three
 * runs of eight interleaved rounds (bench/client.ts): +15%, −1% and +5% calls/s, and 9, 5
 * and 11 µs less CPU per call. With `holdMs` 0 the line is built and written at once.
 */
export function lineBuffer(sink: SyncSink, holdMs: number): LineBuffer {
  let held = '';
  let timer: NodeJS.Timeout | undefined;
  let deferred: (() => string)[] = [];
  let formatting: NodeJS.Immediate | undefined;
  const flushSync = (): void => {
    if (deferred.length > 0) format();
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    if (held === '') return;
    const lines = held;
    held = '';
    sink.write(lines);
  };
  const write = (line: string): boolean => {
    if (deferred.length > 0) format();
    if (
      holdMs === 0 ||
      line.startsWith(urgentPrefixes[0]) ||
      line.startsWith(urgentPrefixes[1]) ||
      line.startsWith(urgentPrefixes[2]) ||
      held.length + line.length > maxHeld
    ) {
      held += line;
      flushSync();
      return true;
    }
    held += line;
    // Never keeps the process alive: at the end of the event loop `exit` writes them.
    timer ??= setTimeout(flushSync, holdMs).unref();
    return true;
  };
  /** The deferred lines, in order; a line that writes through `write` meanwhile comes after those before it. */
  const format = (): void => {
    if (formatting !== undefined) {
      clearImmediate(formatting);
      formatting = undefined;
    }
    const lines = deferred;
    deferred = [];
    for (const line of lines) {
      let text: string;
      try {
        text = line();
      } catch (error) {
        // Built outside its caller: a throw here would end the process, and the lines after it.
        internalLog('error', 'a log line could not be built', { error: String(error) });
        continue;
      }
      if (text !== '') write(text);
    }
  };
  process.on('exit', flushSync);
  return {
    write,
    defer(line) {
      if (holdMs === 0) {
        const text = line();
        if (text !== '') write(text);
        return;
      }
      deferred.push(line);
      formatting ??= setImmediate(format);
    },
    flushSync,
    flush(cb) {
      flushSync();
      cb?.();
    },
  };
}

/** lineBuffer's stream. */
export interface LineBuffer extends DestinationStream {
  /** Format and write `line()` in the next check phase, before any line written after it (`line()` returns '' when it wrote the line itself). */
  defer(line: () => string): void;
  flushSync(): void;
  flush(cb?: (error?: Error) => void): void;
}
