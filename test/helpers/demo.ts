import type { TestContext } from 'node:test';
import { Child, cleanEnv, freePort, registerPath } from './child.ts';

/**
 * The checkout demo under the built preload, as the end-to-end tests run it: its OTLP
 * endpoint, the fault endpoint on a free loopback port, 5 ms payment latency, and
 * `env` on top. Stopped when the test ends. Resolves once it says it is ready.
 */
export async function startDemo(t: TestContext, otlpEndpoint: string, env: Record<string, string>) {
  const port = await freePort();
  const metricsPort = await freePort();
  const demo = new Child(
    ['--import', registerPath, 'example/start.ts'],
    cleanEnv({
      OTEL_SERVICE_NAME: 'checkout',
      OTEL_EXPORTER_OTLP_ENDPOINT: otlpEndpoint,
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      PORT: String(port),
      DEMO_FAULTS_PORT: '0',
      PAYMENT_LATENCY_MS: '5',
      ...env,
    }),
  );
  t.after(() => demo.stop());
  const ready = await demo.waitForLine((l) => l.msg === 'checkout demo ready', 30_000);
  return { demo, ready, metricsPort, target: `http://127.0.0.1:${port}` };
}
