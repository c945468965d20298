// Internal to src/server/: not exported by the barrel.

/** The path of a request target, without its query string (`/a?b=1` → `/a`). */
export function urlPath(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
