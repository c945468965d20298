import type { Attributes } from '@opentelemetry/api';

type Level<T> = Map<string, T>;

/**
 * Interned metric label sets: the same label values give the same frozen object, found
 * through nested maps without building a key string, so recording on a hot path
 * allocates nothing after the first time. Label values are low-cardinality by design
 * (services, methods, operations, buckets, policies); past `cap` label sets new ones are
 * still returned, just not kept.
 *
 * `make` builds a label set the first time; pass a function made once, not a closure
 * made per call (that would be the allocation this avoids).
 *
 * @example
 * const counted = new LabelSets();
 * const countedLabels = (service: string, method: string, status_class: string) => ({ service, method, status_class });
 * counter.add(1, counted.get(service, method, statusClass, countedLabels));
 */
export class LabelSets {
  readonly #root: Level<Level<Level<Attributes>>> = new Map();
  readonly #cap: number;
  #size = 0;

  /** `cap`: most label sets kept. Default 10 000. */
  constructor(cap = 10_000) {
    this.#cap = cap;
  }

  /** The label set of (a, b, c) (`c` is `''` for two labels), made by `make` the first time. */
  get(a: string, b: string, c: string, make: (a: string, b: string, c: string) => Attributes): Attributes {
    const found = this.#root.get(a)?.get(b)?.get(c);
    return found ?? this.#store(a, b, c, make(a, b, c));
  }

  #store(a: string, b: string, c: string, labels: Attributes): Attributes {
    Object.freeze(labels);
    if (this.#size >= this.#cap) return labels;
    this.#size++;
    let byB = this.#root.get(a);
    if (byB === undefined) {
      byB = new Map();
      this.#root.set(a, byB);
    }
    let byC = byB.get(b);
    if (byC === undefined) {
      byC = new Map();
      byB.set(b, byC);
    }
    byC.set(c, labels);
    return labels;
  }
}
