import { type Attributes, type Counter, metrics, type ObservableGauge } from '@opentelemetry/api';
import { LabelSets } from './LabelSets.ts';

/**
 * Resilience telemetry beside the metric catalogue: retries, give-ups, timeouts and
 * circuit-breaker transitions as one counter, and each breaker's state as a gauge.
 *
 * Like the catalogue's instruments these are created when the module is first
 * evaluated, which under the preload is after the MeterProvider is registered.
 */
const meter = metrics.getMeter('otel-service-kit');

/** The `policy` label of `resilience_events_total`. */
export type ResiliencePolicy = 'retry' | 'circuit_breaker' | 'timeout';

/** The `event` label of `resilience_events_total`. */
export type ResilienceEvent = 'retry' | 'give_up' | 'timeout' | 'open' | 'half_open' | 'close' | 'rejected';

/** The `state` label of `circuit_breaker_state`. */
export type BreakerStateName = 'closed' | 'open' | 'half_open';

const breakerStates: readonly BreakerStateName[] = ['closed', 'open', 'half_open'];

/**
 * `resilience_events_total{dependency,policy,event}`: a retry scheduled, a call given up
 * after its last attempt, an attempt timed out, a breaker opened / half-opened / closed,
 * a call rejected by an open breaker.
 */
export const resilienceEvents: Counter = meter.createCounter('resilience_events', {
  description: 'Resilience events: retries, give-ups, timeouts, circuit breaker transitions and rejections',
});

/** `circuit_breaker_state{breaker,state}`: 1 for the breaker's current state, 0 for the others. */
export const circuitBreakerState: ObservableGauge = meter.createObservableGauge('circuit_breaker_state', {
  description: 'Circuit breaker state: 1 for the current state (closed, open, half_open), 0 for the others',
});

// Events are rare (a retry, a transition), but a retry storm is exactly when recording
// should not allocate: one frozen label object per label set (LabelSets).
const eventLabels = new LabelSets();
const eventLabelsOf = (dependency: string, policy: string, event: string) => ({ dependency, policy, event });

/** Count one resilience event. Never throws. */
export function recordResilienceEvent(
  dependency: string,
  policy: ResiliencePolicy,
  event: ResilienceEvent,
): void {
  resilienceEvents.add(1, eventLabels.get(dependency, policy, event, eventLabelsOf));
}

interface BreakerEntry {
  /** Held weakly: a breaker nobody uses any more leaves the gauge once it is collected. */
  readonly ref: WeakRef<object>;
  readonly read: (owner: never) => BreakerStateName;
  readonly labels: readonly Attributes[];
}

// On globalThis: the preload (a bundle of its own) leaves the series of breakers that
// are gone out of /metrics (dropGoneBreakers in startTelemetry.ts).
const breakersKey = Symbol.for('otel-service-kit.breakers');
const global = globalThis as { [breakersKey]?: Map<string, BreakerEntry> };
global[breakersKey] ??= new Map();
const breakers: Map<string, BreakerEntry> = global[breakersKey];

// A collected breaker's entry goes at once, not at the next scrape: a service that makes
// breakers per tenant or per host and is rarely scraped must not pile them up.
const forget = new FinalizationRegistry<string>((name) => {
  if (breakers.get(name)?.ref.deref() === undefined) breakers.delete(name);
});

/**
 * Report breaker `name`'s state on `circuit_breaker_state` for as long as `owner` is
 * alive (a later breaker with the same name takes its place). `read` gets the owner and
 * must not hold it (a closure over it would keep it alive); it runs at every collection.
 */
export function observeBreakerState<T extends object>(
  name: string,
  owner: T,
  read: (owner: T) => BreakerStateName,
): void {
  breakers.set(name, {
    ref: new WeakRef(owner),
    read: read as (owner: never) => BreakerStateName,
    labels: breakerStates.map((state) => Object.freeze({ breaker: name, state })),
  });
  forget.register(owner, name);
}

circuitBreakerState.addCallback((result) => {
  for (const [name, entry] of breakers) {
    const owner = entry.ref.deref();
    if (owner === undefined) {
      breakers.delete(name);
      continue;
    }
    let current: BreakerStateName;
    try {
      current = (entry.read as (owner: object) => BreakerStateName)(owner);
    } catch {
      continue;
    }
    for (let i = 0; i < breakerStates.length; i++) {
      result.observe(breakerStates[i] === current ? 1 : 0, entry.labels[i]);
    }
  }
});
