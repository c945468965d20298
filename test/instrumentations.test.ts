// The preload builds the instrumentations of npm packages lazily, from a table of the
// modules each one patches: the table must match what the instrumentations themselves
// declare, or a library would go unpatched.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { lazyInstrumentations } from '../src/telemetry/lazyInstrumentations.ts';

test('the lazy table names, for every instrumentation, exactly the modules it patches', async () => {
  for (const entry of lazyInstrumentations) {
    const mod = (await import(`@opentelemetry/instrumentation-${entry.name}`)) as Record<
      string,
      new (
        config: object,
      ) => { _modules?: { name: string }[]; disable(): void }
    >;
    const Class = mod[entry.className];
    assert.ok(Class, `${entry.className} is exported by @opentelemetry/instrumentation-${entry.name}`);
    const real = new Class({ enabled: false });
    const declared = [...new Set((real._modules ?? []).map((m) => m.name))].sort();
    assert.deepEqual([...entry.modules].sort(), declared, entry.name);
  }
});
