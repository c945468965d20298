// The "checkout" demo service: every pattern of the kit in one small app.
//
//   POST /checkout        charge the payment API (retry, breaker, timeout from
//                         PAYMENT_API_TIMEOUT_MS), store a receipt in S3, read it back
//   GET  /receipts/:id    read a stored receipt
//   GET  /health/live, /health/ready
//
// Request logging (X-Request-ID on every line), health checks and graceful shutdown
// come from the kit; it runs under `node --import otel-service-kit/register`.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createCircuitBreaker,
  GracefulShutdown,
  health,
  InstrumentedClient,
  type InstrumentedS3,
  isBrokenCircuitError,
  logger,
  requestLogging,
  timeouts,
} from '../src/index.ts';

export interface CheckoutOptions {
  /** Port to listen on (0: any free port). */
  port: number;
  /** Base URL of the payment API. */
  paymentApiUrl: string;
  /** The S3 client for receipts. */
  receipts: InstrumentedS3;
  /** Run at shutdown after the kit's own steps (stop embedded peers). */
  onShutdown?: (() => Promise<void> | void) | undefined;
}

const log = logger.child({ component: 'checkout' });

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  let raw = '';
  for await (const chunk of req) {
    raw += chunk;
    if (raw.length > 64 * 1024) throw Object.assign(new Error('body too large'), { status: 413 });
  }
  if (raw === '') return {};
  try {
    return JSON.parse(raw) as Record<string, unknown>;
  } catch {
    throw Object.assign(new Error('body is not JSON'), { status: 400 });
  }
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** Start the checkout service; resolves once it listens. */
export async function startCheckout(
  options: CheckoutOptions,
): Promise<{ server: Server; url: string; shutdown: GracefulShutdown }> {
  const breaker = createCircuitBreaker({ name: 'payment-api', failMax: 5, resetTimeoutMs: 10_000 });
  const payments = new InstrumentedClient({
    service: 'payment-api',
    baseUrl: options.paymentApiUrl,
    timeoutMs: timeouts.get('PAYMENT_API', 5000),
    retry: true,
    circuitBreaker: breaker,
  });
  const { receipts } = options;

  async function checkout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const order = await readJson(req);
    const amount = Number(order.amount ?? 100);
    if (!Number.isInteger(amount) || amount <= 0)
      return send(res, 400, { error: 'amount must be a positive integer' });
    const orderId = randomUUID();
    let charge: { id: string };
    try {
      // The Idempotency-Key makes the POST safe to retry after a 503 or a timeout.
      const paid = await payments.request('POST', '/v1/charges', {
        headers: { 'content-type': 'application/json', 'idempotency-key': orderId },
        body: JSON.stringify({ amount, currency: order.currency ?? 'EUR', order_id: orderId }),
      });
      if (paid.statusCode !== 201) {
        await paid.body.dump();
        log.warn({ order_id: orderId, status_code: paid.statusCode }, 'payment declined');
        return send(res, 502, { error: 'payment failed', order_id: orderId });
      }
      charge = (await paid.body.json()) as { id: string };
    } catch (error) {
      if (isBrokenCircuitError(error))
        return send(res, 503, { error: 'payment service unavailable', order_id: orderId });
      return send(res, 502, { error: 'payment failed', order_id: orderId });
    }
    const receipt = { order_id: orderId, charge_id: charge.id, amount, created_at: new Date().toISOString() };
    const key = `receipts/${orderId}.json`;
    await receipts.putObject(key, JSON.stringify(receipt), { ContentType: 'application/json' });
    const stored = await receipts.getObject(key);
    const readBack = JSON.parse((await stored.Body?.transformToString()) ?? '{}') as { charge_id?: string };
    log.info({ order_id: orderId, charge_id: readBack.charge_id }, 'order placed');
    send(res, 201, { order_id: orderId, charge_id: charge.id, receipt_key: key });
  }

  async function getReceipt(res: ServerResponse, id: string): Promise<void> {
    try {
      const stored = await receipts.getObject(`receipts/${id}.json`);
      res.writeHead(200, { 'content-type': 'application/json' }).end(await stored.Body?.transformToString());
    } catch (error) {
      if ((error as { name?: string }).name === 'NoSuchKey')
        return send(res, 404, { error: 'no such receipt' });
      throw error;
    }
  }

  const server = createServer(
    requestLogging(async (req, res) => {
      if (health.handle(req, res)) return;
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      try {
        if (req.method === 'POST' && path === '/checkout') return await checkout(req, res);
        const receipt = /^\/receipts\/([\w-]{1,64})$/.exec(path);
        if (req.method === 'GET' && receipt?.[1]) return await getReceipt(res, receipt[1]);
        send(res, 404, { error: 'not found' });
      } catch (error) {
        const status = (error as { status?: number }).status ?? 500;
        if (status >= 500) throw error; // logged as "request failed" by requestLogging
        send(res, status, { error: (error as Error).message });
      }
    }),
  );

  // Readiness: the payment API answering is not required (the breaker copes), so the
  // check is not critical; a failure shows as "degraded".
  health.addCheck(
    'payment-api',
    async (signal) => (await fetch(new URL('/health', options.paymentApiUrl), { signal })).ok,
    { critical: false, timeoutMs: 500 },
  );

  const shutdown = new GracefulShutdown({ server });
  shutdown.onShutdown(async () => options.onShutdown?.());
  shutdown.onShutdown(() => receipts.destroy());
  shutdown.onShutdown(() => payments.close());

  await new Promise<void>((resolve) => server.listen(options.port, resolve));
  health.markReady();
  const { port } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${port}`, shutdown };
}
