import { internalLog } from './internalLog.ts';
import { isTraceExportFailedError } from './TraceExportFailedError.ts';

/**
 * What the preload set up, kept on `globalThis`: the preload is a bundle of its own and
 * the app imports another copy of the kit, and both must see one SDK.
 */
export interface TelemetryState {
  /** True when `OTEL_SDK_DISABLED=true`: nothing was started, the API stays a no-op. */
  disabled: boolean;
  /** Shuts the SDK down (flushing traces, metrics and logs); undefined when disabled. */
  shutdownSdk: (() => Promise<void>) | undefined;
  /** True while the trace collector is known to be unreachable (nothing left to wait for at exit). */
  collectorDown: () => boolean;
  /** Where `/metrics` is served, or undefined when it is not. */
  metrics: { host: string; port: number } | undefined;
  /** Bounded wait for the final flush, in ms (`TELEMETRY_FLUSH_TIMEOUT_MS`, default 2000). */
  flushTimeoutMs: number;
  /** Set by a graceful-shutdown owner: the preload's own signal handlers then stand down. */
  signalOwner: string | undefined;
  shutdownPromise: Promise<void> | undefined;
}

const stateKey = Symbol.for('otel-service-kit.telemetry');
type Global = typeof globalThis & { [stateKey]?: TelemetryState };

/** The state of the telemetry started in this process, if any. */
export function telemetryState(): TelemetryState | undefined {
  return (globalThis as Global)[stateKey];
}

/** Record `state` as this process's telemetry; the first one wins. */
export function claimTelemetryState(state: TelemetryState): TelemetryState {
  const g = globalThis as Global;
  g[stateKey] ??= state;
  return g[stateKey];
}

/**
 * Flush and shut down telemetry, waiting at most `timeoutMs` (default: the state's
 * `flushTimeoutMs`). Resolves `true` when everything was flushed in time. Safe to call
 * more than once and when telemetry was never started.
 */
export async function shutdownTelemetry(timeoutMs?: number): Promise<boolean> {
  const state = telemetryState();
  if (state?.shutdownSdk === undefined) return true;
  state.shutdownPromise ??= state.shutdownSdk().catch((error: unknown) => {
    if (!isTraceExportFailedError(error))
      internalLog('warn', 'telemetry shutdown failed', { error: String(error) });
  });
  let timer: NodeJS.Timeout | undefined;
  const limit = timeoutMs ?? state.flushTimeoutMs;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(resolve, limit, false);
  });
  try {
    return await Promise.race([state.shutdownPromise.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Make `owner` the one handler of SIGTERM/SIGINT: the preload's own handlers stand down
 * and leave flushing to it (GracefulShutdown calls this).
 */
export function claimShutdownSignals(owner: string): void {
  const state = telemetryState();
  if (state !== undefined) state.signalOwner = owner;
}
