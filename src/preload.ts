/**
 * The preload behind `node --import otel-service-kit/register app.js` (register.ts loads
 * it once Node's compile cache is on).
 *
 * Validates the kit's variables (a bad one stops start-up with one line), then starts
 * OpenTelemetry before the app's first module is loaded: ESM hooks for exactly the
 * modules the instrumentations patch, the SDK, the exit hooks that flush telemetry and
 * the crash handler. Shipped as one esbuild build (`dist/preload.js`, with what may never be
 * needed in `dist/lazy-*.js` files loaded on first use).
 *
 * A service that needs an instrumentation the set does not have adds it from a preload
 * of its own, imported after this one:
 *
 * @example
 * // telemetry.mjs — node --import otel-service-kit/register --import ./telemetry.mjs app.js
 * import { addInstrumentations } from 'otel-service-kit/register';
 * import { MyInstrumentation } from './my-instrumentation.mjs';
 * await addInstrumentations(new MyInstrumentation());
 */
import type { Instrumentation } from '@opentelemetry/instrumentation';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { type KitConfig, kitConfigFromEnv } from './config.ts';
import { type EsmHooks, installEsmHooks } from './telemetry/esmHooks.ts';
import { installCrashHandler, installExitHooks } from './telemetry/exitHooks.ts';
import { startTelemetry } from './telemetry/startTelemetry.ts';

const config: KitConfig = kitConfigFromEnv(process.env);

let hooks: EsmHooks | undefined;
const state = await startTelemetry(process.env, {
  config,
  // Registered once the SDK's modules are loaded and before any instrumentation hooks anything.
  beforeInstrumenting: (instrumentations) => {
    hooks = installEsmHooks();
    hooks.add(instrumentations);
  },
});
if (state.shutdownSdk !== undefined) {
  installExitHooks();
  if (config.crashHandler) installCrashHandler();
}
await hooks?.ready();

/**
 * Add instrumentations the preload's set does not have (your own, or one you installed),
 * before the app loads the modules they patch. They get the preload's tracer and meter
 * providers. Resolves once their ESM hooks are in place.
 */
export async function addInstrumentations(...instrumentations: Instrumentation[]): Promise<void> {
  if (state.shutdownSdk === undefined) return;
  hooks?.add(instrumentations);
  registerInstrumentations({ instrumentations });
  await hooks?.ready();
}
