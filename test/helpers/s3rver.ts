import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The part of s3rver's API (a CommonJS package without types) the tests use. */
interface S3rverInstance {
  run(): Promise<{ address: string; port: number }>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverClass = new (options: Record<string, unknown>) => S3rverInstance;

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

/** s3rver's fixed credentials: it checks SigV4 signatures against this secret. */
export const s3rverCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

/**
 * A real S3-compatible server (s3rver) on a free loopback port, storing into a fresh
 * temporary directory, with `buckets` created.
 */
export class S3rverServer {
  readonly endpoint: string;
  readonly port: number;
  readonly #instance: S3rverInstance;
  readonly #directory: string;
  #stopped = false;

  private constructor(instance: S3rverInstance, port: number, directory: string) {
    this.#instance = instance;
    this.port = port;
    this.endpoint = `http://127.0.0.1:${port}`;
    this.#directory = directory;
  }

  static async start(buckets: string[]): Promise<S3rverServer> {
    const directory = mkdtempSync(join(tmpdir(), 'osk-s3rver-'));
    const instance = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory,
      configureBuckets: buckets.map((name) => ({ name })),
    });
    const { port } = await instance.run();
    return new S3rverServer(instance, port, directory);
  }

  /** The environment of a child whose `InstrumentedS3` talks to this server. */
  env(): Record<string, string> {
    return {
      S3_ENDPOINT: this.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: s3rverCredentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: s3rverCredentials.secretAccessKey,
      // s3rver stores aws-chunked upload bodies as they come, framing and all (see README).
      AWS_REQUEST_CHECKSUM_CALCULATION: 'WHEN_REQUIRED',
      AWS_RESPONSE_CHECKSUM_VALIDATION: 'WHEN_REQUIRED',
    };
  }

  /** Settings for an in-process client of this server (`InstrumentedS3`'s `clientConfig`). */
  clientConfig() {
    return {
      endpoint: this.endpoint,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { ...s3rverCredentials },
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    } as const;
  }

  /** Stop listening (dropping open connections) and delete the stored objects. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    // Keep-alive connections from clients would otherwise hold close() open.
    this.#instance.httpServer?.closeAllConnections();
    await this.#instance.close();
    rmSync(this.#directory, { recursive: true, force: true });
  }
}
