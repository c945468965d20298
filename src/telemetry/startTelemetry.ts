import { DiagLogLevel, diag, metrics } from '@opentelemetry/api';
import { setGlobalErrorHandler } from '@opentelemetry/core';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { OTLPTraceExporter as OtlpGrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as OtlpJsonTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { Instrumentation } from '@opentelemetry/instrumentation';
import {
  defaultResource,
  detectResources,
  type Resource,
  resourceFromAttributes,
} from '@opentelemetry/resources';
import {
  ConsoleMetricExporter,
  MeterProvider,
  type MetricReader,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace';
import {
  type Env,
  type KitConfig,
  readBoolean,
  readKitConfig,
  readOtelEnum,
  readOtelNumber,
  serviceIdentity,
} from '../config.ts';
import { exceptionSpans } from './exitHooks.ts';
import { CollectorConnections, FailFastSpanExporter } from './FailFastSpanExporter.ts';
import { observeHeapLimit } from './heapLimit.ts';
import { isInstrumentationOn, kitInstrumentations } from './instrumentations.ts';
import { internalLog, OnceDiagLogger } from './internalLog.ts';
import { KitContextManager } from './KitContextManager.ts';
import { RedactingSpanProcessor } from './RedactingSpanProcessor.ts';
import { resourceDetectors } from './resource.ts';
import { isTraceExportFailedError } from './TraceExportFailedError.ts';
import { claimTelemetryState, type TelemetryState, telemetryState } from './telemetryState.ts';

export { telemetryState };

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
type OtlpProtocol = (typeof otlpProtocols)[number];
const tracesExporters = ['otlp', 'console', 'zipkin', 'none'] as const;
const metricsExporters = ['prometheus', 'otlp', 'console', 'none'] as const;

/**
 * The kit's default OTLP export timeout, in ms, used when neither
 * OTEL_EXPORTER_OTLP_TRACES_TIMEOUT nor OTEL_EXPORTER_OTLP_TIMEOUT is set (or either is
 * invalid). The spec's 10 s, with retries inside it, lets an unreachable collector hold a
 * finished process (or a shutdown) for that long.
 */
const defaultExportTimeoutMs = 2000;

const warn = (msg: string) => internalLog('warn', msg);

/** Options of `startTelemetry`. */
export interface StartTelemetryOptions {
  /** The kit's settings, read and validated once (the preload passes its own). */
  config?: KitConfig;
  /** Called once the instrumentations are chosen and before they hook anything (the ESM loader is registered here). */
  beforeInstrumenting?: (instrumentations: readonly Instrumentation[]) => void;
}

/**
 * Start OpenTelemetry as the preload does: OTLP traces, Prometheus `/metrics` with runtime
 * and self-telemetry metrics, the auto-instrumentation set, resource detectors.
 * Idempotent. Never throws for telemetry reasons: a taken metrics port, an unreachable
 * collector or a bad `OTEL_*` value is reported once and skipped.
 *
 * The kit's own settings come from `options.config` (default: `readKitConfig(env)`, which
 * throws `ConfigError` for a bad one).
 */
export async function startTelemetry(
  env: Env = process.env,
  options: StartTelemetryOptions = {},
): Promise<TelemetryState> {
  const existing = telemetryState();
  if (existing !== undefined) return existing;
  const config = options.config ?? readKitConfig(env);

  const state = claimTelemetryState({
    disabled: readOtelBoolean(env, 'OTEL_SDK_DISABLED'),
    shutdownSdk: undefined,
    collectorDown: () => false,
    metrics: undefined,
    flushTimeoutMs: config.flushTimeoutMs,
    signalOwner: undefined,
    shutdownPromise: undefined,
  });
  if (state.disabled) return state;

  const diagLevel = readOtelEnum(env, 'OTEL_LOG_LEVEL', otelLogLevels, 'warn', warn) ?? 'warn';
  const diagLogger = new OnceDiagLogger();
  const setDiag = () =>
    diag.setLogger(diagLogger, { logLevel: diagLevelOf[diagLevel], suppressOverrideMessage: true });
  setDiag();

  const resource = buildResource(env, config);
  const { readers, prometheus } = await metricReaders(env, state);
  const meterProvider = new MeterProvider({ resource, readers, views: [undiciDurationHelp] });
  if (readers.length > 0) metrics.setGlobalMeterProvider(meterProvider);
  if (isInstrumentationOn(env, 'runtime-node', true)) observeHeapLimit(meterProvider);

  const traces = await spanProcessors(env, meterProvider, setDiag);
  state.collectorDown = () => traces.exporter?.down ?? false;

  const logsRequested = (env.OTEL_LOGS_EXPORTER ?? '').trim() !== '';
  const instrumentations = kitInstrumentations(env, { metricsPort: state.metrics?.port, logsRequested });
  options.beforeInstrumenting?.(instrumentations);

  // NodeSDK installs a plain console logger when OTEL_LOG_LEVEL is set, with a warning
  // about replacing ours; without a logger in place it has none to warn about, and ours
  // (each problem once) goes back right after.
  diag.disable();
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    instrumentations,
    // Metrics are the MeterProvider above, registered before the instrumentations are.
    metricReaders: [],
    spanProcessors: traces.processors,
    contextManager: new KitContextManager(),
    ...(logsRequested ? {} : { logRecordProcessors: [] }),
  });
  setDiag();
  // The SDK reports every failed export through the global error handler, with a stack:
  // route it through diag (each problem once), minus the exports already reported.
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
  state.shutdownSdk = async () => {
    await Promise.all([sdk.shutdown(), meterProvider.shutdown()]);
  };

  if (prometheus !== undefined && state.metrics !== undefined) {
    const { host, port } = state.metrics;
    // A scrape before the detectors' async attributes (host.id) settle gets an error
    // from the resource; serve once they have.
    Promise.resolve(resource.waitForAsyncAttributes?.())
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

/** The detected resource, with the service's name and version as `config.ts` reads them. */
function buildResource(env: Env, config: KitConfig): Resource {
  const id = serviceIdentity(env);
  const detected = detectResources({ detectors: resourceDetectors(env, config.resourceCommandLine) });
  return defaultResource()
    .merge(detected)
    .merge(
      resourceFromAttributes({
        'service.name': id.name,
        ...(id.version === undefined ? {} : { 'service.version': id.version }),
      }),
    );
}

/**
 * The metric readers `OTEL_METRICS_EXPORTER` asks for (default: Prometheus). An unknown
 * name is reported and skipped; when none is left, Prometheus is used.
 */
async function metricReaders(
  env: Env,
  state: TelemetryState,
): Promise<{ readers: MetricReader[]; prometheus: PrometheusExporter | undefined }> {
  const names = exporterList(env, 'OTEL_METRICS_EXPORTER', metricsExporters, 'prometheus');
  const readers: MetricReader[] = [];
  let prometheus: PrometheusExporter | undefined;
  if (names.includes('prometheus')) {
    const host = env.OTEL_EXPORTER_PROMETHEUS_HOST?.trim() || '0.0.0.0';
    const port = readOtelNumber(env, 'OTEL_EXPORTER_PROMETHEUS_PORT', 9464, warn, { min: 1, max: 65535 });
    // The scope labels would add otel_scope_* to every series; the catalogue's label
    // sets are exact. The server is started once the SDK is, so a taken port is reported once.
    prometheus = new PrometheusExporter({ host, port, withoutScopeInfo: true, preventServerStart: true });
    dropGoneBreakers(prometheus);
    state.metrics = { host, port };
    readers.push(prometheus);
  }
  if (names.includes('otlp')) readers.push(await otlpMetricReader(env));
  if (names.includes('console')) {
    readers.push(new PeriodicExportingMetricReader({ exporter: new ConsoleMetricExporter() }));
  }
  return { readers, prometheus };
}

async function otlpMetricReader(env: Env): Promise<MetricReader> {
  // Loaded only when asked for: most services are scraped on /metrics.
  const protocol = otlpProtocol(env, 'OTEL_EXPORTER_OTLP_METRICS_PROTOCOL');
  const { OTLPMetricExporter } =
    protocol === 'grpc'
      ? await import('@opentelemetry/exporter-metrics-otlp-grpc')
      : protocol === 'http/json'
        ? await import('@opentelemetry/exporter-metrics-otlp-http')
        : await import('@opentelemetry/exporter-metrics-otlp-proto');
  return new PeriodicExportingMetricReader({ exporter: new OTLPMetricExporter() });
}

/** The OTLP protocol for one signal: its own variable, else OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf. */
function otlpProtocol(env: Env, signalVariable: string): OtlpProtocol {
  return (
    readOtelEnum(env, signalVariable, otlpProtocols, 'http/protobuf', warn) ??
    readOtelEnum(env, 'OTEL_EXPORTER_OTLP_PROTOCOL', otlpProtocols, 'http/protobuf', warn) ??
    'http/protobuf'
  );
}

/**
 * `circuit_breaker_state` without the breakers that are gone. With Prometheus's cumulative
 * temporality the SDK keeps every series an observable gauge ever reported: a breaker
 * made per tenant and collected long ago would stay on /metrics for good. The kit's
 * breakers are registered on globalThis (resilienceInstruments.ts); a series whose
 * breaker is no longer there is left out of the scrape. (Delta temporality for all
 * gauges would do it too, but a runtime gauge skipped at one collection would then go
 * stale in Prometheus and reset the alerts that wait on it.)
 */
function dropGoneBreakers(prometheus: PrometheusExporter): void {
  const collect = prometheus.collect.bind(prometheus);
  prometheus.collect = async (options) => {
    const result = await collect(options);
    const live = (globalThis as Record<symbol, Map<string, unknown> | undefined>)[
      Symbol.for('otel-service-kit.breakers')
    ];
    for (const scope of result.resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        if (metric.descriptor.name !== 'circuit_breaker_state') continue;
        (metric as { dataPoints: unknown[] }).dataPoints = metric.dataPoints.filter((point) =>
          live?.has(String(point.attributes.breaker)),
        );
      }
    }
    return result;
  };
}

/** The span processors `OTEL_TRACES_EXPORTER` asks for (default: OTLP), each behind the redaction of secrets. */
async function spanProcessors(
  env: Env,
  meterProvider: MeterProvider,
  restoreDiag: () => void,
): Promise<{ processors: SpanProcessor[]; exporter: FailFastSpanExporter | undefined }> {
  const names = exporterList(env, 'OTEL_TRACES_EXPORTER', tracesExporters, 'otlp');
  const processors: SpanProcessor[] = [new RedactingSpanProcessor(), exceptionSpans];
  let failFast: FailFastSpanExporter | undefined;
  if (names.includes('otlp')) {
    const timeoutMs = readOtelNumber(
      env,
      'OTEL_EXPORTER_OTLP_TRACES_TIMEOUT',
      readOtelNumber(env, 'OTEL_EXPORTER_OTLP_TIMEOUT', defaultExportTimeoutMs, warn, { min: 1 }),
      warn,
      { min: 1 },
    );
    const protocol = otlpProtocol(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL');
    const connections = protocol === 'grpc' ? undefined : new CollectorConnections();
    const config = {
      timeoutMillis: timeoutMs,
      selfObsMeterProvider: meterProvider,
      ...(connections === undefined ? {} : { httpAgentOptions: (p: string) => connections.agent(p) }),
    };
    failFast = new FailFastSpanExporter(() => otlpTraceExporter(protocol, config, restoreDiag), {
      timeoutMs,
      connections,
    });
    const exporter = failFast;
    processors.push(
      { ...noopProcessor, onStart: () => exporter.warmUp() },
      batchProcessor(env, failFast, meterProvider),
    );
  }
  if (names.includes('zipkin')) {
    const { ZipkinExporter } = await import('@opentelemetry/exporter-zipkin');
    processors.push(batchProcessor(env, new ZipkinExporter(), meterProvider));
  }
  if (names.includes('console'))
    processors.push(new SimpleSpanProcessor({ exporter: new ConsoleSpanExporter() }));
  return { processors: processors.length === 2 ? [] : processors, exporter: failFast };
}

/** The OTLP span exporter for `protocol`, built with `diag` quiet (see below). */
function otlpTraceExporter(protocol: OtlpProtocol, config: object, restoreDiag: () => void): SpanExporter {
  // The exporter reads its environment variables when it is built and reports a bad
  // timeout itself; the kit has reported it already (with the default it uses instead).
  diag.disable();
  try {
    if (protocol === 'grpc') return new OtlpGrpcTraceExporter(config);
    if (protocol === 'http/json') return new OtlpJsonTraceExporter(config);
    return new OtlpProtoTraceExporter(config);
  } finally {
    restoreDiag();
  }
}

const noopProcessor: SpanProcessor = {
  onStart: () => {},
  onEnd: () => {},
  forceFlush: () => Promise.resolve(),
  shutdown: () => Promise.resolve(),
};

/** A batch span processor with the OTEL_BSP_* settings, counting its spans on `/metrics`. */
function batchProcessor(env: Env, exporter: SpanExporter, meterProvider: MeterProvider): SpanProcessor {
  const opt = (name: string) => readOtelNumber(env, name, undefined, warn, { min: 0 });
  const settings = {
    maxQueueSize: opt('OTEL_BSP_MAX_QUEUE_SIZE'),
    scheduledDelayMillis: opt('OTEL_BSP_SCHEDULE_DELAY'),
    exportTimeoutMillis: opt('OTEL_BSP_EXPORT_TIMEOUT'),
    maxExportBatchSize: opt('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
  };
  const set = Object.fromEntries(Object.entries(settings).filter(([, v]) => v !== undefined));
  return new BatchSpanProcessor({ exporter, selfObsMeterProvider: meterProvider, ...set });
}

/** The names in a comma-separated `OTEL_*_EXPORTER` list; an unknown one is reported once and skipped. */
function exporterList<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T[] {
  const raw = (env[name] ?? '').trim();
  if (raw === '') return [fallback];
  const names: T[] = [];
  for (const item of raw.split(',')) {
    const value = item.trim().toLowerCase();
    const hit = allowed.find((a) => a === value);
    if (hit !== undefined) names.push(hit);
    else
      warn(
        `invalid ${name} entry ${JSON.stringify(item.trim())}: expected ${allowed.join(', ')}; ${
          raw.split(',').length > 1 ? 'ignored' : `using ${fallback}`
        }`,
      );
  }
  return names.length > 0 ? names : [fallback];
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
