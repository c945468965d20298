// InstrumentedS3 as a service uses it: a child started with `node --import ./dist/register.js`
// against a real S3-compatible server (s3rver) on loopback, its /metrics scraped, its
// spans received by a loopback OTLP receiver, its log lines parsed.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { type Child, freePort, startFixture } from './helpers/child.ts';
import { dnsScope, OtlpReceiver, type ReceivedSpan, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, sampleValue, scrape } from './helpers/prometheusText.ts';
import { S3rverServer } from './helpers/s3rver.ts';

const MiB = 1024 * 1024;

async function runScenario(child: Child, name: string): Promise<Record<string, unknown>> {
  child.process.stdin?.write(`${name}\n`);
  const line = await child.waitForLine((l) => l.msg === 'scenario done' && l.scenario === name, 30_000);
  assert.equal(line.failed, undefined, `scenario ${name} failed: ${String(line.stack ?? line.failed)}`);
  return line.result as Record<string, unknown>;
}

async function metricValue(port: number, sample: string, labels: Record<string, string>) {
  return sampleValue(parseExposition(await scrape(port)), sample, labels);
}

describe('InstrumentedS3 against s3rver, under the preload', () => {
  const service = 's3-fixture';
  let server: S3rverServer;
  let receiver: OtlpReceiver;
  let child: Child;
  let metricsPort: number;
  const bytes = (operation: string, bucket: string) =>
    metricValue(metricsPort, 's3_bytes_transferred_total', { operation, bucket });
  const requests = (operation: string, bucket: string, status_class: string) =>
    metricValue(metricsPort, 's3_requests_total', { operation, bucket, status_class });

  before(async () => {
    [server, receiver, metricsPort] = await Promise.all([
      S3rverServer.start(['roundtrip', 'bytes', 'stream', 'missing']),
      OtlpReceiver.start(),
      freePort(),
    ]);
    child = startFixture('s3-app.mjs', {
      ...server.env(),
      OTEL_SERVICE_NAME: service,
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    });
    await child.waitForLine((l) => l.msg === 'fixture ready');
  });
  after(async () => {
    await child?.stop();
    await server?.stop();
    await receiver?.close();
  });

  test('put, get, head, list and delete round-trip, each measured', async () => {
    const result = await runScenario(child, 'roundtrip');
    assert.deepEqual(result, {
      text: 'hello',
      headLength: Buffer.byteLength('héllo wörld €'),
      headType: 'text/plain; charset=utf-8',
      before: ['a/one.txt', 'a/two.txt'],
      after: ['a/two.txt'],
    });
    for (const [operation, count] of [
      ['PutObject', 2],
      ['GetObject', 1],
      ['HeadObject', 1],
      ['ListObjectsV2', 2],
      ['DeleteObject', 1],
    ] as const) {
      assert.equal(await requests(operation, 'roundtrip', 'success'), count, operation);
    }
    // A string body counts its UTF-8 bytes (17), not its characters (13).
    assert.equal(await bytes('PutObject', 'roundtrip'), 5 + 17);
    assert.equal(await bytes('GetObject', 'roundtrip'), 5);
    const page = parseExposition(await scrape(metricsPort));
    const histogram = sampleValue(page, 's3_request_duration_seconds_count', {
      operation: 'ListObjectsV2',
      bucket: 'roundtrip',
    });
    assert.equal(histogram, 2);
  });

  test('a 1 MiB put and get add exactly 1,048,576 bytes each, the get as its body is read', async () => {
    const put = await runScenario(child, 'put1MiB');
    assert.equal(await bytes('PutObject', 'bytes'), MiB);

    const got = await runScenario(child, 'get1MiB');
    assert.equal(got.contentLength, MiB);
    assert.equal(await requests('GetObject', 'bytes', 'success'), 1);
    assert.equal(await bytes('GetObject', 'bytes'), undefined, 'nothing counted before the body is read');

    const read = await runScenario(child, 'read1MiB');
    assert.equal(read.length, MiB);
    assert.equal(read.sha256, put.sha256);
    assert.equal(await bytes('GetObject', 'bytes'), MiB);
    assert.equal(await bytes('PutObject', 'bytes'), MiB);
  });

  test('a streamed upload arrives byte-identical and its bytes are counted once', async () => {
    const result = await runScenario(child, 'stream');
    assert.equal(result.sent, 37 * 7777);
    assert.equal(result.received, result.sent);
    assert.equal(result.receivedSha256, result.sentSha256);
    assert.equal(await bytes('PutObject', 'stream'), 37 * 7777);
    assert.equal(await bytes('GetObject', 'stream'), 37 * 7777);
  });

  test('a missing key: client_error, one error line with key and 404, the error rethrown unchanged', async () => {
    const result = await runScenario(child, 'missing');
    assert.deepEqual(result, { thrown: true, same: true, isNoSuchKey: true, name: 'NoSuchKey', status: 404 });
    assert.equal(await requests('GetObject', 'missing', 'client_error'), 1);
    assert.equal(await requests('GetObject', 'missing', 'success'), undefined);
    const lines = child.lines.filter((l) => l.msg === 'S3 operation failed');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const [line] = lines;
    assert.equal(line?.level, 'error');
    assert.equal(line?.operation, 'GetObject');
    assert.equal(line?.bucket, 'missing');
    assert.equal(line?.key, 'no/such/key.txt');
    assert.equal(line?.status_code, 404);
    assert.match(String(line?.error), /^NoSuchKey: /);
  });

  test('the server stopped: network_error and the network line', async () => {
    await server.stop();
    const result = await runScenario(child, 'unreachable');
    assert.equal(result.thrown, true);
    assert.equal(result.code, 'ECONNREFUSED', JSON.stringify(result));
    assert.equal(await requests('GetObject', 'roundtrip', 'network_error'), 1);
    const lines = child.lines.filter((l) => l.msg === 'S3 operation failed (network)');
    assert.equal(lines.length, 1, JSON.stringify(lines));
    const [line] = lines;
    assert.equal(line?.level, 'error');
    assert.equal(line?.operation, 'GetObject');
    assert.equal(line?.bucket, 'roundtrip');
    assert.equal(line?.key, 'a/two.txt');
    assert.equal(line?.status_code, undefined);
    assert.match(String(line?.error), /ECONNREFUSED/);
  });

  test('the aws-sdk spans reach the receiver, with no http span under them; log lines carry their ids', async () => {
    child.kill('SIGTERM');
    await child.exited;
    const spans = (
      await receiver.waitFor((all) =>
        all.some((s) => s.resource['service.name'] === service && s.name === 'S3.DeleteObject'),
      )
    ).filter((s) => s.resource['service.name'] === service && s.scope !== dnsScope);

    // Every span of the service (DNS lookups aside) is an aws-sdk span: the SDK's own http request is not
    // traced again (no duplicate CLIENT span under S3.*), the /metrics scrapes are not traced.
    const others = spans.filter((s) => s.scope !== '@opentelemetry/instrumentation-aws-sdk');
    assert.deepEqual(
      others.map((s) => `${s.scope}:${s.name}`),
      [],
    );
    const names = new Set(spans.map((s) => s.name));
    for (const name of [
      'S3.PutObject',
      'S3.GetObject',
      'S3.HeadObject',
      'S3.ListObjectsV2',
      'S3.DeleteObject',
    ]) {
      assert.ok(names.has(name), `${name} missing from ${[...names].join(', ')}`);
    }
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of spans) {
      assert.equal(s.kind, SpanKind.CLIENT, s.name);
      assert.ok(!ids.has(s.parentSpanId), `${s.name} has a parent span in the trace`);
      assert.equal(s.attributes['rpc.system'], 'aws-api');
      assert.equal(s.attributes['rpc.method'], s.name.slice('S3.'.length));
    }
    const put = spans.find((s) => s.name === 'S3.PutObject' && s.attributes['aws.s3.bucket'] === 'bytes');
    assert.ok(put, 'S3.PutObject with aws.s3.bucket');

    const correlated = (msg: string, bucket: string): ReceivedSpan => {
      const line = child.lines.find((l) => l.msg === msg);
      assert.ok(line, msg);
      const span = spans.find((s) => s.spanId === line.span_id);
      assert.ok(span, `${msg}: no span ${String(line.span_id)}`);
      assert.equal(line.trace_id, span.traceId);
      assert.equal(span.name, 'S3.GetObject');
      assert.equal(span.attributes['aws.s3.bucket'], bucket);
      return span;
    };
    const missing = correlated('S3 operation failed', 'missing');
    assert.equal(missing.attributes['http.response.status_code'], 404);
    correlated('S3 operation failed (network)', 'roundtrip');
    assert.deepEqual(child.stderrLines(), []);
  });
});

describe('S3_TIMEOUT_MS', () => {
  test('a server that accepts and never answers: the timeout fires, network_error and the network line', async (t) => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    silent.listen(0, '127.0.0.1');
    await new Promise((resolve) => silent.once('listening', resolve));
    t.after(() => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const metricsPort = await freePort();
    const child = startFixture('s3-app.mjs', {
      S3_ENDPOINT: `http://127.0.0.1:${(silent.address() as { port: number }).port}`,
      S3_FORCE_PATH_STYLE: 'true',
      S3_TIMEOUT_MS: '200',
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
    });
    t.after(() => child.stop());
    await child.waitForLine((l) => l.msg === 'fixture ready');

    const result = await runScenario(child, 'slow');
    assert.equal(result.thrown, true);
    assert.equal(result.name, 'TimeoutError', JSON.stringify(result));
    assert.match(String(result.message), /200 ms/);
    // The SDK retries a timeout (3 attempts by default); without the timeout this would hang.
    assert.ok(Number(result.ms) < 15_000, `took ${String(result.ms)} ms`);
    assert.equal(
      await metricValue(metricsPort, 's3_requests_total', {
        operation: 'GetObject',
        bucket: 'slow',
        status_class: 'network_error',
      }),
      1,
    );
    const lines = child.lines.filter((l) => l.msg === 'S3 operation failed (network)');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]?.key, 'never.txt');
    assert.match(String(lines[0]?.error), /^TimeoutError: /);
  });
});
