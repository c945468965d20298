// Databases as a user runs them: a service under the preload queries a real PostgreSQL
// (pg) and a real Redis (ioredis), each started by the test from Debian's packages; each
// call is a CLIENT span under the request's SERVER span, and the log line carries the trace.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { freePort, startFixture } from './helpers/child.ts';
import { startPostgres, startRedis } from './helpers/databases.ts';
import { oneShot } from './helpers/httpClient.ts';
import { OtlpReceiver, SpanKind } from './helpers/otlpReceiver.ts';

test('a pg query and a Redis command each make a client span under the request', async (t) => {
  const postgres = await startPostgres(t);
  if (postgres === undefined) return;
  t.after(() => postgres.stop());
  const redis = await startRedis(t);
  if (redis === undefined) return;
  t.after(() => redis.stop());
  const receiver = await OtlpReceiver.start();
  t.after(() => receiver.close());

  const child = startFixture('databases-app.mjs', {
    OTEL_SERVICE_NAME: 'databases-app',
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    OTEL_BSP_SCHEDULE_DELAY: '100',
    PG_PORT: String(postgres.port),
    REDIS_PORT: String(redis.port),
  });
  t.after(() => child.stop());
  const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
  const res = await oneShot(`http://127.0.0.1:${ready.port}/data`);
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { greeting: 'hello' });
  const line = await child.waitForLine((l) => l.msg === 'data read');

  const spans = await receiver.waitFor((all) => {
    const server = all.find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/data');
    return (
      server !== undefined &&
      all.some((s) => s.traceId === server.traceId && s.scope === '@opentelemetry/instrumentation-pg') &&
      all.filter((s) => s.traceId === server.traceId && s.scope === '@opentelemetry/instrumentation-ioredis')
        .length >= 2
    );
  });
  const server = spans.find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === '/data');
  assert.ok(server);
  assert.equal(line.trace_id, server.traceId, 'the log line carries the request trace');
  const trace = spans.filter((s) => s.traceId === server.traceId);
  const byId = new Map(trace.map((s) => [s.spanId, s]));
  const under = (s: (typeof trace)[number]) => {
    for (let p = byId.get(s.parentSpanId); p !== undefined; p = byId.get(p.parentSpanId))
      if (p === server) return true;
    return false;
  };
  const query = trace.find(
    (s) =>
      s.scope === '@opentelemetry/instrumentation-pg' && s.kind === SpanKind.CLIENT && /SELECT/.test(s.name),
  );
  assert.ok(query, `a pg query span in ${trace.map((s) => `${s.scope}:${s.name}`).join(', ')}`);
  assert.ok(under(query), 'the pg span is under the server span');
  assert.equal(query.attributes['db.system.name'] ?? query.attributes['db.system'], 'postgresql');
  const commands = trace.filter((s) => s.scope === '@opentelemetry/instrumentation-ioredis');
  assert.deepEqual(commands.map((s) => s.name).sort(), ['get', 'set']);
  for (const c of commands) {
    assert.equal(c.kind, SpanKind.CLIENT);
    assert.ok(under(c), `${c.name} is under the server span`);
  }
});
