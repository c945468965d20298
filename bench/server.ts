// Inbound-request cost, side by side in one run: a tiny node:http service (CommonJS, and
// with BENCH_APP=express or esm the same service as Express 5 or ES module), answering
// `ok` over keep-alive to a load generator in another process:
//   bare                         no preload
//   kit                          the built preload + requestLogging + health.handle, one
//                                "request completed" line per request (to a file), spans
//                                sampled and exported over OTLP to a loopback sink
//   anchor                       @opentelemetry/auto-instrumentations-node/register, the same
//                                app without requestLogging (server span and metric only)
// and the kit with one cost taken away at a time, to split where the time goes (the
// lines' writes among them: a write per line, and the same kit with its stdout on
// /dev/null).
// Both preloads: local resource detectors, Prometheus metrics, the same sink.
// Figures per variant, medians of interleaved rounds: requests/s and the server's CPU
// (user+system, from /proc) per request, and the system share of it, measured after a
// warm-up (rounds run the variants in alternating order). Knobs: BENCH_RUNS (3),
// BENCH_SECONDS (2), BENCH_WARMUP_CALLS (50 000 requests) and BENCH_WARMUP_SECONDS (at most
// 30, see _shared.ts), BENCH_CONCURRENCY (1,8; 1
// gives the CPU per request of a lone caller), BENCH_APP (node | express | esm),
// BENCH_VARIANTS (indices).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  concurrenciesFromEnv,
  describeWarmup,
  portFromStderr,
  roundOrder,
  startSpanSink,
  telemetryEnv,
  type Warmup,
  warmupFromEnv,
} from './_shared.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const kitApi = pathToFileURL(`${root}dist/src/index.js`).href;
const kitPreload = ['--import', `${root}dist/register.js`];
const anchorPreload = ['--import', '@opentelemetry/auto-instrumentations-node/register'];

/** The service, as each app flavour writes it; `withKit` adds requestLogging and health. */
function appSource(app: string, withKit: boolean): { file: string; code: string } {
  const answer = `res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' }); res.end('ok');`;
  const listen = `server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stderr.write('port ' + server.address().port + '\\n'));`;
  if (app === 'express') {
    return {
      file: 'app.cjs',
      code: `const express = require(${JSON.stringify(`${root}node_modules/express`)});
${withKit ? `const { requestLogging, health } = require(${JSON.stringify(fileURLToPath(kitApi))});` : ''}
const app = express();
${withKit ? 'app.use(requestLogging.express()); app.use(health.express());' : ''}
app.get('/items/:id', (req, res) => { ${answer} });
const server = app.listen(0, '127.0.0.1', () => process.stderr.write('port ' + server.address().port + '\\n'));
server.keepAliveTimeout = 60_000;`,
    };
  }
  const handler = withKit
    ? `requestLogging((req, res) => { if (health.handle(req, res)) return; ${answer} })`
    : `(req, res) => { ${answer} }`;
  if (app === 'esm') {
    return {
      file: 'app.mjs',
      code: `import { createServer } from 'node:http';
${withKit ? `import { requestLogging, health } from ${JSON.stringify(kitApi)};` : ''}
const server = createServer(${handler});
${listen}`,
    };
  }
  return {
    file: 'app.cjs',
    code: `const { createServer } = require('node:http');
${withKit ? `const { requestLogging, health } = require(${JSON.stringify(fileURLToPath(kitApi))});` : ''}
const server = createServer(${handler});
${listen}`,
  };
}

// The load generator: BENCH_CONCURRENCY keep-alive callers for BENCH_MS, after a warm-up.
const loadCode = `
import { Agent, request } from 'undici';
import { writeSync } from 'node:fs';
const url = process.env.BENCH_URL;
const concurrency = Number(process.env.BENCH_CONCURRENCY);
const dispatcher = new Agent({ connections: concurrency, pipelining: 1 });
async function phase(ms, max = Infinity) {
  let count = 0;
  const until = performance.now() + ms;
  const worker = async () => { while (count < max && performance.now() < until) { const r = await request(url, { dispatcher }); await r.body.text(); count++; } };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count;
}
await phase(Number(process.env.BENCH_WARMUP_MS), Number(process.env.BENCH_WARMUP_CALLS));
writeSync(3, 'measure\\n');
const t0 = performance.now();
const requests = await phase(Number(process.env.BENCH_MS));
writeSync(3, JSON.stringify({ requests, seconds: (performance.now() - t0) / 1000 }) + '\\n');
process.exit(0);
`;

interface Variant {
  name: string;
  preload: string[];
  withKit: boolean;
  env?: Record<string, string>;
  /** Where the server's stdout goes: a file in the bench's directory unless set. */
  lines?: string;
}

const variants: Variant[] = [
  { name: 'bare', preload: [], withKit: false },
  { name: 'kit: preload + requestLogging + line', preload: kitPreload, withKit: true },
  { name: 'anchor: server span only', preload: anchorPreload, withKit: false },
  { name: 'kit minus requestLogging (preload only)', preload: kitPreload, withKit: false },
  {
    name: 'kit, a write per line (LOG_BUFFER_MS=0)',
    preload: kitPreload,
    withKit: true,
    env: { LOG_BUFFER_MS: '0' },
  },
  { name: 'kit, lines to /dev/null (no file write)', preload: kitPreload, withKit: true, lines: '/dev/null' },
  {
    name: 'kit minus the line (LOG_LEVEL=warn)',
    preload: kitPreload,
    withKit: true,
    env: { LOG_LEVEL: 'warn' },
  },
  {
    name: 'kit minus spans (OTEL_TRACES_EXPORTER=none)',
    preload: kitPreload,
    withKit: true,
    env: { OTEL_TRACES_EXPORTER: 'none' },
  },
  { name: 'kit minus the SDK (requestLogging alone)', preload: [], withKit: true },
];

/** user and system CPU seconds of `pid` so far, from /proc. */
function cpuSeconds(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

async function runOnce(
  v: Variant,
  app: { file: string },
  dir: string,
  env: NodeJS.ProcessEnv,
  concurrency: number,
  ms: number,
  warmup: Warmup,
): Promise<{ rps: number; cpuPerRequestUs: number; systemShare: number }> {
  const out = openSync(v.lines ?? join(dir, 'lines.log'), 'a');
  const server: ChildProcess = spawn(
    process.execPath,
    [...v.preload, join(dir, v.withKit ? `kit-${app.file}` : app.file)],
    {
      cwd: root,
      env: { ...env, ...v.env },
      stdio: ['ignore', out, 'pipe'],
    },
  );
  closeSync(out);
  try {
    const port = await portFromStderr(server, v.name);
    const load = spawn(process.execPath, ['--input-type=module', '-e', loadCode], {
      cwd: root,
      env: {
        ...process.env,
        BENCH_URL: `http://127.0.0.1:${port}/items/42`,
        BENCH_CONCURRENCY: String(concurrency),
        BENCH_MS: String(ms),
        BENCH_WARMUP_MS: String(warmup.ms),
        BENCH_WARMUP_CALLS: String(warmup.calls),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    });
    let report = '';
    let cpu0: { user: number; system: number } | undefined;
    const pipe = load.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (chunk: string) => {
      report += chunk;
      if (cpu0 === undefined && report.includes('measure\n')) cpu0 = cpuSeconds(server.pid as number);
    });
    await once(load, 'exit');
    const cpu1 = cpuSeconds(server.pid as number);
    const result = JSON.parse(report.split('\n')[1] ?? '{}') as { requests: number; seconds: number };
    return {
      rps: result.requests / result.seconds,
      cpuPerRequestUs: ((total(cpu1) - total(cpu0)) / result.requests) * 1e6,
      systemShare: (cpu1.system - (cpu0?.system ?? 0)) / (total(cpu1) - total(cpu0)),
    };
  } finally {
    server.kill('SIGKILL');
    if (server.exitCode === null && server.signalCode === null) await once(server, 'exit');
  }
}

const total = (cpu: { user: number; system: number } | undefined) =>
  cpu === undefined ? 0 : cpu.user + cpu.system;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;

export default async function bench(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 3);
  const ms = Number(process.env.BENCH_SECONDS ?? 2) * 1000;
  const appName = process.env.BENCH_APP ?? 'node';
  const chosen = process.env.BENCH_VARIANTS?.split(',').map(Number);
  const list = chosen === undefined ? variants : variants.filter((_, i) => chosen.includes(i));
  const concurrencies = concurrenciesFromEnv();
  const warmup = warmupFromEnv();

  const sink = await startSpanSink();
  const dir = mkdtempSync(join(tmpdir(), 'osk-bench-server-'));
  const plain = appSource(appName, false);
  const withKit = appSource(appName, true);
  writeFileSync(join(dir, plain.file), plain.code);
  writeFileSync(join(dir, `kit-${withKit.file}`), withKit.code);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...telemetryEnv('bench-server', sink.endpoint, 19465),
    TMPDIR: dir,
  };
  try {
    for (const concurrency of concurrencies) {
      const results = new Map(
        list.map((v) => [v.name, { rps: [] as number[], cpu: [] as number[], system: [] as number[] }]),
      );
      for (let round = 0; round < runs; round++) {
        for (const v of roundOrder(list, round)) {
          const r = await runOnce(v, plain, dir, env, concurrency, ms, warmup);
          results.get(v.name)?.rps.push(r.rps);
          results.get(v.name)?.cpu.push(r.cpuPerRequestUs);
          results.get(v.name)?.system.push(r.systemShare);
        }
      }
      const bareRps = median(results.get('bare')?.rps ?? []);
      const anchorRps = median(results.get('anchor: server span only')?.rps ?? []);
      const anchorCpu = median(results.get('anchor: server span only')?.cpu ?? []);
      console.log(
        `\nserver, ${appName} app, concurrency ${concurrency} (${runs} interleaved rounds of ${ms / 1000} s after ${describeWarmup(warmup)}, medians, node ${process.version})`,
      );
      for (const [name, r] of results) {
        const rps = median(r.rps);
        const cpu = median(r.cpu);
        console.log(
          `${name.padEnd(44)} ${rps.toFixed(0).padStart(7)} req/s  ${(rps / bareRps).toFixed(2)} x bare  ${(rps / anchorRps).toFixed(2)} x anchor   cpu ${cpu.toFixed(0).padStart(4)} us/req (${(cpu / anchorCpu).toFixed(2)} x anchor, ${(median(r.system) * 100).toFixed(0)}% system)`,
        );
      }
    }
    console.log(`(sink received ${(sink.bytes() / 1024).toFixed(0)} kB of spans)`);
  } finally {
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
