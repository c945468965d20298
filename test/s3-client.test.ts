// InstrumentedS3 in the test process, its metrics read from an in-memory MeterProvider:
// how bytes are counted for each kind of body and each way of reading one, how answers
// are classified, and what construction accepts. Peers are real: s3rver, and a loopback
// HTTP server for the answers s3rver never gives (503 SlowDown, 429).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createReadStream, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { S3rverServer } from './helpers/s3rver.ts';

class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

// The instruments are created when the kit is first evaluated: the provider goes first.
const reader = new TestReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
process.env.LOG_LEVEL = 'silent';
process.env.S3_TIMEOUT_MS = '4321';
const { InstrumentedS3, logger, isConfigError } = await import('../src/index.ts');
const { CopyObjectCommand, S3Client } = await import('@aws-sdk/client-s3');

/** The value of `name` (an OTel counter name) with exactly these attributes, or undefined. */
async function counter(name: string, attributes: Record<string, string>): Promise<number | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const point of metric.dataPoints) {
        const attrs = point.attributes as Record<string, unknown>;
        const keys = Object.keys(attrs);
        if (keys.length === Object.keys(attributes).length && keys.every((k) => attrs[k] === attributes[k])) {
          return point.value as number;
        }
      }
    }
  }
  return undefined;
}
const bytes = (operation: string, bucket: string) => counter('s3_bytes_transferred', { operation, bucket });
const requests = (operation: string, bucket: string, status_class: string) =>
  counter('s3_requests', { operation, bucket, status_class });

describe('against s3rver', () => {
  let server: S3rverServer;
  const buckets = ['views', 'files', 'reads', 'copies', 'env'];
  before(async () => {
    server = await S3rverServer.start(buckets);
  });
  after(() => server.stop());
  const s3 = (bucket: string) => new InstrumentedS3({ bucket, clientConfig: server.clientConfig() });

  test('a Uint8Array view counts its own bytes, not its underlying buffer', async (t) => {
    const s = s3('views');
    t.after(() => s.destroy());
    const backing = new Uint8Array(1000).map((_, i) => i % 251);
    const view = backing.subarray(100, 400);
    await s.putObject('view.bin', view);
    assert.equal(await bytes('PutObject', 'views'), 300);
    const back = await (await s.getObject('view.bin')).Body?.transformToByteArray();
    assert.deepEqual(back, view);
  });

  test('a file stream without ContentLength: the SDK still finds its length, bytes counted as it flows', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'osk-s3-file-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'upload.bin');
    const content = Buffer.alloc(200_001, 'xyz');
    writeFileSync(file, content);
    const s = s3('files');
    t.after(() => s.destroy());
    const stream = createReadStream(file);
    await s.putObject('upload.bin', stream);
    assert.equal(await bytes('PutObject', 'files'), content.length);
    assert.equal(Object.hasOwn(stream, 'emit'), false, 'the caller’s stream is left as it was');
    const head = await s.headObject('upload.bin');
    assert.equal(head.ContentLength, content.length);
  });

  test('a body is counted exactly once however it is read, and not at all while unread', async (t) => {
    const s = s3('reads');
    t.after(() => s.destroy());
    const size = 150_000;
    await s.putObject('body.bin', Buffer.alloc(size, 7));
    const readers: [
      string,
      (body: NonNullable<Awaited<ReturnType<typeof s.getObject>>['Body']>) => Promise<number>,
    ][] = [
      ['transformToString', async (b) => (await b.transformToString('latin1')).length],
      [
        'transformToWebStream',
        async (b) => (await new Response(b.transformToWebStream()).arrayBuffer()).byteLength,
      ],
      [
        'for await',
        async (b) => {
          let n = 0;
          for await (const chunk of b as AsyncIterable<Buffer>) n += chunk.length;
          return n;
        },
      ],
      [
        'pipe',
        async (b) => {
          let n = 0;
          const sink = new Writable({
            write(chunk: Buffer, _encoding, done) {
              n += chunk.length;
              done();
            },
          });
          (b as unknown as NodeJS.ReadableStream).pipe(sink);
          await once(sink, 'finish');
          return n;
        },
      ],
      [
        'setEncoding(hex)',
        async (b) => {
          (b as unknown as NodeJS.ReadableStream).setEncoding('hex');
          let text = '';
          for await (const chunk of b as AsyncIterable<string>) text += chunk;
          return text.length / 2;
        },
      ],
    ];
    let expected = 0;
    for (const [how, read] of readers) {
      const { Body } = await s.getObject('body.bin');
      assert.ok(Body);
      assert.equal(
        await bytes('GetObject', 'reads'),
        expected || undefined,
        `${how}: nothing before reading`,
      );
      assert.equal(await read(Body), size, how);
      expected += size;
      assert.equal(await bytes('GetObject', 'reads'), expected, how);
    }
    const unread = await s.getObject('body.bin');
    // The body has arrived and waits in the stream's buffer, unread: nothing is counted.
    await once(unread.Body as unknown as Readable, 'readable');
    assert.equal(await bytes('GetObject', 'reads'), expected, 'an unread body counts nothing');
    (unread.Body as unknown as Readable).destroy();
    assert.equal(await requests('GetObject', 'reads', 'success'), readers.length + 1);
  });

  test('send(): any command, operation from its class, bucket from its input', async (t) => {
    const s = s3('copies');
    t.after(() => s.destroy());
    await s.putObject('a.txt', 'copy me');
    const out = await s.send(
      new CopyObjectCommand({ Bucket: 'views', Key: 'copied.txt', CopySource: 'copies/a.txt' }),
    );
    assert.equal(out.$metadata.httpStatusCode, 200);
    assert.equal(await requests('CopyObject', 'views', 'success'), 1);
    assert.equal(await requests('CopyObject', 'copies', 'success'), undefined);
    const text = await (await s3('views').getObject('copied.txt')).Body?.transformToString();
    assert.equal(text, 'copy me');
  });

  test('the client built from the environment: endpoint, path style, region, S3_TIMEOUT_MS', async (t) => {
    const saved = { ...process.env };
    t.after(() => {
      for (const k of [
        'S3_ENDPOINT',
        'S3_FORCE_PATH_STYLE',
        'AWS_REGION',
        'AWS_ACCESS_KEY_ID',
        'AWS_SECRET_ACCESS_KEY',
      ]) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    });
    Object.assign(process.env, {
      S3_ENDPOINT: server.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_REGION: 'eu-west-3',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    });
    const s = new InstrumentedS3({ bucket: 'env' });
    t.after(() => s.destroy());
    assert.equal(await s.client.config.region(), 'eu-west-3');
    assert.equal(s.client.config.forcePathStyle, true);
    await s.putObject('k', 'v');
    assert.equal((await s.listObjects()).KeyCount, 1);
    const handler = s.client.config.requestHandler as unknown as {
      httpHandlerConfigs(): Record<string, unknown>;
    };
    assert.equal(handler.httpHandlerConfigs().connectionTimeout, 4321);
    assert.equal(handler.httpHandlerConfigs().socketTimeout, 4321);
  });
});

describe('answers s3rver never gives', () => {
  let status = 503;
  let code = 'SlowDown';
  let seen = 0;
  const peer = createServer((req, res) => {
    seen++;
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-type': 'application/xml' });
      res.end(
        `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>try later</Message><RequestId>r-${seen}</RequestId></Error>`,
      );
    });
  });
  before(async () => {
    peer.listen(0, '127.0.0.1');
    await once(peer, 'listening');
  });
  after(() => peer.close());
  const s3 = (bucket: string) =>
    new InstrumentedS3({
      bucket,
      clientConfig: {
        endpoint: `http://127.0.0.1:${(peer.address() as { port: number }).port}`,
        forcePathStyle: true,
        region: 'us-east-1',
        credentials: { accessKeyId: 'a', secretAccessKey: 'b' },
        maxAttempts: 2,
      },
    });

  test('503 SlowDown: server_error once for the whole call (retries included), one line with 503', async (t) => {
    status = 503;
    code = 'SlowDown';
    seen = 0;
    const s = s3('throttled');
    t.after(() => s.destroy());
    const errorLog = t.mock.method(logger, 'error');
    const body = Buffer.alloc(1000);
    const error = await s.putObject('k.bin', body).then(
      () => undefined,
      (e: unknown) => e as { name: string; $metadata: { httpStatusCode: number; attempts: number } },
    );
    assert.equal(error?.name, 'SlowDown');
    assert.equal(error?.$metadata.httpStatusCode, 503);
    assert.equal(seen, 2, 'the SDK retried');
    assert.equal(await requests('PutObject', 'throttled', 'server_error'), 1);
    // The server answered: the body went out (counted once per call, not per attempt).
    assert.equal(await bytes('PutObject', 'throttled'), 1000);
    assert.equal(errorLog.mock.callCount(), 1);
    const [fields, msg] = errorLog.mock.calls[0]?.arguments ?? [];
    assert.equal(msg, 'S3 operation failed');
    assert.deepEqual(fields, {
      operation: 'PutObject',
      bucket: 'throttled',
      key: 'k.bin',
      status_code: 503,
      error: 'SlowDown: try later',
    });
  });

  test('429: rate_limited', async (t) => {
    status = 429;
    code = 'TooManyRequests';
    const s = s3('limited');
    t.after(() => s.destroy());
    await assert.rejects(s.headObject('k'), (e: { $metadata?: { httpStatusCode?: number } }) => {
      return e.$metadata?.httpStatusCode === 429;
    });
    assert.equal(await requests('HeadObject', 'limited', 'rate_limited'), 1);
  });
});

describe('construction', () => {
  test('a bucket is required', () => {
    assert.throws(() => new InstrumentedS3({ bucket: '' }), /options\.bucket must be a non-empty string/);
  });

  test('client and clientConfig together are refused', () => {
    const client = new S3Client({ region: 'us-east-1' });
    assert.throws(
      () => new InstrumentedS3({ bucket: 'b', client, clientConfig: { region: 'eu-west-1' } }),
      /either options\.client or options\.clientConfig/,
    );
  });

  test('a client of your own is used as is and not destroyed', () => {
    const client = new S3Client({ region: 'us-east-1' });
    let destroyed = false;
    client.destroy = () => {
      destroyed = true;
    };
    const s = new InstrumentedS3({ bucket: 'b', client });
    assert.equal(s.client, client);
    s.destroy();
    assert.equal(destroyed, false);
  });

  for (const [name, value, expected] of [
    ['S3_ENDPOINT', 'minio:9000', 'invalid S3_ENDPOINT="minio:9000": expected an http(s) URL'],
    ['S3_FORCE_PATH_STYLE', 'yes', 'invalid S3_FORCE_PATH_STYLE="yes": expected true or false'],
  ] as const) {
    test(`a bad ${name} is a ConfigError naming it`, (t) => {
      const saved = process.env[name];
      t.after(() => {
        if (saved === undefined) delete process.env[name];
        else process.env[name] = saved;
      });
      process.env[name] = value;
      assert.throws(
        () => new InstrumentedS3({ bucket: 'b' }),
        (e: unknown) => isConfigError(e) && e.message.startsWith(expected),
      );
    });
  }
});
