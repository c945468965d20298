import { type Attributes, type Counter, type Histogram, metrics } from '@opentelemetry/api';
import { classifyStatus, type StatusClass } from './classifyStatus.ts';
import { LabelSets } from './LabelSets.ts';

/**
 * The metric catalogue (docs/metrics.md). OTel names are chosen so the Prometheus exporter
 * renders exactly the documented families: it appends `_total` to counters and adds no
 * unit suffix, so histogram names already end in `_seconds`.
 *
 * The instruments are created when this module is first evaluated, which under the
 * preload is after the MeterProvider is registered (the metrics API has no proxy
 * provider: an instrument created earlier would stay a no-op forever).
 */
const meter = metrics.getMeter('otel-service-kit');

const httpBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** The semantic conventions' HTTP duration buckets: the S3 histogram's and `http.client.request.duration`'s. */
const semconvBuckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

/** `http_client_requests_total{service,method,status_class}`: outbound HTTP requests, one per attempt. */
export const httpClientRequests: Counter = meter.createCounter('http_client_requests', {
  description: 'Total outbound HTTP requests',
});

/** `http_client_request_duration_seconds{service,method}`: outbound HTTP request latency. */
export const httpClientDuration: Histogram = meter.createHistogram('http_client_request_duration_seconds', {
  description: 'Outbound HTTP request latency',
  unit: 's',
  advice: { explicitBucketBoundaries: httpBuckets },
});

/**
 * `http.client.request.duration` (Prometheus `http_client_request_duration`), the semantic
 * conventions' histogram, which the undici and node:http instrumentations record for every
 * other outbound call. The undici instrumentation leaves InstrumentedClient's requests to
 * the kit, which records them here with the same attributes, description and buckets, so
 * the family still holds every outbound call.
 */
const httpClientSemconvDuration: Histogram = meter.createHistogram('http.client.request.duration', {
  description: 'Duration of HTTP client requests.',
  unit: 's',
  advice: { explicitBucketBoundaries: semconvBuckets },
});

/** Record one InstrumentedClient attempt in `http.client.request.duration`, with `attributes` from `semconvClientAttributes`. */
export function recordHttpClientDuration(attributes: Attributes, seconds: number): void {
  httpClientSemconvDuration.record(seconds, attributes);
}

/**
 * `http.client.request.duration`'s attributes for the attempts of one client (server
 * address and port, scheme), as the undici instrumentation writes them: `get(method,
 * statusCode, errorType)` gives one frozen set per outcome.
 */
export function semconvClientAttributes(
  serverAddress: string,
  serverPort: number,
  scheme: string,
): (method: string, statusCode: number | undefined, errorType: string | undefined) => Attributes {
  const sets = new LabelSets(1000);
  const make = (method: string, status: string, error: string): Attributes => {
    const attributes: Attributes = {
      'http.request.method': method,
      'server.address': serverAddress,
      'server.port': serverPort,
      'url.scheme': scheme,
      'network.protocol.version': '1.1',
    };
    if (status !== '') attributes['http.response.status_code'] = Number(status);
    if (error !== '') attributes['error.type'] = error;
    return attributes;
  };
  return (method, statusCode, errorType) =>
    sets.get(method, statusCode === undefined ? '' : String(statusCode), errorType ?? '', make);
}

/** `s3_requests_total{operation,bucket,status_class}`: S3 operations. */
export const s3Requests: Counter = meter.createCounter('s3_requests', {
  description: 'Total S3 operations',
});

/** `s3_request_duration_seconds{operation,bucket}`: S3 operation latency. */
export const s3Duration: Histogram = meter.createHistogram('s3_request_duration_seconds', {
  description: 'S3 operation latency',
  unit: 's',
  advice: { explicitBucketBoundaries: semconvBuckets },
});

/** `s3_bytes_transferred_total{operation,bucket}`: bytes sent and received, bodies only. */
export const s3Bytes: Counter = meter.createCounter('s3_bytes_transferred', {
  description: 'Bytes transferred to/from S3',
});

// One frozen label object per label set (LabelSets): recording allocates nothing once a
// set has been seen.
const httpCounted = new LabelSets();
const httpTimed = new LabelSets();
const s3Counted = new LabelSets();
const s3Timed = new LabelSets();
const httpCountedLabels = (service: string, method: string, status_class: string) => ({
  service,
  method,
  status_class,
});
const httpTimedLabels = (service: string, method: string) => ({ service, method });
const s3CountedLabels = (operation: string, bucket: string, status_class: string) => ({
  operation,
  bucket,
  status_class,
});
const s3TimedLabels = (operation: string, bucket: string) => ({ operation, bucket });

/** Record one outbound HTTP attempt: the counter with its status class, and the latency. */
export function recordHttpClientRequest(
  service: string,
  method: string,
  statusCode: number | undefined,
  error: unknown,
  seconds: number,
): void {
  const statusClass: StatusClass = classifyStatus(statusCode, error);
  httpClientRequests.add(1, httpCounted.get(service, method, statusClass, httpCountedLabels));
  httpClientDuration.record(seconds, httpTimed.get(service, method, '', httpTimedLabels));
}

/** Record one S3 operation: the counter with its status class, and the latency. */
export function recordS3Request(
  operation: string,
  bucket: string,
  statusCode: number | undefined,
  error: unknown,
  seconds: number,
): void {
  const statusClass: StatusClass = classifyStatus(statusCode, error);
  s3Requests.add(1, s3Counted.get(operation, bucket, statusClass, s3CountedLabels));
  s3Duration.record(seconds, s3Timed.get(operation, bucket, '', s3TimedLabels));
}

/** Count S3 body bytes, sent or received. */
export function recordS3Bytes(operation: string, bucket: string, bytes: number): void {
  if (bytes > 0) s3Bytes.add(bytes, s3Timed.get(operation, bucket, '', s3TimedLabels));
}
