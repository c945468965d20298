// Outbound-call overhead, side by side in one run, on one loopback server with tiny responses:
//   bare undici.request                                   (baseline, no preload)
//   InstrumentedClient, SDK on (node --import ./register.ts): spans sampled and sent over
//     OTLP to a loopback sink that discards them, Prometheus metrics on, logs on (to /dev/null)
//   the same plain undici.request under @opentelemetry/auto-instrumentations-node/register
// plus InstrumentedClient with one cost taken away at a time, to show where the time goes.
// Each variant is a fresh child process (the client), against a server in another child,
// run for a bounded time and count; rounds are interleaved and medians reported.
// Figures: requests/s, and client CPU (user+system) per request. Knobs: BENCH_RUNS (3),
// BENCH_SECONDS per run (2), BENCH_CONCURRENCY (1: a handler awaiting its downstream call;
// 8 saturates the client), BENCH_VARIANTS (indices, e.g. 0,1,2).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';

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
await phase(Number(process.env.BENCH_WARMUP_MS), 1e6);
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

const kit = ['--import', './register.ts'];
const logsOff = { LOG_LEVEL: 'silent' };
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
  {
    name: '  kit, logs off, spans off',
    args: kit,
    mode: 'kit',
    env: { ...logsOff, OTEL_TRACES_SAMPLER: 'always_off' },
  },
  {
    name: '  kit, logs off, SDK off',
    args: kit,
    mode: 'kit',
    env: { ...logsOff, OTEL_SDK_DISABLED: 'true' },
  },
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

/** A loopback OTLP endpoint that reads and discards whatever it is sent. */
async function startSink() {
  let requests = 0;
  const sink = createServer((req, res) => {
    requests++;
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' });
      res.end();
    });
  });
  sink.listen(0, '127.0.0.1');
  await once(sink, 'listening');
  return {
    sink,
    endpoint: `http://127.0.0.1:${(sink.address() as AddressInfo).port}`,
    requests: () => requests,
  };
}

async function runOnce(v: Variant, env: NodeJS.ProcessEnv, devNull: number): Promise<Sample> {
  const child = spawn(process.execPath, [...v.args, '--input-type=module', '-e', clientCode], {
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
  const rounds = Number(process.env.BENCH_RUNS ?? 3);
  const seconds = Number(process.env.BENCH_SECONDS ?? 2);
  const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 1);
  const only = process.env.BENCH_VARIANTS?.split(',').map(Number);
  const chosen = only === undefined ? variants : variants.filter((_, i) => only.includes(i));
  const server = await startServer();
  const sink = await startSink();
  const devNull = openSync('/dev/null', 'w');
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('OTEL_') && !k.endsWith('_TIMEOUT_MS') && k !== 'LOG_LEVEL' && k !== 'NODE_OPTIONS')
      env[k] = v;
  }
  Object.assign(env, {
    BENCH_URL: server.url,
    BENCH_CONCURRENCY: String(concurrency),
    BENCH_WARMUP_MS: String(Math.min(1000, seconds * 500)),
    BENCH_MS: String(seconds * 1000),
    BENCH_MAX: '1000000',
    OTEL_SERVICE_NAME: 'bench-client',
    OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint,
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: '19465',
  });
  const samples = new Map<string, Sample[]>(chosen.map((v) => [v.name, []]));
  try {
    for (let r = 0; r < rounds; r++) {
      for (const v of chosen) samples.get(v.name)?.push(await runOnce(v, env, devNull));
    }
  } finally {
    closeSync(devNull);
    server.child.kill();
    sink.sink.closeAllConnections();
    sink.sink.close();
  }
  const summary = new Map(
    [...samples].map(([name, s]) => [
      name,
      { rps: median(s.map((x) => x.rps)), cpu: median(s.map((x) => x.cpuPerRequest)) },
    ]),
  );
  const bare = summary.get(variants[0]?.name ?? '');
  console.log(
    `client (${rounds} interleaved rounds of ${seconds} s, concurrency ${concurrency}, medians, node ${process.version}; OTLP exports received: ${sink.requests()})`,
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
  // Each step's cost as added latency per call (wall µs/request; at concurrency 1 this is
  // what a caller waits) and as client CPU per call.
  const at = (i: number) => summary.get(variants[i]?.name ?? '');
  const steps: [string, number, number][] = [
    ['log line ("downstream request completed")', 1, 3],
    ['spans (call + attempt: create, end, export)', 3, 4],
    ['metrics and the undici instrumentation', 4, 5],
    ['InstrumentedClient itself (no SDK)', 5, 0],
  ];
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
  const ours = summary.get(variants[1]?.name ?? '');
  const auto = summary.get(variants[2]?.name ?? '');
  if (bare !== undefined && ours !== undefined && auto !== undefined) {
    console.log(
      `InstrumentedClient/bare throughput ${(ours.rps / bare.rps).toFixed(2)} (goal >= 0.6); vs auto-instrumented ${(ours.rps / auto.rps).toFixed(2)} (goal >= 1.0)`,
    );
  }
}
