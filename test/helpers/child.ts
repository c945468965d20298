import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The built preload, what an installed package runs (`npm test` builds it first). */
export const registerPath = fileURLToPath(new URL('../../dist/register.js', import.meta.url));
export const fixturePath = (name: string) => fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url));

/**
 * A loopback port free a moment ago (listen on 0, close, hand out the number): between
 * the close and the child's listen another process may take it. Only for a server that
 * must be told its port in advance and cannot report the one it got: the preload's
 * Prometheus endpoint (`OTEL_EXPORTER_PROMETHEUS_PORT`), PostgreSQL and Redis; or for an
 * address where nothing listens (an unreachable collector). A server under test that can
 * listen on 0 does, and says its port (the fixtures' `fixture ready` line).
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** The parent's environment without anything that would steer the child's telemetry. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('OTEL_') || k.endsWith('_TIMEOUT_MS') || k === 'LOG_LEVEL' || k.startsWith('NODE_TEST'))
      continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * A child Node process started as users start their services, with its stdout parsed
 * as JSON lines (pino's output) and its stderr kept as text.
 */
export class Child {
  readonly process: ChildProcess;
  readonly lines: Record<string, unknown>[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  exitedAt: number | undefined;
  #waiters: (() => void)[] = [];

  readonly #group: boolean;

  /**
   * @param command default: this Node binary. Another command (`npm`) runs in a process
   * group of its own, so that signals and clean-up reach the node process it starts.
   */
  constructor(args: string[], env: NodeJS.ProcessEnv, cwd = repoRoot, command = process.execPath) {
    this.#group = command !== process.execPath;
    this.process = spawn(command, args, { env, cwd, stdio: ['pipe', 'pipe', 'pipe'], detached: this.#group });
    let partial = '';
    this.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stdout += chunk;
      partial += chunk;
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) {
        if (line.trim() === '') continue;
        try {
          this.lines.push(JSON.parse(line) as Record<string, unknown>);
        } catch {
          this.lines.push({ unparsed: line });
        }
      }
      this.#wake();
    });
    this.process.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      this.stderr += chunk;
      this.#wake();
    });
    this.exited = new Promise((resolve) => {
      this.process.on('exit', (code, signal) => {
        this.exitedAt = performance.now();
        // Let the last stdout/stderr chunks arrive.
        setImmediate(() => {
          resolve({ code, signal });
          this.#wake();
        });
      });
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The first stdout line matching `predicate`; rejects on timeout or exit. */
  waitForLine(
    predicate: (line: Record<string, unknown>) => boolean,
    timeoutMs = 15_000,
  ): Promise<Record<string, unknown>> {
    return this.#waitFor(() => this.lines.find(predicate), timeoutMs);
  }

  /** The first stderr line matching `predicate`; rejects on timeout or exit. */
  waitForStderrLine(predicate: (line: string) => boolean, timeoutMs = 15_000): Promise<string> {
    return this.#waitFor(() => this.stderrLines().find(predicate), timeoutMs);
  }

  async #waitFor<T>(find: () => T | undefined, timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = find();
      if (hit !== undefined) return hit;
      if (this.exitedAt !== undefined || Date.now() > deadline) {
        throw new Error(
          `child: no matching line (${this.exitedAt === undefined ? 'timeout' : 'exited'})\nstdout:\n${this.stdout.slice(-3000)}\nstderr:\n${this.stderr.slice(-3000)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 100);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Lines on stderr that are not blank. */
  stderrLines(): string[] {
    return this.stderr.split('\n').filter((l) => l.trim() !== '');
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (this.exitedAt !== undefined) return;
    if (this.#group && this.process.pid !== undefined) process.kill(-this.process.pid, signal);
    else this.process.kill(signal);
  }

  /** End the child (and, for a group, all it started) if it still runs: test clean-up. */
  async stop(): Promise<Exit> {
    if (this.#group && this.process.pid !== undefined) {
      try {
        process.kill(-this.process.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    } else if (this.exitedAt === undefined) this.process.kill('SIGKILL');
    return this.exited;
  }
}

/** `node --import ./register.ts <fixture>`, exactly as a user starts a service. */
export function startFixture(
  fixture: string,
  env: Record<string, string | undefined>,
  extraArgs: string[] = [],
): Child {
  return new Child(['--import', registerPath, ...extraArgs, fixturePath(fixture)], cleanEnv(env));
}
