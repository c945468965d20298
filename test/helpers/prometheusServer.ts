import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { freePort, repoRoot } from './child.ts';

type ScrapeConfig = { job_name: string; static_configs: { targets: string[] }[]; scrape_interval?: string };

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

  static async start(bin: string, targets: Record<string, string>, intervalS = 1): Promise<PrometheusServer> {
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
    copyFileSync(join(repoRoot, 'deploy/prometheus/alerts.yml'), join(dir, 'alerts.yml'));
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
