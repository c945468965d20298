import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { freePort } from './child.ts';

/**
 * Real PostgreSQL and Redis servers from Debian's packages, started by the test itself on
 * loopback ports of their own and stopped by PID. A test that needs one skips only when
 * the server is not installed AND `REQUIRE_DATABASES` is unset; `.ci/run` installs both
 * and sets it, so on CI a missing server fails instead of hiding.
 */
export interface DatabaseServer {
  readonly port: number;
  stop(): Promise<void>;
}

function missing(t: TestContext, what: string, install: string): undefined {
  if (process.env.REQUIRE_DATABASES)
    throw new Error(`${what} is required (REQUIRE_DATABASES is set) but not installed`);
  t.skip(
    `${what} not installed (apt-get install ${install}); set REQUIRE_DATABASES=1 to make this a failure`,
  );
  return undefined;
}

/** The newest installed PostgreSQL's bin directory (Debian: /usr/lib/postgresql/<major>/bin). */
function postgresBin(): string | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'postgres')))
    .sort((a, b) => Number(b) - Number(a));
  return majors[0] === undefined ? undefined : join(root, majors[0], 'bin');
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`; rejects if `child` exits first. */
async function listening(port: number, child: ChildProcess, what: string): Promise<void> {
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`${what} exited with status ${String(code)} before listening`);
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ok = await Promise.race([
      new Promise<boolean>((resolve) => {
        const socket = connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
      exited,
    ]);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port} within 30 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  await exited;
}

/**
 * A throwaway PostgreSQL cluster (trust authentication, user `postgres`, fsync off) on a
 * free port. PostgreSQL refuses to run as root, so as root it runs as the `postgres` user
 * the Debian package creates (`setpriv` execs, so the PID is the server's own).
 */
export async function startPostgres(t: TestContext): Promise<DatabaseServer | undefined> {
  const bin = postgresBin();
  if (bin === undefined) return missing(t, 'PostgreSQL', 'postgresql');
  const dir = mkdtempSync(join(tmpdir(), 'osk-pg-'));
  const asPostgres: string[] = [];
  if (process.getuid?.() === 0) {
    const ids = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(ids.stdout.trim()), Number(gid.stdout.trim()));
    asPostgres.push('setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups', '--');
  }
  const run = (cmd: string, args: string[]) => {
    const all = [...asPostgres, cmd, ...args];
    return { command: all[0] as string, args: all.slice(1) };
  };
  const data = join(dir, 'data');
  const init = run(join(bin, 'initdb'), [
    '-D',
    data,
    '-U',
    'postgres',
    '--auth=trust',
    '--no-sync',
    '-E',
    'UTF8',
  ]);
  const initResult = spawnSync(init.command, init.args, { encoding: 'utf8' });
  if (initResult.status !== 0) throw new Error(`initdb failed: ${initResult.stdout}${initResult.stderr}`);
  const port = await freePort();
  const serve = run(join(bin, 'postgres'), [
    '-D',
    data,
    '-p',
    String(port),
    '-k',
    dir,
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'fsync=off',
  ]);
  const child = spawn(serve.command, serve.args, { stdio: 'ignore' });
  await listening(port, child, 'postgres');
  return {
    port,
    stop: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A throwaway Redis server on a free port, with persistence off. */
export async function startRedis(t: TestContext): Promise<DatabaseServer | undefined> {
  const found = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') return missing(t, 'Redis', 'redis-server');
  const port = await freePort();
  const child = spawn(
    found,
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'],
    { stdio: 'ignore' },
  );
  await listening(port, child, 'redis-server');
  return { port, stop: () => stopChild(child) };
}
