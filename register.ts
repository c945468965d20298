/**
 * The preload: `node --import otel-service-kit/register app.js`.
 *
 * Validates the kit's variables (a bad one stops start-up with one line), then starts
 * OpenTelemetry before the app's first module is loaded: ESM hooks for exactly the
 * modules we instrument, the SDK, and the exit hooks that flush telemetry.
 */
import { enableCompileCache, register } from 'node:module';

// Most of the preload's start-up is compiling the SDK's modules; Node's compile cache
// (kept in the OS temp dir, off with NODE_DISABLE_COMPILE_CACHE=1) makes the second and
// later starts of a service markedly faster. It also caches the app's own modules.
enableCompileCache?.();

// Imported only now, so that the cache also holds their compiled (and, for the .ts
// sources, type-stripped) code.
const { isConfigError, readBoolean, validateKitEnvironment } = await import('./src/config.ts');
const { installExitHooks, startTelemetry } = await import('./src/telemetry/startTelemetry.ts');

try {
  validateKitEnvironment(process.env);
} catch (error) {
  if (!isConfigError(error)) throw error;
  process.stderr.write(`otel-service-kit: ${error.message}\n`);
  process.exit(1);
}

let disabled = false;
try {
  disabled = readBoolean(process.env, 'OTEL_SDK_DISABLED', false);
} catch {
  // startTelemetry warns about the bad value and treats it as false.
}

if (!disabled) {
  // The loader thread hooks only the modules the instrumentations ask for (by message),
  // so the rest of the app's imports pay nothing. It must be registered before the
  // instrumentations are enabled, and acknowledged before the app's imports start.
  // Registered only once the SDK's own modules are loaded: every import after it takes
  // a round trip through the loader thread.
  const { createAddHookMessageChannel } = await import('import-in-the-middle');
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  await startTelemetry(process.env, () =>
    register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions),
  );
  installExitHooks();
  await waitForAllMessagesAcknowledged();
} else {
  await startTelemetry(process.env);
}
