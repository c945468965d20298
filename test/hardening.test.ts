// Issue 10, tried as an attacker and as an unlucky operator would: nothing secret leaves
// the process, no misbehaving collector or bad variable degrades the service, a crash
// leaves its evidence. Child processes started as users start them (`node --import
// ./dist/register.js app`), a loopback OTLP receiver or a collector that misbehaves, real scrapes.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, type TestContext, test } from 'node:test';
import { Child, cleanEnv, fixturePath, freePort, registerPath } from './helpers/child.ts';
import { MisbehavingCollector, type Misbehaviour } from './helpers/misbehavingCollector.ts';
import { OtlpReceiver, type ReceivedSpan, SpanKind } from './helpers/otlpReceiver.ts';
import { parseExposition, scrape } from './helpers/prometheusText.ts';

let receiver: OtlpReceiver;
before(async () => {
  receiver = await OtlpReceiver.start();
});
after(() => receiver.close());

const secrets = ['s3cret', 'hunter2', 'k1', 'zzz', 'sid=abc'];

/** The secrets found in `text`. */
const leaked = (text: string): string[] => secrets.filter((s) => text.includes(s));

const spansOf = (service: string): ReceivedSpan[] =>
  receiver.spans.filter((s) => s.resource['service.name'] === service);

const serverSpan = (service: string, path: string): ReceivedSpan | undefined =>
  spansOf(service).find((s) => s.kind === SpanKind.SERVER && s.attributes['url.path'] === path);

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

/** The stderr lines that are JSON, parsed. */
const jsonStderr = (child: Child): Record<string, unknown>[] =>
  child.stderrLines().flatMap((line) => {
    try {
      return [JSON.parse(line) as Record<string, unknown>];
    } catch {
      return [];
    }
  });

/**
 * A fixture under the preload, with its own `/metrics` port on loopback, stopped when the
 * test ends; `appArgs` go to the app (after its path), as a user's own arguments do.
 */
async function start(
  t: TestContext,
  fixture: string,
  env: Record<string, string>,
  options: { nodeArgs?: string[]; appArgs?: string[] } = {},
): Promise<{ child: Child; metricsPort: number }> {
  const metricsPort = await freePort();
  const child = new Child(
    ['--import', registerPath, ...(options.nodeArgs ?? []), fixturePath(fixture), ...(options.appArgs ?? [])],
    cleanEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(metricsPort),
      ...env,
    }),
  );
  t.after(() => child.stop());
  return { child, metricsPort };
}

/** `hardening-service.mjs` (node:http, requestLogging, Health on `/ready`), up and listening. */
async function startService(
  t: TestContext,
  env: Record<string, string>,
  appArgs: string[] = [],
): Promise<{ child: Child; base: string; metricsPort: number }> {
  const { child, metricsPort } = await start(t, 'hardening-service.mjs', env, { appArgs });
  const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
  return { child, base: `http://127.0.0.1:${ready.port}`, metricsPort };
}

/**
 * GET on a connection of its own, with header names in the case given here (node:http
 * sends them as set); given up after 15 s or when `signal` aborts.
 */
function get(
  url: string,
  headers: Record<string, string> = {},
  signal: AbortSignal = AbortSignal.timeout(15_000),
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers: { ...headers, Connection: 'close' }, signal }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        body += chunk;
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

/** SIGTERM, then the time from the signal to the exit, in ms. */
async function timeShutdown(child: Child): Promise<number> {
  const signalledAt = performance.now();
  child.kill('SIGTERM');
  await child.exited;
  return (child.exitedAt ?? Number.NaN) - signalledAt;
}

describe('secrets', () => {
  // Bug: server spans carried ?token=…&password=… in url.query, and log redaction matched lower-case names only.
  test('query secrets and headers in any case reach no span, log line, stderr or /metrics', async (t) => {
    const service = 'hardening-secrets';
    const { child, base, metricsPort } = await startService(t, { OTEL_SERVICE_NAME: service });
    const res = await get(`${base}/x?token=s3cret&password=hunter2&api_key=k1`, {
      Authorization: 'Bearer zzz',
      Cookie: 'sid=abc',
      'X-Api-Key': 'k1',
    });
    assert.equal(res.status, 200);
    assert.equal(res.body, 'done');
    const page = await scrape(metricsPort);
    child.kill('SIGTERM');
    await child.exited;

    // The incoming request, the three outgoing calls (undici, fetch, node:http) and the
    // three requests they made to the service itself.
    const clientSpans = () =>
      spansOf(service).filter((s) => s.kind === SpanKind.CLIENT && s.attributes['url.full'] !== undefined);
    await receiver.waitFor(
      () =>
        spansOf(service).filter((s) => s.kind === SpanKind.SERVER).length === 4 && clientSpans().length === 3,
    );
    assert.match(String(serverSpan(service, '/x')?.attributes['url.query']), /token=REDACTED/);
    assert.deepEqual(
      clientSpans()
        .map((s) => /via=(\w+)/.exec(String(s.attributes['url.full']))?.[1])
        .sort(),
      ['fetch', 'http', 'undici'],
    );
    for (const span of spansOf(service)) {
      const text = JSON.stringify({ name: span.name, attributes: span.attributes, events: span.events });
      assert.deepEqual(leaked(text), [], `${span.scope} span ${span.name}: ${text}`);
    }

    // The lines were written, their secret fields kept with the values taken out.
    const headersLine = child.lines.find((l) => l.msg === 'incoming headers');
    assert.deepEqual(Object.keys((headersLine?.headers ?? {}) as object).sort(), [
      'Authorization',
      'Connection',
      'Cookie',
      'Host',
      'X-Api-Key',
    ]);
    const errorLine = child.lines.find((l) => l.msg === 'payment call failed') as
      | { err?: { config?: { headers?: Record<string, unknown> } } }
      | undefined;
    assert.ok(errorLine?.err?.config?.headers?.Authorization, child.stdout);
    assert.deepEqual(leaked(child.stdout), [], child.stdout);
    assert.deepEqual(leaked(child.stderr), [], child.stderr);
    assert.deepEqual(leaked(page), [], 'the /metrics page');
  });

  // Bug: /metrics published the command line (process_command_args in target_info) to anyone who could reach the port.
  test('/metrics publishes no command-line arguments unless TELEMETRY_RESOURCE_COMMAND_LINE=true', async (t) => {
    const appArgs = ['--db-url=postgres://app:hunter2@db/x'];
    const [plain, asked] = await Promise.all([
      startService(t, {}, appArgs),
      startService(t, { TELEMETRY_RESOURCE_COMMAND_LINE: 'true' }, appArgs),
    ]);
    const targetInfo = async (port: number) => {
      const sample = parseExposition(await scrape(port)).get('target_info')?.samples[0];
      assert.ok(sample, 'target_info is on the page');
      return sample.labels;
    };
    const plainPage = await scrape(plain.metricsPort);
    const plainInfo = await targetInfo(plain.metricsPort);
    assert.equal(plainInfo.process_command_args, undefined);
    assert.equal(plainInfo.process_command_line, undefined);
    assert.equal(plainInfo.process_pid, String(plain.child.process.pid), 'the other process attributes stay');
    assert.deepEqual(leaked(plainPage), []);

    const askedInfo = await targetInfo(asked.metricsPort);
    const commandLine = askedInfo.process_command_args ?? askedInfo.process_command_line ?? '';
    assert.match(commandLine, /hardening-service\.mjs/);
    assert.match(commandLine, /--db-url=/);
    assert.doesNotMatch(commandLine, /hunter2/, 'credentials in an argument are redacted even then');
  });
});

describe('bad OTEL_* values: one warning naming the variable, the default, the service serves', () => {
  for (const [name, value] of [
    ['OTEL_EXPORTER_OTLP_TIMEOUT', 'abc'],
    ['OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', '-1'],
  ] as const) {
    // Bug: an invalid export timeout dropped the kit's 2 s default for the SDK's 10 s, so a dead collector held shutdown 10 s.
    test(`${name}=${value}: the kit's 2000 ms, as a valid OTEL_EXPORTER_OTLP_TIMEOUT=2000 gives`, async (t) => {
      // A collector that never answers; spans still queued at SIGTERM; a flush bound well
      // above both timeouts, so that the export timeout alone decides how long shutdown takes.
      const run = async (env: Record<string, string>) => {
        const collector = await MisbehavingCollector.start('hang');
        t.after(() => collector.close());
        const { child, metricsPort } = await start(t, 'hardening-service.mjs', {
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
          OTEL_BSP_SCHEDULE_DELAY: '60000',
          TELEMETRY_FLUSH_TIMEOUT_MS: '30000',
          ...env,
        });
        const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
        assert.equal((await get(`http://127.0.0.1:${ready.port}/orders/1`)).body, 'ok');
        assert.match(await scrape(metricsPort), /^target_info\{/m);
        const shutdownMs = await timeShutdown(child);
        assert.ok(collector.requests >= 1, 'the queued spans were sent at shutdown');
        return { child, shutdownMs };
      };
      const [bad, good] = await Promise.all([
        run({ [name]: value }),
        run({ OTEL_EXPORTER_OTLP_TIMEOUT: '2000' }),
      ]);
      t.diagnostic(`shutdown: ${bad.shutdownMs.toFixed(0)} ms bad, ${good.shutdownMs.toFixed(0)} ms valid`);
      assert.ok(
        bad.shutdownMs < good.shutdownMs + 1000,
        `shutdown took ${bad.shutdownMs.toFixed(0)} ms with ${name}=${value}, ${good.shutdownMs.toFixed(0)} ms with a valid 2000`,
      );
      const naming = bad.child.stderrLines().filter((l) => l.includes(name));
      assert.equal(naming.length, 1, bad.child.stderr);
      assert.equal(JSON.parse(naming[0] ?? '{}').component, 'otel-service-kit');
      assert.match(naming[0] ?? '', /"level":"warn"/);
      assert.match(naming[0] ?? '', /using 2000/);
    });
  }

  // Bug: a typo in OTEL_METRICS_EXPORTER silently turned /metrics off.
  test('OTEL_METRICS_EXPORTER=promethues: /metrics is still served', async (t) => {
    const { child, base, metricsPort } = await startService(t, { OTEL_METRICS_EXPORTER: 'promethues' });
    assert.equal((await get(`${base}/orders/1`)).body, 'ok');
    assert.match(await scrape(metricsPort), /^target_info\{/m);
    const naming = child.stderrLines().filter((l) => l.includes('OTEL_METRICS_EXPORTER'));
    assert.equal(naming.length, 1, child.stderr);
    assert.match(naming[0] ?? '', /"level":"warn".*promethues.*using prometheus/);
  });
});

describe('a collector that trickles or stalls its answer', { concurrency: true }, () => {
  const loadMs = 20_000;
  const timeoutMs = 500;
  for (const behaviour of ['trickle', 'stall'] as const satisfies readonly Misbehaviour[]) {
    // Bug: a trickling collector held each export connection as long as it liked, with no warning for 30 s.
    test(`${behaviour}: every export ends within the timeout; connections and memory stay bounded under ${loadMs / 1000} s of load`, async (t) => {
      const collector = await MisbehavingCollector.start(behaviour);
      t.after(() => collector.close());
      const { child, metricsPort } = await start(
        t,
        'hardening-load.mjs',
        {
          OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
          OTEL_EXPORTER_OTLP_TIMEOUT: String(timeoutMs),
          OTEL_BSP_SCHEDULE_DELAY: '100',
          FIXTURE_LOAD_MS: String(loadMs),
        },
        { nodeArgs: ['--expose-gc'] },
      );
      await child.waitForLine((l) => l.msg === 'load done', loadMs + 30_000);
      const page = await scrape(metricsPort);
      // Whatever export is in flight now ends within its timeout too.
      await collector
        .waitFor(() => collector.open === 0, timeoutMs + 2000)
        .catch(() =>
          assert.fail(`${collector.open} connections still open ${timeoutMs + 2000} ms after the load`),
        );

      assert.ok(collector.requests >= 2, `exports were tried (${collector.requests})`);
      assert.ok(collector.maxOpen <= 2, `at most ${collector.maxOpen} connections open at once`);
      for (const c of collector.connections) {
        const heldMs = (c.closedAt ?? Number.POSITIVE_INFINITY) - (c.requestsAt[0] ?? c.openedAt);
        assert.ok(heldMs < timeoutMs + 700, `a connection was held ${heldMs.toFixed(0)} ms after its export`);
      }

      // Memory after a full GC: what it is once the app is warm (at 2-4 s) is what it stays.
      const memory = child.lines.filter((l) => l.msg === 'memory');
      const mb = (l: Record<string, unknown>, field: string) => Number(l[field]) / 1e6;
      const warm = memory.slice(4, 8);
      const late = memory.slice(-Math.ceil(memory.length / 4));
      assert.ok(warm.length === 4 && late.length >= 4, `memory reports: ${memory.length}`);
      const heapGrowth =
        Math.max(...late.map((l) => mb(l, 'heap_used'))) - Math.max(...warm.map((l) => mb(l, 'heap_used')));
      const rssGrowth =
        Math.max(...late.map((l) => mb(l, 'rss'))) - Math.max(...warm.map((l) => mb(l, 'rss')));
      t.diagnostic(
        `${collector.connections.length} connections, at most ${collector.maxOpen} open; heap +${heapGrowth.toFixed(2)} MB, rss +${rssGrowth.toFixed(1)} MB after warm-up`,
      );
      assert.ok(heapGrowth < 3, `heap grew ${heapGrowth.toFixed(2)} MB after warm-up`);
      assert.ok(rssGrowth < 20, `rss grew ${rssGrowth.toFixed(1)} MB after warm-up`);

      const warnings = child.stderrLines();
      assert.equal(warnings.length, 1, child.stderr);
      assert.ok((warnings[0] ?? '').length < 300, `a short warning: ${warnings[0]}`);
      assert.match(warnings[0] ?? '', /trace export failed/);

      const failures = [...parseExposition(page).values()]
        .flatMap((f) => f.samples)
        .filter(
          (s) => s.name === 'otel_sdk_processor_span_processed_total' && s.labels.error_type !== undefined,
        );
      const byType = Object.fromEntries(failures.map((s) => [s.labels.error_type, s.value]));
      assert.ok(
        (byType.timeout ?? 0) + (byType.export_failed ?? 0) > 0,
        `failed exports counted by error_type: ${JSON.stringify(byType)}`,
      );
    });
  }
});

// Bug: a server that is not a collector, answering 200 with a web page, made one 366 kB stderr line.
test('not a collector: a 200 with a 400 kB HTML page gives no stderr line over 300 characters', async (t) => {
  const collector = await MisbehavingCollector.start('html');
  t.after(() => collector.close());
  const { child } = await start(t, 'hardening-load.mjs', {
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '100',
    FIXTURE_LOAD_MS: '1500',
  });
  await child.waitForLine((l) => l.msg === 'load done');
  await collector.waitFor(() => collector.requests >= 3);
  child.kill('SIGTERM');
  await child.exited;
  const long = child.stderrLines().filter((l) => l.length > 300);
  assert.deepEqual(
    long.map((l) => `${l.length} characters: ${l.slice(0, 200)}…`),
    [],
  );
});

describe('a crash leaves its evidence', () => {
  for (const [path, message, origin] of [
    ['/throw', 'handler exploded: no such order', 'uncaught exception'],
    ['/reject', 'settlement failed: ledger unavailable', 'unhandled rejection'],
  ] as const) {
    // Bug: a crash exited with Node's plain stack (no JSON line, no trace id) and lost the finished requests' spans.
    test(`${path}: one fatal JSON line with the trace id, the finished requests' spans flushed, exit 1`, async (t) => {
      const service = `hardening-crash${path.replace('/', '-')}`;
      const { child } = await start(t, 'hardening-crash.mjs', { OTEL_SERVICE_NAME: service });
      const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
      const base = `http://127.0.0.1:${ready.port}`;
      for (const done of ['/done/1', '/done/2', '/done/3'])
        assert.equal((await get(`${base}${done}`)).body, 'ok');
      await assert.rejects(get(`${base}${path}`));
      const exit = await child.exited;
      assert.equal(exit.code, 1);

      const lines = jsonStderr(child);
      assert.equal(lines.length, child.stderrLines().length, `only JSON lines on stderr:\n${child.stderr}`);
      const fatal = lines.filter((l) => l.level === 'fatal');
      assert.equal(fatal.length, 1, child.stderr);
      const [line] = fatal as [
        { msg: string; err?: { message?: string; stack?: string }; trace_id?: string },
      ];
      assert.equal(line.msg, origin);
      assert.equal(line.err?.message, message);
      assert.match(String(line.err?.stack), /hardening-crash\.mjs/);
      // The trace of the request that crashed, as its own log line and its span (when it ended) have it.
      const handling = child.lines.find((l) => l.msg === 'handling' && l.path === path);
      assert.match(String(handling?.trace_id), /^[0-9a-f]{32}$/);
      assert.equal(line.trace_id, handling?.trace_id, `fatal line: ${JSON.stringify(line)}`);
      const crashed = serverSpan(service, path);
      if (crashed !== undefined) assert.equal(line.trace_id, crashed.traceId);

      for (const done of ['/done/1', '/done/2', '/done/3']) {
        assert.ok(serverSpan(service, done), `the span of ${done} reached the collector before the exit`);
      }
    });
  }

  // Bug guarded: the crash handler must stand down when it is turned off or the app owns uncaughtException.
  test('TELEMETRY_CRASH_HANDLER=false and an app with its own uncaughtException listener keep Node’s behaviour', async (t) => {
    const crashOnce = async (env: Record<string, string>) => {
      const { child } = await start(t, 'hardening-crash.mjs', env);
      const ready = await child.waitForLine((l) => l.msg === 'fixture ready');
      const base = `http://127.0.0.1:${ready.port}`;
      // The request that crashed is never answered: given up once the process has dealt with the crash.
      const giveUp = new AbortController();
      const crash = get(`${base}/throw`, {}, giveUp.signal).catch(() => {});
      await Promise.race([child.exited, child.waitForLine((l) => l.msg === 'app caught it').catch(() => {})]);
      giveUp.abort();
      await crash;
      return { child, base };
    };
    const [byDefault, off, owned] = await Promise.all([
      crashOnce({}),
      crashOnce({ TELEMETRY_CRASH_HANDLER: 'false' }),
      crashOnce({ FIXTURE_OWN_HANDLER: '1' }),
    ]);
    const fatalLines = (child: Child) => jsonStderr(child).filter((l) => l.level === 'fatal');

    assert.equal((await byDefault.child.exited).code, 1);
    assert.equal(fatalLines(byDefault.child).length, 1, byDefault.child.stderr);

    assert.equal((await off.child.exited).code, 1);
    assert.deepEqual(fatalLines(off.child), []);
    assert.match(off.child.stderr, /Error: handler exploded: no such order\n\s+at /);

    // The app caught it and goes on serving; the kit did not report the crash.
    assert.ok(
      owned.child.lines.some((l) => l.msg === 'app caught it'),
      owned.child.stdout,
    );
    assert.equal((await get(`${owned.base}/still-up`)).body, 'ok');
    assert.equal(owned.child.exitedAt, undefined);
    assert.deepEqual(fatalLines(owned.child), []);
    assert.doesNotMatch(owned.child.stderr, /handler exploded/);
  });
});

// Bug: a breaker was never released (the WeakRef was defeated by a shared closure scope), so per-tenant breakers leaked.
test('10,000 breakers created and dropped: the heap returns near where it started, the gauge forgets them', async (t) => {
  const { child, metricsPort } = await start(
    t,
    'hardening-breakers.mjs',
    { OTEL_TRACES_EXPORTER: 'none' },
    { nodeArgs: ['--expose-gc'] },
  );
  await child.waitForLine((l) => l.msg === 'fixture ready');
  let commands = 0;
  const send = async (cmd: string) => {
    const n = ++commands;
    child.process.stdin?.write(`${cmd}\n`);
    await child.waitForLine(() => child.lines.filter((l) => l.msg === 'done').length >= n, 60_000);
    return child.lines.filter((l) => l.msg === 'done')[n - 1] as Record<string, unknown>;
  };
  const heapMb = async () => Number((await send('heap')).heap_used) / 1e6;

  await scrape(metricsPort);
  const before = await heapMb();
  assert.equal((await send('create')).breakers, 10_000);
  // Scraped while they live, as Prometheus would.
  assert.match(await scrape(metricsPort), /^circuit_breaker_state\{.*breaker="tenant-123".*\} 1$/m);
  const alive = await heapMb();
  assert.ok(alive - before > 5, `10,000 breakers take room (${(alive - before).toFixed(1)} MB)`);

  await send('drop');
  const afterDrop = await heapMb();
  const page = await scrape(metricsPort);
  assert.ok(afterDrop - before < 5, `heap ${before.toFixed(1)} MB before, ${afterDrop.toFixed(1)} MB after`);
  assert.doesNotMatch(page, /breaker="tenant-\d+"/, 'the gauge still reports collected breakers');
});

// Bug: the tracer and request logging hard-coded five probe paths, so a custom readyPath was traced and logged at info.
test("a Health's custom readyPath is neither traced nor logged at info", async (t) => {
  const service = 'hardening-ready-path';
  const { child, base } = await startService(t, { OTEL_SERVICE_NAME: service, LOG_LEVEL: 'debug' });
  assert.equal((await get(`${base}/ready`)).status, 200);
  assert.equal((await get(`${base}/ready?probe=kubelet`)).status, 200);
  assert.equal((await get(`${base}/orders/7`)).body, 'ok');
  child.kill('SIGTERM');
  await child.exited;

  await receiver.waitFor(() => serverSpan(service, '/orders/7') !== undefined);
  assert.deepEqual(
    spansOf(service)
      .filter((s) => s.kind === SpanKind.SERVER)
      .map((s) => s.attributes['url.path']),
    ['/orders/7'],
  );
  const completed = child.lines.filter((l) => l.msg === 'request completed');
  assert.deepEqual(
    completed.map((l) => `${l.level} ${l.path}`),
    ['debug /ready', 'debug /ready', 'info /orders/7'],
  );
});

// Bug: a refused collector added about 1 s to the exit of every short-lived process (the exit-time export was retried).
test('a script that made one traced call exits within 0.2 s of its last line, as it does bare', async (t) => {
  const refused = `http://127.0.0.1:${await freePort()}`;
  /** From the script's last stdout line to its exit, in ms. */
  const linger = async (preload: boolean) => {
    const env = cleanEnv({
      OTEL_EXPORTER_OTLP_ENDPOINT: refused,
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    });
    const script = fixturePath('hardening-oneshot.mjs');
    const child = new Child(preload ? ['--import', registerPath, script] : [script], env);
    let lastLineAt = Number.NaN;
    child.process.stdout?.on('data', () => {
      lastLineAt = performance.now();
    });
    const exit = await child.exited;
    assert.equal(exit.code, 0, child.stderr);
    assert.ok(child.lines.some((l) => l.msg === 'job done'));
    return (child.exitedAt ?? Number.NaN) - lastLineAt;
  };
  const bare: number[] = [];
  const preloaded: number[] = [];
  for (let i = 0; i < 7; i++) {
    bare.push(await linger(false));
    preloaded.push(await linger(true));
  }
  const extra = median(preloaded) - median(bare);
  t.diagnostic(
    `bare ${bare.map(Math.round).join(', ')} ms; preloaded ${preloaded.map(Math.round).join(', ')} ms`,
  );
  assert.ok(
    extra < 200,
    `the preload adds ${extra.toFixed(0)} ms (bare ${bare.map(Math.round).join(', ')}; preloaded ${preloaded.map(Math.round).join(', ')})`,
  );
});
