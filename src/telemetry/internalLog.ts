import type { DiagLogger } from '@opentelemetry/api';

/**
 * The kit's own voice: one JSON line on stderr, shaped like the app's pino lines so the
 * same log pipeline reads it, with `component: "otel-service-kit"`.
 *
 * It does not use the app's logger on purpose: the preload must be able to report
 * before pino is loaded (loading it early would bypass its instrumentation) and when the
 * app's stdout is a pipe that is already closed.
 */
export function internalLog(
  level: 'debug' | 'info' | 'warn' | 'error' | 'fatal',
  msg: string,
  extra?: object,
): void {
  try {
    const line = JSON.stringify({
      level,
      time: new Date().toISOString(),
      component: 'otel-service-kit',
      msg,
      ...extra,
    });
    process.stderr.write(`${line}\n`);
  } catch {
    // Reporting must never throw into the caller (a closed stderr, a cyclic `extra`).
  }
}

/**
 * A `diag` logger that says each distinct problem once.
 *
 * The OTLP exporter reports every failed batch; with the collector down that is a line
 * every few seconds forever. Messages are keyed by their text with digits removed (ports,
 * counts and durations vary between otherwise identical reports); a repeat is counted,
 * not printed. After `max` distinct messages the logger falls silent. Each line is at
 * most 300 characters.
 */
const maxLength = 300;

export class OnceDiagLogger implements DiagLogger {
  readonly #seen = new Map<string, number>();
  readonly #max: number;

  /** @param max distinct messages printed at most; the level is filtered by `diag.setLogger`. */
  constructor(max = 20) {
    this.#max = max;
  }

  /** How many times each distinct message was suppressed after its first report. */
  suppressed(): number {
    let n = 0;
    for (const count of this.#seen.values()) n += count - 1;
    return n;
  }

  #report(level: 'debug' | 'info' | 'warn' | 'error', message: string, args: unknown[]): void {
    const full = [message, ...args.map(describe)].filter((s) => s !== '').join(' ');
    // Short, whatever the SDK passes: an answer that was not a collector's (a web page,
    // decoded as a byte array) once made one 366 kB line.
    const text = full.length <= maxLength ? full : `${full.slice(0, maxLength)}… (${full.length} characters)`;
    const key = text.replace(/\d+/g, '#').slice(0, 200);
    const count = this.#seen.get(key);
    if (count !== undefined) {
      this.#seen.set(key, count + 1);
      return;
    }
    if (this.#seen.size >= this.#max) return;
    this.#seen.set(key, 1);
    internalLog(level, text, { source: 'opentelemetry', note: 'repeats of this message are not printed' });
  }

  error(message: string, ...args: unknown[]): void {
    this.#report('error', message, args);
  }
  warn(message: string, ...args: unknown[]): void {
    this.#report('warn', message, args);
  }
  info(message: string, ...args: unknown[]): void {
    this.#report('info', message, args);
  }
  debug(message: string, ...args: unknown[]): void {
    this.#report('debug', message, args);
  }
  verbose(message: string, ...args: unknown[]): void {
    this.#report('debug', message, args);
  }
}

function describe(arg: unknown): string {
  if (arg instanceof Error) {
    const code = (arg as { code?: unknown }).code;
    return code === undefined ? arg.message : `${arg.message} (${String(code)})`;
  }
  if (typeof arg === 'string') return arg;
  try {
    return JSON.stringify(arg) ?? '';
  } catch {
    return String(arg);
  }
}
