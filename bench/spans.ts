// What one span costs from start to export, under the kit and under the anchor, and the
// part of it the OTLP protobuf encoding takes.
//   encoder   upstream's ProtobufTraceSerializer against the kit's encoder
//             (src/telemetry/otlpSpanEncoder.ts), alternating in one process over the same
//             512 server spans of 14 attributes: CPU per span, median over the rounds
//   pipeline  a loop that starts and ends such spans (40 every 10 ms, as a busy service
//             makes them) under the kit's built preload and under the anchor's register,
//             exported over OTLP/HTTP protobuf to a loopback sink: CPU per span of the
//             whole process, interleaved runs
// Knobs: BENCH_RUNS (4, pipeline runs per preload), BENCH_SPANS (20000 per run).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { SpanKind } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { type ReadableSpan, TracerProvider } from '@opentelemetry/sdk-trace';
import { encodeTraceExportRequest } from '../src/telemetry/otlpSpanEncoder.ts';
import { startSpanSink, telemetryEnv } from './_shared.ts';

const root = fileURLToPath(new URL('../', import.meta.url));
const runs = Number(process.env.BENCH_RUNS ?? 4);
const spansPerRun = Number(process.env.BENCH_SPANS ?? 20_000);

/** A server span as the http instrumentation makes it; `i` varies the peer port. */
function serverSpanAttributes(i: number): Record<string, string | number> {
  return {
    'http.request.method': 'GET',
    'url.scheme': 'http',
    'server.address': '127.0.0.1',
    'server.port': 8080,
    'network.peer.address': '127.0.0.1',
    'network.peer.port': 50_000 + (i % 1000),
    'network.protocol.version': '1.1',
    'user_agent.original': 'load/1',
    'url.path': '/items/1',
    'client.address': '127.0.0.1',
    'network.local.address': '127.0.0.1',
    'network.local.port': 8080,
  };
}

function encoder(): void {
  const spans: ReadableSpan[] = [];
  const provider = new TracerProvider({
    resource: resourceFromAttributes({
      'service.name': 'bench',
      'host.name': 'h',
      'process.pid': process.pid,
    }),
    spanProcessors: [
      {
        onStart: () => {},
        onEnd: (s) => spans.push(s),
        forceFlush: async () => {},
        shutdown: async () => {},
      },
    ],
  });
  const tracer = provider.getTracer('@opentelemetry/instrumentation-http', '0.300.0');
  for (let i = 0; i < 512; i++) {
    const span = tracer.startSpan('GET /items/:id', {
      kind: SpanKind.SERVER,
      attributes: serverSpanAttributes(i),
    });
    span.setAttributes({ 'http.response.status_code': 200, 'http.route': '/items/:id' });
    span.end();
  }
  const cpuPerSpan = (encode: () => unknown): number => {
    const start = process.cpuUsage();
    for (let k = 0; k < 40; k++) encode();
    const used = process.cpuUsage(start);
    return (used.user + used.system) / 40 / spans.length;
  };
  const upstream: number[] = [];
  const kit: number[] = [];
  for (let round = 0; round < 25; round++) {
    upstream.push(cpuPerSpan(() => ProtobufTraceSerializer.serializeRequest(spans)));
    kit.push(cpuPerSpan(() => encodeTraceExportRequest(spans)));
  }
  const [u, k] = [median(upstream), median(kit)];
  console.log('encoding 512 server spans of 14 attributes, CPU per span (median of 25 rounds):');
  console.log(`  upstream ProtobufTraceSerializer  ${u.toFixed(2)} µs`);
  console.log(
    `  kit encoder                       ${k.toFixed(2)} µs   kit / upstream ${(k / u).toFixed(2)}`,
  );
}

/** The child's loop: spans made 40 at a time every 10 ms; prints its CPU per span. */
const loop = `
const { SpanKind, trace } = require('@opentelemetry/api');
const attributes = ${serverSpanAttributes.toString()};
const tracer = trace.getTracer('@opentelemetry/instrumentation-http', '0.300.0');
let i = 0; let start;
function batch() {
  if (i === 2000) start = process.cpuUsage();
  for (let k = 0; k < 40; k++, i++) {
    const span = tracer.startSpan('GET /items/:id', { kind: SpanKind.SERVER, attributes: attributes(i) });
    span.setAttributes({ 'http.response.status_code': 200, 'http.route': '/items/:id' });
    span.end();
  }
  if (i < ${spansPerRun} + 2000) { setTimeout(batch, 10); return; }
  const used = process.cpuUsage(start);
  process.stdout.write(String((used.user + used.system) / ${spansPerRun}));
  setTimeout(() => process.exit(0), 50);
}
batch();
`;

async function pipeline(): Promise<void> {
  const sink = await startSpanSink();
  const preloads = {
    kit: `${root}dist/register.js`,
    anchor: '@opentelemetry/auto-instrumentations-node/register',
  };
  const figures: Record<string, number[]> = { kit: [], anchor: [] };
  for (let run = 0; run < runs; run++) {
    for (const [name, preload] of Object.entries(preloads)) {
      const child = spawn(process.execPath, ['--import', preload, '-e', loop], {
        cwd: root,
        env: { ...process.env, ...telemetryEnv('spans', sink.endpoint, 0), OTEL_METRICS_EXPORTER: 'none' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk;
      });
      const [code] = await once(child, 'exit');
      if (code !== 0) throw new Error(`${name} exited with ${code}`);
      figures[name]?.push(Number(out));
    }
  }
  sink.close();
  const [k, a] = [median(figures.kit ?? []), median(figures.anchor ?? [])];
  console.log(`a span started, ended and exported, CPU per span of the process (median of ${runs} runs):`);
  console.log(`  anchor  ${a.toFixed(1)} µs`);
  console.log(`  kit     ${k.toFixed(1)} µs   kit / anchor ${(k / a).toFixed(2)}`);
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

export default async function main(): Promise<void> {
  encoder();
  await pipeline();
}
