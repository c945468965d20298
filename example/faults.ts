// Faults the demo switches on and off while it runs, so that every alert of
// deploy/prometheus/alerts.yml can be seen firing and resolving (docs/alerts.md).
//
//   GET    /faults          the faults this process offers, and which are on
//   POST   /faults/<name>   switch one on; `?seconds=N` switches it off again after N s,
//                           other query parameters are the fault's own (e.g. `?ms=300`)
//   DELETE /faults/<name>   switch it off
//
// The endpoint listens on loopback only (DEMO_FAULTS_PORT, default 8079; 0: any free port):
// it can take a service down, so it is never reachable from outside the host or container.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One fault: what `on` and `off` do. Both may be called again while already in that state. */
export interface Fault {
  /** One line for `GET /faults`. */
  description: string;
  /** Faults of one group exclude each other: switching one on switches the others off. */
  group?: string;
  /** Switch the fault on, with the query parameters of the request. */
  on(params: URLSearchParams): void | Promise<void>;
  /** Switch it off: the system works again. */
  off(): void | Promise<void>;
}

/** The faults of one process, by name, and which of them are on. */
export class FaultSwitchboard {
  readonly #faults = new Map<string, Fault>();
  readonly #active = new Map<string, { since: string; params: Record<string, string> }>();
  readonly #timers = new Map<string, NodeJS.Timeout>();

  add(name: string, fault: Fault): this {
    this.#faults.set(name, fault);
    return this;
  }

  has(name: string): boolean {
    return this.#faults.has(name);
  }

  /** Switch `name` on, and the other faults of its group off. */
  async on(name: string, params = new URLSearchParams()): Promise<void> {
    const fault = this.#get(name);
    const seconds = params.get('seconds');
    if (seconds !== null && !/^\d+$/.test(seconds))
      throw new FaultRequestError(`seconds=${JSON.stringify(seconds)}: expected a whole number`);
    if (fault.group !== undefined) {
      for (const other of this.#active.keys())
        if (other !== name && this.#faults.get(other)?.group === fault.group) await this.off(other);
    }
    await fault.on(params);
    this.#active.set(name, { since: new Date().toISOString(), params: Object.fromEntries(params) });
    clearTimeout(this.#timers.get(name));
    if (seconds !== null) {
      const timer = setTimeout(() => void this.off(name), Number(seconds) * 1000).unref();
      this.#timers.set(name, timer);
    }
  }

  async off(name: string): Promise<void> {
    const fault = this.#get(name);
    clearTimeout(this.#timers.get(name));
    this.#timers.delete(name);
    this.#active.delete(name);
    await fault.off();
  }

  /** Switch every fault off (at shutdown). */
  async offAll(): Promise<void> {
    for (const name of [...this.#active.keys()]) await this.off(name);
  }

  list(): {
    name: string;
    description: string;
    on: boolean;
    since?: string;
    params?: Record<string, string>;
  }[] {
    return [...this.#faults].map(([name, f]) => ({
      name,
      description: f.description,
      on: this.#active.has(name),
      ...this.#active.get(name),
    }));
  }

  #get(name: string): Fault {
    const fault = this.#faults.get(name);
    if (fault === undefined) throw new FaultRequestError(`no fault named ${JSON.stringify(name)}`, 404);
    return fault;
  }
}

/** A request to the fault endpoint that cannot be served: answered with its status. */
export class FaultRequestError extends Error {
  override readonly name = 'FaultRequestError';
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.status = status;
  }
}

/**
 * The event loop kept busy in slices of `?ms=` (default 500) with `?gap=` ms (default 50)
 * free between them: requests, timers and scrapes are still served, each late by up to a
 * slice, as in a service that parses a huge document or hashes in a loop.
 */
export function eventLoopBlockFault(): Fault {
  let timer: NodeJS.Timeout | undefined;
  let sliceMs = 500;
  let gapMs = 50;
  const slice = () => {
    const until = performance.now() + sliceMs;
    while (performance.now() < until) {
      // busy: this is the fault
    }
    timer = setTimeout(slice, gapMs);
  };
  const read = (params: URLSearchParams, name: string, fallback: number) => {
    const raw = params.get(name) ?? String(fallback);
    if (!/^\d+$/.test(raw) || Number(raw) < 1 || Number(raw) > 10_000)
      throw new FaultRequestError(`${name}=${JSON.stringify(raw)}: expected 1 to 10000 ms`);
    return Number(raw);
  };
  return {
    description: 'the main thread busy in slices of ?ms= (default 500) ms, ?gap= (default 50) ms apart',
    on(params) {
      sliceMs = read(params, 'ms', 500);
      gapMs = read(params, 'gap', 50);
      timer ??= setTimeout(slice, 0);
    },
    off() {
      clearTimeout(timer);
      timer = undefined;
    },
  };
}

/** Read DEMO_FAULTS_PORT: unset 8079, `0` any free port, `off` none. */
export function faultsPortFromEnv(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const raw = env.DEMO_FAULTS_PORT?.trim();
  if (raw === undefined || raw === '') return 8079;
  if (raw === 'off') return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) > 65_535)
    throw new Error(
      `invalid DEMO_FAULTS_PORT=${JSON.stringify(raw)}: expected a port number (0-65535) or "off"`,
    );
  return Number(raw);
}

function send(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
}

/**
 * Serve `board` on 127.0.0.1:`port`. Resolves with the endpoint's URL, or with `undefined`
 * (and the reason) when the port is taken: the demo runs on without it.
 */
export async function startFaultEndpoint(
  board: FaultSwitchboard,
  port: number,
): Promise<{ server: Server; url: string } | { server: undefined; error: string }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const name = /^\/faults\/([\w-]+)$/.exec(url.pathname)?.[1];
    let action: Promise<void>;
    if (url.pathname === '/faults' && req.method === 'GET') action = Promise.resolve();
    else if (name !== undefined && req.method === 'POST') action = board.on(name, url.searchParams);
    else if (name !== undefined && req.method === 'DELETE') action = board.off(name);
    else action = Promise.reject(new FaultRequestError('GET /faults, POST or DELETE /faults/<name>', 404));
    action.then(
      () => send(res, 200, { faults: board.list() }),
      (error: unknown) =>
        send(res, error instanceof FaultRequestError ? error.status : 500, {
          error: (error as Error).message,
        }),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  } catch (error) {
    return { server: undefined, error: (error as NodeJS.ErrnoException).code ?? String(error) };
  }
  const { port: bound } = server.address() as AddressInfo;
  return { server, url: `http://127.0.0.1:${bound}/faults` };
}
