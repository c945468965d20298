import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What the server does with one request. */
export type Fault =
  /** An answer, after `delayMs` when given. */
  | { status: number; headers?: Record<string, string>; body?: string; delayMs?: number }
  /** Accept the request and never answer. */
  | 'hang'
  /** Reset the connection (TCP RST) without answering. */
  | 'reset';

/** One request as the server saw it. */
export interface Hit {
  method: string;
  /** Path and query, as sent. */
  url: string;
  headers: IncomingMessage['headers'];
  /** The client's port: the same port for two hits means one kept-alive connection. */
  remotePort: number | undefined;
  /** `performance.now()` in the test process when the request arrived. */
  at: number;
}

const ok: Fault = { status: 200, body: 'ok' };

/**
 * A loopback HTTP server that scripts faults per path: `script('/pay', {status: 503},
 * 'hang', {status: 200})` answers the next three requests to `/pay` (query ignored) that
 * way, then falls back to the path's default (200 "ok" unless `fallback` set one).
 */
export class FaultServer {
  readonly #server: Server;
  readonly #scripts = new Map<string, Fault[]>();
  readonly #fallbacks = new Map<string, Fault>();
  readonly #hits = new Map<string, Hit[]>();

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<FaultServer> {
    const server = createServer();
    const fault = new FaultServer(server);
    server.on('request', (req, res) => fault.#handle(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return fault;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Queue `faults` for the next requests to `path`. */
  script(path: string, ...faults: Fault[]): void {
    const queue = this.#scripts.get(path) ?? [];
    queue.push(...faults);
    this.#scripts.set(path, queue);
  }

  /** What `path` does once its script is spent. */
  fallback(path: string, fault: Fault): void {
    this.#fallbacks.set(path, fault);
  }

  /** The requests `path` received so far. */
  hits(path: string): Hit[] {
    return this.#hits.get(path) ?? [];
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    const hits = this.#hits.get(path) ?? [];
    hits.push({
      method: req.method ?? '',
      url,
      headers: req.headers,
      remotePort: req.socket.remotePort,
      at: performance.now(),
    });
    this.#hits.set(path, hits);
    const fault = this.#scripts.get(path)?.shift() ?? this.#fallbacks.get(path) ?? ok;
    // Read the request body first: answering before it is consumed confuses keep-alive.
    req.resume();
    req.once('end', () => {
      if (fault === 'hang') return;
      if (fault === 'reset') {
        req.socket.resetAndDestroy();
        return;
      }
      const answer = () => {
        res.writeHead(fault.status, { 'content-type': 'text/plain', ...fault.headers });
        res.end(fault.body ?? '');
      };
      if (fault.delayMs === undefined) answer();
      else setTimeout(answer, fault.delayMs);
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, 'close');
  }
}
