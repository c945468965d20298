import type { Attributes } from '@opentelemetry/api';

/** One attribute set's place in the tree: by the next key, by its value. */
interface Node {
  readonly next: Map<string, Map<unknown, Node>>;
  leaf?: Attributes;
}

/** Most nodes kept (a histogram keeps at most 2 000 series by default): past it, sets are returned as they are. */
const maxNodes = 20_000;
const root: Node = { next: new Map() };
let nodes = 0;

/**
 * The same metric attributes (same keys and values, in the same order) as one frozen
 * object, found through nested maps without building a key string, so that sdk-metrics
 * finds its series through the hash it keeps for a frozen label set (see upstreamPatches
 * in .ci/build-preload.ts) instead of sorting and stringifying the attributes at every
 * recording: the http and undici instrumentations build a fresh object per request
 * (undici's histogram: 8 µs of every call, --cpu-prof). A set with an array or object
 * value is returned as it is.
 */
export function internAttributes(attributes: Attributes): Attributes {
  let node = root;
  for (const name in attributes) {
    const value = attributes[name];
    if (typeof value === 'object' && value !== null) return attributes;
    let byValue = node.next.get(name);
    let child = byValue?.get(value);
    if (child === undefined) {
      if (nodes >= maxNodes) return attributes;
      nodes++;
      if (byValue === undefined) {
        byValue = new Map();
        node.next.set(name, byValue);
      }
      child = { next: new Map() };
      byValue.set(value, child);
    }
    node = child;
  }
  node.leaf ??= Object.freeze({ ...attributes });
  return node.leaf;
}
