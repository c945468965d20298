// Start-up cost of the preload, side by side in one interleaved run:
//   node -e …                                                          (bare)
//   node --import ./dist/register.js -e …                              (the kit, as installed)
//   node --import @opentelemetry/auto-instrumentations-node/register -e …   (the anchor)
// Both preloads run their default instrumentation sets, local resource detectors
// (OTEL_NODE_RESOURCE_DETECTORS: the anchor's default also queries cloud metadata
// endpoints over the network) and Prometheus metrics; no collector listens.
// Three figures per variant, medians:
//   ready: wall ms until the app's first line runs (what a user waits for at deploy)
//   cpu:   CPU ms the process used until then (steadier than wall time on a busy machine)
//   rss:   resident MB 2 s after start, idle
// Each variant sets up its own compile cache (the kit turns Node's on; the anchor does
// not); the cache lives in a temporary folder, filled by one warm-up run.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const readyProbe =
  'const u = process.cpuUsage(); process.stdout.write(JSON.stringify({ ready: performance.now(), cpu: (u.user + u.system) / 1000 }))';
const rssProbe =
  'setTimeout(() => process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss / 1048576 })), 2000)';

interface Variant {
  name: string;
  args: string[];
}

const variants: Variant[] = [
  { name: 'bare', args: [] },
  { name: 'otel-service-kit', args: ['--import', './dist/register.js'] },
  {
    name: 'auto-instrumentations-node',
    args: ['--import', '@opentelemetry/auto-instrumentations-node/register'],
  },
];

function run(v: Variant, probe: string, env: NodeJS.ProcessEnv): Record<string, number> {
  const r = spawnSync(process.execPath, [...v.args, '-e', probe], { cwd: root, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${v.name} failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number>;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

export default async function startup(): Promise<void> {
  if (!existsSync(join(root, 'dist/register.js'))) throw new Error('run `npm run build` first');
  const runs = Number(process.env.BENCH_RUNS ?? 9);
  const cache = mkdtempSync(join(tmpdir(), 'osk-bench-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TMPDIR: cache,
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
    OTEL_NODE_RESOURCE_DETECTORS: 'env,host,os,process,serviceinstance,container',
    OTEL_METRICS_EXPORTER: 'prometheus',
    OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
    OTEL_EXPORTER_PROMETHEUS_PORT: '19464',
  };
  delete env.NODE_COMPILE_CACHE;
  const results = new Map(
    variants.map((v) => [v.name, { ready: [] as number[], cpu: [] as number[], rss: [] as number[] }]),
  );
  try {
    for (const v of variants) run(v, readyProbe, env);
    for (let i = 0; i < runs; i++) {
      for (const v of variants) {
        const r = run(v, readyProbe, env);
        const into = results.get(v.name);
        into?.ready.push(r.ready as number);
        into?.cpu.push(r.cpu as number);
      }
    }
    for (let i = 0; i < Math.min(runs, 3); i++) {
      for (const v of variants) results.get(v.name)?.rss.push(run(v, rssProbe, env).rss as number);
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  console.log(`startup (${runs} interleaved runs, medians, node ${process.version})`);
  for (const [name, r] of results) {
    console.log(
      `${name.padEnd(28)} ready ${median(r.ready).toFixed(0).padStart(5)} ms   cpu ${median(r.cpu).toFixed(0).padStart(5)} ms   rss ${median(r.rss).toFixed(1).padStart(6)} MB`,
    );
  }
  const bare = results.get('bare');
  const kit = results.get('otel-service-kit');
  const anchor = results.get('auto-instrumentations-node');
  if (!bare || !kit || !anchor) return;
  const goals = { ready: 0.25, cpu: 0.25, rss: 0.5 } as const;
  for (const k of ['ready', 'cpu', 'rss'] as const) {
    const ours = median(kit[k]) - median(bare[k]);
    const theirs = median(anchor[k]) - median(bare[k]);
    const unit = k === 'rss' ? 'MB' : 'ms';
    console.log(
      `overhead over bare (${k}): kit ${ours.toFixed(1)} ${unit}, anchor ${theirs.toFixed(1)} ${unit}, ratio ${(ours / theirs).toFixed(2)} (goal <= ${goals[k]})`,
    );
  }
}
