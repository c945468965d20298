import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort, repoRoot } from './child.ts';

type ScrapeConfig = { job_name: string; static_configs: { targets: string[] }[]; scrape_interval?: string };
type RuleFile = {
  groups: { interval?: string; rules: { for?: string; keep_firing_for?: string; expr: string }[] }[];
};

/** An alert as Prometheus's `/api/v1/alerts` lists it (pending or firing). */
export interface PrometheusAlert {
  labels: Record<string, string> & { alertname: string };
  annotations: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
  value: string;
}

export interface PrometheusServerOptions {
  /** Scrape and rule evaluation interval, in seconds. Default 1. */
  intervalS?: number;
  /**
   * Divide every duration of the rules by this (`for:`, `keep_firing_for:`, the range of
   * every `[5m]` selector), so that alerts fire and resolve within a test. Default 1.
   */
  timeScale?: number;
}

const units: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** A Prometheus duration (`5m`, `1h30m`) divided by `scale`, as a Prometheus duration. */
export function scaleDuration(duration: string, scale: number): string {
  let ms = 0;
  const rest = duration.replace(/(\d+)(ms|s|m|h|d|w)/g, (_, n: string, unit: string) => {
    ms += Number(n) * (units[unit] ?? Number.NaN);
    return '';
  });
  if (rest !== '' || !Number.isFinite(ms)) throw new Error(`not a Prometheus duration: ${duration}`);
  const scaled = Math.max(1, Math.round(ms / scale));
  return scaled % 1000 === 0 ? `${scaled / 1000}s` : `${scaled}ms`;
}

/** The rule file with every duration divided by `scale` (see `PrometheusServerOptions.timeScale`). */
export function scaleRules(rules: RuleFile, scale: number): RuleFile {
  if (scale === 1) return rules;
  return {
    groups: rules.groups.map((g) => ({
      ...g,
      ...(g.interval === undefined ? {} : { interval: scaleDuration(g.interval, scale) }),
      rules: g.rules.map((r) => ({
        ...r,
        expr: r.expr.replace(/\[(\w+)\]/g, (_, d: string) => `[${scaleDuration(d, scale)}]`),
        ...(r.for === undefined ? {} : { for: scaleDuration(r.for, scale) }),
        ...(r.keep_firing_for === undefined
          ? {}
          : { keep_firing_for: scaleDuration(r.keep_firing_for, scale) }),
      })),
    })),
  };
}

/**
 * The real Prometheus server, started with the repo's own deploy/prometheus config and
 * rules, its scrape targets pointed at loopback and its intervals shortened for a test.
 */
export class PrometheusServer {
  readonly url: string;
  readonly #process: ChildProcess;
  readonly #dir: string;
  #log = '';

  private constructor(url: string, process: ChildProcess, dir: string) {
    this.url = url;
    this.#process = process;
    this.#dir = dir;
    process.stderr?.setEncoding('utf8').on('data', (c: string) => {
      this.#log = (this.#log + c).slice(-20_000);
    });
  }

  static async start(
    bin: string,
    targets: Record<string, string>,
    { intervalS = 1, timeScale = 1 }: PrometheusServerOptions = {},
  ): Promise<PrometheusServer> {
    const dir = mkdtempSync(join(tmpdir(), 'osk-prom-'));
    const config = parse(readFileSync(join(repoRoot, 'deploy/prometheus/prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      scrape_configs: ScrapeConfig[];
    };
    config.global.scrape_interval = `${intervalS}s`;
    config.global.evaluation_interval = `${intervalS}s`;
    for (const job of config.scrape_configs) {
      for (const sc of job.static_configs) sc.targets = sc.targets.map((t) => targets[t] ?? t);
    }
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config));
    const rules = parse(readFileSync(join(repoRoot, 'deploy/prometheus/alerts.yml'), 'utf8')) as RuleFile;
    writeFileSync(join(dir, 'alerts.yml'), stringify(scaleRules(rules, timeScale)));
    const port = await freePort();
    const child = spawn(
      bin,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const server = new PrometheusServer(`http://127.0.0.1:${port}`, child, dir);
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${server.#log}`);
      try {
        if ((await fetch(`${server.url}/-/ready`)).status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`prometheus not ready: ${server.#log}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    return server;
  }

  /** Run an instant PromQL query; returns the result vector. */
  async query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
    const res = await fetch(`${this.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { result: never[] } };
    if (body.status !== 'success') throw new Error(`query failed: ${expr}: ${body.error}`);
    return body.data?.result ?? [];
  }

  /** The alerts pending or firing now. */
  async alerts(): Promise<PrometheusAlert[]> {
    const res = await fetch(`${this.url}/api/v1/alerts`);
    const body = (await res.json()) as { status: string; data: { alerts: PrometheusAlert[] } };
    if (body.status !== 'success') throw new Error(`alerts: ${JSON.stringify(body)}`);
    return body.data.alerts;
  }

  /** Prometheus's own log (stderr), the last 20 000 characters: for failure messages. */
  get log(): string {
    return this.#log;
  }

  /** The state of the scrape targets (`up`, last error). */
  async targets(): Promise<{ health: string; lastError: string; scrapeUrl: string }[]> {
    const res = await fetch(`${this.url}/api/v1/targets`);
    const body = (await res.json()) as {
      data: { activeTargets: { health: string; lastError: string; scrapeUrl: string }[] };
    };
    return body.data.activeTargets;
  }

  async stop(): Promise<void> {
    if (this.#process.exitCode === null) {
      this.#process.kill('SIGTERM');
      await once(this.#process, 'exit');
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
