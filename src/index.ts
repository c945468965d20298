// The public API: one explicit barrel. Type-only exports use `export type`.

export { BrokenCircuitError, isBrokenCircuitError } from 'cockatiel';
export {
  type ClientRequestOptions,
  type ClientResponse,
  defaultClientOptions,
  InstrumentedClient,
  type InstrumentedClientOptions,
} from './clients/InstrumentedClient.ts';
export {
  defaultInstrumentedS3Options,
  InstrumentedS3,
  type InstrumentedS3Options,
  type S3CallOptions,
} from './clients/InstrumentedS3.ts';
export {
  isMissingPeerDependencyError,
  MissingPeerDependencyError,
} from './clients/MissingPeerDependencyError.ts';
export { ConfigError, isConfigError } from './config.ts';
export { bindLogContext, getLogContext, type LogFields, withLogContext } from './logging/logContext.ts';
export { type Logger, logger } from './logging/logger.ts';
export { callWithRetry, type RetryingClient } from './resilience/callWithRetry.ts';
export {
  type CircuitBreakerOptions,
  createCircuitBreaker,
  defaultCircuitBreakerOptions,
} from './resilience/createCircuitBreaker.ts';
export {
  defaultRetryOptions,
  HttpRetryPolicy,
  idempotentMethods,
  type RetryOptions,
} from './resilience/HttpRetryPolicy.ts';
export { defaultTimeoutsMs, Timeouts, timeouts } from './resilience/timeouts.ts';
export {
  isSecretName,
  redactQuery,
  redactText,
  secretNames,
  secretQueryOnlyNames,
  secretWords,
} from './secrets.ts';
export {
  defaultGracefulShutdownOptions,
  GracefulShutdown,
  type GracefulShutdownOptions,
} from './server/GracefulShutdown.ts';
export {
  defaultHealthCheckOptions,
  defaultHealthOptions,
  Health,
  type HealthCheck,
  type HealthCheckOptions,
  type HealthCheckResult,
  type HealthClock,
  type HealthOptions,
  health,
  type Readiness,
} from './server/health.ts';
export { isSaneRequestId, requestIdFrom } from './server/requestId.ts';
export {
  defaultRequestLoggingOptions,
  type RequestLoggingOptions,
  requestLogging,
} from './server/requestLogging.ts';
export { classifyStatus, type StatusClass } from './telemetry/classifyStatus.ts';
export {
  httpClientDuration,
  httpClientRequests,
  recordHttpClientRequest,
  recordS3Bytes,
  recordS3Request,
  s3Bytes,
  s3Duration,
  s3Requests,
} from './telemetry/instruments.ts';
export {
  type BreakerStateName,
  circuitBreakerState,
  type ResilienceEvent,
  type ResiliencePolicy,
  recordResilienceEvent,
  resilienceEvents,
} from './telemetry/resilienceInstruments.ts';
export { shutdownTelemetry } from './telemetry/telemetryState.ts';
export { isKitRequest as undiciIgnoreRequestHook, undiciStartSpanHook } from './telemetry/undiciSpanHook.ts';
