// A fake payment API with faults you can set from the environment, so that retries,
// rate limits and breaker transitions show up in the demo's telemetry.
//
//   PAYMENT_FAILURE_RATE     share of charges answered 503 (0..1, default 0.1)
//   PAYMENT_RATE_LIMIT_RATE  share answered 429 with Retry-After: 1 (0..1, default 0.05)
//   PAYMENT_LATENCY_MS       added latency per charge, ms (default 50)
//   PAYMENT_API_PORT         port when run on its own (default 8081)
import { randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';

export interface FakePaymentApiOptions {
  /** Share of charges answered 503, 0..1. Default 0.1. */
  failureRate: number;
  /** Share of charges answered 429 with `Retry-After: 1`, 0..1. Default 0.05. */
  rateLimitRate: number;
  /** Latency added to every charge, in ms. Default 50. */
  latencyMs: number;
}

export const defaultFakePaymentApiOptions: FakePaymentApiOptions = {
  failureRate: 0.1,
  rateLimitRate: 0.05,
  latencyMs: 50,
};

function share(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new Error(`invalid ${name}=${JSON.stringify(raw)}: expected a number from 0 to 1`);
  return n;
}

/** Options from PAYMENT_FAILURE_RATE, PAYMENT_RATE_LIMIT_RATE and PAYMENT_LATENCY_MS. */
export function fakePaymentApiOptionsFromEnv(env: NodeJS.ProcessEnv = process.env): FakePaymentApiOptions {
  const latency = env.PAYMENT_LATENCY_MS?.trim();
  if (latency !== undefined && latency !== '' && !/^\d+$/.test(latency)) {
    throw new Error(
      `invalid PAYMENT_LATENCY_MS=${JSON.stringify(latency)}: expected a whole number of milliseconds`,
    );
  }
  return {
    failureRate: share(env, 'PAYMENT_FAILURE_RATE', defaultFakePaymentApiOptions.failureRate),
    rateLimitRate: share(env, 'PAYMENT_RATE_LIMIT_RATE', defaultFakePaymentApiOptions.rateLimitRate),
    latencyMs: latency ? Number(latency) : defaultFakePaymentApiOptions.latencyMs,
  };
}

/**
 * Start the fake payment API: `POST /v1/charges` answers 201 with a charge id, or a
 * scripted 503 / 429; `GET /health` answers 200. Resolves once listening.
 */
export async function startFakePaymentApi(
  options: Partial<FakePaymentApiOptions> = {},
  port = 0,
  host = '127.0.0.1',
): Promise<{ server: Server; url: string }> {
  const o = { ...defaultFakePaymentApiOptions, ...options };
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"ok"}');
      return;
    }
    if (req.method !== 'POST' || !req.url?.startsWith('/v1/charges')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    req.resume();
    req.on('end', () => {
      setTimeout(() => {
        const roll = Math.random();
        if (roll < o.rateLimitRate) {
          res
            .writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' })
            .end('{"error":"rate limited"}');
        } else if (roll < o.rateLimitRate + o.failureRate) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"unavailable"}');
        } else {
          res
            .writeHead(201, { 'content-type': 'application/json' })
            .end(JSON.stringify({ id: `ch_${randomUUID()}`, status: 'succeeded' }));
        }
      }, o.latencyMs);
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const { port: bound } = server.address() as AddressInfo;
  return { server, url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}` };
}

// Run on its own (the compose stack's `payment-api` service).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PAYMENT_API_PORT ?? 8081);
  const { url } = await startFakePaymentApi(fakePaymentApiOptionsFromEnv(), port, '0.0.0.0');
  console.log(JSON.stringify({ level: 'info', msg: 'fake payment API listening', url }));
  const stop = () => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
