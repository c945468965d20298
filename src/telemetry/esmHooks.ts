import { createRequire, isBuiltin, register } from 'node:module';
import type { Instrumentation } from '@opentelemetry/instrumentation';

import { createAddHookMessageChannel, Hook } from 'import-in-the-middle';
import { register as registerSyncHooks, supportsSyncHooks } from 'import-in-the-middle/register-hooks.mjs';

const requireBuiltin = createRequire(import.meta.url);

/**
 * ESM hooks for exactly the modules the instrumentations patch: the rest of the app's
 * imports pay one Set lookup. On Node 22.22.3+ / 24.11.1+ they are synchronous hooks on
 * the app's own thread (`module.registerHooks`): no loader thread to start (29–35 ms
 * measured here) and no round trip per import. Older versions get the asynchronous loader.
 */
export interface EsmHooks {
  /** Intercept the modules `instrumentations` patch from now on. */
  add(instrumentations: readonly Instrumentation[]): void;
  /** Resolves once the loader knows every module added so far (at once for synchronous hooks). */
  ready(): Promise<void>;
}

/** Install the hooks. Must run before the instrumentations are enabled. */
export function installEsmHooks(): EsmHooks {
  const names = new Set<string>();
  if (supportsSyncHooks()) {
    registerSyncHooks({
      shouldInclude: (_url: string, specifier: string) =>
        names.has(specifier) || (specifier.startsWith('node:') && names.has(specifier.slice(5))),
    } as Parameters<typeof registerSyncHooks>[0]);
    return {
      add: (instrumentations) => {
        const builtins: string[] = [];
        for (const name of moduleNames(instrumentations)) {
          names.add(name);
          if (isBuiltin(name)) builtins.push(name);
        }
        if (builtins.length > 0) new Hook(builtins, copyPatchedBuiltinExports);
      },
      ready: () => Promise.resolve(),
    };
  }
  // The loader thread learns the names from import-in-the-middle's own Hook() calls, made
  // as the instrumentations are enabled, over this channel.
  const { registerOptions, waitForAllMessagesAcknowledged } = createAddHookMessageChannel();
  register('import-in-the-middle/hook.mjs', import.meta.url, registerOptions);
  return { add: () => {}, ready: waitForAllMessagesAcknowledged };
}

/** The modules an instrumentation patches, from its module definitions. */
function moduleNames(instrumentations: readonly Instrumentation[]): string[] {
  const out: string[] = [];
  for (const instrumentation of instrumentations) {
    // InstrumentationBase keeps its definitions in `_modules` (no public accessor).
    const modules = (instrumentation as { _modules?: { name?: unknown }[] })._modules ?? [];
    for (const module of modules) if (typeof module.name === 'string') out.push(module.name);
  }
  return out;
}

/**
 * Under synchronous hooks an `import 'node:http'` also runs the CommonJS require hook,
 * which patches the module's CommonJS exports; the instrumentation then leaves the ESM
 * namespace alone (it was patched already: opentelemetry-js#6428), and a named import
 * (`import { get } from 'node:http'`) would keep the original function. This hook runs
 * after the instrumentations' own and hands the namespace the patched functions.
 */
function copyPatchedBuiltinExports(exported: Record<string, unknown>, name: string): Record<string, unknown> {
  const patched = requireBuiltin(name) as Record<string, unknown>;
  for (const key of Object.keys(exported)) {
    if (key === 'default') continue;
    const fn = patched[key];
    if (typeof fn === 'function' && '__wrapped' in fn && exported[key] !== fn && !isWrapped(exported[key]))
      exported[key] = fn;
  }
  return exported;
}

function isWrapped(value: unknown): boolean {
  return typeof value === 'function' && '__wrapped' in value;
}
