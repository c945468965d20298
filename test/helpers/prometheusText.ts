/** One metric family of a Prometheus text exposition. */
export interface Family {
  name: string;
  type: string;
  help: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}

const sampleRe = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
const labelRe = /([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g;

/** Parse the text format into families keyed by name. */
export function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (f === undefined) {
      f = { name, type: 'untyped', help: '', samples: [] };
      families.set(name, f);
    }
    return f;
  };
  let current: Family | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# HELP ')) {
      const [, name = '', ...rest] = line.split(' ').slice(1);
      current = family(name);
      current.help = rest.join(' ');
    } else if (line.startsWith('# TYPE ')) {
      const [name = '', type = ''] = line.slice(7).split(' ');
      current = family(name);
      current.type = type;
    } else if (line !== '' && !line.startsWith('#')) {
      const m = sampleRe.exec(line);
      if (m === null) continue;
      const labels: Record<string, string> = {};
      for (const lm of (m[2] ?? '').matchAll(labelRe)) labels[lm[1] as string] = lm[2] as string;
      const sample = { name: m[1] as string, labels, value: Number(m[3]) };
      const owner =
        current !== undefined && sample.name.startsWith(current.name) ? current : family(sample.name);
      owner.samples.push(sample);
    }
  }
  return families;
}

/**
 * The shape of the named families, one line each, for a golden-file comparison: name,
 * type, help, the label names of every sample kind, and histogram bucket boundaries.
 */
export function describeFamilies(families: Map<string, Family>, names: string[]): string {
  const out: string[] = [];
  for (const name of names) {
    const f = families.get(name);
    if (f === undefined) {
      out.push(`${name} MISSING`);
      continue;
    }
    out.push(`${name} type=${f.type} help="${f.help}"`);
    const kinds = new Map<string, Set<string>>();
    const buckets = new Set<string>();
    for (const s of f.samples) {
      const keys = Object.keys(s.labels).sort().join(',');
      let set = kinds.get(s.name);
      if (set === undefined) {
        set = new Set();
        kinds.set(s.name, set);
      }
      set.add(keys);
      if (s.labels.le !== undefined) buckets.add(s.labels.le);
    }
    for (const [sample, keys] of [...kinds].sort(([a], [b]) => a.localeCompare(b))) {
      out.push(`  ${sample} labels=${[...keys].sort().join(' | ')}`);
    }
    if (buckets.size > 0) out.push(`  buckets=${[...buckets].join(',')}`);
  }
  return `${out.join('\n')}\n`;
}

/** The value of the sample with exactly these labels (a subset match), or undefined. */
export function sampleValue(
  families: Map<string, Family>,
  sample: string,
  labels: Record<string, string>,
): number | undefined {
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== sample) continue;
      if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value;
    }
  }
  return undefined;
}

/**
 * Scrape a `/metrics` page. The preload starts serving it once the resource's async
 * attributes have settled, a few ms after the app's first line (later on a loaded
 * machine): a refused connection is retried for up to `withinMs`.
 */
export async function scrape(port: number, host = '127.0.0.1', withinMs = 5000): Promise<string> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    let res: Response;
    try {
      res = await fetch(`http://${host}:${port}/metrics`);
    } catch (error) {
      const code = (error as { cause?: { code?: string } }).cause?.code;
      if (code !== 'ECONNREFUSED' || Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 20));
      continue;
    }
    if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
    return res.text();
  }
}
