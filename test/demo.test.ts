// `npm start` on a clean clone, with nothing else running (no Docker, no network, no
// collector): the demo, /metrics and the health endpoints answer within seconds.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Child, cleanEnv, freePort, repoRoot } from './helpers/child.ts';
import { parseExposition, sampleValue, scrape } from './helpers/prometheusText.ts';

test('npm start serves the demo, /metrics and the health endpoints', { timeout: 60_000 }, async (t) => {
  const port = await freePort();
  const metricsPort = await freePort();
  const started = performance.now();
  const child = new Child(
    ['start'],
    cleanEnv({
      PORT: String(port),
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      DEMO_FAULTS_PORT: '0',
      PAYMENT_FAILURE_RATE: '0',
    }),
    repoRoot,
    'npm',
  );
  t.after(() => child.stop());
  const ready = await child.waitForLine((l) => l.msg === 'checkout demo ready', 30_000);
  const readyS = (performance.now() - started) / 1000;
  assert.ok(readyS < 20, `ready after ${readyS.toFixed(1)} s`);
  assert.equal(ready.service_name, 'checkout');
  const base = `http://127.0.0.1:${port}`;

  assert.equal((await fetch(`${base}/health/live`)).status, 200);
  const readiness = await fetch(`${base}/health/ready`);
  assert.equal(readiness.status, 200);
  assert.equal(((await readiness.json()) as { status: string }).status, 'ready');

  const order = await fetch(`${base}/checkout`, { method: 'POST', body: JSON.stringify({ amount: 120 }) });
  assert.equal(order.status, 201);
  const { order_id } = (await order.json()) as { order_id: string };
  const receipt = await fetch(`${base}/receipts/${order_id}`);
  assert.equal(receipt.status, 200);
  assert.equal(((await receipt.json()) as { amount: number }).amount, 120);
  assert.equal((await fetch(`${base}/receipts/nope`)).status, 404);

  const families = parseExposition(await scrape(metricsPort));
  assert.ok(
    (sampleValue(families, 'http_client_requests_total', {
      service: 'payment-api',
      status_class: 'success',
    }) ?? 0) >= 1,
  );
  assert.equal(
    sampleValue(families, 's3_requests_total', { operation: 'PutObject', status_class: 'success' }),
    1,
  );
  assert.equal(
    sampleValue(families, 's3_requests_total', { operation: 'GetObject', status_class: 'client_error' }),
    1,
  );

  // The fault endpoint, on loopback only: a fault switched on breaks checkouts, switched off
  // they work again.
  const faults = String(ready.faults);
  assert.match(faults, /^http:\/\/127\.0\.0\.1:\d+\/faults$/);
  const listed = (await (await fetch(faults)).json()) as { faults: { name: string; on: boolean }[] };
  assert.deepEqual(listed.faults.map((f) => f.name).sort(), [
    'event-loop-block',
    'payment-errors',
    'payment-hang',
    'payment-rate-limit',
    'payment-slow',
    's3-down',
  ]);
  assert.equal((await fetch(`${faults}/no-such-fault`, { method: 'POST' })).status, 404);
  const checkout = () => fetch(`${base}/checkout`, { method: 'POST', body: '{}' }).then((r) => r.status);
  assert.equal((await fetch(`${faults}/s3-down`, { method: 'POST' })).status, 200);
  assert.equal(await checkout(), 500, 'S3 unreachable: the receipt cannot be stored');
  assert.equal((await fetch(`${faults}/s3-down`, { method: 'DELETE' })).status, 200);
  assert.equal(await checkout(), 201, 'S3 back on the same port');
  const on = await fetch(`${faults}/payment-rate-limit`, { method: 'POST' });
  const state = (await on.json()) as { faults: { name: string; on: boolean }[] };
  assert.equal(state.faults.find((f) => f.name === 'payment-rate-limit')?.on, true);
  assert.equal(await checkout(), 502, 'every charge answered 429, retries spent');
  await fetch(`${faults}/payment-rate-limit`, { method: 'DELETE' });
  assert.equal(await checkout(), 201);
});
