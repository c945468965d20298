import { type Env, kitConfig, readDependencyTimeoutsMs } from '../config.ts';

/**
 * Built-in per-dependency defaults, in ms: only the dependencies the kit itself calls.
 * `S3` is `InstrumentedS3`'s connect and socket-inactivity timeout: an upload of a large
 * object may stall longer than an API call. A service names its own dependencies'
 * defaults at the call site, `timeouts.get('PAYMENT_API', 5000)`.
 */
export const defaultTimeoutsMs: Readonly<Record<string, number>> = Object.freeze({
  S3: 30_000,
});

/** The timeout of a dependency with no built-in default and none given: 10 s. */
const fallbackTimeoutMs = 10_000;

/** `payment-api`, `paymentApi` or `PAYMENT_API` → `PAYMENT_API`. */
export function timeoutKey(name: string): string {
  return name
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .replace(/[^A-Za-z0-9]+/g, '_')
    .replace(/^_+|_+$/g, '')
    .toUpperCase();
}

/**
 * Per-dependency timeouts from the environment: `<NAME>_TIMEOUT_MS`, read once when
 * the registry is built (at start-up for the shared `timeouts`). Every `*_TIMEOUT_MS`
 * variable is validated then: a value that is not a positive whole number of
 * milliseconds throws a `ConfigError` naming it (the preload turns that into one line
 * and exit status 1). Call sites ask by name and never hard-code a timeout.
 *
 * @example
 * const client = new InstrumentedClient({ service: 'payment-api', baseUrl, timeoutMs: timeouts.get('PAYMENT_API', 5000) });
 */
export class Timeouts {
  readonly #fromEnv = new Map<string, number>();

  constructor(env: Env = process.env) {
    const fromEnv = env === process.env ? kitConfig().dependencyTimeoutsMs : readDependencyTimeoutsMs(env);
    for (const [name, ms] of Object.entries(fromEnv)) this.#fromEnv.set(name, ms);
  }

  /**
   * The timeout of dependency `name` in ms: `<NAME>_TIMEOUT_MS` when set, else
   * `defaultMs`, else the built-in default for that name, else 10 000.
   */
  get(name: string, defaultMs?: number): number {
    const key = timeoutKey(name);
    return this.#fromEnv.get(key) ?? defaultMs ?? defaultTimeoutsMs[key] ?? fallbackTimeoutMs;
  }
}

/** The process's timeouts, read from `process.env` when this module is first loaded. */
export const timeouts: Timeouts = new Timeouts();
