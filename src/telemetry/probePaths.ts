/**
 * The paths of health probes, one list for the whole process: the preload never traces
 * them and request logging writes their completions at `debug`. `Health` adds its own
 * paths when it is constructed, so a service that serves `readyPath: '/ready'` has it
 * here too. Kept on `globalThis`, because the preload bundle and the app's copy of the
 * kit are separate module instances.
 */
const key = Symbol.for('otel-service-kit.probePaths');
type Global = typeof globalThis & { [key]?: Set<string> };

/** The probe paths every service gets without configuring anything. */
const defaultProbePaths: readonly string[] = Object.freeze([
  '/health/live',
  '/health/ready',
  '/healthz',
  '/livez',
  '/readyz',
]);

function paths(): Set<string> {
  const g = globalThis as Global;
  g[key] ??= new Set(defaultProbePaths);
  return g[key];
}

/** Make `path` (no query string) a probe path from now on. */
export function addProbePath(path: string): void {
  paths().add(path);
}

/** True when `url`'s path (the query string is ignored) is a probe path. */
export function isProbePath(url: string | undefined): boolean {
  if (url === undefined) return false;
  const q = url.indexOf('?');
  return paths().has(q === -1 ? url : url.slice(0, q));
}
