import type { DiagLogger } from '@opentelemetry/api';
import { redactSecrets, redactText } from '../secrets.ts';

/**
 * The kit's own voice: one JSON line on stderr, shaped like the app's pino lines so the
 * same log pipeline reads it, with `component: "otel-service-kit"`.
 *
 * Secrets are taken out of the message and the fields, as from the app's lines.
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
    const text = redactText(msg);
    const fields = extra === undefined ? undefined : redactSecrets(extra);
    process.stderr.write(
      `${JSON.stringify({ level, time: new Date().toISOString(), component: 'otel-service-kit', msg: text, ...fields })}\n`,
    );
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
/** The longest diagnostic message: with the fields around it, a line stays under 300 characters. */
const maxLength = 160;

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
    const full = [message, ...args.map(describe)]
      .filter((s) => s !== '')
      .join(' ')
      .replace(/\{"type":"Buffer","data":\[[\d,]*\]?\}?/g, '<bytes>');
    // Short, whatever the SDK passes: an answer that was not a collector's (a web page,
    // decoded as a byte array) once made one 366 kB line.
    const text = shorten(full);
    const key = text.replace(/\d+/g, '#').slice(0, 200);
    const count = this.#seen.get(key);
    if (count !== undefined) {
      this.#seen.set(key, count + 1);
      return;
    }
    if (this.#seen.size >= this.#max) return;
    this.#seen.set(key, 1);
    // Each distinct message once: `once` says that repeats are not printed.
    internalLog(level, text, { source: 'opentelemetry', once: true });
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
  // Bytes (an answer that was not a collector's) as their size, not a list of numbers.
  if (arg instanceof Uint8Array) return `<${arg.length} bytes>`;
  const asJson = arg as { type?: unknown; data?: unknown } | null;
  if (asJson?.type === 'Buffer' && Array.isArray(asJson.data)) return `<${asJson.data.length} bytes>`;
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

/** `text` cut so that, quoted and escaped as JSON, it takes at most `maxLength` characters. */
function shorten(text: string): string {
  if (JSON.stringify(text).length <= maxLength) return text;
  const suffix = ` … (${text.length} characters)`;
  let cut = maxLength - suffix.length;
  while (cut > 0 && JSON.stringify(text.slice(0, cut)).length > maxLength - suffix.length) cut -= 10;
  return `${text.slice(0, Math.max(cut, 0))}${suffix}`;
}
