import type { DestinationStream } from 'pino';

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
 * Every line is built before the call that writes it returns. An earlier build formatted
 * InstrumentedClient's "downstream request completed" line in the next check phase, once
 * the caller had sent its next request. Measured in one process at concurrency 1, switching
 * between the two every 250 ms (20 s, 40 pairs of windows, twice; the bench's client and
 * server), it made no difference: at once / deferred 1.03 and 0.97 calls/s, 1.00 CPU per
 * call (across processes the drift is larger: pairs from 0.75 to 1.37). The simpler way
 * stays.
 */
export function lineBuffer(sink: SyncSink, holdMs: number): LineBuffer {
  let held = '';
  let timer: NodeJS.Timeout | undefined;
  const flushSync = (): void => {
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
  process.on('exit', flushSync);
  return {
    write,
    flushSync,
    flush(cb) {
      flushSync();
      cb?.();
    },
  };
}

/** lineBuffer's stream. */
export interface LineBuffer extends DestinationStream {
  flushSync(): void;
  flush(cb?: (error?: Error) => void): void;
}
