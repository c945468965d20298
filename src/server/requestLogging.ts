import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { context } from '@opentelemetry/api';
import { addRequestLogFields, bindEmitterToLogContext, withLogContext } from '../logging/logContext.ts';
import { type Logger, logger as rootLogger, writeLine } from '../logging/logger.ts';
import { roundMs } from '../logging/roundMs.ts';
import { isProbePath } from '../telemetry/probePaths.ts';
import { requestIdFrom, requestIdHeader } from './requestId.ts';
import { urlPath } from './urlPath.ts';

/** Options of `requestLogging` and its Express and Fastify adapters. */
export interface RequestLoggingOptions {
  /** Writes "request completed" / "request failed" / "request aborted". Default: the kit's root `logger`. */
  logger?: Logger;
  /**
   * Paths (without query string) whose completions are logged at `debug` rather than
   * `info`, so probes and scrapes do not flood the log, besides the probe paths, which
   * always are (`/health/live`, `/health/ready` and the paths a `Health` serves).
   * Default: `/metrics`.
   */
  quietPaths?: readonly string[];
}

/** The defaults of `RequestLoggingOptions`. */
export const defaultRequestLoggingOptions: Readonly<Required<RequestLoggingOptions>> = Object.freeze({
  logger: rootLogger,
  quietPaths: Object.freeze(['/metrics']),
});

interface Resolved {
  readonly logger: Logger;
  readonly quiet: ReadonlySet<string>;
}

function resolve(options: RequestLoggingOptions | undefined): Resolved {
  const o = { ...defaultRequestLoggingOptions, ...options };
  return { logger: o.logger, quiet: new Set(o.quietPaths) };
}

/** The fields of a request that Express adds to node's `IncomingMessage`. */
interface ExpressRequestFields {
  originalUrl?: string;
  baseUrl?: string;
  route?: { path?: unknown };
}

/** The emitter's own `on`, past the kit's emitter binding (`emitterBinder`). */
const addListener = EventEmitter.prototype.on;

/** An error seen while handling a request; `clientError` for 4xx errors of a framework (validation, ...). */
interface SeenError {
  error: unknown;
  clientError: boolean;
}

const seenErrors = new WeakMap<ServerResponse, SeenError>();

function recordError(res: ServerResponse, error: unknown, statusCode: unknown): void {
  const clientError = typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500;
  seenErrors.set(res, { error, clientError });
}

/** Express's route template (`/orders/:id`, with the router's mount path), when it matched one. */
function expressRoute(req: IncomingMessage): string | undefined {
  const { route, baseUrl } = req as IncomingMessage & ExpressRequestFields;
  const path = route?.path;
  if (typeof path !== 'string') return undefined;
  return baseUrl ? baseUrl + path : path;
}

/**
 * Start observing one request: pick its id, echo it, and log its outcome when the
 * response closes. Returns the id for the caller's log context.
 */
function observe(
  req: IncomingMessage,
  res: ServerResponse,
  o: Resolved,
  route: (req: IncomingMessage) => string | undefined,
): string {
  const id = requestIdFrom(req.headers[requestIdHeader]);
  if (!res.headersSent) res.setHeader('X-Request-ID', id);
  const start = performance.now();
  // The line is written with the request's context as it is now (under the preload, the
  // server span's), handed to writeLine: the listener is added past the emitter binding,
  // so 'close', emitted from the connection's context, does not enter that context first
  // (an async context frame and a wrapper per request, --cpu-prof).
  const ctx = context.active();
  // 'close' comes after 'finish' and also when the connection drops first: one listener
  // sees every outcome, once.
  let logged = false;
  addListener.call(res, 'close', () => {
    if (logged) return;
    logged = true;
    const durationMs = roundMs(performance.now() - start);
    // Express rewrites req.url inside routers; originalUrl keeps what the client sent.
    const rawPath = urlPath((req as IncomingMessage & ExpressRequestFields).originalUrl ?? req.url);
    const fields = {
      request_id: id,
      method: req.method,
      path: route(req) ?? rawPath,
      status_code: res.statusCode,
      duration_ms: durationMs,
    };
    const seen = seenErrors.get(res);
    if (seen !== undefined && !seen.clientError) {
      writeLine(
        o.logger,
        'error',
        { ...fields, ...errorFields(seen.error) },
        'request failed',
        undefined,
        ctx,
      );
    } else if (!res.writableFinished) {
      // The client (or a forced shutdown) closed the connection before the response was
      // complete: not a server error, but worth seeing.
      writeLine(o.logger, 'warn', fields, 'request aborted', undefined, ctx);
    } else if (o.quiet.has(rawPath) || isProbePath(rawPath)) {
      writeLine(o.logger, 'debug', fields, 'request completed', undefined, ctx);
    } else {
      writeLine(o.logger, 'info', fields, 'request completed', undefined, ctx);
    }
  });
  return id;
}

/**
 * Run `fn` with `fields` in the request's log context: its own, filled in place when the
 * kit's server-span path made one (`addRequestLogFields`), else one made here, to which
 * the listeners added to the request and the response from here on are bound.
 */
function inRequestLogContext(
  fields: { request_id: string },
  req: IncomingMessage,
  res: ServerResponse,
  fn: () => void,
): void {
  if (addRequestLogFields(fields)) {
    fn();
    return;
  }
  withLogContext(fields, () => {
    bindEmitterToLogContext(req);
    bindEmitterToLogContext(res);
    fn();
  });
}

/** The fields of a "request failed" line: the error and its stack. */
function errorFields(error: unknown): { error: string; stack?: string } {
  if (error instanceof Error)
    return error.stack === undefined
      ? { error: String(error) }
      : { error: String(error), stack: error.stack };
  return { error: String(error) };
}

/** Answer a request whose handler threw: 500 if nothing was sent yet, else cut the response. */
function failed(res: ServerResponse, error: unknown): void {
  recordError(res, error, undefined);
  if (!res.headersSent) {
    const body = '{"error":"internal server error"}';
    res.writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'content-length': body.length });
    res.end(body);
  } else if (!res.writableEnded) {
    res.destroy();
  }
}

type RequestListener<Req extends IncomingMessage, Res extends ServerResponse> = (
  req: Req,
  res: Res,
) => unknown;

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === 'function';
}

/** The node:http form of `requestLogging`. */
function wrapListener<
  Req extends IncomingMessage = IncomingMessage,
  Res extends ServerResponse = ServerResponse,
>(listener: RequestListener<Req, Res>, options?: RequestLoggingOptions): (req: Req, res: Res) => void {
  const o = resolve(options);
  return function loggedListener(this: unknown, req: Req, res: Res): void {
    inRequestLogContext({ request_id: observe(req, res, o, expressRoute) }, req, res, () => {
      let result: unknown;
      try {
        result = listener.call(this, req, res);
      } catch (error) {
        failed(res, error);
        return;
      }
      if (isThenable(result)) result.then(undefined, (error: unknown) => failed(res, error));
    });
  };
}

/** The Express middleware signature, typed without depending on Express's types. */
export type ExpressMiddleware = (
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;
/** The Express error-middleware signature (four parameters is how Express tells them apart). */
export type ExpressErrorMiddleware = (
  error: unknown,
  req: IncomingMessage,
  res: ServerResponse,
  next: (error?: unknown) => void,
) => void;

/**
 * Express middleware doing what `requestLogging(listener)` does; `path` is the route
 * template (`/orders/:id`, mount path included). Install it first. Add
 * `requestLogging.expressErrors()` after the routes to log failures as "request
 * failed" with their error (without it they appear as completed with status 500).
 *
 * @example
 * app.use(requestLogging.express());
 * app.get('/orders/:id', getOrder);
 * app.use(requestLogging.expressErrors());
 */
function express(options?: RequestLoggingOptions): ExpressMiddleware {
  const o = resolve(options);
  return function otelServiceKitRequestLogging(req, res, next) {
    // The rest of the chain runs inside the context, and so do the listeners it adds
    // to the request and the response.
    inRequestLogContext({ request_id: observe(req, res, o, expressRoute) }, req, res, next);
  };
}

/**
 * Express error middleware: notes the error for the "request failed" line and passes
 * it on (`next(error)`), so the app's own error handling still answers. Errors with a
 * 4xx `status`/`statusCode` are the client's and are not logged as failures.
 */
function expressErrors(): ExpressErrorMiddleware {
  return function requestLoggingErrors(error, _req, res, next) {
    const e = error as { status?: unknown; statusCode?: unknown } | null;
    recordError(res, error, e?.status ?? e?.statusCode);
    next(error);
  };
}

/** The parts of a Fastify request and reply the plugin uses. */
interface FastifyRequestLike {
  raw: IncomingMessage;
  routeOptions?: { url?: string };
}
interface FastifyReplyLike {
  raw: ServerResponse;
}
type HookDone = (error?: Error) => void;
/** The parts of a Fastify instance the plugin uses. */
export interface FastifyHooksLike {
  addHook(
    name: 'onRequest',
    hook: (req: FastifyRequestLike, reply: FastifyReplyLike, done: HookDone) => void,
  ): unknown;
  addHook(
    name: 'onError',
    hook: (
      req: FastifyRequestLike,
      reply: FastifyReplyLike,
      error: Error & { statusCode?: number },
      done: HookDone,
    ) => void,
  ): unknown;
}

/** A Fastify plugin function (callback style), typed without depending on Fastify's types. */
export type FastifyRequestLoggingPlugin = (
  instance: FastifyHooksLike,
  options: RequestLoggingOptions | undefined,
  done: (error?: Error) => void,
) => void;

/**
 * Fastify plugin doing what `requestLogging(listener)` does; `path` is the route
 * template (`request.routeOptions.url`). It is not encapsulated: registered on the
 * root instance, its hooks see every route, those of other plugins included. Errors
 * Fastify turns into 5xx answers are logged as "request failed"; 4xx ones
 * (validation, ...) as completed.
 *
 * @example
 * await app.register(requestLogging.fastify);
 */
const fastifyPlugin: FastifyRequestLoggingPlugin = function requestLoggingFastify(instance, options, done) {
  const o = resolve(options);
  instance.addHook('onRequest', (request, reply, next) => {
    // The rest of the request runs inside the context (Fastify carries it through body
    // parsing itself), and so do the listeners added to the raw request and response.
    const id = observe(request.raw, reply.raw, o, () => request.routeOptions?.url);
    inRequestLogContext({ request_id: id }, request.raw, reply.raw, next);
  });
  instance.addHook('onError', (_request, reply, error, next) => {
    recordError(reply.raw, error, error.statusCode);
    next();
  });
  done();
};
// What the fastify-plugin package sets: the hooks are not encapsulated, and the plugin
// has a readable name in Fastify's errors and printPlugins().
const fastify: FastifyRequestLoggingPlugin = Object.assign(fastifyPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: 'otel-service-kit/requestLogging',
});

/**
 * Request logging with `X-Request-ID`, for node:http (`requestLogging(listener)`),
 * Express (`requestLogging.express()`, `requestLogging.expressErrors()`) and Fastify
 * (`requestLogging.fastify`).
 *
 * Every log line written while a request is handled carries `request_id` (the
 * incoming `X-Request-ID` when it is sane — 1 to 128 of `A-Z a-z 0-9 . _ : -` — else
 * a new UUID; the raw header is never echoed or logged), InstrumentedClient's lines
 * included; the id is echoed in the `X-Request-ID` response header. When the response
 * closes: "request completed" (info; debug for probes and `/metrics`) with `method`,
 * `path` (the route template where the framework knows it, else the path without
 * query), `status_code` and `duration_ms`; "request failed" (error, with `error` and
 * `stack`) for a handler error that became a 5xx; "request aborted" (warn) when the
 * connection closed before the response was complete.
 *
 * The node:http form answers 500 when the listener throws or rejects, instead of
 * leaving the request hanging. An Express app passed as the listener gets its route
 * templates too.
 *
 * @example
 * const server = createServer(requestLogging(async (req, res) => {
 *   if (health.handle(req, res)) return;
 *   res.end(await render(req));
 * }));
 */
export const requestLogging: typeof wrapListener & {
  express: typeof express;
  expressErrors: typeof expressErrors;
  fastify: FastifyRequestLoggingPlugin;
} = Object.assign(wrapListener, { express, expressErrors, fastify });
