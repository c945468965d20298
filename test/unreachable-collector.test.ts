// f. Telemetry never breaks the app: with the collector refused or silent, 1,000
// outbound requests all succeed, a few warnings at most are printed, and the process
// exits within 3 s of finishing its work.
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { freePort, startFixture } from './helpers/child.ts';

async function runMany(t: import('node:test').TestContext, endpoint: string) {
  const child = startFixture('telemetry-app.mjs', {
    FIXTURE_MODE: 'many',
    FIXTURE_REQUESTS: '1000',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    // Export often, so many batches fail while the app works.
    OTEL_BSP_SCHEDULE_DELAY: '100',
  });
  t.after(() => child.stop());
  const done = await child.waitForLine((l) => l.msg === 'fixture done', 60_000);
  const doneAt = performance.now();
  assert.equal(done.ok, 1000);
  const exit = await child.exited;
  assert.equal(exit.code, 0, child.stderr);
  const lingered = (child.exitedAt ?? 0) - doneAt;
  assert.ok(lingered < 3000, `exited ${lingered.toFixed(0)} ms after finishing`);
  const warnings = child.stderrLines();
  assert.ok(warnings.length <= 3, `at most a few warnings, got ${warnings.length}:\n${child.stderr}`);
  return warnings;
}

test('collector refusing connections', async (t) => {
  const warnings = await runMany(t, `http://127.0.0.1:${await freePort()}`);
  assert.ok(warnings.length >= 1, 'the failure is reported');
  assert.match(warnings.join('\n'), /ECONNREFUSED/);
});

test('collector accepting connections and never answering', async (t) => {
  const sockets = new Set<Socket>();
  const blackhole = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
  }).listen(0, '127.0.0.1');
  await new Promise((r) => blackhole.once('listening', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    blackhole.close();
  });
  await runMany(t, `http://127.0.0.1:${(blackhole.address() as { port: number }).port}`);
});
