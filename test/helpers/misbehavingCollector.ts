import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * What the collector does with each export, once it has read the request body:
 * - `hang`: never answers;
 * - `trickle`: answers 200 with its headers, then one byte of body every 100 ms, forever;
 * - `stall`: answers 200 with a `content-length` of 1000 bytes, sends 10, then nothing;
 * - `html`: not a collector at all: 200 with a 400 kB HTML page.
 */
export type Misbehaviour = 'hang' | 'trickle' | 'stall' | 'html';

/** One TCP connection an exporter opened to the collector, as the collector saw it. */
export interface CollectorConnection {
  /** `performance.now()` in the test process. */
  openedAt: number;
  /** When the connection closed (from either side); undefined while it is open. */
  closedAt: number | undefined;
  /** When each request on it had been read in full. */
  requestsAt: number[];
}

const htmlPage = `<!doctype html><html><head><title>Welcome</title></head><body>${'<p>This is a web page, not an OpenTelemetry collector.</p>\n'.repeat(7000)}</body></html>`;

/** A loopback HTTP server in the place of an OTLP collector, misbehaving as told, that records its connections. */
export class MisbehavingCollector {
  readonly connections: CollectorConnection[] = [];
  /** The most connections open at one time. */
  maxOpen = 0;
  readonly #server: Server;
  readonly #behaviour: Misbehaviour;
  readonly #timers = new Set<NodeJS.Timeout>();
  #waiters: (() => void)[] = [];

  private constructor(server: Server, behaviour: Misbehaviour) {
    this.#server = server;
    this.#behaviour = behaviour;
  }

  static async start(behaviour: Misbehaviour): Promise<MisbehavingCollector> {
    const server = createServer();
    const collector = new MisbehavingCollector(server, behaviour);
    server.on('connection', (socket: Socket) => collector.#track(socket));
    server.on('request', (req, res) => collector.#handle(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return collector;
  }

  /** The base endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  get endpoint(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Connections open now. */
  get open(): number {
    return this.connections.filter((c) => c.closedAt === undefined).length;
  }

  /** Export requests read so far. */
  get requests(): number {
    return this.connections.reduce((n, c) => n + c.requestsAt.length, 0);
  }

  /** Resolve once `predicate` holds (checked at every connection event); reject after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`collector: condition not met in ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }

  #track(socket: Socket): void {
    const connection: CollectorConnection = {
      openedAt: performance.now(),
      closedAt: undefined,
      requestsAt: [],
    };
    this.connections.push(connection);
    this.maxOpen = Math.max(this.maxOpen, this.open);
    socket.on('error', () => {});
    socket.once('close', () => {
      connection.closedAt = performance.now();
      this.#wake();
    });
    (socket as Socket & { connection?: CollectorConnection }).connection = connection;
    this.#wake();
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const connection = (req.socket as Socket & { connection?: CollectorConnection }).connection;
    req.resume();
    req.once('end', () => {
      connection?.requestsAt.push(performance.now());
      this.#wake();
      switch (this.#behaviour) {
        case 'hang':
          return;
        case 'trickle': {
          res.writeHead(200, { 'content-type': 'application/x-protobuf' });
          res.flushHeaders();
          const timer = setInterval(() => res.write(Buffer.of(0)), 100);
          this.#timers.add(timer);
          res.once('close', () => {
            clearInterval(timer);
            this.#timers.delete(timer);
          });
          return;
        }
        case 'stall':
          res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': '1000' });
          res.write(Buffer.alloc(10));
          return;
        case 'html':
          res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
          res.end(htmlPage);
          return;
      }
    });
  }

  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}
