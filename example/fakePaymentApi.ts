// A fake payment API with faults you can set from the environment, so that retries,
// rate limits and breaker transitions show up in the demo's telemetry.
//
//   PAYMENT_FAILURE_RATE     share of charges answered 503 (0..1, default 0.1)
//   PAYMENT_RATE_LIMIT_RATE  share answered 429 with Retry-After: 1 (0..1, default 0.05)
//   PAYMENT_LATENCY_MS       added latency per charge, ms (default 50)
//   PAYMENT_API_PORT         port when run on its own (default 8081)
//
// Its outages are switched at run time through the demo's fault endpoint (example/faults.ts,
// docs/alerts.md): payment-errors, payment-rate-limit, payment-hang, payment-slow. Run on
// its own, it serves that endpoint itself (DEMO_FAULTS_PORT, default 8079, loopback only).
import { randomUUID } from 'node:crypto';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  type Fault,
  FaultRequestError,
  FaultSwitchboard,
  faultsPortFromEnv,
  startFaultEndpoint,
} from './faults.ts';

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

/** An outage of the payment API: how it answers every charge while the fault is on. */
export type PaymentOutage =
  | { mode: 'errors' }
  | { mode: 'rate_limit' }
  | { mode: 'hang' }
  | { mode: 'slow'; latencyMs: number };

/** A running fake payment API. */
export interface FakePaymentApi {
  server: Server;
  url: string;
  /** The outage in force, if any: every charge gets it, whatever the rates say. */
  outage: PaymentOutage | undefined;
  /** Stop listening and drop every connection, hung charges included. */
  close(): Promise<void>;
}

/**
 * Start the fake payment API: `POST /v1/charges` answers 201 with a charge id, or a
 * scripted 503 / 429; `GET /health` answers 200. Resolves once listening.
 */
export async function startFakePaymentApi(
  options: Partial<FakePaymentApiOptions> = {},
  port = 0,
  host = '127.0.0.1',
): Promise<FakePaymentApi> {
  const o = { ...defaultFakePaymentApiOptions, ...options };
  const answer = (res: ServerResponse, status: 201 | 429 | 503) => {
    if (status === 429) {
      res
        .writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' })
        .end('{"error":"rate limited"}');
    } else if (status === 503) {
      res.writeHead(503, { 'content-type': 'application/json' }).end('{"error":"unavailable"}');
    } else {
      res
        .writeHead(201, { 'content-type': 'application/json' })
        .end(JSON.stringify({ id: `ch_${randomUUID()}`, status: 'succeeded' }));
    }
  };
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
      const outage = api.outage;
      if (outage?.mode === 'hang') {
        // No answer at all: the caller's timeout ends the call (close() drops the socket).
        return;
      }
      setTimeout(
        () => {
          if (outage?.mode === 'errors') return answer(res, 503);
          if (outage?.mode === 'rate_limit') return answer(res, 429);
          const roll = Math.random();
          if (roll < o.rateLimitRate) answer(res, 429);
          else if (roll < o.rateLimitRate + o.failureRate) answer(res, 503);
          else answer(res, 201);
        },
        outage?.mode === 'slow' ? outage.latencyMs : o.latencyMs,
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(port, host, resolve));
  const { port: bound } = server.address() as AddressInfo;
  const api: FakePaymentApi = {
    server,
    url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${bound}`,
    outage: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return api;
}

/**
 * The payment API's outages as faults of the demo's switchboard (one at a time):
 * every charge answered 503, answered 429, never answered, or answered after `?ms=`.
 */
export function paymentApiFaults(api: FakePaymentApi): Record<string, Fault> {
  const group = 'payment-api';
  const off = () => {
    api.outage = undefined;
  };
  return {
    'payment-errors': {
      group,
      description: 'the payment API answers every charge 503',
      on: () => {
        api.outage = { mode: 'errors' };
      },
      off,
    },
    'payment-rate-limit': {
      group,
      description: 'the payment API answers every charge 429 (Retry-After: 1)',
      on: () => {
        api.outage = { mode: 'rate_limit' };
      },
      off,
    },
    'payment-hang': {
      group,
      description: 'the payment API never answers a charge: each attempt runs into PAYMENT_API_TIMEOUT_MS',
      on: () => {
        api.outage = { mode: 'hang' };
      },
      off,
    },
    'payment-slow': {
      group,
      description: 'the payment API answers every charge after ?ms= (default 3000) ms',
      on: (params) => {
        const ms = params.get('ms') ?? '3000';
        if (!/^\d+$/.test(ms)) throw new FaultRequestError(`ms=${JSON.stringify(ms)}: expected milliseconds`);
        api.outage = { mode: 'slow', latencyMs: Number(ms) };
      },
      off,
    },
  };
}

// Run on its own (the compose stack's `payment-api` service).
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PAYMENT_API_PORT ?? 8081);
  const api = await startFakePaymentApi(fakePaymentApiOptionsFromEnv(), port, '0.0.0.0');
  const board = new FaultSwitchboard();
  for (const [name, fault] of Object.entries(paymentApiFaults(api))) board.add(name, fault);
  const faultsPort = faultsPortFromEnv();
  const endpoint = faultsPort === undefined ? undefined : await startFaultEndpoint(board, faultsPort);
  console.log(
    JSON.stringify({
      level: 'info',
      msg: 'fake payment API listening',
      url: api.url,
      faults: endpoint?.server ? endpoint.url : `not served (${endpoint?.error ?? 'DEMO_FAULTS_PORT=off'})`,
    }),
  );
  const stop = () => process.exit(0);
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
