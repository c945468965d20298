// The public API: one explicit barrel. Type-only exports use `export type`.

// Configuration
export { ConfigError, isConfigError } from './config.ts';
// Logging
export { bindLogContext, getLogContext, type LogFields, withLogContext } from './logging/logContext.ts';
export { type Logger, logger } from './logging/logger.ts';
// Resilience
export { defaultTimeoutsMs, Timeouts, timeouts } from './resilience/timeouts.ts';
// Telemetry
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
export { shutdownTelemetry } from './telemetry/startTelemetry.ts';
// Clients

// Server
