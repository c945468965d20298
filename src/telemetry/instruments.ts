import { type Attributes, type Counter, type Histogram, metrics } from '@opentelemetry/api';
import { classifyStatus, type StatusClass } from './classifyStatus.ts';

/**
 * The metric catalogue (DESIGN.md). OTel names are chosen so the Prometheus exporter
 * renders exactly the documented families: it appends `_total` to counters and adds no
 * unit suffix, so histogram names already end in `_seconds`.
 *
 * The instruments are created when this module is first evaluated, which under the
 * preload is after the MeterProvider is registered (the metrics API has no proxy
 * provider: an instrument created earlier would stay a no-op forever).
 */
const meter = metrics.getMeter('otel-service-kit');

const httpBuckets = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const s3Buckets = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

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

/** `s3_requests_total{operation,bucket,status_class}`: S3 operations. */
export const s3Requests: Counter = meter.createCounter('s3_requests', {
  description: 'Total S3 operations',
});

/** `s3_request_duration_seconds{operation,bucket}`: S3 operation latency. */
export const s3Duration: Histogram = meter.createHistogram('s3_request_duration_seconds', {
  description: 'S3 operation latency',
  unit: 's',
  advice: { explicitBucketBoundaries: s3Buckets },
});

/** `s3_bytes_transferred_total{operation,bucket}`: bytes sent and received, bodies only. */
export const s3Bytes: Counter = meter.createCounter('s3_bytes_transferred', {
  description: 'Bytes transferred to/from S3',
});

/**
 * Label sets are interned: the same labels are one frozen object, found through nested
 * maps without building a key string, so recording on the hot path allocates nothing
 * after the first call with those labels. Label values are low-cardinality by design
 * (service names, methods, operations, buckets); past the cap new label sets are still
 * recorded, just not cached.
 */
type Leaf = Map<string, Attributes>;
type Branch = Map<string, Leaf>;
const internCap = 10_000;
let interned = 0;

function lookup(root: Branch, a: string, b: string): Attributes | undefined {
  return root.get(a)?.get(b);
}

function store(root: Branch, a: string, b: string, attrs: Attributes): Attributes {
  Object.freeze(attrs);
  if (interned >= internCap) return attrs;
  interned++;
  let leaf = root.get(a);
  if (leaf === undefined) {
    leaf = new Map();
    root.set(a, leaf);
  }
  leaf.set(b, attrs);
  return attrs;
}

/** (service|operation) → (method|bucket) → label set, and the same with one map per status class. */
const httpTimed: Branch = new Map();
const s3Timed: Branch = new Map();
const httpCounted = new Map<StatusClass, Branch>();
const s3Counted = new Map<StatusClass, Branch>();

function byClass(maps: Map<StatusClass, Branch>, statusClass: StatusClass): Branch {
  let root = maps.get(statusClass);
  if (root === undefined) {
    root = new Map();
    maps.set(statusClass, root);
  }
  return root;
}

/** Record one outbound HTTP attempt: the counter with its status class, and the latency. */
export function recordHttpClientRequest(
  service: string,
  method: string,
  statusCode: number | undefined,
  error: unknown,
  seconds: number,
): void {
  const status_class = classifyStatus(statusCode, error);
  const counted = byClass(httpCounted, status_class);
  httpClientRequests.add(
    1,
    lookup(counted, service, method) ?? store(counted, service, method, { service, method, status_class }),
  );
  httpClientDuration.record(
    seconds,
    lookup(httpTimed, service, method) ?? store(httpTimed, service, method, { service, method }),
  );
}

/** Record one S3 operation: the counter with its status class, and the latency. */
export function recordS3Request(
  operation: string,
  bucket: string,
  statusCode: number | undefined,
  error: unknown,
  seconds: number,
): void {
  const status_class = classifyStatus(statusCode, error);
  const counted = byClass(s3Counted, status_class);
  s3Requests.add(
    1,
    lookup(counted, operation, bucket) ??
      store(counted, operation, bucket, { operation, bucket, status_class }),
  );
  s3Duration.record(seconds, s3Labels(operation, bucket));
}

/** Count S3 body bytes, sent or received. */
export function recordS3Bytes(operation: string, bucket: string, bytes: number): void {
  if (bytes > 0) s3Bytes.add(bytes, s3Labels(operation, bucket));
}

function s3Labels(operation: string, bucket: string): Attributes {
  return lookup(s3Timed, operation, bucket) ?? store(s3Timed, operation, bucket, { operation, bucket });
}
