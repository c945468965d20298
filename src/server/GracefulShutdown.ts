import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { constants } from 'node:os';
import { Server as TlsServer } from 'node:tls';
import {
  checkDrainDelay,
  type Env,
  kitConfig,
  readNonNegativeMs,
  readPositiveMs,
  shutdownDefaultsMs,
} from '../config.ts';
import { type Logger, logger as rootLogger } from '../logging/logger.ts';
import { roundMs } from '../logging/roundMs.ts';
import { claimShutdownSignals, shutdownTelemetry } from '../telemetry/telemetryState.ts';
import { type Health, health as sharedHealth } from './health.ts';

/** Options of `GracefulShutdown`. */
export interface GracefulShutdownOptions {
  /**
   * The HTTP server(s) to drain: a node:http/https `Server`, what Express's
   * `app.listen()` returns, or Fastify's `app.server`. Default: none (signals, hooks
   * and the telemetry flush only).
   */
  server?: Server | readonly Server[];
  /**
   * The budget of the whole shutdown, from the signal to the exit, in ms; past it the
   * process exits with status 1. Keep it below Kubernetes' `terminationGracePeriodSeconds`.
   * Default: `SHUTDOWN_TIMEOUT_MS`, else 30000.
   */
  timeoutMs?: number;
  /**
   * How long readiness answers 503 while the server still serves, in ms, before it
   * stops accepting connections: the time load balancers (Kubernetes endpoints) need
   * to stop sending traffic. Part of `timeoutMs`. Default: `SHUTDOWN_DRAIN_DELAY_MS`, else 0.
   */
  drainDelayMs?: number;
  /**
   * The longest an idle keep-alive connection is kept open once the server stops
   * accepting, in ms (and never more than half of the budget left then). Until then a
   * pooled client that picks it gets an answer with `Connection: close` rather than a
   * reset; a connection is closed earlier when the keep-alive time its last response
   * advertised (`server.keepAliveTimeout`) runs out. Fastify advertises 72 s, hence the
   * cap. Default 5000 (Node's keep-alive time).
   */
  idleGraceMs?: number;
  /**
   * Ends the process with a status: 0 after a clean shutdown, 1 after the timeout,
   * 128 + the signal's number on a second signal (130 for SIGINT, 143 for SIGTERM).
   * When given, it is the only way the kit ends the process. Default: `process.exit`.
   */
  exit?: (code: number) => void;
  /** The registry whose readiness turns 503 at the first moment of shutdown. Default: the shared `health`. */
  health?: Health;
  /** The signals that start the shutdown. Default: SIGTERM and SIGINT. */
  signals?: readonly NodeJS.Signals[];
  /** Where the shutdown is logged. Default: the kit's root `logger`. */
  logger?: Logger;
  /** Where `SHUTDOWN_TIMEOUT_MS` and `SHUTDOWN_DRAIN_DELAY_MS` are read. Default: `process.env`. */
  env?: Env;
}

/** The defaults of `GracefulShutdownOptions` (the two durations apply when their variables are unset). */
export const defaultGracefulShutdownOptions = Object.freeze({
  timeoutMs: shutdownDefaultsMs.timeout,
  drainDelayMs: shutdownDefaultsMs.drainDelay,
  idleGraceMs: 5000,
  exit: (code: number): void => process.exit(code),
  signals: Object.freeze(['SIGTERM', 'SIGINT'] as NodeJS.Signals[]),
});

/** How long the last telemetry flush may take once the timeout has passed, in ms. */
const forcedFlushMs = 500;

/** What is known of one connection. */
interface Connection {
  readonly server: Server;
  /** Requests on it whose responses have not closed yet. */
  active: number;
  /** When it last became idle (performance.now()). */
  idleSince: number;
  closeTimer: NodeJS.Timeout | undefined;
}

type Phase = 'running' | 'draining' | 'closing' | 'finishing' | 'done';

/**
 * Shut an HTTP service down the way Kubernetes expects, on SIGTERM or SIGINT (or
 * `shutdown()`):
 *
 * 1. log "SIGTERM received, starting graceful shutdown" and turn readiness to 503
 *    (liveness stays 200); from now on every response carries `Connection: close`;
 * 2. wait the drain delay, still serving;
 * 3. stop accepting connections; wait for the requests in flight; close idle
 *    keep-alive connections once the keep-alive time the server advertised to clients
 *    has run out, or at the end of `idleGraceMs` — closing them at once (as
 *    `server.close()` does) resets the request a pooled client may be sending on one
 *    at that moment; a request that comes meanwhile is answered, with `Connection: close`;
 * 4. run the `onShutdown` hooks, last registered first (clients before their pools);
 * 5. flush traces, metrics and logs; log "graceful shutdown completed"; exit 0.
 *
 * Past `timeoutMs`: warn "graceful shutdown timed out, force exiting", destroy the
 * connections, flush what can be flushed in 0.5 s, exit 1. A second signal exits at
 * once with 128 + its number. The preload's own signal handler stands down.
 *
 * @example
 * const server = app.listen(8080);
 * const shutdown = new GracefulShutdown({ server });
 * shutdown.onShutdown(() => db.end());
 */
export class GracefulShutdown {
  readonly #servers: readonly Server[];
  readonly #timeoutMs: number;
  readonly #drainDelayMs: number;
  readonly #idleGraceMs: number;
  readonly #exit: (code: number) => void;
  readonly #health: Health;
  readonly #logger: Logger;
  readonly #signals: readonly NodeJS.Signals[];
  readonly #hooks: (() => unknown)[] = [];
  readonly #connections = new Map<Socket, Connection>();
  readonly #inFlight = new Set<ServerResponse>();
  readonly #detach: (() => void)[] = [];
  #phase: Phase = 'running';
  /** When idle connections are closed at the latest (performance.now()), set when the servers stop accepting. */
  #idleCloseBy = Number.POSITIVE_INFINITY;
  #done: Promise<void> | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #exited = false;

  constructor(options: GracefulShutdownOptions = {}) {
    const env = options.env ?? process.env;
    const servers =
      options.server === undefined ? [] : Array.isArray(options.server) ? options.server : [options.server];
    this.#servers = [...(servers as Server[])];
    // The process's own settings come from its KitConfig, read once; an `env` option is read here.
    const fromConfig = options.env === undefined ? kitConfig().shutdown : undefined;
    this.#timeoutMs =
      options.timeoutMs ??
      fromConfig?.timeoutMs ??
      readPositiveMs(env, 'SHUTDOWN_TIMEOUT_MS', defaultGracefulShutdownOptions.timeoutMs);
    this.#drainDelayMs =
      options.drainDelayMs ??
      fromConfig?.drainDelayMs ??
      readNonNegativeMs(env, 'SHUTDOWN_DRAIN_DELAY_MS', defaultGracefulShutdownOptions.drainDelayMs);
    if (!Number.isSafeInteger(this.#timeoutMs) || this.#timeoutMs < 1) {
      throw new RangeError(
        `GracefulShutdown: timeoutMs must be a positive whole number of ms; got ${this.#timeoutMs}`,
      );
    }
    if (!Number.isSafeInteger(this.#drainDelayMs) || this.#drainDelayMs < 0) {
      throw new RangeError(
        `GracefulShutdown: drainDelayMs must be a whole number of ms, 0 or more; got ${this.#drainDelayMs}`,
      );
    }
    this.#idleGraceMs = options.idleGraceMs ?? defaultGracefulShutdownOptions.idleGraceMs;
    if (!Number.isFinite(this.#idleGraceMs) || this.#idleGraceMs < 0) {
      throw new RangeError(
        `GracefulShutdown: idleGraceMs must be a number of ms, 0 or more; got ${this.#idleGraceMs}`,
      );
    }
    try {
      checkDrainDelay(this.#drainDelayMs, this.#timeoutMs, env.SHUTDOWN_DRAIN_DELAY_MS ?? '');
    } catch (error) {
      // The rule is config.ts's; a drain delay given in code is reported as the option it is.
      if (options.drainDelayMs === undefined) throw error;
      throw new RangeError(
        `GracefulShutdown: drainDelayMs (${this.#drainDelayMs}) must be less than the shutdown timeout (${this.#timeoutMs} ms)`,
        { cause: error },
      );
    }
    this.#exit = options.exit ?? defaultGracefulShutdownOptions.exit;
    this.#health = options.health ?? sharedHealth;
    this.#logger = options.logger ?? rootLogger;
    this.#signals = options.signals ?? defaultGracefulShutdownOptions.signals;

    for (const server of this.#servers) this.#watch(server);
    for (const signal of this.#signals) {
      const listener = () => this.#onSignal(signal);
      process.on(signal, listener);
      this.#detach.push(() => process.removeListener(signal, listener));
    }
    claimShutdownSignals('GracefulShutdown');
  }

  /** True from the first moment of shutdown. */
  get isShuttingDown(): boolean {
    return this.#phase !== 'running';
  }

  /**
   * Run `fn` during shutdown, after the servers have drained and before telemetry is
   * flushed. Hooks run one at a time, last registered first; one that throws is logged
   * and the others still run; one that hangs runs into the timeout.
   */
  onShutdown(fn: () => unknown): this {
    this.#hooks.push(fn);
    return this;
  }

  /**
   * Start the shutdown without a signal (the same steps, then the exit). Resolves when
   * it is complete (after `exit` was called). Calling it again returns the same promise.
   */
  shutdown(reason = 'shutdown()'): Promise<void> {
    this.#done ??= this.#run({ reason }, 'shutdown requested, starting graceful shutdown');
    return this.#done;
  }

  /** Remove the signal and server listeners (the shutdown in progress, if any, goes on). */
  dispose(): void {
    for (const detach of this.#detach.splice(0)) detach();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #onSignal(signal: NodeJS.Signals): void {
    if (this.#done === undefined) {
      this.#done = this.#run({ signal }, `${signal} received, starting graceful shutdown`);
      return;
    }
    // Someone (a developer at Ctrl-C, an impatient supervisor) insists: no more waiting.
    const code = 128 + (constants.signals[signal] ?? 0);
    this.#log('warn', { signal, exit_code: code }, `${signal} received again, exiting now`);
    this.#exitOnce(code);
  }

  #watch(server: Server): void {
    // For TLS the socket a request arrives on is the TLS one, announced by 'secureConnection'.
    const connectionEvent = server instanceof TlsServer ? 'secureConnection' : 'connection';
    const onConnection = (socket: Socket) => this.#track(server, socket);
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.#onRequest(server, req, res);
    server.on(connectionEvent, onConnection);
    // First, so the header is in place before the app's listener writes the response.
    server.prependListener('request', onRequest);
    this.#detach.push(() => {
      server.removeListener(connectionEvent, onConnection);
      server.removeListener('request', onRequest);
    });
  }

  #track(server: Server, socket: Socket): Connection {
    let c = this.#connections.get(socket);
    if (c !== undefined) return c;
    c = { server, active: 0, idleSince: performance.now(), closeTimer: undefined };
    this.#connections.set(socket, c);
    socket.once('close', () => {
      const gone = this.#connections.get(socket);
      if (gone?.closeTimer !== undefined) clearTimeout(gone.closeTimer);
      this.#connections.delete(socket);
    });
    if (this.#phase === 'closing') this.#closeWhenIdle(socket, c);
    return c;
  }

  #onRequest(server: Server, req: IncomingMessage, res: ServerResponse): void {
    const socket = req.socket;
    // A connection made before this instance existed is tracked from its first request.
    const c = this.#track(server, socket);
    c.active++;
    if (c.closeTimer !== undefined) {
      clearTimeout(c.closeTimer);
      c.closeTimer = undefined;
    }
    if (this.#phase !== 'running') res.setHeader('Connection', 'close');
    this.#inFlight.add(res);
    res.once('close', () => {
      this.#inFlight.delete(res);
      c.active--;
      c.idleSince = performance.now();
      if (this.#phase === 'closing') this.#closeWhenIdle(socket, c);
    });
  }

  /**
   * Close an idle connection once the keep-alive time its last response advertised
   * (`Keep-Alive: timeout=N`, from `server.keepAliveTimeout`) has passed: a client that
   * honours it has stopped using the connection by then, so no request is in the wire
   * to be reset. A request that comes before gets its answer with `Connection: close`.
   */
  #closeWhenIdle(socket: Socket, c: Connection): void {
    if (c.active > 0 || socket.destroyed || c.closeTimer !== undefined) return;
    const keepAliveMs = c.server.keepAliveTimeout ?? 0;
    const wait = Math.max(0, Math.min(c.idleSince + keepAliveMs, this.#idleCloseBy) - performance.now());
    // The socket itself keeps the process alive meanwhile; the timer need not.
    c.closeTimer = setTimeout(() => {
      c.closeTimer = undefined;
      if (c.active === 0) socket.destroy();
    }, wait);
    c.closeTimer.unref();
  }

  async #run(cause: { signal: NodeJS.Signals } | { reason: string }, message: string): Promise<void> {
    const started = performance.now();
    this.#phase = 'draining';
    this.#health.markShuttingDown();
    this.#log('info', { ...cause, timeout_ms: this.#timeoutMs, drain_delay_ms: this.#drainDelayMs }, message);
    for (const res of this.#inFlight) if (!res.headersSent) res.setHeader('Connection', 'close');
    // Referenced on purpose: if everything else is gone (a hook awaiting a promise that
    // never settles holds no handle), the process must still end here with status 1,
    // not drift into a natural exit with status 0.
    this.#deadline = setTimeout(() => this.#forceExit(), this.#timeoutMs);

    if (this.#drainDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.#drainDelayMs));

    this.#phase = 'closing';
    const now = performance.now();
    this.#idleCloseBy = now + Math.min(this.#idleGraceMs, (started + this.#timeoutMs - now) / 2);
    const closed = Promise.all(this.#servers.map(stopAccepting));
    if (this.#servers.length > 0) {
      this.#log(
        'info',
        { in_flight_requests: this.#inFlight.size, open_connections: this.#connections.size },
        'stopped accepting connections',
      );
    }
    for (const [socket, c] of this.#connections) this.#closeWhenIdle(socket, c);
    // Connections made before this instance existed and idle since are not tracked:
    // Node's own sweep closes them (and any other idle one) when the grace is over.
    const sweep = setTimeout(() => {
      for (const server of this.#servers) server.closeIdleConnections?.();
    }, this.#idleCloseBy - performance.now());
    sweep.unref();
    await closed;
    clearTimeout(sweep);

    this.#phase = 'finishing';
    for (const hook of [...this.#hooks].reverse()) {
      try {
        await hook();
      } catch (error) {
        this.#log('error', { hook: hook.name || 'anonymous', error: String(error) }, 'shutdown hook failed');
      }
    }
    const left = Math.max(1, Math.floor(started + this.#timeoutMs - performance.now()));
    const flushed = await shutdownTelemetry(left);
    if (this.#exited) return;
    clearTimeout(this.#deadline);
    this.#phase = 'done';
    this.#log(
      'info',
      { duration_ms: roundMs(performance.now() - started), telemetry_flushed: flushed },
      'graceful shutdown completed',
    );
    this.#exitOnce(0);
  }

  #forceExit(): void {
    if (this.#exited) return;
    this.#log(
      'warn',
      {
        timeout_seconds: this.#timeoutMs / 1000,
        in_flight_requests: this.#inFlight.size,
        open_connections: this.#connections.size,
      },
      'graceful shutdown timed out, force exiting',
    );
    for (const server of this.#servers) server.closeAllConnections?.();
    for (const socket of this.#connections.keys()) socket.destroy();
    // The spans of the requests served during the shutdown are still in the batch.
    void shutdownTelemetry(forcedFlushMs).finally(() => this.#exitOnce(1));
  }

  #exitOnce(code: number): void {
    if (this.#exited) return;
    this.#exited = true;
    clearTimeout(this.#deadline);
    this.#exit(code);
  }

  #log(level: 'info' | 'warn' | 'error', fields: object, msg: string): void {
    try {
      this.#logger[level](fields, msg);
    } catch {
      // Shutdown goes on whatever the logger does.
    }
  }
}

const noop = () => {};

/** Stop accepting connections; resolves when every connection of `server` has closed. */
function stopAccepting(server: Server): Promise<void> {
  return new Promise((resolve) => {
    // http.Server#close() also destroys idle keep-alive connections at once (Node >= 19):
    // the request a pooled client is sending on one at that moment is reset. Those are
    // closed by #closeWhenIdle instead; shadow the method for the duration of the call.
    const own = Object.getOwnPropertyDescriptor(server, 'closeIdleConnections');
    server.closeIdleConnections = noop;
    try {
      // Called back with ERR_SERVER_NOT_RUNNING for a server that was not listening:
      // closed either way.
      server.close(() => resolve());
    } finally {
      if (own === undefined) Reflect.deleteProperty(server, 'closeIdleConnections');
      else Object.defineProperty(server, 'closeIdleConnections', own);
    }
  });
}
