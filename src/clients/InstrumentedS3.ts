import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import type {
  $Command,
  DeleteObjectCommandInput,
  DeleteObjectCommandOutput,
  GetObjectCommandInput,
  GetObjectCommandOutput,
  HeadObjectCommandInput,
  HeadObjectCommandOutput,
  ListObjectsV2CommandInput,
  ListObjectsV2CommandOutput,
  PutObjectCommandInput,
  PutObjectCommandOutput,
  S3Client,
  S3ClientConfig,
  S3ClientResolvedConfig,
  ServiceInputTypes,
  ServiceOutputTypes,
} from '@aws-sdk/client-s3';
import { diag } from '@opentelemetry/api';
import type { InitializeHandler, InitializeHandlerArguments, InitializeMiddleware } from '@smithy/types';
import { readBoolean, readHttpUrl, readString } from '../config.ts';
import { logger } from '../logging/logger.ts';
import { timeouts } from '../resilience/timeouts.ts';
import { recordS3Bytes, recordS3Request } from '../telemetry/instruments.ts';
import { countReadBytes } from './countingStream.ts';
import { MissingPeerDependencyError } from './MissingPeerDependencyError.ts';

/** Options of `new InstrumentedS3(...)`. */
export interface InstrumentedS3Options {
  /** The bucket the methods work on, and the `bucket` label of their metrics. Required. */
  bucket: string;
  /**
   * A client of your own, used as it is (its config, timeouts included, is yours).
   * Default: a client built from the environment: `AWS_REGION`, `S3_ENDPOINT`,
   * `S3_FORCE_PATH_STYLE`, `S3_TIMEOUT_MS` (30 000 ms).
   */
  client?: S3Client | undefined;
  /**
   * Settings merged over the environment's when the client is built here (credentials,
   * `maxAttempts`, checksum settings...). Default: none. Not allowed with `client`.
   */
  clientConfig?: S3ClientConfig | undefined;
}

/** Per-call options: the same as the AWS SDK's `send` takes. */
export interface S3CallOptions {
  /** Aborts the call (the SDK rejects with an `AbortError`). Default: none. */
  abortSignal?: AbortSignal | undefined;
}

/** The defaults of `InstrumentedS3Options`. */
export const defaultInstrumentedS3Options: {
  readonly client: S3Client | undefined;
  readonly clientConfig: Readonly<S3ClientConfig>;
} = Object.freeze({ client: undefined, clientConfig: Object.freeze({}) });

type S3Sdk = typeof import('@aws-sdk/client-s3');
type AnyS3Command<I extends ServiceInputTypes, O extends ServiceOutputTypes> = $Command<
  I,
  O,
  S3ClientResolvedConfig,
  ServiceInputTypes,
  ServiceOutputTypes
>;

const sdkPackage = '@aws-sdk/client-s3';
let sdk: S3Sdk | undefined;

/**
 * The AWS SDK, loaded on first use so that an app without it can import the kit.
 * `require` rather than `import()` keeps construction synchronous; the SDK is CommonJS
 * with no exports map, so an app's own `import` of it gets this very module instance
 * (one set of command classes, one copy patched by the aws-sdk instrumentation).
 */
function loadSdk(): S3Sdk {
  if (sdk !== undefined) return sdk;
  try {
    sdk = createRequire(import.meta.url)(sdkPackage) as S3Sdk;
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    const missing =
      code === 'MODULE_NOT_FOUND' ||
      code === 'ERR_MODULE_NOT_FOUND' ||
      code === 'ERR_PACKAGE_PATH_NOT_EXPORTED';
    if (missing && String((error as Error).message).includes(sdkPackage)) {
      throw new MissingPeerDependencyError(sdkPackage, 'InstrumentedS3', error);
    }
    throw error;
  }
  return sdk;
}

/** The client settings the environment asks for. */
function clientConfigFromEnv(env: NodeJS.ProcessEnv): S3ClientConfig {
  const timeoutMs = timeouts.get('S3');
  const config: S3ClientConfig = {
    // A connect timeout and a read (idle socket) timeout: the SDK's own `requestTimeout` only warns
    // unless told to throw, and would also cut off a large upload that is still flowing.
    requestHandler: { connectionTimeout: timeoutMs, socketTimeout: timeoutMs },
  };
  const endpoint = readHttpUrl(env, 'S3_ENDPOINT');
  if (endpoint !== undefined) config.endpoint = endpoint;
  const region = readString(env, 'AWS_REGION', '');
  // S3-compatible stores ignore the region, but the SDK signs with one and refuses to
  // start without; with AWS itself the SDK's own lookup (profile) applies.
  if (region !== '') config.region = region;
  else if (endpoint !== undefined) config.region = 'us-east-1';
  if (readBoolean(env, 'S3_FORCE_PATH_STYLE', false)) config.forcePathStyle = true;
  return config;
}

const operationNames = new WeakMap<object, string>();

/** `PutObjectCommand` → `PutObject`, cached per command class. */
function operationOf(command: object): string {
  const ctor = command.constructor;
  let name = operationNames.get(ctor);
  if (name === undefined) {
    name = ctor.name.endsWith('Command') ? ctor.name.slice(0, -'Command'.length) : ctor.name;
    operationNames.set(ctor, name);
  }
  return name;
}

/** The HTTP status of a service error (`$metadata.httpStatusCode`); undefined when none answered. */
function statusOf(error: unknown): number | undefined {
  const status = (error as { $metadata?: { httpStatusCode?: unknown } } | null)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** Size of a body the SDK sends in one piece; streams are counted as they flow instead. */
function fixedBodyBytes(body: unknown): number {
  if (typeof body === 'string') return Buffer.byteLength(body, 'utf8');
  if (ArrayBuffer.isView(body) || body instanceof ArrayBuffer) return body.byteLength;
  if (typeof Blob !== 'undefined' && body instanceof Blob) return body.size;
  return 0;
}

const noOptions: S3CallOptions = Object.freeze({});
const initializeFirst = Object.freeze({ step: 'initialize', priority: 'high' } as const);

/**
 * One S3 operation in flight: measures it, counts its bytes and logs its failure.
 *
 * It does so in a middleware at the very start of the command's own stack, because
 * that runs inside the aws-sdk instrumentation's span: the failure line carries the
 * trace and span ids of `S3.GetObject`, which code after `await client.send()` (back in
 * the caller's context) would not.
 */
class S3Call<I extends ServiceInputTypes, O extends ServiceOutputTypes> {
  readonly #operation: string;
  readonly #bucket: string;
  readonly #key: string | undefined;
  readonly #start = performance.now();
  readonly #fixedBytes: number;
  readonly #stopUploadCount: (() => void) | undefined;
  settled = false;

  constructor(operation: string, bucket: string, input: Record<string, unknown>) {
    this.#operation = operation;
    this.#bucket = bucket;
    this.#key = typeof input.Key === 'string' ? input.Key : undefined;
    const body = input.Body;
    if (body instanceof Readable) {
      this.#fixedBytes = 0;
      this.#stopUploadCount = countReadBytes(body, (n) => recordS3Bytes(operation, bucket, n));
    } else {
      this.#fixedBytes = fixedBodyBytes(body);
      this.#stopUploadCount = undefined;
    }
  }

  readonly middleware: InitializeMiddleware<I, O> =
    (next: InitializeHandler<I, O>) => async (args: InitializeHandlerArguments<I>) => {
      let result: Awaited<ReturnType<typeof next>>;
      try {
        result = await next(args);
      } catch (error) {
        this.failed(error);
        throw error;
      }
      const output = result.output as { $metadata?: { httpStatusCode?: number }; Body?: unknown };
      this.succeeded(output.$metadata?.httpStatusCode ?? 200, output.Body);
      return result;
    };

  succeeded(statusCode: number, body: unknown): void {
    this.settled = true;
    try {
      this.#succeeded(statusCode, body);
    } catch (error) {
      // Telemetry never fails the caller's call.
      diag.error(`otel-service-kit: recording an S3 operation failed: ${String(error)}`);
    }
  }

  failed(error: unknown): void {
    this.settled = true;
    try {
      this.#failed(error);
    } catch (telemetryError) {
      diag.error(`otel-service-kit: recording an S3 operation failed: ${String(telemetryError)}`);
    }
  }

  #succeeded(statusCode: number, body: unknown): void {
    recordS3Request(this.#operation, this.#bucket, statusCode, undefined, this.#seconds());
    recordS3Bytes(this.#operation, this.#bucket, this.#fixedBytes);
    if (body instanceof Readable) {
      const operation = this.#operation;
      const bucket = this.#bucket;
      countReadBytes(body, (n) => recordS3Bytes(operation, bucket, n));
    }
  }

  #failed(error: unknown): void {
    const seconds = this.#seconds();
    const status = statusOf(error);
    if (status === undefined) {
      recordS3Request(this.#operation, this.#bucket, undefined, error, seconds);
      logger.error(
        { operation: this.#operation, bucket: this.#bucket, key: this.#key, error: String(error) },
        'S3 operation failed (network)',
      );
      return;
    }
    recordS3Request(this.#operation, this.#bucket, status, undefined, seconds);
    // The server answered, so a body sent in one piece went out.
    recordS3Bytes(this.#operation, this.#bucket, this.#fixedBytes);
    // A 304 answering a conditional GET is an outcome the caller asked for, not a failure.
    if (status < 400) return;
    logger.error(
      {
        operation: this.#operation,
        bucket: this.#bucket,
        key: this.#key,
        status_code: status,
        error: String(error),
      },
      'S3 operation failed',
    );
  }

  /** The call is over: a stream body still flowing after it is no longer this call's. */
  release(): void {
    this.#stopUploadCount?.();
  }

  #seconds(): number {
    return (performance.now() - this.#start) / 1000;
  }
}

/**
 * An S3 client that measures and logs every operation: `s3_requests_total`,
 * `s3_request_duration_seconds` and `s3_bytes_transferred_total` (bodies sent, and
 * bodies received as the caller reads them), and one error line per failure, with the
 * trace ids of the aws-sdk instrumentation's span. Errors reach the caller unchanged.
 *
 * `@aws-sdk/client-s3` is an optional peer dependency, loaded by the constructor: it
 * throws a `MissingPeerDependencyError` when the SDK is not installed.
 *
 * @example
 * const receipts = new InstrumentedS3({ bucket: 'receipts' });
 * await receipts.putObject(`2024/${id}.json`, JSON.stringify(receipt), { ContentType: 'application/json' });
 * const { Body } = await receipts.getObject(`2024/${id}.json`);
 * const text = await Body?.transformToString();
 */
export class InstrumentedS3 {
  /** The bucket of the convenience methods. */
  readonly bucket: string;
  /** The AWS SDK client the calls go through. */
  readonly client: S3Client;
  readonly #sdk: S3Sdk;
  readonly #ownsClient: boolean;

  constructor(options: InstrumentedS3Options) {
    const { bucket, client, clientConfig } = { ...defaultInstrumentedS3Options, ...options };
    if (typeof bucket !== 'string' || bucket === '') {
      throw new TypeError('InstrumentedS3: options.bucket must be a non-empty string');
    }
    if (client !== undefined && clientConfig !== defaultInstrumentedS3Options.clientConfig) {
      throw new TypeError('InstrumentedS3: give either options.client or options.clientConfig, not both');
    }
    this.#sdk = loadSdk();
    this.bucket = bucket;
    this.#ownsClient = client === undefined;
    this.client = client ?? new this.#sdk.S3Client({ ...clientConfigFromEnv(process.env), ...clientConfig });
  }

  /** Upload `body` (a Buffer, string, Uint8Array or Readable) to `key`. */
  putObject(
    key: string,
    body: PutObjectCommandInput['Body'],
    extra?: Omit<PutObjectCommandInput, 'Bucket' | 'Key' | 'Body'>,
    options?: S3CallOptions,
  ): Promise<PutObjectCommandOutput> {
    return this.send(
      new this.#sdk.PutObjectCommand({ ...extra, Bucket: this.bucket, Key: key, Body: body }),
      options,
    );
  }

  /** Download `key`; its `Body` is counted as you read it. */
  getObject(
    key: string,
    extra?: Omit<GetObjectCommandInput, 'Bucket' | 'Key'>,
    options?: S3CallOptions,
  ): Promise<GetObjectCommandOutput> {
    return this.send(new this.#sdk.GetObjectCommand({ ...extra, Bucket: this.bucket, Key: key }), options);
  }

  /** The metadata of `key`. */
  headObject(
    key: string,
    extra?: Omit<HeadObjectCommandInput, 'Bucket' | 'Key'>,
    options?: S3CallOptions,
  ): Promise<HeadObjectCommandOutput> {
    return this.send(new this.#sdk.HeadObjectCommand({ ...extra, Bucket: this.bucket, Key: key }), options);
  }

  /** Delete `key`. */
  deleteObject(
    key: string,
    extra?: Omit<DeleteObjectCommandInput, 'Bucket' | 'Key'>,
    options?: S3CallOptions,
  ): Promise<DeleteObjectCommandOutput> {
    return this.send(new this.#sdk.DeleteObjectCommand({ ...extra, Bucket: this.bucket, Key: key }), options);
  }

  /** One page (up to 1000 keys) of the keys under `prefix` (ListObjectsV2). */
  listObjects(
    prefix?: string,
    extra?: Omit<ListObjectsV2CommandInput, 'Bucket' | 'Prefix'>,
    options?: S3CallOptions,
  ): Promise<ListObjectsV2CommandOutput> {
    const input: ListObjectsV2CommandInput = { ...extra, Bucket: this.bucket };
    if (prefix !== undefined) input.Prefix = prefix;
    return this.send(new this.#sdk.ListObjectsV2Command(input), options);
  }

  /**
   * Send any S3 command, measured and logged like the methods above. The `operation`
   * label is the API name (`CopyObjectCommand` → `CopyObject`); the `bucket` label is
   * the command's `Bucket`, or this instance's bucket when it has none.
   *
   * @example
   * await s3.send(new CopyObjectCommand({ Bucket: s3.bucket, Key: 'b', CopySource: `${s3.bucket}/a` }));
   */
  async send<I extends ServiceInputTypes, O extends ServiceOutputTypes>(
    command: AnyS3Command<I, O>,
    options: S3CallOptions = noOptions,
  ): Promise<O> {
    const input = command.input as Record<string, unknown>;
    const bucket = typeof input.Bucket === 'string' ? input.Bucket : this.bucket;
    const call = new S3Call<I, O>(operationOf(command), bucket, input);
    try {
      const stack = command.middlewareStack;
      stack.add(call.middleware, initializeFirst);
      let pending: Promise<O>;
      try {
        // Options always given: with the client's `cacheMiddleware` on, a call without
        // them would reuse a handler built with another call's middleware.
        pending = this.client.send(command, options);
      } finally {
        // `send` builds its handler from the stacks synchronously: removing ours right
        // away leaves the command as it was, even if it is sent again concurrently.
        stack.remove(call.middleware);
      }
      return await pending;
    } catch (error) {
      // Failed before our middleware ran (or the SDK changed how it builds handlers):
      // still measured and logged, without the span's trace ids.
      if (!call.settled) call.failed(error);
      throw error;
    } finally {
      call.release();
    }
  }

  /** Close the client's connections, when the client was built here (yours stay yours). */
  destroy(): void {
    if (this.#ownsClient) this.client.destroy();
  }
}
