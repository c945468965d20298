// Start-up overhead of the preload over bare `node -e ''`, side by side in one run:
//   node -e ''                                                     (baseline)
//   node --import ./register.ts -e ''                              (ours)
//   node --import @opentelemetry/auto-instrumentations-node/register -e ''   (the anchor)
//   node --import ./dist/register.js -e ''   (what the installed package runs; after `npm run build`)
// Two figures per variant, medians of interleaved runs:
//   ready: ms until the app's first line runs (what a user waits for at deploy)
//   exit:  wall ms until the process has exited (includes the exit-time flush)
// Both run with the collector unreachable (nothing on :4318) and the metrics port free,
// as on a developer machine; the compile cache is the one each variant sets up itself.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const probe = 'process.stdout.write(String(performance.now()))';

interface Variant {
  name: string;
  args: string[];
}

const variants: Variant[] = [
  { name: 'bare', args: [] },
  { name: 'otel-service-kit', args: ['--import', './register.ts'] },
  {
    name: 'auto-instrumentations-node',
    args: ['--import', '@opentelemetry/auto-instrumentations-node/register'],
  },
];
// What an installed package runs (`otel-service-kit/register` is dist/register.js): no
// TypeScript to strip. Measured when `npm run build` has made dist/.
const distRegister = 'dist/register.js';
const dist = 'otel-service-kit, dist/';
if (existsSync(`${root}${distRegister}`))
  variants.push({ name: dist, args: ['--import', `./${distRegister}`] });

function once(v: Variant, env: NodeJS.ProcessEnv): { ready: number; exit: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...v.args, '-e', probe], { cwd: root, env, encoding: 'utf8' });
  const exit = performance.now() - t0;
  const ready = Number.parseFloat(r.stdout);
  if (r.status !== 0 || Number.isNaN(ready)) throw new Error(`${v.name} failed: ${r.stderr}`);
  return { ready, exit };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? Number.NaN;
};

export default async function startup(): Promise<void> {
  const runs = Number(process.env.BENCH_RUNS ?? 7);
  const cache = mkdtempSync(join(tmpdir(), 'osk-bench-'));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_COMPILE_CACHE: undefined,
    // Each run gets a free metrics port, and no collector listens on this endpoint.
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
    OTEL_EXPORTER_PROMETHEUS_PORT: '19464',
  };
  delete env.NODE_COMPILE_CACHE;
  const results = new Map<string, { ready: number[]; exit: number[] }>();
  for (const v of variants) results.set(v.name, { ready: [], exit: [] });
  try {
    // One warm-up of each (fills the OS page cache and, for ours, Node's compile cache).
    for (const v of variants) once(v, { ...env, TMPDIR: cache });
    for (let i = 0; i < runs; i++) {
      for (const v of variants) {
        const r = once(v, { ...env, TMPDIR: cache });
        results.get(v.name)?.ready.push(r.ready);
        results.get(v.name)?.exit.push(r.exit);
      }
    }
  } finally {
    rmSync(cache, { recursive: true, force: true });
  }
  const bare = results.get('bare');
  const ours = results.get('otel-service-kit');
  const auto = results.get('auto-instrumentations-node');
  if (!bare || !ours || !auto) return;
  const row = (name: string, r: { ready: number[]; exit: number[] }) =>
    `${name.padEnd(28)} ready ${median(r.ready).toFixed(0).padStart(6)} ms   exit ${median(r.exit).toFixed(0).padStart(6)} ms`;
  console.log(`startup (${runs} interleaved runs, medians, node ${process.version})`);
  for (const [name, r] of results) console.log(row(name, r));
  const over = (r: { ready: number[]; exit: number[] }, k: 'ready' | 'exit') =>
    median(r[k]) - median(bare[k]);
  for (const k of ['ready', 'exit'] as const) {
    const o = over(ours, k);
    const a = over(auto, k);
    console.log(
      `overhead over bare (${k}): ours ${o.toFixed(0)} ms, auto-instrumentations ${a.toFixed(0)} ms, ratio ours/theirs ${(o / a).toFixed(2)} (goal <= 0.33)`,
    );
  }
  const built = results.get(dist);
  if (built === undefined) {
    console.log(
      `(run \`npm run build\` first to measure ${distRegister} too, as the installed package runs it)`,
    );
    return;
  }
  for (const k of ['ready', 'exit'] as const) {
    const o = over(built, k);
    console.log(
      `overhead over bare (${k}), ${distRegister} as installed: ${o.toFixed(0)} ms, ratio to auto-instrumentations ${(o / over(auto, k)).toFixed(2)}`,
    );
  }
}
