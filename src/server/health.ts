import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Logger, logger as rootLogger } from '../logging/logger.ts';
import { roundMs } from '../logging/roundMs.ts';
import { addProbePath } from '../telemetry/probePaths.ts';
import { urlPath } from './urlPath.ts';

/**
 * A dependency check: resolve (or return) to pass; throw, reject or return `false` to
 * fail. `signal` aborts when the check's time is up, so it can cancel its work.
 */
export type HealthCheck = (signal: AbortSignal) => unknown;

/** Options of `health.addCheck`. */
export interface HealthCheckOptions {
  /**
   * A failing critical check makes `/health/ready` answer 503 (`not ready`); a failing
   * non-critical one makes it answer 200 `degraded`. Default `true`.
   */
  critical?: boolean;
  /**
   * How long the check may run, in ms, before it counts as failing. Default 500: below
   * Kubernetes' default probe timeout of 1 s, so the probe gets an answer, not a timeout.
   */
  timeoutMs?: number;
}

/** The defaults of `HealthCheckOptions`. */
export const defaultHealthCheckOptions: Readonly<Required<HealthCheckOptions>> = Object.freeze({
  critical: true,
  timeoutMs: 500,
});

/**
 * Where a `Health` registry reads the time and sets its check timeouts. The default is
 * the process's clock; a test passes one it moves by hand, so the cache and the
 * timeouts are driven without waiting.
 */
export interface HealthClock {
  /** The time in ms on a monotonic scale (the default: `performance.now()`). */
  now(): number;
  /** Call `fn` in `ms` milliseconds; returns a function that cancels it. */
  setTimeout(fn: () => void, ms: number): () => void;
}

const processClock: HealthClock = Object.freeze({
  now: () => performance.now(),
  setTimeout: (fn: () => void, ms: number) => {
    // Not unref'd: an awaited readiness() must settle even when nothing else keeps the
    // loop alive (a check that never settles); it holds the loop for a check's timeout at most.
    const timer = setTimeout(fn, ms);
    return () => clearTimeout(timer);
  },
});

/** Options of a `Health` registry. */
export interface HealthOptions {
  /** How long a check's result is reused, in ms, so probe storms do not hammer a database. Default 1000. */
  cacheMs?: number;
  /** The liveness path. Default `/health/live`. */
  livePath?: string;
  /** The readiness path. Default `/health/ready`. */
  readyPath?: string;
  /** Where check failures and recoveries are logged (once per change). Default: the kit's root `logger`. */
  logger?: Logger;
  /** The clock of the cache and the check timeouts. Default: the process's (`performance.now()`, `setTimeout`). */
  clock?: HealthClock;
}

/** The defaults of `HealthOptions`. */
export const defaultHealthOptions: Readonly<Required<HealthOptions>> = Object.freeze({
  cacheMs: 1000,
  livePath: '/health/live',
  readyPath: '/health/ready',
  logger: rootLogger,
  clock: processClock,
});

/** One check's part of the readiness answer. */
export interface HealthCheckResult {
  status: 'ok' | 'failing';
  critical: boolean;
  /** How long the check took (for a cached result, when it ran). */
  duration_ms: number;
  /**
   * Why it fails: `timed out after N ms`, `returned false`, or the error's `code` (such
   * as `ECONNREFUSED`) — never its message, which may carry a connection string. The
   * message is in the log line.
   */
  error?: string;
}

/** The readiness answer: the HTTP status and the JSON body. */
export interface Readiness {
  statusCode: 200 | 503;
  body: { status: 'ready' | 'degraded' | 'not ready'; checks?: Record<string, HealthCheckResult> };
}

interface CheckEntry {
  readonly name: string;
  readonly fn: HealthCheck;
  readonly critical: boolean;
  readonly timeoutMs: number;
  /** The last result and when it was taken (`clock.now()`). */
  cached: { result: HealthCheckResult; at: number } | undefined;
  /** The evaluation in progress, shared by concurrent probes. */
  evaluating: Promise<HealthCheckResult> | undefined;
  /** Calls of `fn` that have not settled yet, timed out ones included. */
  pending: number;
  /** Whether the last change logged was to failing: only a change of state is logged. */
  loggedFailing: boolean;
}

const liveBody = '{"status":"ok"}';
const timeoutMark: unique symbol = Symbol('timeout');
/** Calls of one check left running past their timeout before no more are started. */
const maxPendingCalls = 3;
const notReadyBody = '{"status":"not ready"}';

/** The parts of a Fastify instance the plugin uses. */
interface FastifyRoutesLike {
  get(
    path: string,
    handler: (request: unknown, reply: FastifyProbeReply) => Promise<unknown> | undefined,
  ): unknown;
}
/** The parts of a Fastify reply the plugin uses. */
interface FastifyProbeReply {
  code(statusCode: number): FastifyProbeReply;
  header(name: string, value: string): FastifyProbeReply;
  send(payload: string): unknown;
}
/** A Fastify plugin function (callback style), typed without depending on Fastify's types. */
export type FastifyHealthPlugin = (
  instance: FastifyRoutesLike,
  options: unknown,
  done: (error?: Error) => void,
) => void;

/**
 * Health endpoints for Kubernetes probes.
 *
 * - `GET /health/live` answers 200 `{"status":"ok"}` as long as the process runs,
 *   during graceful shutdown too (a failing liveness probe would get the pod killed
 *   while it drains).
 * - `GET /health/ready` answers 503 `{"status":"not ready"}` until `markReady()` and
 *   again from the first moment of shutdown; otherwise it runs the checks (each with its
 *   own timeout, results cached for `cacheMs`) and answers 200 `{"status":"ready",
 *   "checks":{...}}`, 200 `degraded` when only non-critical checks fail, or 503
 *   `not ready` when a critical one fails.
 *
 * Serve them with `health.handle(req, res)` (node:http), `health.express()` or
 * `health.fastify`. The preload never traces these paths.
 *
 * @example
 * health.addCheck('db', () => pool.query('select 1'), { timeoutMs: 300 });
 * health.addCheck('cache', () => redis.ping(), { critical: false });
 * await pool.connect();
 * health.markReady();
 */
export class Health {
  readonly #checks = new Map<string, CheckEntry>();
  readonly #options: Readonly<Required<HealthOptions>>;
  #ready = false;
  #shuttingDown = false;

  constructor(options?: HealthOptions) {
    this.#options = { ...defaultHealthOptions, ...options };
    // Probes are neither traced nor logged at info, whatever paths they are served on.
    addProbePath(this.#options.livePath);
    addProbePath(this.#options.readyPath);
    const { cacheMs } = this.#options;
    if (!Number.isFinite(cacheMs) || cacheMs < 0) {
      throw new RangeError(`Health: cacheMs must be a number of milliseconds, 0 or more; got ${cacheMs}`);
    }
  }

  /** The service finished starting: `/health/ready` may now answer 200. */
  markReady(): void {
    this.#ready = true;
  }

  /** Readiness answers 503 from now on, for good: the process is shutting down (GracefulShutdown calls this). */
  markShuttingDown(): void {
    this.#shuttingDown = true;
  }

  /** True after `markReady()` and before shutdown (checks aside). */
  get isReady(): boolean {
    return this.#ready && !this.#shuttingDown;
  }

  /** True from the first moment of shutdown. */
  get isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  /**
   * Add a readiness check. Each runs with its own timeout: a check that hangs counts
   * as failing when its time is up, and its `signal` aborts (at most 3 calls that
   * ignore it are left running before no more are started). Its result is reused for
   * `cacheMs`, and concurrent probes share one run. Throws if the name is taken.
   */
  addCheck(name: string, fn: HealthCheck, options?: HealthCheckOptions): void {
    if (this.#checks.has(name)) throw new TypeError(`Health: a check named "${name}" is already registered`);
    const { critical, timeoutMs } = { ...defaultHealthCheckOptions, ...options };
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
      throw new RangeError(
        `Health: timeoutMs of check "${name}" must be a positive number of milliseconds; got ${timeoutMs}`,
      );
    }
    this.#checks.set(name, {
      name,
      fn,
      critical,
      timeoutMs,
      cached: undefined,
      evaluating: undefined,
      pending: 0,
      loggedFailing: false,
    });
  }

  /** Remove a check; returns whether there was one of that name. */
  removeCheck(name: string): boolean {
    return this.#checks.delete(name);
  }

  /** The readiness answer, as `/health/ready` would give it now. Never rejects. */
  async readiness(): Promise<Readiness> {
    if (!this.isReady) return { statusCode: 503, body: { status: 'not ready' } };
    const entries = [...this.#checks.values()];
    const results = await Promise.all(entries.map((e) => this.#result(e)));
    // Shutdown may have begun while the checks ran.
    if (!this.isReady) return { statusCode: 503, body: { status: 'not ready' } };
    const checks: Record<string, HealthCheckResult> = {};
    let criticalFailing = false;
    let degraded = false;
    entries.forEach((e, i) => {
      const r = results[i] as HealthCheckResult;
      checks[e.name] = r;
      if (r.status === 'failing') {
        if (e.critical) criticalFailing = true;
        else degraded = true;
      }
    });
    if (criticalFailing) return { statusCode: 503, body: { status: 'not ready', checks } };
    return { statusCode: 200, body: { status: degraded ? 'degraded' : 'ready', checks } };
  }

  #result(e: CheckEntry): Promise<HealthCheckResult> {
    if (e.cached !== undefined && this.#options.clock.now() - e.cached.at < this.#options.cacheMs) {
      return Promise.resolve(e.cached.result);
    }
    e.evaluating ??= this.#evaluate(e).finally(() => {
      e.evaluating = undefined;
    });
    return e.evaluating;
  }

  async #evaluate(e: CheckEntry): Promise<HealthCheckResult> {
    const clock = this.#options.clock;
    const start = clock.now();
    let result: HealthCheckResult;
    let failure: unknown;
    if (e.pending >= maxPendingCalls) {
      // A check that ignores its abort signal against a dependency that never answers:
      // do not pile up more calls on it; it fails until one of them settles.
      result = failedResult(e, 0, 'earlier calls still running');
      failure = `${e.pending} calls still running after their timeout`;
    } else {
      const abort = new AbortController();
      e.pending++;
      const call = Promise.resolve()
        .then(() => e.fn(abort.signal))
        .finally(() => {
          e.pending--;
        });
      let cancelTimer: (() => void) | undefined;
      const timedOut = new Promise<typeof timeoutMark>((resolve) => {
        cancelTimer = clock.setTimeout(() => resolve(timeoutMark), e.timeoutMs);
      });
      try {
        const outcome = await Promise.race([call, timedOut]);
        const duration = roundMs(clock.now() - start);
        if (outcome === timeoutMark) {
          abort.abort(new Error(`health check "${e.name}" timed out after ${e.timeoutMs} ms`));
          result = failedResult(e, duration, `timed out after ${e.timeoutMs} ms`);
          failure = result.error;
        } else if (outcome === false) {
          result = failedResult(e, duration, 'returned false');
          failure = result.error;
        } else {
          result = { status: 'ok', critical: e.critical, duration_ms: duration };
        }
      } catch (error) {
        const code = (error as { code?: unknown } | null)?.code;
        result = failedResult(e, roundMs(clock.now() - start), typeof code === 'string' ? code : 'threw');
        failure = error;
      } finally {
        cancelTimer?.();
      }
    }
    e.cached = { result, at: clock.now() };
    this.#logChange(e, result, failure);
    return result;
  }

  /** Log a check's change of state once, not on every probe. */
  #logChange(e: CheckEntry, result: HealthCheckResult, failure: unknown): void {
    const nowFailing = result.status === 'failing';
    if (nowFailing === e.loggedFailing) return;
    e.loggedFailing = nowFailing;
    try {
      const log = this.#options.logger;
      if (nowFailing) {
        log.warn(
          {
            check: e.name,
            critical: e.critical,
            error: failure instanceof Error ? String(failure) : String(failure),
          },
          'health check failing',
        );
      } else {
        log.info({ check: e.name, critical: e.critical }, 'health check recovered');
      }
    } catch {
      // A logger that throws must not turn a probe into a hung request.
    }
  }

  /**
   * Serve `/health/live` and `/health/ready` (GET and HEAD) on a node:http server.
   * Returns true when the request was one of them (the answer may still be on its
   * way), false to let the caller handle it.
   *
   * @example
   * createServer((req, res) => { if (health.handle(req, res)) return; app(req, res); });
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    const path = urlPath(req.url);
    if (path === this.#options.livePath) {
      send(req, res, 200, liveBody);
      return true;
    }
    if (path === this.#options.readyPath) {
      if (!this.isReady) send(req, res, 503, notReadyBody);
      else void this.readiness().then((r) => send(req, res, r.statusCode, JSON.stringify(r.body)));
      return true;
    }
    return false;
  }

  /**
   * Express middleware serving the two paths; other requests go on to `next()`.
   *
   * @example
   * app.use(health.express());
   */
  express(): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
    const health = this;
    return function otelServiceKitHealth(req, res, next) {
      if (!health.handle(req, res)) next();
    };
  }

  /**
   * Fastify plugin adding the two routes (HEAD too, as Fastify adds it for GET).
   *
   * @example
   * await app.register(health.fastify);
   */
  readonly fastify: FastifyHealthPlugin = (instance, _options, done) => {
    const answer = (reply: FastifyProbeReply, statusCode: number, body: string) =>
      reply
        .code(statusCode)
        .header('content-type', 'application/json; charset=utf-8')
        .header('cache-control', 'no-store')
        .send(body);
    instance.get(this.#options.livePath, async (_request, reply) => answer(reply, 200, liveBody));
    instance.get(this.#options.readyPath, async (_request, reply) => {
      const r = await this.readiness();
      return answer(reply, r.statusCode, JSON.stringify(r.body));
    });
    done();
  };
}

function send(req: IncomingMessage, res: ServerResponse, statusCode: number, body: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(statusCode, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    // Probes must see the state of now, never a cached answer.
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function failedResult(e: CheckEntry, durationMs: number, error: string): HealthCheckResult {
  return { status: 'failing', critical: e.critical, duration_ms: durationMs, error };
}

/** The process's health registry, shared by the app and `GracefulShutdown`. */
export const health: Health = new Health();
