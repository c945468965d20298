// The resilience policies in-process: an in-memory MeterProvider and TracerProvider are
// registered BEFORE the kit's modules are loaded (their instruments are created at load).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { context, metrics, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { AggregationTemporality, MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';

class TestReader extends MetricReader {
  constructor() {
    super({ aggregationTemporalitySelector: () => AggregationTemporality.CUMULATIVE });
  }
  protected override async onShutdown(): Promise<void> {}
  protected override async onForceFlush(): Promise<void> {}
}

process.env.LOG_LEVEL = 'silent';
const reader = new TestReader();
metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }));
const spans = new InMemorySpanExporter();
const tracerProvider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
trace.setGlobalTracerProvider(tracerProvider);
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());

const {
  BrokenCircuitError,
  createCircuitBreaker,
  defaultRetryOptions,
  HttpRetryPolicy,
  isBrokenCircuitError,
} = await import('../src/index.ts');
const { retryAfterMs } = await import('../src/resilience/retryAfter.ts');

/** The value of `name`'s point whose attributes include `labels`, from a fresh collection. */
async function point(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const { resourceMetrics } = await reader.collect();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue;
      for (const p of metric.dataPoints) {
        if (Object.entries(labels).every(([k, v]) => p.attributes[k] === v)) return p.value as number;
      }
    }
  }
  return undefined;
}

const fail = () => {
  throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
};

test('retryAfterMs reads delta-seconds and HTTP dates, and nothing else', () => {
  const now = Date.parse('2030-01-01T00:00:00Z');
  assert.equal(retryAfterMs('1', now), 1000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs(['3', '9'], now), 3000);
  assert.equal(retryAfterMs('Tue, 01 Jan 2030 00:00:02 GMT', now), 2000);
  assert.equal(retryAfterMs('Mon, 31 Dec 2029 23:00:00 GMT', now), 0, 'a date in the past: no wait');
  for (const bad of [undefined, '', 'soon', '-1', '1.5', '2e3'])
    assert.equal(retryAfterMs(bad, now), undefined, String(bad));
});

test('retry options: defaults as documented, bad values refused at construction', () => {
  assert.deepEqual(
    { ...defaultRetryOptions, retryStatuses: [...defaultRetryOptions.retryStatuses] },
    {
      attempts: 3,
      initialDelayMs: 500,
      maxDelayMs: 10_000,
      retryStatuses: [429, 502, 503, 504],
      retryNonIdempotent: false,
    },
  );
  assert.throws(() => new HttpRetryPolicy({ attempts: 0 }), RangeError);
  assert.throws(() => new HttpRetryPolicy({ initialDelayMs: 1.5 }), RangeError);
  assert.throws(() => new HttpRetryPolicy({ initialDelayMs: 200, maxDelayMs: 100 }), /maxDelayMs/);
  const policy = new HttpRetryPolicy();
  assert.equal(policy.retriesAnyFailure('GET', undefined), true);
  assert.equal(policy.retriesAnyFailure('delete', undefined), true);
  assert.equal(policy.retriesAnyFailure('POST', undefined), false);
  assert.equal(policy.retriesAnyFailure('POST', { 'Idempotency-Key': 'k1' }), true);
  assert.equal(policy.retriesAnyFailure('PATCH', ['x-a', 'b', 'idempotency-key', 'k1']), true);
  assert.equal(policy.retriesAnyFailure('POST', [['Idempotency-Key', 'k1']]), true);
  assert.equal(policy.retriesAnyFailure('POST', ['x-a', 'idempotency-key']), false, 'a value is not a name');
  assert.equal(new HttpRetryPolicy({ retryNonIdempotent: true }).retriesAnyFailure('POST', undefined), true);
});

interface FakeResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: { dump(): Promise<void>; dumped: boolean };
}
const response = (statusCode: number, headers: Record<string, string> = {}): FakeResponse => {
  const body = {
    dumped: false,
    async dump() {
      body.dumped = true;
    },
  };
  return { statusCode, headers, body };
};

/** An idempotent `GET /` to `dependency` through `policy`, each attempt answered by `attempt`. */
const getThrough = (
  policy: InstanceType<typeof HttpRetryPolicy>,
  dependency: string,
  attempt: () => Promise<FakeResponse>,
) => policy.execute({ dependency, method: 'GET', path: '/', idempotent: true, attempt });

test('backoff: jittered doubling within [0.5, 1.5) x initial x 2^n, Retry-After capped at maxDelayMs', async () => {
  const policy = new HttpRetryPolicy({ attempts: 3, initialDelayMs: 40, maxDelayMs: 1000 });
  const at: number[] = [];
  const answers = [response(503), response(503), response(200)];
  const res = await getThrough(policy, 'backoff-dep', async () => {
    at.push(performance.now());
    return answers[at.length - 1] as FakeResponse;
  });
  assert.equal(res.statusCode, 200);
  assert.equal(answers[0]?.body.dumped, true, 'a retried response is drained');
  assert.equal(answers[2]?.body.dumped, false, 'the returned one is not');
  const [a = 0, b = 0, c = 0] = at;
  assert.ok(b - a >= 19 && b - a < 60 + 150, `first delay ${b - a}`);
  assert.ok(c - b >= 39 && c - b < 120 + 150, `second delay ${c - b}`);

  const capped = new HttpRetryPolicy({ attempts: 2, initialDelayMs: 1, maxDelayMs: 50 });
  const started = performance.now();
  let n = 0;
  await getThrough(capped, 'backoff-dep', async () =>
    n++ === 0 ? response(429, { 'retry-after': '30' }) : response(200),
  );
  assert.ok(performance.now() - started < 1000, 'Retry-After: 30 waited no longer than maxDelayMs');
});

test('retries give up after the last attempt with its outcome, and count retry and give_up', async () => {
  const policy = new HttpRetryPolicy({ attempts: 3, initialDelayMs: 1, maxDelayMs: 2 });
  let attempts = 0;
  const last = await getThrough(policy, 'giveup-dep', async () => {
    attempts++;
    return response(503);
  });
  assert.equal(attempts, 3);
  assert.equal(last.statusCode, 503);
  assert.equal(last.body.dumped, false, 'the response handed back is intact');
  const events = (event: string) =>
    point('resilience_events', { dependency: 'giveup-dep', policy: 'retry', event });
  assert.equal(await events('retry'), 2);
  assert.equal(await events('give_up'), 1);

  attempts = 0;
  await assert.rejects(
    getThrough(policy, 'giveup-dep', async () => {
      attempts++;
      return fail();
    }),
    { code: 'ECONNREFUSED' },
  );
  assert.equal(attempts, 3);
});

test('non-idempotent calls retry only what was not sent; BrokenCircuitError and aborts are never retried', async () => {
  const policy = new HttpRetryPolicy({ attempts: 3, initialDelayMs: 1, maxDelayMs: 2 });
  const run = (idempotent: boolean, outcome: () => FakeResponse, signal?: AbortSignal) => {
    let attempts = 0;
    const done = policy
      .execute({
        dependency: 'post-dep',
        method: 'POST',
        path: '/',
        idempotent,
        signal,
        attempt: async () => {
          attempts++;
          return outcome();
        },
      })
      .then(
        (r) => ({ attempts, status: r.statusCode as number | undefined, error: undefined as unknown }),
        (error: unknown) => ({ attempts, status: undefined, error }),
      );
    return done;
  };
  assert.deepEqual(await run(false, () => response(503)), { attempts: 1, status: 503, error: undefined });
  assert.equal((await run(false, fail)).attempts, 3, 'a refused connection sent nothing');
  const reset = () => {
    throw Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
  };
  assert.equal((await run(false, reset)).attempts, 1, 'a reset may have been processed');
  assert.equal((await run(true, reset)).attempts, 3);
  const broken = await run(true, () => {
    throw new BrokenCircuitError();
  });
  assert.equal(broken.attempts, 1);
  assert.ok(isBrokenCircuitError(broken.error));
  const aborted = await run(true, () => {
    throw new DOMException('aborted', 'AbortError');
  });
  assert.equal(aborted.attempts, 1);
  const controller = new AbortController();
  const stopped = await run(
    true,
    () => {
      controller.abort(new Error('caller gave up'));
      return response(503);
    },
    controller.signal,
  );
  assert.equal(stopped.attempts, 1, 'no attempt after the caller aborted');
});

/** A breaker opened by `failMax` failing calls; `failing` counts the calls that reach it. */
async function openedBreaker(name: string, failMax: number, resetTimeoutMs: number) {
  const breaker = createCircuitBreaker({ name, failMax, resetTimeoutMs });
  const counter = { calls: 0 };
  const failing = async () => {
    counter.calls++;
    return fail();
  };
  for (let i = 0; i < failMax; i++) await assert.rejects(breaker.execute(failing), { code: 'ECONNREFUSED' });
  return { breaker, failing, counter };
}

test('createCircuitBreaker: opens after failMax, fails fast, half-opens after resetTimeoutMs, closes on success', async (t) => {
  // cockatiel times the open state with Date.now(): a mocked Date moves it without waiting.
  t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
  const { breaker, failing, counter } = await openedBreaker('unit-breaker', 3, 100);
  const state = (s: string) => point('circuit_breaker_state', { breaker: 'unit-breaker', state: s });
  assert.deepEqual([await state('closed'), await state('open'), await state('half_open')], [0, 1, 0]);

  await assert.rejects(
    breaker.execute(failing),
    (e: unknown) => isBrokenCircuitError(e) && e instanceof BrokenCircuitError,
  );
  assert.equal(counter.calls, 3, 'the open breaker did not call through');
  const events = (event: string) =>
    point('resilience_events', { dependency: 'unit-breaker', policy: 'circuit_breaker', event });
  assert.equal(await events('open'), 1);
  assert.equal(await events('rejected'), 1);

  t.mock.timers.tick(99);
  await assert.rejects(breaker.execute(failing), (e: unknown) => isBrokenCircuitError(e), 'still open');
  assert.equal(counter.calls, 3);
  t.mock.timers.tick(1);
  // The trial call runs inside a span: the transitions become events on it.
  const tracer = trace.getTracer('test');
  const value = await tracer.startActiveSpan('trial', async (span) => {
    try {
      return await breaker.execute(() => 'fine');
    } finally {
      span.end();
    }
  });
  assert.equal(value, 'fine');
  assert.deepEqual([await state('closed'), await state('open'), await state('half_open')], [1, 0, 0]);
  assert.equal(await events('half_open'), 1);
  assert.equal(await events('close'), 1);
  await tracerProvider.forceFlush();
  const trial = spans.getFinishedSpans().find((s) => s.name === 'trial');
  assert.deepEqual(
    trial?.events.map((e) => [
      e.name,
      e.attributes?.['circuit_breaker.old_state'],
      e.attributes?.['circuit_breaker.new_state'],
    ]),
    [
      ['circuit_breaker.state_change', 'open', 'half_open'],
      ['circuit_breaker.state_change', 'half_open', 'closed'],
    ],
  );
});

test('createCircuitBreaker: 5xx results count as failures, 4xx and caller aborts do not; options are checked', async () => {
  const breaker = createCircuitBreaker({ name: 'result-breaker', failMax: 2, resetTimeoutMs: 60_000 });
  await breaker.execute(() => ({ statusCode: 404 }));
  await breaker.execute(() => ({ statusCode: 404 }));
  await assert.rejects(
    breaker.execute(() => {
      throw new DOMException('aborted', 'AbortError');
    }),
  );
  await assert.rejects(
    breaker.execute(() => {
      throw new DOMException('aborted', 'AbortError');
    }),
  );
  assert.equal(await point('circuit_breaker_state', { breaker: 'result-breaker', state: 'closed' }), 1);
  const res = await breaker.execute(() => ({ statusCode: 500 }));
  assert.equal(res.statusCode, 500, 'the failing response is still handed back');
  await breaker.execute(() => ({ statusCode: 502 }));
  assert.equal(await point('circuit_breaker_state', { breaker: 'result-breaker', state: 'open' }), 1);

  assert.throws(() => createCircuitBreaker({ name: '' }), TypeError);
  assert.throws(() => createCircuitBreaker({ name: 'x', failMax: 0 }), RangeError);
  assert.throws(() => createCircuitBreaker({ name: 'x', resetTimeoutMs: 0.5 }), RangeError);
});

test('an open breaker fails fast: a call to a dependency that never answers is refused at once, without reaching it', async () => {
  const { breaker, counter } = await openedBreaker('fast-fail', 2, 60_000);
  // Were the call let through, it would wait for ever on this dependency.
  const hanging = () => {
    counter.calls++;
    return new Promise<never>(() => {});
  };
  for (let i = 0; i < 21; i++) {
    await assert.rejects(breaker.execute(hanging), (e: unknown) => isBrokenCircuitError(e));
  }
  assert.equal(counter.calls, 2, 'no call reached the dependency while open');
  assert.equal(
    await point('resilience_events', {
      dependency: 'fast-fail',
      policy: 'circuit_breaker',
      event: 'rejected',
    }),
    21,
  );
});
