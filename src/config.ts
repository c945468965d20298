/**
 * Reading the kit's own environment variables.
 *
 * The kit's variables are validated strictly: a bad value is a deployment mistake and
 * stops start-up with one line naming the variable, the value and the expected form.
 * Standard `OTEL_*` variables are read leniently (warn and use the default), as the
 * OpenTelemetry specification asks; see `readOtelNumber` and friends.
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A configuration value that cannot be used. Its message is one line that names the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'OSK_CONFIG_INVALID';
  readonly variable: string;
  readonly value: string;

  constructor(variable: string, value: string, expected: string) {
    super(`invalid ${variable}=${JSON.stringify(value)}: expected ${expected}`);
    this.variable = variable;
    this.value = value;
  }
}

/** True for a `ConfigError`, also one thrown by another copy of the package. */
export function isConfigError(e: unknown): e is ConfigError {
  return e instanceof Error && (e as { code?: unknown }).code === 'OSK_CONFIG_INVALID';
}

function present(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined) return undefined;
  const value = raw.trim();
  return value === '' ? undefined : value;
}

/** A whole number of milliseconds greater than zero, or `fallback` when the variable is unset. */
export function readPositiveMs(env: Env, name: string, fallback: number): number {
  return readWholeNumber(env, name, fallback, 1, 'a positive whole number of milliseconds');
}

/** A whole number of milliseconds, zero allowed, or `fallback` when the variable is unset. */
export function readNonNegativeMs(env: Env, name: string, fallback: number): number {
  return readWholeNumber(env, name, fallback, 0, 'a whole number of milliseconds, 0 or more');
}

function readWholeNumber(
  env: Env,
  name: string,
  fallback: number,
  min: number,
  expected: string,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const value = present(env, name);
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value)) throw new ConfigError(name, value, expected);
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new ConfigError(name, value, expected);
  return n;
}

/** One of `allowed` (case-insensitive), or `fallback` when the variable is unset. */
export function readEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const value = present(env, name);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  const hit = allowed.find((a) => a === lower);
  if (hit === undefined) throw new ConfigError(name, value, `one of ${allowed.join(', ')}`);
  return hit;
}

/** `true`/`false`/`1`/`0` (case-insensitive), or `fallback` when the variable is unset. */
export function readBoolean(env: Env, name: string, fallback: boolean): boolean {
  const value = present(env, name);
  if (value === undefined) return fallback;
  const lower = value.toLowerCase();
  if (lower === 'true' || lower === '1') return true;
  if (lower === 'false' || lower === '0') return false;
  throw new ConfigError(name, value, 'true or false');
}

/** An http(s) URL, or undefined when the variable is unset or blank. */
export function readHttpUrl(env: Env, name: string): string | undefined {
  const value = present(env, name);
  if (value === undefined) return undefined;
  if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol)) {
    throw new ConfigError(name, value, 'an http(s) URL such as http://127.0.0.1:9000');
  }
  return value;
}

/** A plain string, or `fallback` when the variable is unset or blank. */
export function readString(env: Env, name: string, fallback: string): string {
  return present(env, name) ?? fallback;
}

/**
 * An `OTEL_*` whole number within `range`: a bad value is reported through `warn` and
 * `fallback` is used (undefined: the SDK's own default), because telemetry settings
 * never stop a service from starting.
 */
export function readOtelNumber(
  env: Env,
  name: string,
  fallback: number,
  warn: (msg: string) => void,
  range?: { min?: number; max?: number },
): number;
export function readOtelNumber(
  env: Env,
  name: string,
  fallback: number | undefined,
  warn: (msg: string) => void,
  range?: { min?: number; max?: number },
): number | undefined;
export function readOtelNumber(
  env: Env,
  name: string,
  fallback: number | undefined,
  warn: (msg: string) => void,
  range: { min?: number; max?: number } = {},
): number | undefined {
  const value = present(env, name);
  if (value === undefined) return fallback;
  const { min = 0, max = Number.MAX_SAFE_INTEGER } = range;
  const n = Number(value);
  if (/^\d+$/.test(value) && n >= min && n <= max) return n;
  const expected =
    max === Number.MAX_SAFE_INTEGER ? `a whole number, ${min} or more` : `a whole number ${min}-${max}`;
  warn(
    `invalid ${name}=${JSON.stringify(value)}: expected ${expected}; using ${fallback ?? 'the SDK default'}`,
  );
  return fallback;
}

/** An `OTEL_*` choice: a bad value is reported through `warn` and `fallback` is used. */
export function readOtelEnum<T extends string>(
  env: Env,
  name: string,
  allowed: readonly T[],
  fallback: T,
  warn: (msg: string) => void,
): T | undefined {
  const value = present(env, name);
  if (value === undefined) return undefined;
  const hit = allowed.find((a) => a === value.toLowerCase());
  if (hit !== undefined) return hit;
  warn(`invalid ${name}=${JSON.stringify(value)}: expected one of ${allowed.join(', ')}; using ${fallback}`);
  return fallback;
}

/** Who the service is, for the resource and for every log line. */
export interface ServiceIdentity {
  /** `OTEL_SERVICE_NAME`, else `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, else `unknown_service:node`. */
  readonly name: string;
  /** `service.version` in `OTEL_RESOURCE_ATTRIBUTES`, else `npm_package_version`. */
  readonly version: string | undefined;
  /** `deployment.environment.name` (or the older `deployment.environment`), else `NODE_ENV`. */
  readonly environment: string | undefined;
}

/** Parse `OTEL_RESOURCE_ATTRIBUTES` (`k=v,k2=v2`, values percent-encoded); bad pairs are skipped. */
export function resourceAttributes(env: Env): Map<string, string> {
  const out = new Map<string, string>();
  const raw = env.OTEL_RESOURCE_ATTRIBUTES;
  if (!raw) return out;
  for (const pair of raw.split(',')) {
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    try {
      out.set(pair.slice(0, eq).trim(), decodeURIComponent(pair.slice(eq + 1).trim()));
    } catch {
      // A malformed percent-encoding: the spec says to discard the pair.
    }
  }
  return out;
}

export function serviceIdentity(env: Env): ServiceIdentity {
  const attrs = resourceAttributes(env);
  return {
    name: present(env, 'OTEL_SERVICE_NAME') ?? attrs.get('service.name') ?? 'unknown_service:node',
    version: attrs.get('service.version') ?? present(env, 'npm_package_version'),
    environment:
      attrs.get('deployment.environment.name') ??
      attrs.get('deployment.environment') ??
      present(env, 'NODE_ENV'),
  };
}

/** The levels `LOG_LEVEL` accepts, pino's. */
export const logLevels = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
type LogLevel = (typeof logLevels)[number];

/** Defaults of `SHUTDOWN_TIMEOUT_MS` and `SHUTDOWN_DRAIN_DELAY_MS`, in ms (GracefulShutdown's too). */
export const shutdownDefaultsMs = Object.freeze({ timeout: 30_000, drainDelay: 0 });

/**
 * The kit's own settings, read from the environment and validated once, at start-up.
 * Frozen: a module that needs a setting receives it from here.
 */
export interface KitConfig {
  /** `LOG_LEVEL`, default `info`. */
  readonly logLevel: LogLevel;
  /** `LOG_BUFFER_MS`: how long an `info`/`debug` line may be held before it is written, default 10; 0 writes each at once. */
  readonly logBufferMs: number;
  /** `TELEMETRY_FLUSH_TIMEOUT_MS`: the longest the final telemetry flush may take, default 2000. */
  readonly flushTimeoutMs: number;
  /** `TELEMETRY_CRASH_HANDLER`: the preload logs, flushes and exits on an uncaught exception, default true. */
  readonly crashHandler: boolean;
  /** `TELEMETRY_RESOURCE_COMMAND_LINE`: publish the process's command line as resource attributes, default false. */
  readonly resourceCommandLine: boolean;
  /** `SHUTDOWN_TIMEOUT_MS` and `SHUTDOWN_DRAIN_DELAY_MS`, in ms. */
  readonly shutdown: { readonly timeoutMs: number; readonly drainDelayMs: number };
  /** Every `<NAME>_TIMEOUT_MS` that is set, by dependency name (see `readDependencyTimeoutsMs`). */
  readonly dependencyTimeoutsMs: Readonly<Record<string, number>>;
  /** `S3_ENDPOINT` and `S3_FORCE_PATH_STYLE`. */
  readonly s3: { readonly endpoint: string | undefined; readonly forcePathStyle: boolean };
}

/** The variables ending in `_TIMEOUT_MS` that are not per-dependency timeouts. */
const notDependencyTimeouts = /^(OTEL_|SHUTDOWN_|TELEMETRY_)/;

/**
 * Every per-dependency timeout that is set: `<NAME>_TIMEOUT_MS` (other than `OTEL_*`,
 * `SHUTDOWN_*` and `TELEMETRY_*`), by dependency name (`PAYMENT_API`), validated.
 */
export function readDependencyTimeoutsMs(env: Env): Readonly<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const name of Object.keys(env).sort()) {
    if (name.endsWith('_TIMEOUT_MS') && !notDependencyTimeouts.test(name))
      out[name.slice(0, -'_TIMEOUT_MS'.length)] = readPositiveMs(env, name, 1);
  }
  return Object.freeze(out);
}

/**
 * Read and validate every kit variable, so a bad value stops start-up at once (in the
 * preload) rather than at the first request that reads it. Throws `ConfigError`.
 */
export function readKitConfig(env: Env): KitConfig {
  const timeoutMs = readPositiveMs(env, 'SHUTDOWN_TIMEOUT_MS', shutdownDefaultsMs.timeout);
  const drainDelayMs = readNonNegativeMs(env, 'SHUTDOWN_DRAIN_DELAY_MS', shutdownDefaultsMs.drainDelay);
  checkDrainDelay(drainDelayMs, timeoutMs, String(env.SHUTDOWN_DRAIN_DELAY_MS ?? drainDelayMs));
  const dependencyTimeoutsMs = readDependencyTimeoutsMs(env);
  return Object.freeze({
    logLevel: readEnum(env, 'LOG_LEVEL', logLevels, 'info'),
    logBufferMs: readLogBufferMs(env),
    flushTimeoutMs: readPositiveMs(env, 'TELEMETRY_FLUSH_TIMEOUT_MS', 2000),
    crashHandler: readBoolean(env, 'TELEMETRY_CRASH_HANDLER', true),
    resourceCommandLine: readBoolean(env, 'TELEMETRY_RESOURCE_COMMAND_LINE', false),
    shutdown: Object.freeze({ timeoutMs, drainDelayMs }),
    dependencyTimeoutsMs,
    s3: Object.freeze({
      endpoint: readHttpUrl(env, 'S3_ENDPOINT'),
      forcePathStyle: readBoolean(env, 'S3_FORCE_PATH_STYLE', false),
    }),
  });
}

/** `LOG_BUFFER_MS`: 0 to 60000 (a longer hold would be a lost log rather than a cheaper one), default 10. */
function readLogBufferMs(env: Env): number {
  return readWholeNumber(env, 'LOG_BUFFER_MS', 10, 0, 'a whole number of milliseconds, 0 to 60000', 60_000);
}

/** The drain delay must leave time to close before the shutdown timeout: the one place this rule lives. */
export function checkDrainDelay(drainDelayMs: number, timeoutMs: number, raw: string): void {
  if (drainDelayMs >= timeoutMs) {
    throw new ConfigError('SHUTDOWN_DRAIN_DELAY_MS', raw, `less than the shutdown timeout (${timeoutMs} ms)`);
  }
}

let processConfig: KitConfig | undefined;

/**
 * The kit's settings from `process.env`, read and validated at the first call and kept:
 * the logger, the timeouts and GracefulShutdown take theirs from here unless given their
 * own (an `env` option, explicit values). InstrumentedS3 reads its `S3_*` variables when
 * its client is built, with the same functions. Throws `ConfigError`.
 */
export function kitConfig(): KitConfig {
  processConfig ??= readKitConfig(process.env);
  return processConfig;
}

/**
 * The preload's configuration: `readKitConfig`, or one line naming the bad variable on
 * stderr and exit status 1.
 */
export function kitConfigFromEnv(env: Env): KitConfig {
  try {
    return readKitConfig(env);
  } catch (error) {
    if (!isConfigError(error)) throw error;
    process.stderr.write(`otel-service-kit: ${error.message}\n`);
    process.exit(1);
  }
}
