import { trace } from '@opentelemetry/api';
import {
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  circuitBreaker,
  handleWhen,
  type IDefaultPolicyContext,
  isBrokenCircuitError,
} from 'cockatiel';
import { logger } from '../logging/logger.ts';
import {
  type BreakerStateName,
  observeBreakerState,
  recordResilienceEvent,
} from '../telemetry/resilienceInstruments.ts';
import { isAbortError } from './transportErrors.ts';

/** How a breaker trips and recovers. Only `name` is required; see `defaultCircuitBreakerOptions`. */
export interface CircuitBreakerOptions {
  /** The `breaker` log field and gauge label, and the `dependency` of its events. Required. */
  name: string;
  /** Consecutive failures that open the breaker. Default 5. */
  failMax?: number;
  /** Time an open breaker fails fast before it lets one trial call through (half-open), in ms. Default 30 000. */
  resetTimeoutMs?: number;
  /**
   * Which thrown errors count as failures. Default: all but the caller's aborts and
   * another breaker's `BrokenCircuitError`.
   */
  isFailure?: (error: unknown) => boolean;
  /**
   * Which returned values count as failures. Default: a response (any object with a
   * numeric `statusCode`) with a 5xx status.
   */
  isFailureResult?: (value: unknown) => boolean;
}

/**
 * The defaults of `CircuitBreakerOptions`: open after 5 consecutive failures (a few
 * unlucky calls do not trip it), try again after 30 s (long enough for a restarting
 * dependency to come back, short enough that recovery is noticed within a minute).
 */
export const defaultCircuitBreakerOptions: Readonly<Required<Omit<CircuitBreakerOptions, 'name'>>> =
  Object.freeze({
    failMax: 5,
    resetTimeoutMs: 30_000,
    isFailure: (error: unknown) => !isAbortError(error) && !isBrokenCircuitError(error),
    isFailureResult: (value: unknown) => {
      const status = (value as { statusCode?: unknown } | null)?.statusCode;
      return typeof status === 'number' && status >= 500;
    },
  });

/**
 * cockatiel's states in the gauge's and log's words. `Isolated` (held open by hand with
 * `isolate()`) fails fast like `Open`, and is reported as open.
 */
function stateName(state: CircuitState): BreakerStateName {
  switch (state) {
    case CircuitState.Closed:
      return 'closed';
    case CircuitState.HalfOpen:
      return 'half_open';
    default:
      return 'open';
  }
}

const transitionEvent = { open: 'open', half_open: 'half_open', closed: 'close' } as const;

function breakerState(policy: CircuitBreakerPolicy): BreakerStateName {
  return stateName(policy.state);
}

/**
 * A named circuit breaker: a cockatiel `CircuitBreakerPolicy` (use its `execute(fn)`)
 * that opens after `failMax` consecutive failures, fails fast with cockatiel's
 * `BrokenCircuitError` while open, and after `resetTimeoutMs` lets one call through
 * (half-open): its success closes the breaker, its failure opens it again.
 *
 * Every transition is logged at warn as "circuit breaker state changed" (`breaker`,
 * `old_state`, `new_state`: closed, open or half_open), counted on
 * `resilience_events_total{policy="circuit_breaker",event=open|half_open|close}`, and
 * added as an event to the active span; each fast failure counts `event="rejected"`.
 * `circuit_breaker_state{breaker,state}` is 1 for the current state. Share one breaker
 * among all calls to a dependency: that is what lets it see the failures.
 *
 * @example
 * const breaker = createCircuitBreaker({ name: 'payment-api' });
 * const res = await breaker.execute(() => payments.request('POST', '/v1/charges', { body }));
 */
export function createCircuitBreaker(options: CircuitBreakerOptions): CircuitBreakerPolicy {
  const o = { ...defaultCircuitBreakerOptions, ...options };
  if (typeof o.name !== 'string' || o.name === '') throw new TypeError('circuit breaker: name is required');
  if (!Number.isSafeInteger(o.failMax) || o.failMax < 1)
    throw new RangeError(`circuit breaker ${o.name}: failMax must be a whole number >= 1, got ${o.failMax}`);
  if (!Number.isSafeInteger(o.resetTimeoutMs) || o.resetTimeoutMs < 1)
    throw new RangeError(
      `circuit breaker ${o.name}: resetTimeoutMs must be a whole number of ms >= 1, got ${o.resetTimeoutMs}`,
    );
  const name = o.name;
  const policy = circuitBreaker(handleWhen(o.isFailure).orWhenResult(o.isFailureResult), {
    halfOpenAfter: o.resetTimeoutMs,
    breaker: new ConsecutiveBreaker(o.failMax),
  });

  let current = stateName(policy.state);
  // cockatiel says only the new state; the old one is remembered here.
  policy.onStateChange((next) => {
    const old_state = current;
    const new_state = stateName(next);
    current = new_state;
    if (old_state === new_state) return;
    logger.warn({ breaker: name, old_state, new_state }, 'circuit breaker state changed');
    recordResilienceEvent(name, 'circuit_breaker', transitionEvent[new_state]);
    // Transitions happen inside execute(), so the active span is the call that caused it.
    trace.getActiveSpan()?.addEvent('circuit_breaker.state_change', {
      'circuit_breaker.name': name,
      'circuit_breaker.old_state': old_state,
      'circuit_breaker.new_state': new_state,
    });
  });
  // The gauge reads the state from the policy it holds weakly, through a function that
  // closes over nothing here: a closure of this scope would share it with `execute`
  // below, which holds the policy, and keep every breaker alive for good.
  observeBreakerState(name, policy, breakerState);

  // cockatiel has no event for a call refused by an open breaker. Its own execute is
  // wrapped on this instance: a BrokenCircuitError thrown before `fn` ran is a rejection
  // (one thrown by `fn` comes from some other breaker and is not counted here).
  const execute = policy.execute.bind(policy);
  policy.execute = async <T>(
    fn: (context: IDefaultPolicyContext) => PromiseLike<T> | T,
    signal?: AbortSignal,
  ): Promise<T> => {
    let ran = false;
    try {
      return await execute((context) => {
        ran = true;
        return fn(context);
      }, signal);
    } catch (error) {
      if (!ran && isBrokenCircuitError(error)) recordResilienceEvent(name, 'circuit_breaker', 'rejected');
      throw error;
    }
  };
  return policy;
}
