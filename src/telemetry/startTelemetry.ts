import type { IncomingMessage } from 'node:http';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import type { SpanExporter } from '@opentelemetry/sdk-trace';
import {
  type Env,
  readBoolean,
  readOtelEnum,
  readOtelPort,
  readPositiveMs,
  resourceAttributes,
} from '../config.ts';
import { FailFastSpanExporter, isTraceExportFailedError } from './FailFastSpanExporter.ts';
import { internalLog, OnceDiagLogger } from './internalLog.ts';
import { undiciStartSpanHook } from './undiciSpanHook.ts';

/** What `startTelemetry` set up; kept on `globalThis` so every copy of the kit sees one SDK. */
interface TelemetryState {
  /** True when `OTEL_SDK_DISABLED=true`: nothing was started, the API stays a no-op. */
  disabled: boolean;
  /** Shuts the SDK down (flushing traces, metrics and logs); undefined when disabled. */
  shutdownSdk: (() => Promise<void>) | undefined;
  /** Where `/metrics` is served, or undefined when it is not. */
  metrics: { host: string; port: number } | undefined;
  /** Bounded wait for the final flush, in ms (`TELEMETRY_FLUSH_TIMEOUT_MS`, default 2000). */
  flushTimeoutMs: number;
  /** Set by a graceful-shutdown owner: the preload's own signal handlers then stand down. */
  signalOwner: string | undefined;
  shutdownPromise: Promise<void> | undefined;
}

const stateKey = Symbol.for('otel-service-kit.telemetry');
type Global = typeof globalThis & { [stateKey]?: TelemetryState };

/** The state of the telemetry started in this process, if any. */
export function telemetryState(): TelemetryState | undefined {
  return (globalThis as Global)[stateKey];
}

const otelLogLevels = ['none', 'error', 'warn', 'info', 'debug', 'verbose', 'all'] as const;
const diagLevelOf = {
  none: DiagLogLevel.NONE,
  error: DiagLogLevel.ERROR,
  warn: DiagLogLevel.WARN,
  info: DiagLogLevel.INFO,
  debug: DiagLogLevel.DEBUG,
  verbose: DiagLogLevel.VERBOSE,
  all: DiagLogLevel.ALL,
} as const;
const otlpProtocols = ['grpc', 'http/protobuf', 'http/json'] as const;

/**
 * The kit's default OTLP export timeout, used when neither OTEL_EXPORTER_OTLP_TRACES_TIMEOUT
 * nor OTEL_EXPORTER_OTLP_TIMEOUT is set. The spec's 10 s, with retries inside it, lets an
 * unreachable collector hold a finished process (or a shutdown) for that long.
 */
const defaultExportTimeoutMs = 2000;

/** Paths of health probes: never traced, whatever server they hit. */
const probePaths = new Set(['/health/live', '/health/ready', '/healthz', '/livez', '/readyz']);

function isProbe(url: string | undefined): boolean {
  if (url === undefined) return false;
  const q = url.indexOf('?');
  return probePaths.has(q === -1 ? url : url.slice(0, q));
}

const warn = (msg: string) => internalLog('warn', msg);

/**
 * Start the OpenTelemetry SDK as the preload does: OTLP traces, Prometheus metrics, the
 * undici/http/aws-sdk/pino instrumentations. Idempotent. Never throws for telemetry
 * reasons: a taken metrics port or an unreachable collector is reported and skipped.
 *
 * Kit variables must be validated before (see `validateKitEnvironment`).
 */
export async function startTelemetry(
  env: Env = process.env,
  /** Called after the SDK's modules are loaded and before the instrumentations hook anything. */
  beforeInstrumenting?: () => void,
): Promise<TelemetryState> {
  const g = globalThis as Global;
  const existing = g[stateKey];
  if (existing !== undefined) return existing;

  const state: TelemetryState = {
    disabled: readOtelBoolean(env, 'OTEL_SDK_DISABLED'),
    shutdownSdk: undefined,
    metrics: undefined,
    flushTimeoutMs: readPositiveMs(env, 'TELEMETRY_FLUSH_TIMEOUT_MS', 2000),
    signalOwner: undefined,
    shutdownPromise: undefined,
  };
  g[stateKey] = state;
  if (state.disabled) return state;

  const diagLevel = readOtelEnum(env, 'OTEL_LOG_LEVEL', otelLogLevels, 'warn', warn) ?? 'warn';
  const diagLogger = new OnceDiagLogger();
  const setDiag = () =>
    diag.setLogger(diagLogger, { logLevel: diagLevelOf[diagLevel], suppressOverrideMessage: true });
  setDiag();

  // Loaded in parallel, and only now: importing is most of the preload's start-up time.
  const [
    { NodeSDK },
    { PrometheusExporter },
    { HttpInstrumentation },
    { UndiciInstrumentation },
    { AwsInstrumentation },
    { PinoInstrumentation },
    { defaultResource, resourceFromAttributes },
  ] = await Promise.all([
    import('@opentelemetry/sdk-node'),
    import('@opentelemetry/exporter-prometheus'),
    import('@opentelemetry/instrumentation-http'),
    import('@opentelemetry/instrumentation-undici'),
    import('@opentelemetry/instrumentation-aws-sdk'),
    import('@opentelemetry/instrumentation-pino'),
    import('@opentelemetry/resources'),
  ]);

  // Metrics: Prometheus unless OTEL_METRICS_EXPORTER names something else, which the
  // SDK then sets up from the environment itself.
  const metricsExporters = (env.OTEL_METRICS_EXPORTER ?? '').trim();
  const ownPrometheus = metricsExporters === '' || metricsExporters === 'prometheus';
  let prometheus: InstanceType<typeof PrometheusExporter> | undefined;
  if (ownPrometheus) {
    const host = env.OTEL_EXPORTER_PROMETHEUS_HOST?.trim() || '0.0.0.0';
    const port = readOtelPort(env, 'OTEL_EXPORTER_PROMETHEUS_PORT', 9464, warn);
    // The scope labels would add otel_scope_* to every series; the catalogue's label
    // sets are exact. The server is started below, so a taken port is reported once.
    prometheus = new PrometheusExporter({ host, port, withoutScopeInfo: true, preventServerStart: true });
    state.metrics = { host, port };
  }

  // Traces: OTLP, built here rather than by NodeSDK so that (1) an invalid protocol
  // gets a warning and the default, as the spec asks, where NodeSDK would build no
  // exporter at all; (2) an unreachable collector cannot hold the process: a shorter
  // default export timeout and FailFastSpanExporter. Other OTEL_TRACES_EXPORTER values
  // (console, zipkin) are left to NodeSDK; `none` sends spans nowhere.
  let traceExporter: SpanExporter | undefined;
  const tracesExporter = (env.OTEL_TRACES_EXPORTER ?? '').trim().toLowerCase();
  if (tracesExporter === '' || tracesExporter === 'otlp') {
    const protocol =
      env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL !== undefined
        ? readOtelEnum(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', otlpProtocols, 'http/protobuf', warn)
        : readOtelEnum(env, 'OTEL_EXPORTER_OTLP_PROTOCOL', otlpProtocols, 'http/protobuf', warn);
    const timeoutSet = Boolean(
      env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT?.trim() || env.OTEL_EXPORTER_OTLP_TIMEOUT?.trim(),
    );
    const config = timeoutSet ? {} : { timeoutMillis: defaultExportTimeoutMs };
    const { OTLPTraceExporter } =
      protocol === 'http/json'
        ? await import('@opentelemetry/exporter-trace-otlp-http')
        : protocol === 'grpc'
          ? await import('@opentelemetry/exporter-trace-otlp-grpc')
          : await import('@opentelemetry/exporter-trace-otlp-proto');
    traceExporter = new FailFastSpanExporter(new OTLPTraceExporter(config));
  }

  beforeInstrumenting?.();
  const logsRequested = (env.OTEL_LOGS_EXPORTER ?? '').trim() !== '';
  const metricsPort = state.metrics?.port;
  const instrumentations: Instrumentation[] = [
    new HttpInstrumentation({
      ignoreIncomingRequestHook: (req: IncomingMessage) =>
        (metricsPort !== undefined && req.socket?.localPort === metricsPort) || isProbe(req.url),
    }),
    // Adds http.request.resend_count to retried attempts and redacts secret query values.
    new UndiciInstrumentation({ startSpanHook: undiciStartSpanHook }),
    // The SDK's own http call under each AWS span would be a duplicate client span.
    new AwsInstrumentation({ suppressInternalInstrumentation: true }),
    // Lines already go to stdout; OTLP log sending only when OTEL_LOGS_EXPORTER asks.
    new PinoInstrumentation({ disableLogSending: !logsRequested }),
  ];

  const version = resourceAttributes(env).get('service.version') ?? env.npm_package_version;
  // NodeSDK installs a plain console logger when OTEL_LOG_LEVEL is set, with a warning
  // about replacing ours; without a logger in place it has none to warn about, and ours
  // (each problem once, not once per failed batch) goes back right after.
  diag.disable();
  const sdk = new NodeSDK({
    resource:
      version === undefined
        ? defaultResource()
        : defaultResource().merge(resourceFromAttributes({ 'service.version': version })),
    instrumentations,
    ...(prometheus === undefined ? {} : { metricReaders: [prometheus], views: [undiciDurationHelp] }),
    ...(traceExporter === undefined ? {} : { traceExporter }),
    // `none` turns tracing off and nothing else; NodeSDK would warn that the whole "SDK
    // will not be initialized" while metrics and log correlation go on working.
    ...(tracesExporter === 'none' ? { spanProcessors: [] } : {}),
    ...(logsRequested ? {} : { logRecordProcessors: [] }),
  });
  setDiag();
  // The SDK reports every failed export through the global error handler, with a stack:
  // route it through diag (each problem once), minus the exports already reported.
  const { setGlobalErrorHandler } = await import('@opentelemetry/core');
  setGlobalErrorHandler((error) => {
    if (isTraceExportFailedError(error)) return;
    diag.error(error instanceof Error ? error.message : String(error));
  });
  try {
    sdk.start();
  } catch (error) {
    internalLog('error', 'OpenTelemetry SDK failed to start; the app runs without telemetry', {
      error: String(error),
    });
    return state;
  }
  state.shutdownSdk = () => sdk.shutdown();

  if (prometheus !== undefined && state.metrics !== undefined) {
    const { host, port } = state.metrics;
    // A scrape before the detectors' async attributes (host.id) settle gets an error
    // from the resource; serve once they have. NodeSDK keeps the merged resource private.
    const resource = (sdk as unknown as { _resource?: { waitForAsyncAttributes?: () => Promise<void> } })
      ._resource;
    Promise.resolve(resource?.waitForAsyncAttributes?.())
      .then(() => prometheus.startServer())
      .then(undefined, (error: NodeJS.ErrnoException) => {
        state.metrics = undefined;
        internalLog(
          'error',
          `metrics endpoint not served: cannot listen on ${host}:${port} (${error.code ?? error.message}); set OTEL_EXPORTER_PROMETHEUS_PORT to a free port`,
        );
      });
  }
  return state;
}

/**
 * The http and undici instrumentations both record `http.client.request.duration`, under
 * one Prometheus family, with different descriptions: the exporter warns of "Conflicting
 * HELP comments" at the first scrape of any service that calls out through both (an S3
 * client and an InstrumentedClient). One description, the semantic conventions' own.
 */
const undiciDurationHelp = {
  instrumentName: 'http.client.request.duration',
  meterName: '@opentelemetry/instrumentation-undici',
  description: 'Duration of HTTP client requests.',
};

function readOtelBoolean(env: Env, name: string): boolean {
  try {
    return readBoolean(env, name, false);
  } catch {
    warn(`invalid ${name}=${JSON.stringify(env[name])}: expected true or false; using false`);
    return false;
  }
}

/**
 * Flush and shut down telemetry, waiting at most `timeoutMs` (default: the state's
 * `flushTimeoutMs`). Resolves `true` when everything was flushed in time. Safe to call
 * more than once and when telemetry was never started.
 */
export async function shutdownTelemetry(timeoutMs?: number): Promise<boolean> {
  const state = telemetryState();
  if (state?.shutdownSdk === undefined) return true;
  state.shutdownPromise ??= state.shutdownSdk().catch((error: unknown) => {
    if (!isTraceExportFailedError(error))
      internalLog('warn', 'telemetry shutdown failed', { error: String(error) });
  });
  let timer: NodeJS.Timeout | undefined;
  const limit = timeoutMs ?? state.flushTimeoutMs;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, limit, false);
  });
  try {
    return await Promise.race([state.shutdownPromise.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Make `owner` the one handler of SIGTERM/SIGINT: the preload's own handlers stand down
 * and leave flushing to it (GracefulShutdown calls this).
 */
export function claimShutdownSignals(owner: string): void {
  const state = telemetryState();
  if (state !== undefined) state.signalOwner = owner;
}

/**
 * The preload's exit hooks: flush on `beforeExit`, and on SIGTERM/SIGINT when no
 * graceful-shutdown owner claimed them. After a signal the process still dies of that
 * signal (the status a supervisor expects), unless the app handles the signal itself.
 */
export function installExitHooks(): void {
  const state = telemetryState();
  if (state?.shutdownSdk === undefined) return;

  process.once('beforeExit', () => {
    void shutdownTelemetry().then((flushed) => {
      // A collector that does not answer leaves sockets and retry timers behind; the app
      // has finished, so do not let them hold the process.
      if (!flushed) {
        internalLog('warn', `telemetry not flushed within ${state.flushTimeoutMs} ms; exiting anyway`);
        process.exit();
      }
    });
  });

  const onSignal = (signal: NodeJS.Signals) => {
    if (state.signalOwner !== undefined) return;
    const appHandlesIt = process.listenerCount(signal) > 1;
    void shutdownTelemetry().finally(() => {
      if (appHandlesIt || state.signalOwner !== undefined) return;
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
