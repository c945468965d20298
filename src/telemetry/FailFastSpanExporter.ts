import type * as http from 'node:http';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import { diag } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace';
import { TraceExportFailedError, type TraceExportFailure } from './TraceExportFailedError.ts';

// node:http and node:https (with node:tls) are loaded when the exporter first connects,
// not at start-up.
const requireBuiltin = createRequire(import.meta.url);

/**
 * The HTTP connections of one OTLP exporter, watched: a refused connection is known at
 * once (the exporter itself only says so after its retry backoff, a second later), and
 * the requests in flight can be cut when an export overruns its deadline (the exporter's
 * own timeout is an idle timeout: a collector that trickles its answer resets it forever).
 *
 * @example
 * const connections = new CollectorConnections();
 * new OTLPTraceExporter({ httpAgentOptions: (protocol) => connections.agent(protocol) });
 */
export class CollectorConnections {
  readonly #agents: http.Agent[] = [];
  readonly #onRefused = new Set<() => void>();

  /** The keep-alive agent the exporter sends through (`httpAgentOptions`). */
  agent(protocol: string): http.Agent {
    const { Agent } = requireBuiltin(protocol === 'https:' ? 'node:https' : 'node:http') as typeof http;
    const agent = new Agent({ keepAlive: true });
    const create = agent.createConnection.bind(agent) as (...args: unknown[]) => Socket;
    agent.createConnection = ((...args: unknown[]) => {
      const socket = create(...args);
      socket.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED') for (const listener of this.#onRefused) listener();
      });
      return socket;
    }) as typeof agent.createConnection;
    this.#agents.push(agent);
    return agent;
  }

  /** Call `listener` when a connection is refused; returns the function that stops it. */
  onRefused(listener: () => void): () => void {
    this.#onRefused.add(listener);
    return () => this.#onRefused.delete(listener);
  }

  /** Destroy the connections that carry a request now. */
  destroyInFlight(): void {
    for (const agent of this.#agents) {
      for (const sockets of Object.values(agent.sockets))
        for (const socket of sockets ?? []) socket.destroy();
    }
  }
}

/** Options of `FailFastSpanExporter`. */
export interface FailFastOptions {
  /** The longest one export may take, answer included, in ms. */
  timeoutMs: number;
  /** After a failure, batches are dropped without a try for this long, in ms. Default 5000. */
  coolDownMs?: number;
  /** The exporter's connections, when it sends over HTTP. */
  connections?: CollectorConnections;
}

/**
 * Wraps the OTLP span exporter so that a collector outage costs the app nothing.
 *
 * - Every export ends within `timeoutMs`, whatever the collector does: one that stalls
 *   or trickles its answer has its connection cut at the deadline, so nothing is held.
 * - A refused connection fails the export at once.
 * - After a failure the next batches are dropped at once for `coolDownMs` (then one is
 *   tried again), so a process that has finished is not held by export retries and
 *   batches do not queue up behind a dead collector.
 * - Each outage is reported once, briefly; its end too.
 *
 * Failures carry a `TraceExportFailedError` whose name (`collector_down`, `timeout`,
 * `export_failed`) the batch processor counts as `error_type`.
 */
export class FailFastSpanExporter implements SpanExporter {
  readonly #makeInner: () => SpanExporter;
  #innerExporter: SpanExporter | undefined;
  readonly #timeoutMs: number;
  readonly #coolDownMs: number;
  readonly #connections: CollectorConnections | undefined;
  #downUntil = 0;
  #down = false;
  /** Spans dropped or failed since the outage began. */
  #lost = 0;

  /**
   * @param makeInner builds the exporter, at the first export: an idle service never loads
   * the OTLP serializers (protobufjs) and the HTTP stack they send with.
   */
  constructor(makeInner: () => SpanExporter, options: FailFastOptions) {
    this.#makeInner = makeInner;
    this.#timeoutMs = options.timeoutMs;
    this.#coolDownMs = options.coolDownMs ?? 5000;
    this.#connections = options.connections;
  }

  /**
   * Build the exporter soon, off the current call: at the first span, so that a short
   * script does not build it after its last line, at the exit-time flush (50 ms of CPU),
   * while a service that makes no span never builds it.
   */
  warmUp(): void {
    if (this.#innerExporter !== undefined || this.#warming) return;
    this.#warming = true;
    setImmediate(() => {
      try {
        void this.#inner;
      } catch {
        // Reported when an export needs it.
      }
    }).unref();
  }
  #warming = false;

  get #inner(): SpanExporter {
    this.#innerExporter ??= this.#makeInner();
    return this.#innerExporter;
  }

  /** True while the collector is known to be unreachable. */
  get down(): boolean {
    return this.#down;
  }

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.#down && Date.now() < this.#downUntil) {
      this.#lost += spans.length;
      resultCallback(failed('collector_down', 'collector unreachable; batch dropped'));
      return;
    }
    let settled = false;
    const finish = (result: ExportResult, reason: TraceExportFailure, detail: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stopWatching?.();
      if (result.code === ExportResultCode.SUCCESS) this.#recovered();
      else {
        this.#failed(spans.length, detail);
        result = failed(reason, detail);
      }
      resultCallback(result);
    };
    const timer = setTimeout(() => {
      this.#connections?.destroyInFlight();
      finish({ code: ExportResultCode.FAILED }, 'timeout', `no answer within ${this.#timeoutMs} ms`);
    }, this.#timeoutMs);
    timer.unref();
    const stopWatching = this.#connections?.onRefused(() =>
      finish({ code: ExportResultCode.FAILED }, 'export_failed', 'connection refused (ECONNREFUSED)'),
    );
    try {
      this.#inner.export(spans, (result) =>
        finish(result, 'export_failed', short(result.error?.message ?? 'unknown error')),
      );
    } catch (error) {
      finish({ code: ExportResultCode.FAILED }, 'export_failed', short(String(error)));
    }
  }

  #failed(count: number, detail: string): void {
    if (!this.#down) {
      diag.warn(
        `trace export failed (${detail}); dropping spans while the collector is unreachable, retrying every ${this.#coolDownMs} ms`,
      );
    }
    this.#down = true;
    this.#lost += count;
    this.#downUntil = Date.now() + this.#coolDownMs;
  }

  #recovered(): void {
    if (!this.#down) return;
    diag.info(`trace export recovered; ${this.#lost} spans were lost during the outage`);
    this.#down = false;
    this.#lost = 0;
  }

  // With the collector down, the inner exporter still waits for its retries in flight:
  // nothing would come of them, so shutting down does not wait.
  shutdown(): Promise<void> {
    if (this.#innerExporter === undefined) return Promise.resolve();
    const done = this.#innerExporter.shutdown();
    if (!this.#down) return done;
    done.catch(() => {});
    return Promise.resolve();
  }

  forceFlush(): Promise<void> {
    if (this.#innerExporter === undefined) return Promise.resolve();
    const done = this.#innerExporter.forceFlush?.() ?? Promise.resolve();
    if (!this.#down) return done;
    done.catch(() => {});
    return Promise.resolve();
  }
}

function failed(reason: TraceExportFailure, detail: string): ExportResult {
  return { code: ExportResultCode.FAILED, error: new TraceExportFailedError(reason, detail) };
}

/** The start of an error message: a non-collector's page must not become a 300 kB log line. */
function short(message: string): string {
  return message.length <= 200 ? message : `${message.slice(0, 200)}…`;
}
