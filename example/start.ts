// `npm start`: the checkout demo on its embedded defaults, with nothing else running.
//
//   PORT              the demo's port (default 8080)
//   PAYMENT_API_URL   a payment API to call; unset: the fake one runs in-process
//                     (its faults: PAYMENT_FAILURE_RATE, PAYMENT_RATE_LIMIT_RATE, PAYMENT_LATENCY_MS)
//   S3_ENDPOINT       an S3-compatible store (with S3_FORCE_PATH_STYLE, AWS_*); unset: an
//                     embedded s3rver in a temporary folder
//   RECEIPTS_BUCKET   the receipts bucket (default receipts)
//   DEMO_LOAD         1 (or the flag --load): drive traffic at it so the dashboards fill
//   DEMO_FAULTS_PORT  the fault endpoint, on loopback only (default 8079; 0: any free port;
//                     off: none): `curl -X POST 127.0.0.1:8079/faults/payment-hang` makes the
//                     payment API hang, `curl -X DELETE ...` ends it (docs/alerts.md)
//
// Traces go to OTEL_EXPORTER_OTLP_ENDPOINT (default localhost:4318: one warning if no
// collector listens), metrics to :9464/metrics.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InstrumentedS3, logger } from '../src/index.ts';
import { telemetryState } from '../src/telemetry/startTelemetry.ts';
import { startCheckout } from './checkout.ts';
import { fakePaymentApiOptionsFromEnv, paymentApiFaults, startFakePaymentApi } from './fakePaymentApi.ts';
import { eventLoopBlockFault, FaultSwitchboard, faultsPortFromEnv, startFaultEndpoint } from './faults.ts';
import { runLoad } from './load.ts';

const port = Number(process.env.PORT ?? 8080);
const bucket = process.env.RECEIPTS_BUCKET ?? 'receipts';
const faultsPort = faultsPortFromEnv();
const stops: (() => Promise<void> | void)[] = [];
const faults = new FaultSwitchboard().add('event-loop-block', eventLoopBlockFault());

let paymentApiUrl = process.env.PAYMENT_API_URL;
if (!paymentApiUrl) {
  const fake = await startFakePaymentApi(fakePaymentApiOptionsFromEnv());
  paymentApiUrl = fake.url;
  for (const [name, fault] of Object.entries(paymentApiFaults(fake))) faults.add(name, fault);
  stops.push(() => fake.close());
}

let receipts: InstrumentedS3;
let s3Where: string;
if (process.env.S3_ENDPOINT) {
  receipts = new InstrumentedS3({ bucket });
  s3Where = process.env.S3_ENDPOINT;
} else {
  // s3rver is a devDependency: the embedded store is for the demo only.
  type S3rverInstance = {
    run(): Promise<{ port: number }>;
    close(): Promise<void>;
    httpServer?: { closeAllConnections(): void };
  };
  const S3rver = createRequire(import.meta.url)('s3rver') as new (
    o: Record<string, unknown>,
  ) => S3rverInstance;
  const directory = mkdtempSync(join(tmpdir(), 'checkout-s3-'));
  const storeOn = (port: number) =>
    new S3rver({ address: '127.0.0.1', port, silent: true, directory, configureBuckets: [{ name: bucket }] });
  let s3: S3rverInstance | undefined = storeOn(0);
  const { port: s3Port } = await s3.run();
  const stopStore = async () => {
    const running = s3;
    s3 = undefined;
    if (running === undefined) return;
    // Keep-alive sockets would otherwise go on serving the SDK's pooled connections.
    running.httpServer?.closeAllConnections();
    await running.close();
  };
  // The store itself goes away (connections refused), and comes back on the same port
  // with the same files: a new instance, as s3rver's logger does not survive a restart.
  faults.add('s3-down', {
    description: 'the embedded S3 store stops listening (connections refused); off: it comes back',
    on: stopStore,
    off: async () => {
      if (s3 !== undefined) return;
      s3 = storeOn(s3Port);
      await s3.run();
    },
  });
  s3Where = `http://127.0.0.1:${s3Port} (embedded s3rver in ${directory})`;
  receipts = new InstrumentedS3({
    bucket,
    clientConfig: {
      endpoint: `http://127.0.0.1:${s3Port}`,
      forcePathStyle: true,
      region: 'us-east-1',
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      // s3rver stores aws-chunked bodies verbatim (see README, "S3-compatible stores").
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
  });
  stops.push(async () => {
    await stopStore();
    rmSync(directory, { recursive: true, force: true });
  });
}

const { url } = await startCheckout({
  port,
  paymentApiUrl,
  receipts,
  onShutdown: async () => {
    for (const stop of stops.reverse()) await stop();
  },
});

const endpoint = faultsPort === undefined ? undefined : await startFaultEndpoint(faults, faultsPort);
if (endpoint?.server === undefined && endpoint !== undefined)
  logger.warn(
    { port: faultsPort, error: endpoint.error },
    'fault endpoint not served; the demo runs without it',
  );
// Run first at shutdown (stops run in reverse): no fault outlives the endpoint.
stops.push(async () => {
  endpoint?.server?.close();
  await faults.offAll();
});

const metrics = telemetryState()?.metrics;
logger.info(
  {
    url,
    try: `curl -X POST ${url}/checkout -d '{"amount":120}'`,
    metrics: metrics ? `http://127.0.0.1:${metrics.port}/metrics` : 'not served',
    health: `${url}/health/ready`,
    traces:
      process.env.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'http://localhost:4318 (Jaeger UI: http://localhost:16686)',
    payment_api: paymentApiUrl,
    s3: s3Where,
    load: 'npm run load (or npm start -- --load)',
    faults: endpoint?.server ? endpoint.url : 'not served',
  },
  'checkout demo ready',
);

if (process.env.DEMO_LOAD === '1' || process.argv.includes('--load')) {
  const controller = new AbortController();
  process.once('SIGTERM', () => controller.abort());
  void runLoad({ target: url, rps: Number(process.env.LOAD_RPS ?? 5), signal: controller.signal });
}
