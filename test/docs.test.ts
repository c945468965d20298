// The documentation stays true to the repository: the README is an index that fits on
// a screen, every relative link leads to a file (and heading) that exists, every
// environment variable the code reads is documented, and every `npm run` names a script.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../', import.meta.url));
const read = (rel: string) => readFileSync(join(root, rel), 'utf8');

/** The documents a reader moves between, as paths relative to the repository root. */
function documents(): string[] {
  const docs = existsSync(join(root, 'docs'))
    ? readdirSync(join(root, 'docs'))
        .filter((f) => f.endsWith('.md'))
        .map((f) => `docs/${f}`)
    : [];
  return ['README.md', 'CONTRIBUTING.md', 'example/README.md', ...docs.sort()];
}

/** Markdown without fenced code blocks and inline code, where `[x](y)` is not a link. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '').replace(/`[^`\n]*`/g, '');
}

/** The `[text](target)` links of a document. */
function links(markdown: string): string[] {
  return [...prose(markdown).matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? '');
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

/** The anchors of a document's headings, numbered as GitHub numbers repeats. */
function anchors(markdown: string): Set<string> {
  const out = new Set<string>();
  const seen = new Map<string, number>();
  const withoutCode = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, '');
  for (const m of withoutCode.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const base = slug(m[1] ?? '');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

test('README.md is an index that fits on a screen: at most 200 lines', () => {
  const lines = read('README.md').split('\n');
  if (lines.at(-1) === '') lines.pop();
  assert.ok(lines.length <= 200, `README.md has ${lines.length} lines`);
});

test('README.md shows the two commands a newcomer runs', () => {
  const readme = read('README.md');
  assert.match(readme, /^\s*npm install && npm start\b/m, 'README shows `npm install && npm start`');
  assert.match(readme, /^\s*npm test\b/m, 'README shows `npm test`');
});

test('README.md links to every document under docs/', () => {
  const linked = new Set(links(read('README.md')).map((l) => l.split('#')[0]));
  for (const doc of documents().filter((d) => d.startsWith('docs/')))
    assert.ok(linked.has(doc), `README.md links to ${doc}`);
});

test('every relative link of the documentation resolves to a file of the repository, and its anchor to a heading', () => {
  const problems: string[] = [];
  for (const doc of documents()) {
    for (const link of links(read(doc))) {
      if (/^[a-z][a-z0-9+.-]*:/i.test(link)) continue; // http:, https:, mailto:
      const [path = '', anchor] = link.split('#', 2);
      const target = path === '' ? join(root, doc) : resolve(dirname(join(root, doc)), decodeURI(path));
      const rel = relative(root, target);
      if (rel.startsWith('..') || rel.split(sep)[0] === 'node_modules' || rel.split(sep)[0] === 'dist') {
        problems.push(`${doc}: ${link} leads outside the repository's own files`);
        continue;
      }
      if (!existsSync(target)) {
        problems.push(`${doc}: ${link} does not exist`);
        continue;
      }
      if (anchor === undefined || anchor === '') continue;
      if (!statSync(target).isFile() || !target.endsWith('.md')) {
        problems.push(`${doc}: ${link} has an anchor but is not a Markdown file`);
        continue;
      }
      if (!anchors(readFileSync(target, 'utf8')).has(anchor.toLowerCase()))
        problems.push(`${doc}: ${link}: no heading #${anchor} in ${rel}`);
    }
  }
  assert.deepEqual(problems, []);
});

/** The `.ts` sources under `dir`, concatenated. */
function sources(...dirs: string[]): string {
  const out: string[] = [];
  const walk = (rel: string) => {
    const full = join(root, rel);
    if (statSync(full).isFile()) {
      if (rel.endsWith('.ts')) out.push(read(rel));
      return;
    }
    for (const entry of readdirSync(full)) walk(join(rel, entry));
  };
  for (const dir of dirs) walk(dir);
  return out.join('\n');
}

/**
 * The environment variables some code reads, by the forms this repository uses:
 * `env.NAME`, `process.env.NAME`, `env['NAME']` and `readX(env, 'NAME', ...)`.
 */
function variablesRead(code: string): Set<string> {
  const names = new Set<string>();
  const forms = [
    /\benv\??\.([A-Za-z_][A-Za-z0-9_]*)/g,
    /\benv\[\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*\]/g,
    /\(\s*[\w.]*[eE]nv\s*,\s*'([A-Za-z_][A-Za-z0-9_]*)'/g,
  ];
  for (const form of forms)
    for (const m of code.matchAll(form)) {
      const name = m[1] ?? '';
      if (/^[A-Z][A-Z0-9_]*$/.test(name) || /^npm_[a-z_]+$/.test(name)) names.add(name);
    }
  return names;
}

test('every environment variable the kit reads is documented in docs/configuration.md', () => {
  const names = variablesRead(sources('src', 'register.ts'));
  assert.ok(names.has('LOG_LEVEL'), 'the scan finds what the kit reads');
  const configuration = read('docs/configuration.md');
  const missing = [...names].filter((name) => !configuration.includes(`\`${name}\``));
  assert.deepEqual(missing, [], 'add a row to docs/configuration.md for each');
});

test('every environment variable the demo reads is documented in example/README.md, docs/alerts.md (its faults) or docs/configuration.md', () => {
  const names = variablesRead(sources('example'));
  assert.ok(names.has('PAYMENT_API_URL'), 'the scan finds what the demo reads');
  const documented = ['example/README.md', 'docs/alerts.md', 'docs/configuration.md']
    .filter((doc) => existsSync(join(root, doc)))
    .map(read)
    .join('\n');
  const missing = [...names].filter((name) => !documented.includes(`\`${name}\``));
  assert.deepEqual(missing, [], 'add a row to the table of example/README.md for each');
});

test('every `npm run <script>` in the documentation names a script of package.json', () => {
  const { scripts } = JSON.parse(read('package.json')) as { scripts: Record<string, string> };
  const problems: string[] = [];
  for (const doc of documents())
    for (const m of read(doc).matchAll(/\bnpm run ([\w:.-]+)/g)) {
      const name = m[1] ?? '';
      if (!Object.hasOwn(scripts, name)) problems.push(`${doc}: npm run ${name}`);
    }
  assert.deepEqual(problems, []);
});
