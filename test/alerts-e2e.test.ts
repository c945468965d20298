// End to end: every alert of deploy/prometheus/alerts.yml is seen firing in the real
// Prometheus under the fault it is written for, and seen resolving once the fault is gone.
//
// The demo runs under the preload with steady load; Prometheus runs the repository's own
// config and rules, with every duration of the rules (`for:` and range windows) divided by
// TIME_SCALE in its temporary copy, so that a 5m window is 10 s. Faults are switched through
// the demo's fault endpoint (example/faults.ts); the OTLP collector is the test's own and is
// stopped and restarted on its port.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import { runLoad } from '../example/load.ts';
import { freePort } from './helpers/child.ts';
import { startDemo } from './helpers/demo.ts';
import { type PrometheusAlert, PrometheusServer } from './helpers/prometheusServer.ts';
import { requireBinary } from './helpers/prometheusTools.ts';

/** Every duration of the rules is divided by this: 5m -> 10 s, 1h -> 2 min, `for: 2m` -> 4 s. */
const TIME_SCALE = 30;

/** An OTLP/HTTP collector that accepts everything, and can go away and come back on its port. */
class SwitchableCollector {
  readonly port: number;
  #server: Server | undefined;
  received = 0;

  private constructor(port: number) {
    this.port = port;
  }

  static async start(): Promise<SwitchableCollector> {
    const collector = new SwitchableCollector(await freePort());
    await collector.up();
    return collector;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    if (this.#server !== undefined) return;
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        this.received++;
        res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/x-protobuf' }).end();
      });
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.#server = server;
  }

  /** Stop listening and drop every connection: the exporter's connections are refused. */
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server === undefined) return;
    server.close();
    server.closeAllConnections();
    await once(server, 'close');
  }
}

interface Phase {
  /** What is broken, for messages. */
  fault: string;
  on: () => Promise<void>;
  off: () => Promise<void>;
  /** The alerts this fault must fire. */
  fires: string[];
  /** Alerts that may fire too, and why. */
  mayAlsoFire?: string[];
}

const names = (alerts: PrometheusAlert[], state: PrometheusAlert['state']) =>
  [...new Set(alerts.filter((a) => a.state === state).map((a) => a.labels.alertname))].sort();

test('each fault of the demo fires its alert in Prometheus, which resolves once the fault is removed', {
  timeout: 900_000,
}, async (t) => {
  const bin = requireBinary(t, 'prometheus');
  if (bin === undefined) return;
  const collector = await SwitchableCollector.start();
  t.after(() => collector.down());
  const { ready, metricsPort, target } = await startDemo(t, collector.endpoint, {
    OTEL_BSP_SCHEDULE_DELAY: '200',
    // Healthy traffic is not perfect: 1% of charges fail and 1% are rate-limited.
    PAYMENT_FAILURE_RATE: '0.01',
    PAYMENT_RATE_LIMIT_RATE: '0.01',
    PAYMENT_API_TIMEOUT_MS: '4000',
  });
  const faults = String(ready.faults);
  assert.match(
    faults,
    /^http:\/\/127\.0\.0\.1:\d+\/faults$/,
    'the demo serves its fault endpoint on loopback',
  );

  const prometheus = await PrometheusServer.start(
    bin,
    { 'app:9464': `127.0.0.1:${metricsPort}` },
    { timeScale: TIME_SCALE },
  );
  t.after(() => prometheus.stop());

  const stopLoad = new AbortController();
  const load = runLoad({ target, rps: 10, signal: stopLoad.signal });
  t.after(async () => {
    stopLoad.abort();
    await load;
  });

  const started = Date.now();
  const timeline: string[] = [];
  const note = (line: string) => {
    timeline.push(`${((Date.now() - started) / 1000).toFixed(0)} s: ${line}`);
    t.diagnostic(timeline.at(-1) ?? '');
  };
  const fault = (name: string, method: 'POST' | 'DELETE') => async () => {
    const res = await fetch(`${faults}/${name}`, { method });
    assert.equal(res.status, 200, `${method} ${name}: ${await res.text()}`);
  };

  // Each alert that fires is put down to the phase in which it became active (its
  // `activeAt`): a slow burn that starts under one fault may fire after it is removed.
  const periods: { phase: string; from: number; allowed: Set<string> }[] = [];
  const fired = new Map<string, string[]>();
  const begin = (phase: string, allowed: string[] = []) => {
    periods.push({ phase, from: Date.now(), allowed: new Set(allowed) });
    fired.set(phase, []);
  };
  const attribute = (alert: PrometheusAlert) => {
    const at = Date.parse(alert.activeAt);
    const period = periods.findLast((p) => p.from <= at) ?? periods[0];
    assert.ok(period, 'a phase has begun');
    const name = alert.labels.alertname;
    const list = fired.get(period.phase) ?? [];
    if (!list.includes(name)) list.push(name);
    fired.set(period.phase, list);
    assert.ok(
      period.allowed.has(name),
      `${name} fired, active since ${alert.activeAt}, during "${period.phase}"` +
        (period.allowed.size === 0 ? ' (no fault)' : ` (expected only ${[...period.allowed].join(', ')})`) +
        `\n${timeline.join('\n')}`,
    );
  };

  /** Poll the alerts every second until `done` holds; fail after `deadlineS`. */
  async function watch(
    what: string,
    deadlineS: number,
    done: (alerts: PrometheusAlert[]) => boolean,
  ): Promise<void> {
    const deadline = Date.now() + deadlineS * 1000;
    for (;;) {
      const alerts = await prometheus.alerts();
      for (const alert of alerts) if (alert.state === 'firing') attribute(alert);
      if (done(alerts)) return;
      if (Date.now() > deadline) {
        assert.fail(
          `${what}: not within ${deadlineS} s. Firing: ${names(alerts, 'firing').join(', ') || 'none'}; ` +
            `pending: ${names(alerts, 'pending').join(', ') || 'none'}\n${timeline.join('\n')}`,
        );
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  /** `seconds` of healthy traffic in which no alert becomes active and fires. */
  async function healthy(phase: string, seconds: number): Promise<void> {
    begin(phase);
    const until = Date.now() + seconds * 1000;
    await watch(phase, seconds + 30, () => Date.now() > until);
    note(`${phase}: ${seconds} s, nothing fired`);
  }

  for (const deadline = Date.now() + 30_000; ; ) {
    const [scrape] = await prometheus.targets();
    if (scrape?.health === 'up') break;
    assert.ok(Date.now() < deadline, `the demo is not scraped: ${scrape?.lastError}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  // Longer than every scaled `for:` but the slow burns' (30 s), which need errors to start.
  await healthy('healthy traffic', 45);

  const phases: Phase[] = [
    {
      fault: 'event loop blocked in 500 ms slices',
      on: fault('event-loop-block', 'POST'),
      off: fault('event-loop-block', 'DELETE'),
      fires: ['EventLoopDelayHigh'],
      // A response callback that waits for the loop is measured late: client latency rises.
      mayAlsoFire: ['DependencyLatencyP99High'],
    },
    {
      fault: 'OTLP collector unreachable',
      on: () => collector.down(),
      off: () => collector.up(),
      fires: ['TelemetryExportFailing', 'TelemetrySpansDropped'],
    },
    {
      fault: 'S3 store unreachable',
      on: fault('s3-down', 'POST'),
      off: fault('s3-down', 'DELETE'),
      fires: ['S3ErrorBudgetBurnFast'],
      mayAlsoFire: ['S3ErrorBudgetBurnSlow'],
    },
    {
      fault: 'payment API answering in 3 s',
      on: fault('payment-slow', 'POST'),
      off: fault('payment-slow', 'DELETE'),
      fires: ['DependencyLatencyP99High'],
    },
    {
      fault: 'payment API answering 429 to every charge',
      on: fault('payment-rate-limit', 'POST'),
      off: fault('payment-rate-limit', 'DELETE'),
      fires: ['DependencyErrorBudgetBurnFast'],
      mayAlsoFire: ['DependencyErrorBudgetBurnSlow'],
    },
    {
      fault: 'payment API answering 503 to every charge',
      on: fault('payment-errors', 'POST'),
      off: fault('payment-errors', 'DELETE'),
      // The breaker opens after 5 failures: calls then fail fast without an attempt, so
      // the attempts' error ratio barely moves. The breaker alert is the one that fires.
      fires: ['CircuitBreakerOpen'],
      mayAlsoFire: ['DependencyErrorBudgetBurnFast', 'DependencyErrorBudgetBurnSlow'],
    },
    {
      fault: 'payment API hanging past PAYMENT_API_TIMEOUT_MS',
      on: fault('payment-hang', 'POST'),
      off: fault('payment-hang', 'DELETE'),
      fires: ['CircuitBreakerOpen'],
      // Timed-out attempts are errors, and slow ones (4 s each) until the breaker opens.
      mayAlsoFire: [
        'DependencyErrorBudgetBurnFast',
        'DependencyErrorBudgetBurnSlow',
        'DependencyLatencyP99High',
      ],
    },
  ];

  for (const phase of phases) {
    begin(phase.fault, [...phase.fires, ...(phase.mayAlsoFire ?? [])]);
    await phase.on();
    note(`${phase.fault}: on`);
    await watch(`${phase.fault}: ${phase.fires.join(' and ')} firing`, 120, (alerts) =>
      phase.fires.every((name) => names(alerts, 'firing').includes(name)),
    );
    note(`${phase.fault}: ${phase.fires.join(', ')} firing`);
    await phase.off();
    note(`${phase.fault}: off`);
    await watch(
      `${phase.fault} removed: nothing firing`,
      150,
      (alerts) => names(alerts, 'firing').length === 0,
    );
    note(`${phase.fault}: resolved; fired: ${fired.get(phase.fault)?.join(', ')}`);
  }

  await healthy('healthy again', 15);
});
