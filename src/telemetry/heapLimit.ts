import { getHeapStatistics } from 'node:v8';
import type { MeterProvider } from '@opentelemetry/api';

/**
 * `v8js.memory.heap.limit` (Prometheus `v8js_memory_heap_limit`): the heap size V8 will
 * not grow past, in bytes. The semantic conventions name it and the runtime-node
 * instrumentation (0.37) does not report it; "heap near its limit" needs it.
 */
export function observeHeapLimit(meterProvider: MeterProvider): void {
  meterProvider
    .getMeter('otel-service-kit')
    .createObservableGauge('v8js.memory.heap.limit', {
      description: 'Heap size limit of the V8 isolate.',
      unit: 'By',
    })
    .addCallback((result) => result.observe(getHeapStatistics().heap_size_limit));
}
