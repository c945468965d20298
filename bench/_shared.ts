// What the benchmarks share: the loopback collector their preloads export to, the
// telemetry settings every variant runs with, and how a child tells its port.
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A loopback OTLP endpoint that reads and discards whatever it is sent, and answers 200. */
export async function startSpanSink(): Promise<{
  endpoint: string;
  requests(): number;
  bytes(): number;
  close(): void;
}> {
  let requests = 0;
  let bytes = 0;
  const sink = createServer((req, res) => {
    requests++;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' });
      res.end();
    });
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  return {
    endpoint: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`,
    requests: () => requests,
    bytes: () => bytes,
    close: () => {
      sink.closeAllConnections();
      sink.close();
    },
  };
}

/**
 * The settings both preloads run with in every benchmark: spans to `endpoint`, local
 * resource detectors only (the anchor's defaults also query cloud metadata endpoints over
 * the network), Prometheus metrics on `prometheusPort`.
 */
export function telemetryEnv(
  serviceName: string,
  endpoint: string,
  prometheusPort: number,
): Record<string, string> {
  return {
    OTEL_SERVICE_NAME: serviceName,
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process,serviceinstance,container',
    OTEL_METRICS_EXPORTER: 'prometheus',
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: String(prometheusPort),
  };
}

/** The port a child prints on stderr as `port N` once it listens; rejects if it exits first. */
export function portFromStderr(child: ChildProcess, what: string): Promise<number> {
  let text = '';
  return new Promise<number>((resolve, reject) => {
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      const m = /port (\d+)/.exec(text);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', () => reject(new Error(`${what} exited before listening\n${text}`)));
  });
}

/** BENCH_CONCURRENCY: a comma-separated list of positive whole numbers (default 1,8); anything else stops the bench naming it. */
export function concurrenciesFromEnv(env: NodeJS.ProcessEnv = process.env): number[] {
  const raw = env.BENCH_CONCURRENCY ?? '1,8';
  const values = raw.split(',').map((v) => Number(v.trim()));
  if (values.some((v) => !Number.isSafeInteger(v) || v < 1))
    throw new Error(
      `invalid BENCH_CONCURRENCY=${JSON.stringify(raw)}: expected positive whole numbers, e.g. 1,8`,
    );
  return values;
}

/** How long each run warms up before it is measured: `calls` calls (or requests), at most `ms`. */
export interface Warmup {
  calls: number;
  ms: number;
}

/**
 * BENCH_WARMUP_CALLS (default 50 000) and BENCH_WARMUP_SECONDS (default 30): each run warms
 * up for that many calls, or that many seconds if it gets there first, before it is
 * measured. A fresh Node process speeds up while V8 compiles its hot code, and V8 compiles a
 * function once it has run often enough: the ramp is a number of calls, not a time. On the
 * project's machine InstrumentedClient under the kit at concurrency 1 went, in 2 s windows,
 * from 1 500 to 4 400 calls/s over its first 12 s (V8 optimized 675 functions in the first
 * 2 s, then 96, 199, 46, 18, 14 ... a window), about 40 000 calls; at concurrency 8, in
 * 500 ms windows, from 1 000 to about 10 600 calls/s over its first 4.5 s. A warm-up of a
 * fixed 5 s measured the kit at concurrency 1 on its ramp, at a third of bare undici's
 * pace, while the calls of bare undici's process were compiled. Anything but a number
 * stops the bench naming it.
 */
export function warmupFromEnv(env: NodeJS.ProcessEnv = process.env): Warmup {
  const number = (name: string, fallback: string, example: string): number => {
    const raw = env[name] ?? fallback;
    const value = Number(raw);
    if (raw.trim() === '' || !Number.isFinite(value) || value < 0)
      throw new Error(`invalid ${name}=${JSON.stringify(raw)}: expected ${example}`);
    return value;
  };
  return {
    calls: Math.round(number('BENCH_WARMUP_CALLS', '50000', 'a number of calls, e.g. 50000')),
    ms: number('BENCH_WARMUP_SECONDS', '30', 'seconds, e.g. 30') * 1000,
  };
}

/** The warm-up, as the bench's header says it. */
export function describeWarmup(w: Warmup): string {
  return `a warm-up of ${w.calls} calls (at most ${w.ms / 1000} s)`;
}

/**
 * The variants of one round, in order on even rounds and reversed on odd ones: no variant
 * always runs right after the same one (or first, on a machine still busy with the last).
 */
export function roundOrder<T>(variants: readonly T[], round: number): T[] {
  return round % 2 === 0 ? [...variants] : [...variants].reverse();
}
