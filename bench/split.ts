// Where the kit's own per-request time goes, measured inside ONE process under the built
// preload, so that the machine's drift (which moves bench/server.ts and bench/client.ts by
// up to 1.5x between processes) is the same for every mode: the process alternates between
// modes every BENCH_WINDOW_MS (200) and reports, per mode, its CPU (user+system, all
// threads) per request and the median over the rounds of its difference with the first mode
// in the same round.
//   server  a node:http service answering `ok` to a keep-alive load generator (another
//           process), lines to a file: without requestLogging; requestLogging at
//           LOG_LEVEL=warn (no line); requestLogging with its "request completed" line
//   client  calls to a loopback server (another process), lines to /dev/null: undici.request
//           (the undici instrumentation's span); InstrumentedClient at LOG_LEVEL=silent;
//           InstrumentedClient with its "downstream request completed" line
// Spans exported over OTLP to a loopback sink, Prometheus metrics on, as in the other
// benchmarks. Knobs: BENCH_SECONDS (15), BENCH_CONCURRENCY (1,8), BENCH_WINDOW_MS (200).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { concurrenciesFromEnv, portFromStderr, startSpanSink, telemetryEnv } from './_shared.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const kitApi = JSON.stringify(pathToFileURL(`${root}dist/src/index.js`).href);
const kitApiPath = JSON.stringify(`${root}dist/src/index.js`);

/**
 * Alternates `modes` (each sets itself up with `enter(mode)`) every window once warmed up,
 * counting requests with `count()`; on SIGTERM or `finish()`, writes the figures as JSON to fd 3.
 */
const alternation = `
const windowMs = Number(process.env.BENCH_WINDOW_MS);
const stats = modes.map(() => ({ cpu: 0, requests: 0, perRequest: [] }));
let mode = 0, requests = 0, cpu0, requests0, measuring = false;
const count = () => { requests++; };
enter(modes[0]);
setTimeout(() => { measuring = true; cpu0 = process.cpuUsage(); requests0 = requests; }, Number(process.env.BENCH_WARMUP_MS)).unref();
setInterval(() => {
  if (measuring && requests > requests0) {
    const d = process.cpuUsage(cpu0);
    const s = stats[mode];
    s.cpu += d.user + d.system; s.requests += requests - requests0; s.perRequest.push((d.user + d.system) / (requests - requests0));
  }
  mode = (mode + 1) % modes.length;
  enter(modes[mode]);
  cpu0 = process.cpuUsage(); requests0 = requests;
}, windowMs).unref();
const finish = () => {
  require('node:fs').writeSync(3, JSON.stringify(stats));
  process.exit(0);
};
process.on('SIGTERM', finish);
`;

const serverApp = `
const { createServer } = require('node:http');
const { requestLogging, health, logger } = require(${kitApiPath});
const modes = ['without requestLogging', 'requestLogging, no line (warn)', 'requestLogging + line'];
let current = modes[0];
const enter = (m) => { current = m; const level = m === modes[2] ? 'info' : 'warn'; if (logger.level !== level) logger.level = level; };
const answer = (req, res) => { count(); res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok'); };
const logged = requestLogging((req, res) => { if (health.handle(req, res)) return; answer(req, res); });
const server = createServer((req, res) => (current === modes[0] ? answer(req, res) : logged(req, res)));
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stderr.write('port ' + server.address().port + '\\n'));
${alternation}`;

const loadCode = `
import { Agent, request } from 'undici';
const url = process.env.BENCH_URL;
const concurrency = Number(process.env.BENCH_CONCURRENCY);
const dispatcher = new Agent({ connections: concurrency, pipelining: 1 });
const until = performance.now() + Number(process.env.BENCH_MS);
const worker = async () => { while (performance.now() < until) { const r = await request(url, { dispatcher }); await r.body.text(); } };
await Promise.all(Array.from({ length: concurrency }, worker));
process.exit(0);
`;

const clientApp = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(`${root}package.json`)});
const { InstrumentedClient, logger } = await import(${kitApi});
const { request } = require('undici');
const base = process.env.BENCH_URL;
const modes = ['undici.request (instrumented)', 'InstrumentedClient, no line (silent)', 'InstrumentedClient + line'];
const client = new InstrumentedClient({ service: 'bench-api', baseUrl: base });
const plain = async () => { const r = await request(base + '/tiny'); await r.body.text(); };
const kit = async () => { const r = await client.request('GET', '/tiny'); await r.body.text(); };
let call = plain;
const enter = (m) => { call = m === modes[0] ? plain : kit; const level = m === modes[2] ? 'info' : 'silent'; if (logger.level !== level) logger.level = level; };
${alternation}
const until = performance.now() + Number(process.env.BENCH_MS);
const worker = async () => { while (performance.now() < until) { await call(); count(); } };
await Promise.all(Array.from({ length: Number(process.env.BENCH_CONCURRENCY) }, worker));
finish();
`;

const peerServer = `
import { createServer } from 'node:http';
const server = createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok'); });
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stderr.write('port ' + server.address().port + '\\n'));
`;

interface ModeStats {
  cpu: number;
  requests: number;
  perRequest: number[];
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

/** Starts `code` and resolves the port it prints on stderr (`port N`). */
async function startWithPort(
  args: string[],
  env: NodeJS.ProcessEnv,
  stdout: number | 'ignore',
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, args, { cwd: root, env, stdio: ['ignore', stdout, 'pipe', 'pipe'] });
  const port = await portFromStderr(child, 'a benchmark process');
  return { child, port };
}

/** Collects what a child writes on fd 3 until it exits. */
async function figuresOf(child: ChildProcess): Promise<ModeStats[]> {
  let json = '';
  (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8').on('data', (c: string) => {
    json += c;
  });
  if (child.exitCode === null) await once(child, 'exit');
  return JSON.parse(json) as ModeStats[];
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

function report(title: string, names: string[], stats: ModeStats[]): void {
  console.log(`\n${title}`);
  const rounds = Math.min(...stats.map((s) => s.perRequest.length));
  const base = stats[0] as ModeStats;
  stats.forEach((s, i) => {
    const paired = median(
      Array.from({ length: rounds }, (_, j) => (s.perRequest[j] ?? 0) - (base.perRequest[j] ?? 0)),
    );
    console.log(
      `${(names[i] ?? '').padEnd(40)} ${(s.cpu / s.requests).toFixed(1).padStart(6)} µs/request  ${i === 0 ? '' : `${paired >= 0 ? '+' : ''}${paired.toFixed(1)} µs vs the first (median of ${rounds} paired windows)`}`,
    );
  });
}

export default async function bench(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 15);
  const concurrencies = concurrenciesFromEnv();
  const sink = await startSpanSink();
  const dir = mkdtempSync(join(tmpdir(), 'osk-bench-split-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...telemetryEnv('bench-split', sink.endpoint, 19467),
    BENCH_WINDOW_MS: process.env.BENCH_WINDOW_MS ?? '200',
    BENCH_WARMUP_MS: '1500',
    BENCH_MS: String(seconds * 1000 + 1500),
  };
  const preload = ['--import', `${root}dist/register.js`];
  const started: ChildProcess[] = [];
  try {
    for (const concurrency of concurrencies) {
      const lines = openSync(join(dir, 'lines.log'), 'a');
      const server = await startWithPort([...preload, '-e', serverApp], env, lines);
      closeSync(lines);
      started.push(server.child);
      const load = spawn(process.execPath, ['--input-type=module', '-e', loadCode], {
        cwd: root,
        env: {
          ...env,
          BENCH_URL: `http://127.0.0.1:${server.port}/items/42`,
          BENCH_CONCURRENCY: String(concurrency),
        },
        stdio: 'inherit',
      });
      started.push(load);
      await once(load, 'exit');
      server.child.kill('SIGTERM');
      const serverStats = await figuresOf(server.child);
      report(
        `server, concurrency ${concurrency} (one process, ${seconds} s, node ${process.version})`,
        ['without requestLogging', 'requestLogging, no line (LOG_LEVEL=warn)', 'requestLogging + line'],
        serverStats,
      );

      const peer = await startWithPort(['--input-type=module', '-e', peerServer], env, 'ignore');
      started.push(peer.child);
      const client = spawn(process.execPath, [...preload, '--input-type=module', '-e', clientApp], {
        cwd: root,
        env: { ...env, BENCH_URL: `http://127.0.0.1:${peer.port}`, BENCH_CONCURRENCY: String(concurrency) },
        stdio: ['ignore', 'ignore', 'inherit', 'pipe'],
      });
      started.push(client);
      const clientStats = await figuresOf(client);
      await stop(peer.child);
      report(
        `client, concurrency ${concurrency} (one process, ${seconds} s)`,
        [
          'undici.request (instrumented)',
          'InstrumentedClient, LOG_LEVEL=silent',
          'InstrumentedClient + line',
        ],
        clientStats,
      );
    }
    console.log(`(sink received ${(sink.bytes() / 1024).toFixed(0)} kB of spans)`);
  } finally {
    for (const child of started) await stop(child);
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
