// Outbound-call overhead, side by side in one run, on one loopback server with tiny responses:
//   bare undici.request                                   (baseline, no preload)
//   InstrumentedClient under the kit's preload as installed (node --import ./dist/register.js):
//     spans sampled and sent over OTLP to a loopback sink that discards them, Prometheus
//     metrics on, logs on (to /dev/null)
//   the same plain undici.request under @opentelemetry/auto-instrumentations-node/register
//     (the anchor), with Prometheus metrics too
// Both preloads run the same default instrumentation set (http, undici, dns, net, ...: the
// anchor's plain call pays them as well) and local resource detectors. Then
// InstrumentedClient with one cost taken away after another, to show where the time goes.
// Each variant is a fresh child process (the client), against a server in another child,
// run for a bounded time and count; rounds are interleaved and medians reported.
// Rounds run the variants in alternating order; each run is measured after a warm-up.
// Figures: requests/s, and client CPU (user+system) per request. Knobs: BENCH_RUNS (3),
// BENCH_SECONDS per run (2), BENCH_WARMUP_CALLS (50 000) and BENCH_WARMUP_SECONDS (at most 30,
// see _shared.ts), BENCH_CONCURRENCY
// (1,8: 1 is a handler awaiting its downstream call; 8 saturates the client),
// BENCH_VARIANTS (indices, e.g. 0,1,2),
// BENCH_CPU_PROF (a folder: a --cpu-prof profile of every run, by variant).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, openSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  concurrenciesFromEnv,
  describeWarmup,
  roundOrder,
  startSpanSink,
  telemetryEnv,
  warmupFromEnv,
} from './_shared.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const kitIndex = pathToFileURL(`${root}src/index.ts`).href;

const serverCode = `
import { createServer } from 'node:http';
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
  res.end('ok');
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'));
`;

// The client: BENCH_MODE=kit uses InstrumentedClient, else undici.request. Concurrency
// BENCH_CONCURRENCY; a warm-up, then a measured phase bounded by time and by count.
const clientCode = `
import { writeSync } from 'node:fs';
const base = process.env.BENCH_URL;
const concurrency = Number(process.env.BENCH_CONCURRENCY);
let call;
if (process.env.BENCH_MODE === 'kit') {
  const { InstrumentedClient } = await import(${JSON.stringify(kitIndex)});
  const client = new InstrumentedClient({ service: 'bench-api', baseUrl: base });
  call = async () => { const res = await client.request('GET', '/tiny'); await res.body.text(); };
} else {
  const { request } = await import('undici');
  const url = base + '/tiny';
  call = async () => { const res = await request(url); await res.body.text(); };
}
async function phase(ms, max) {
  let count = 0;
  const until = performance.now() + ms;
  const worker = async () => { while (count < max && performance.now() < until) { count++; await call(); } };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return count;
}
await phase(Number(process.env.BENCH_WARMUP_MS), Number(process.env.BENCH_WARMUP_CALLS));
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const requests = await phase(Number(process.env.BENCH_MS), Number(process.env.BENCH_MAX));
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
writeSync(3, JSON.stringify({ requests, seconds, cpuMicros: cpu.user + cpu.system }));
process.exit(0);
`;

interface Variant {
  name: string;
  args: string[];
  mode: 'kit' | 'plain';
  env?: Record<string, string>;
}

const kit = ['--import', './dist/register.js'];
const logsOff = { LOG_LEVEL: 'silent' };
const spansOff = { ...logsOff, OTEL_TRACES_SAMPLER: 'always_off' };
const metricsOff = { ...spansOff, OTEL_METRICS_EXPORTER: 'none' };
const variants: Variant[] = [
  { name: 'bare undici.request', args: [], mode: 'plain' },
  { name: 'InstrumentedClient, SDK on', args: kit, mode: 'kit' },
  {
    name: 'auto-instrumented undici.request',
    args: ['--import', '@opentelemetry/auto-instrumentations-node/register'],
    mode: 'plain',
  },
  // Where the time goes: the full composition with one cost after another taken away.
  { name: '  kit, logs off', args: kit, mode: 'kit', env: logsOff },
  { name: '  kit, logs off, spans off', args: kit, mode: 'kit', env: spansOff },
  { name: '  kit, … metrics off', args: kit, mode: 'kit', env: metricsOff },
  {
    name: '  kit, … undici instrumentation off',
    args: kit,
    mode: 'kit',
    env: { ...metricsOff, OTEL_NODE_DISABLED_INSTRUMENTATIONS: 'undici' },
  },
  {
    name: '  kit, logs off, SDK off',
    args: kit,
    mode: 'kit',
    env: { ...logsOff, OTEL_SDK_DISABLED: 'true' },
  },
];

/** Each step: the cost of what was taken away between two variants (indices above). */
const steps: [string, number, number][] = [
  ['log line ("downstream request completed")', 1, 3],
  ['spans (recorded, ended, exported)', 3, 4],
  ["metrics (catalogue + undici's histogram)", 4, 5],
  ['undici instrumentation (which skips the call)', 5, 6],
  ['rest of the SDK (context manager, hooks)', 6, 7],
  ['InstrumentedClient itself (no SDK)', 7, 0],
];

interface Sample {
  rps: number;
  cpuPerRequest: number;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

async function startServer(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', serverCode], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  child.stdout?.setEncoding('utf8');
  const [chunk] = (await once(child.stdout as NodeJS.ReadableStream, 'data')) as [string];
  return { child, url: `http://127.0.0.1:${Number.parseInt(chunk, 10)}` };
}

async function runOnce(v: Variant, env: NodeJS.ProcessEnv, devNull: number): Promise<Sample> {
  // BENCH_CPU_PROF=<dir>: each run writes a --cpu-prof profile there, named by variant.
  const profile = process.env.BENCH_CPU_PROF
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}/${v.name.trim().replace(/[^a-z0-9]+/gi, '-')}`,
      ]
    : [];
  const child = spawn(process.execPath, [...profile, ...v.args, '--input-type=module', '-e', clientCode], {
    cwd: root,
    env: { ...env, BENCH_MODE: v.mode, ...v.env },
    stdio: ['ignore', devNull, 'pipe', 'pipe'],
  });
  let result = '';
  let stderr = '';
  child.stdio[3]?.on('data', (c: Buffer) => {
    result += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0 || result === '') throw new Error(`${v.name} failed (exit ${code}): ${stderr.slice(-2000)}`);
  const r = JSON.parse(result) as { requests: number; seconds: number; cpuMicros: number };
  return { rps: r.requests / r.seconds, cpuPerRequest: r.cpuMicros / r.requests };
}

export default async function client(): Promise<void> {
  if (!existsSync(`${root}dist/register.js`)) throw new Error('run `npm run build` first');
  const rounds = Number(process.env.BENCH_RUNS ?? 3);
  const seconds = Number(process.env.BENCH_SECONDS ?? 2);
  const concurrencies = concurrenciesFromEnv();
  const warmup = warmupFromEnv();
  const only = process.env.BENCH_VARIANTS?.split(',').map(Number);
  const chosen = only === undefined ? variants : variants.filter((_, i) => only.includes(i));
  const sink = await startSpanSink();
  const server = await startServer();
  const devNull = openSync('/dev/null', 'w');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('OTEL_') && !k.endsWith('_TIMEOUT_MS') && k !== 'LOG_LEVEL' && k !== 'NODE_OPTIONS')
      env[k] = v;
  }
  Object.assign(env, {
    BENCH_URL: server.url,
    BENCH_WARMUP_MS: String(warmup.ms),
    BENCH_WARMUP_CALLS: String(warmup.calls),
    BENCH_MS: String(seconds * 1000),
    BENCH_MAX: '1000000',
    ...telemetryEnv('bench-client', sink.endpoint, 19465),
  });
  try {
    for (const concurrency of concurrencies) {
      const samples = new Map<string, Sample[]>(chosen.map((v) => [v.name, []]));
      const exportsBefore = sink.requests();
      for (let r = 0; r < rounds; r++) {
        for (const v of roundOrder(chosen, r)) {
          samples
            .get(v.name)
            ?.push(await runOnce(v, { ...env, BENCH_CONCURRENCY: String(concurrency) }, devNull));
        }
      }
      report(samples, {
        rounds,
        seconds,
        warmup: describeWarmup(warmup),
        concurrency,
        exports: sink.requests() - exportsBefore,
      });
    }
  } finally {
    closeSync(devNull);
    server.child.kill();
    sink.close();
  }
}

function report(
  samples: Map<string, Sample[]>,
  run: { rounds: number; seconds: number; warmup: string; concurrency: number; exports: number },
): void {
  const summary = new Map(
    [...samples].map(([name, s]) => [
      name,
      { rps: median(s.map((x) => x.rps)), cpu: median(s.map((x) => x.cpuPerRequest)) },
    ]),
  );
  const bare = summary.get(variants[0]?.name ?? '');
  console.log(
    `client (${run.rounds} interleaved rounds of ${run.seconds} s after ${run.warmup}, concurrency ${run.concurrency}, medians, node ${process.version}; OTLP exports received: ${run.exports})`,
  );
  console.log(
    `${'variant'.padEnd(38)} ${'req/s'.padStart(8)} ${'CPU µs/req'.padStart(11)} ${'vs bare'.padStart(8)}`,
  );
  for (const [name, s] of summary) {
    const ratio = bare === undefined ? '' : (s.rps / bare.rps).toFixed(2);
    console.log(
      `${name.padEnd(38)} ${s.rps.toFixed(0).padStart(8)} ${s.cpu.toFixed(1).padStart(11)} ${ratio.padStart(8)}`,
    );
  }
  // Each step's cost as added time per call (wall µs/request: at concurrency 1 what a
  // caller waits, at 8 the client's saturated throughput) and as client CPU per call.
  const at = (i: number) => summary.get(variants[i]?.name ?? '');
  console.log('where the time goes (per call):');
  for (const [label, hi, lo] of steps) {
    const a = at(hi);
    const b = at(lo);
    if (a === undefined || b === undefined) continue;
    const wall = 1e6 / a.rps - 1e6 / b.rps;
    console.log(
      `  ${label.padEnd(46)} ${wall.toFixed(1).padStart(6)} µs wall ${(a.cpu - b.cpu).toFixed(1).padStart(6)} µs CPU`,
    );
  }
  const ours = at(1);
  const auto = at(2);
  if (bare !== undefined && ours !== undefined && auto !== undefined) {
    console.log(
      `concurrency ${run.concurrency}: InstrumentedClient/bare throughput ${(ours.rps / bare.rps).toFixed(2)} (goal >= 0.6 at concurrency 1); vs auto-instrumented plain call ${(ours.rps / auto.rps).toFixed(2)} (goal >= 0.9)`,
    );
  }
}
