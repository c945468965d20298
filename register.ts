/**
 * The preload: `node --import otel-service-kit/register app.js`. See `src/preload.ts`.
 *
 * This entry only turns on Node's compile cache, then loads the preload bundle
 * (`dist/preload.js` and its chunks, built by esbuild from the SDK, exporters and instrumentations): a
 * module is compiled before its first line runs, so the bundle could not put itself in
 * the cache. From the second start of a service on, compiling the bundle costs a cache
 * read (bench/startup.ts: start-up overhead 184 → 130 ms measured here). The cache is
 * kept in the OS temp directory; NODE_COMPILE_CACHE moves it, NODE_DISABLE_COMPILE_CACHE=1
 * turns it off.
 */
import { enableCompileCache } from 'node:module';

enableCompileCache?.();

export const { addInstrumentations } = await import('./src/preload.ts');
