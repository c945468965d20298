// A traffic generator for the demo, so the dashboards fill: `npm run load`.
//
//   LOAD_TARGET      base URL of the checkout demo (default http://127.0.0.1:8080)
//   LOAD_RPS         requests per second (default 5)
//   LOAD_DURATION_S  stop after this many seconds (default: run until stopped)
//
// Mostly checkouts, some receipt reads, and now and then a receipt that does not exist.
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export interface LoadOptions {
  target: string;
  rps: number;
  durationS?: number | undefined;
  signal?: AbortSignal | undefined;
}

export interface LoadStats {
  sent: number;
  byStatus: Record<string, number>;
}

/** Drive the demo until `durationS` elapses or `signal` aborts; resolves with what was sent. */
export async function runLoad({ target, rps, durationS, signal }: LoadOptions): Promise<LoadStats> {
  const stats: LoadStats = { sent: 0, byStatus: {} };
  const receipts: string[] = [];
  const deadline = durationS === undefined ? Number.POSITIVE_INFINITY : Date.now() + durationS * 1000;
  const interval = 1000 / rps;
  const inFlight = new Set<Promise<void>>();
  while (Date.now() < deadline && !signal?.aborted) {
    const n = stats.sent++;
    const p = (async () => {
      let status = 'error';
      try {
        let res: Response;
        if (n % 10 === 9) {
          res = await fetch(`${target}/receipts/does-not-exist-${n}`);
        } else if (n % 5 === 4 && receipts.length > 0) {
          res = await fetch(`${target}/receipts/${receipts[n % receipts.length]}`);
        } else {
          res = await fetch(`${target}/checkout`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-request-id': `load-${n}` },
            body: JSON.stringify({ amount: 100 + (n % 50), currency: 'EUR' }),
          });
        }
        status = String(res.status);
        const body = (await res.json().catch(() => ({}))) as { order_id?: string };
        if (res.status === 201 && body.order_id && receipts.length < 100) receipts.push(body.order_id);
      } catch {
        // Counted as 'error': the demo may be restarting.
      }
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    })();
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
    await sleep(interval, undefined, { signal }).catch(() => {});
  }
  await Promise.all(inFlight);
  return stats;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  process.once('SIGTERM', () => controller.abort());
  const duration = process.env.LOAD_DURATION_S;
  const stats = await runLoad({
    target: process.env.LOAD_TARGET ?? 'http://127.0.0.1:8080',
    rps: Number(process.env.LOAD_RPS ?? 5),
    durationS: duration ? Number(duration) : undefined,
    signal: controller.signal,
  });
  console.log(JSON.stringify({ msg: 'load finished', ...stats }));
}
