// Builds the preload: `dist/preload.js`, one ESM bundle of src/preload.ts with the SDK,
// exporters and instrumentations inside. Outside it, resolved from the app's
// node_modules: @opentelemetry/api (one copy shared with the app), import-in-the-middle
// (its loader hooks are files of their own), and the libraries the kit's public API
// uses (pino, undici) or instruments (@aws-sdk/*).
//
// And `dist/register.js`, the entry users import, from register.ts: it turns the compile
// cache on, then imports ./preload.js.
//
// `npm run build` runs it after tsc; `npm test` and `npm start` build first.
import { readdir, readFile, rm } from 'node:fs/promises';
import { isBuiltin } from 'node:module';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';
import { lazyInstrumentations } from '../src/telemetry/lazyInstrumentations.ts';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Changes to upstream code on the request path, each measured; the build fails when one no
 * longer applies (an upgrade changed the code: measure again, drop or redo the change).
 */
const upstreamPatches: { file: string; search: string; replace: string; prepend?: string }[] = [
  {
    // A span's attributes are checked with isAnyValue, which made a WeakSet for every value
    // (a server span: ~12): 5.7 µs of every request under bench/server.ts (--cpu-prof,
    // cleanAttributesInternal). Only an object or an array can be circular.
    file: '/@opentelemetry/core/dist/common/attributes.mjs',
    search: 'return isAnyValueInternal(val, /* @__PURE__ */ new WeakSet());',
    replace:
      'return typeof val === "object" && val !== null ? isAnyValueInternal(val, /* @__PURE__ */ new WeakSet()) : isAnyValueInternal(val, void 0);',
  },
  {
    // A span's attributes are cleaned twice at its start (before and after sampling), each
    // time through Object.entries: an array per attribute. The own enumerable string keys
    // are walked in the same order without them (cleanAttributesInternal 5.6 -> 3.7 µs per
    // server span under bench/server.ts, --cpu-prof).
    file: '/@opentelemetry/core/dist/common/attributes.mjs',
    search: '\tfor (const [key, val] of Object.entries(inAttributes)) {\n',
    replace:
      '\tfor (const key in inAttributes) {\n\t\tif (!Object.prototype.hasOwnProperty.call(inAttributes, key)) continue;\n\t\tconst val = inAttributes[key];\n',
  },
  {
    // Every incoming request's target went through `new URL()` for its path and query
    // (5.2 µs of every request under bench/server.ts, --cpu-prof); a plain one is split.
    file: '/@opentelemetry/instrumentation-http/dist/utils.mjs',
    search: 'function getInfoFromIncomingMessage(component, request, logger) {\n\ttry {',
    replace: `function getInfoFromIncomingMessage(component, request, logger) {
\tconst plain = kitPlainRequestTarget(request.url);
\tif (plain !== void 0) return plain;
\ttry {`,
    prepend: `import { plainRequestTarget as kitPlainRequestTarget } from ${JSON.stringify(`${root}src/telemetry/plainRequestTarget.ts`)};`,
  },
  {
    // The server span's path, leaner (httpServerSpans.ts says what changes and by how much);
    // upstream's stays for a configuration with hooks or captured headers.
    file: '/@opentelemetry/instrumentation-http/dist/http.mjs',
    search: '\t_incomingRequestFunction(component, original) {\n',
    replace: `\t_incomingRequestFunction(component, original) {
\t\treturn kitIncomingRequestFunction(this, component, original, { getIncomingRequestAttributes, parseResponseStatus, parseErrorType, setSpanWithError, DEFAULT_QUERY_STRINGS_TO_REDACT, setRPCMetadata, RPCType, suppressTracing }, this._upstreamIncomingRequestFunction(component, original));
\t}
\t_upstreamIncomingRequestFunction(component, original) {
`,
    prepend: `import { incomingRequestFunction as kitIncomingRequestFunction } from ${JSON.stringify(`${root}src/telemetry/httpServerSpans.ts`)};`,
  },
  {
    // http.server.request.duration was recorded with a fresh attribute object per request,
    // sorted and stringified by sdk-metrics every time: interned (internAttributes).
    file: '/@opentelemetry/instrumentation-http/dist/http.mjs',
    search: 'this._httpServerDurationHistogram.record(durationMs / 1e3, attributes);',
    replace: 'this._httpServerDurationHistogram.record(durationMs / 1e3, kitInternAttributes(attributes));',
    prepend: `import { internAttributes as kitInternAttributes } from ${JSON.stringify(`${root}src/telemetry/internAttributes.ts`)};`,
  },
  {
    // Every outgoing undici request went through `new URL(path, origin)` for its span's
    // url.* attributes (8.0 µs per request, --cpu-prof, measured on InstrumentedClient's
    // calls when the instrumentation still made their spans); a plain origin and target are
    // read without the parser.
    file: '/@opentelemetry/instrumentation-undici/dist/undici.mjs',
    search: '\t\t\trequestUrl = new URL(request.path, request.origin);',
    replace:
      '\t\t\trequestUrl = kitPlainRequestUrl(request.origin, request.path) ?? new URL(request.path, request.origin);',
    prepend: `import { plainRequestUrl as kitPlainRequestUrl } from ${JSON.stringify(`${root}src/telemetry/plainRequestTarget.ts`)};`,
  },
  {
    // http.client.request.duration likewise (8 µs per request, measured the same way).
    file: '/@opentelemetry/instrumentation-undici/dist/undici.mjs',
    search: 'this._httpClientDurationHistogram.record(durationSeconds, metricsAttributes);',
    replace:
      'this._httpClientDurationHistogram.record(durationSeconds, kitInternAttributes(metricsAttributes));',
    prepend: `import { internAttributes as kitInternAttributes } from ${JSON.stringify(`${root}src/telemetry/internAttributes.ts`)};`,
  },
  {
    // The OTLP protobuf serializer walked every span twice (a size estimate, then the
    // write), a method call per tag, varint and string: about 17 µs of CPU per server span
    // (--cpu-prof). The kit's encoder writes the same bytes in one pass: 6.8 -> 2.6 µs per span
    // (npm run bench -- spans).
    file: '/@opentelemetry/otlp-transformer/dist/trace/protobuf/trace-serializer.mjs',
    search: 'function serializeTraceExportRequest(spans) {',
    replace: 'function serializeTraceExportRequest(spans) {\n\treturn kitEncodeTraceExportRequest(spans);',
    prepend: `import { encodeTraceExportRequest as kitEncodeTraceExportRequest } from ${JSON.stringify(`${root}src/telemetry/otlpSpanEncoder.ts`)};`,
  },
  {
    // A span's attributes were cleaned twice at its start: before sampling, then again with
    // the span limits and the sampler's attributes. Without sampler attributes, no value
    // length limit and no more attributes than the count limit, the second pass gives back
    // what the first made (2 µs of every server span, --cpu-prof under bench/server.ts).
    file: '/@opentelemetry/sdk-trace/dist/Tracer.mjs',
    search:
      'const attrsData2 = cleanAttributes(Object.assign(attributes, samplingResult.attributes), this._spanLimits);',
    replace: `const attrsData2 = samplingResult.attributes === void 0 && this._spanLimits.attributeValueLengthLimit === Infinity && kitCountAtMost(attributes, this._spanLimits.attributeCountLimit) ? { attributes, droppedAttributesCount: 0 } : cleanAttributes(Object.assign(attributes, samplingResult.attributes), this._spanLimits);`,
    prepend: `function kitCountAtMost(object, limit) { let count = 0; for (const key in object) if (++count > limit) return false; return true; }`,
  },
  {
    // A metric's attributes were sorted and stringified at every recording (7.5 µs of every
    // InstrumentedClient call, several recordings, --cpu-prof). The kit records with frozen,
    // interned label sets (LabelSets): their hash is kept.
    file: '/@opentelemetry/sdk-metrics/dist/utils.mjs',
    search: 'function hashAttributes(attributes) {',
    replace: `const kitFrozenHashes = new WeakMap();
function hashAttributes(attributes) {
\tif (!Object.isFrozen(attributes)) return hashAttributesOf(attributes);
\tlet hash = kitFrozenHashes.get(attributes);
\tif (hash === void 0) kitFrozenHashes.set(attributes, hash = hashAttributesOf(attributes));
\treturn hash;
}
function hashAttributesOf(attributes) {`,
  },
];

/**
 * Some OpenTelemetry packages' ESM builds load a dependency through
 * `createRequire(import.meta.url)` (instrumentation-http: forwarded-parse; the gRPC
 * exporter: @grpc/grpc-js), which a bundler cannot follow: the bundle would look for
 * those packages in the app's node_modules at run time. Their calls are turned back into
 * plain `require()`, which esbuild bundles.
 *
 * And a dynamic `import('http')` (the OTLP exporters' transport) becomes
 * `Promise.resolve(require('http'))`: split into a chunk of its own, the built-in's
 * CommonJS exports would only be the chunk's `default`.
 *
 * It also applies `upstreamPatches`, and writes attribute names out in object literals
 * (`attributeNamesInlined`).
 */
const plainRequire: Plugin = {
  name: 'plain-require',
  setup(b) {
    b.onLoad(
      { filter: /[\\/]node_modules[\\/]@opentelemetry[\\/].*\.mjs$/, namespace: 'file' },
      async (args) => {
        const source = await readFile(args.path, 'utf8');
        let contents = source.replace(
          /\bimport\((['"])((?:node:)?[a-z_/]+)\1\)/g,
          (call, _q, name: string) =>
            isBuiltin(name) ? `Promise.resolve(require(${JSON.stringify(name)}))` : call,
        );
        if (source.includes('_rolldown/runtime.mjs') && source.includes('__require(')) {
          contents = contents
            .replace(/import \{ __require \} from "[^"]*_rolldown\/runtime\.mjs";\n/, '')
            .replace(/\b__require\(/g, 'require(');
        }
        contents = await attributeNamesInlined(contents, args.path);
        for (const patch of upstreamPatches) {
          if (!args.path.replaceAll('\\', '/').endsWith(patch.file)) continue;
          if (!contents.includes(patch.search))
            throw new Error(`upstream patch no longer applies: ${patch.file}`);
          contents =
            (patch.prepend === undefined ? '' : `${patch.prepend}\n`) +
            contents.replace(patch.search, patch.replace);
          applied.add(patch);
        }
        return contents === source ? undefined : { contents, loader: 'js' };
      },
    );
  },
};
const applied = new Set<(typeof upstreamPatches)[number]>();

/**
 * The instrumentations build their attribute objects with computed keys
 * (`{ [ATTR_HTTP_REQUEST_METHOD]: method, ... }`), which V8 cannot build from a template:
 * each property is defined at run time. Written out as the names they stand for, the same
 * objects come from a literal: getIncomingRequestAttributes 10.4 -> 5.3 µs of every request
 * (--cpu-prof under bench/server.ts). Only names whose value is known are written out: the
 * file's own string constants and what it imports from @opentelemetry/semantic-conventions
 * (or /incubating) or from a semconv file of its package, named `ATTR_*` (or the older
 * `SEMATTRS_*`, `SEMRESATTRS_*`); and only keys of an object literal (after `{` or `,`).
 */
const semconvValues: Record<string, Record<string, unknown>> = {
  '@opentelemetry/semantic-conventions': await import('@opentelemetry/semantic-conventions'),
  '@opentelemetry/semantic-conventions/incubating': await import(
    '@opentelemetry/semantic-conventions/incubating'
  ),
};

async function attributeNamesInlined(source: string, file: string): Promise<string> {
  if (!source.includes(']:')) return source;
  const known = new Map<string, string>();
  for (const [, list, from] of source.matchAll(/import \{([^}]*)\} from "([^"]+)";/g)) {
    const values =
      semconvValues[from as string] ??
      (from?.startsWith('.') && from.includes('semconv')
        ? await semconvFileConstants(resolve(dirname(file), from))
        : undefined);
    if (values === undefined) continue;
    for (const item of (list as string).split(',')) {
      const [name, alias] = item.trim().split(/\s+as\s+/) as [string, string | undefined];
      const value = values[name];
      if (typeof value === 'string') known.set(alias ?? name, value);
    }
  }
  for (const [name, value] of Object.entries(constants(source))) known.set(name, value);
  return source.replace(
    /([{,]\s*)\[((?:ATTR|SEMATTRS|SEMRESATTRS)_\w+)\]\s*:/g,
    (key, before: string, name: string) => {
      const value = known.get(name);
      return value === undefined ? key : `${before}${JSON.stringify(value)}:`;
    },
  );
}

/** A package's semconv file's constants, read once however many of its modules import it. */
const semconvFiles = new Map<string, Promise<Record<string, string>>>();
function semconvFileConstants(path: string): Promise<Record<string, string>> {
  let found = semconvFiles.get(path);
  if (found === undefined) {
    found = readFile(path, 'utf8').then(constants);
    semconvFiles.set(path, found);
  }
  return found;
}

/** A module's top-level string constants: `const NAME = "value";`. */
function constants(source: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [, name, value] of source.matchAll(
    /^(?:const|let|var) ([A-Za-z_$][\w$]*) = ("(?:[^"\\\n]|\\.)*");$/gm,
  ))
    found[name as string] = JSON.parse(value as string) as string;
  return found;
}

/**
 * Node's built-in modules are loaded with require(), not import: importing one builds
 * its ESM facade, which reads every export, and `node:http`'s lazy `WebSocket` getters
 * then load Node's own undici (62 ms of start-up measured with --cpu-prof, for nothing
 * the kit uses).
 */
const importers = new Map<string, number>();
const builtinsByRequire: Plugin = {
  name: 'builtins-by-require',
  setup(b) {
    b.onResolve({ filter: /^[a-z_:/0-9]+$/ }, (args) => {
      if (!isBuiltin(args.path)) return undefined;
      // A require() call stays one (the banner's require): no module of its own, which
      // code splitting would make a file of its own, shared by the entries that use it.
      if (args.namespace === 'builtin' || args.kind === 'require-call')
        return { path: args.path, external: true };
      // One stand-in per importing file, for the same reason: shared, it would be a file.
      // (Named by a number: a path ending in the importer's `.mjs` would be read as ESM.)
      let id = importers.get(args.importer);
      if (id === undefined) {
        id = importers.size;
        importers.set(args.importer, id);
      }
      return { path: `${args.path}#${id}`, namespace: 'builtin' };
    });
    b.onLoad({ filter: /.*/, namespace: 'builtin' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path.split('#')[0])});`,
      loader: 'js',
    }));
  },
};

/**
 * NodeSDK and auto-instrumentations-node import every exporter and resource detector they
 * might build, and a bundle evaluates what is imported: the gRPC exporter (grpc-js) cost
 * 22 ms of every start and the cloud detectors (gcp-metadata, gaxios) 15 ms, measured with
 * --cpu-prof, though the kit builds its exporters itself (the span exporter at the first
 * export) and runs the cloud detectors only when OTEL_NODE_RESOURCE_DETECTORS names them.
 * Their imports get a stand-in that loads the real module (still inside the bundle) the
 * first time it is used.
 */
const deferredExports: Record<
  string,
  { classes?: string[]; detectors?: string[]; functions?: string[]; objects?: string[] }
> = {
  '@opentelemetry/exporter-trace-otlp-grpc': { classes: ['OTLPTraceExporter'] },
  '@opentelemetry/exporter-trace-otlp-http': { classes: ['OTLPTraceExporter'] },
  '@opentelemetry/exporter-trace-otlp-proto': { classes: ['OTLPTraceExporter'] },
  '@opentelemetry/exporter-zipkin': { classes: ['ZipkinExporter'] },
  '@opentelemetry/exporter-metrics-otlp-grpc': { classes: ['OTLPMetricExporter'] },
  '@opentelemetry/exporter-metrics-otlp-proto': { classes: ['OTLPMetricExporter'] },
  '@opentelemetry/exporter-metrics-otlp-http': {
    classes: ['OTLPMetricExporter'],
    objects: ['AggregationTemporalityPreference'],
  },
  '@opentelemetry/exporter-logs-otlp-grpc': { classes: ['OTLPLogExporter'] },
  '@opentelemetry/exporter-logs-otlp-http': { classes: ['OTLPLogExporter'] },
  '@opentelemetry/exporter-logs-otlp-proto': { classes: ['OTLPLogExporter'] },
  '@opentelemetry/resource-detector-alibaba-cloud': { detectors: ['alibabaCloudEcsDetector'] },
  '@opentelemetry/resource-detector-aws': {
    detectors: [
      'awsBeanstalkDetector',
      'awsEc2Detector',
      'awsEcsDetector',
      'awsEksDetector',
      'awsLambdaDetector',
    ],
  },
  '@opentelemetry/resource-detector-azure': {
    detectors: ['azureAppServiceDetector', 'azureFunctionsDetector', 'azureVmDetector'],
  },
  '@opentelemetry/resource-detector-gcp': { detectors: ['gcpDetector'] },
  // host-metrics' network group, which the kit leaves off (systeminformation: 151 kB).
  'systeminformation/lib/network.js': { functions: ['networkStats'] },
  // The instrumentations of npm packages: evaluated when the app first loads a module one
  // of them patches (LazyInstrumentation builds it then).
  ...Object.fromEntries(
    lazyInstrumentations.map((e) => [`@opentelemetry/instrumentation-${e.name}`, { classes: [e.className] }]),
  ),
};

/** The file beside dist/preload.js that holds a deferred package: `lazy-instrumentation-express.js`. */
const lazyFile = (specifier: string) =>
  `lazy-${specifier
    .replace(/^@opentelemetry\//, '')
    .replace(/\.js$/, '')
    .replace(/[^a-zA-Z0-9]+/g, '-')}`;

const deferredDirs = Object.keys(deferredExports).map(
  (specifier) => `/node_modules/${specifier.split('/lib/')[0]}/`,
);

const deferred: Plugin = {
  name: 'deferred',
  setup(b) {
    const filter = new RegExp(`^(${Object.keys(deferredExports).join('|').replace(/[/.]/g, '\\$&')})$`);
    b.onResolve({ filter }, (args) => {
      // The package's own file (an entry point) is the real module, and so is an import from
      // another deferred package (loaded together); every other import of it is a stand-in.
      if (args.kind === 'entry-point' || args.namespace === 'deferred') return undefined;
      if (deferredDirs.some((dir) => args.importer.includes(dir))) return undefined;
      return { path: args.path, namespace: 'deferred' };
    });
    b.onResolve({ filter: /^\.\/lazy-[a-z0-9-]+\.js$/ }, (args) => ({ path: args.path, external: true }));
    b.onLoad({ filter: /.*/, namespace: 'deferred' }, (args) => {
      const spec = deferredExports[args.path] ?? {};
      const file = JSON.stringify(`./${lazyFile(args.path)}.js`);
      const load = `let real; const load = () => (real ??= require(${file}));`;
      const classes = (spec.classes ?? []).map(
        (name) => `export class ${name} { constructor(...args) { return new (load().${name})(...args); } }`,
      );
      const detectors = (spec.detectors ?? []).map(
        (name) => `export const ${name} = { detect: (config) => load().${name}.detect(config) };`,
      );
      const functions = (spec.functions ?? []).map(
        (name) => `export function ${name}(...args) { return load().${name}(...args); }`,
      );
      const objects = (spec.objects ?? []).map(
        (name) => `export const ${name} = new Proxy({}, { get: (_, key) => load().${name}[key] });`,
      );
      const contents = [load, ...classes, ...detectors, ...functions, ...objects].join('\n');
      return { contents, loader: 'js', resolveDir: root };
    });
  },
};

// Each deferred package is an entry point of its own (dist/lazy-*.js), loaded with require()
// (Node's require of an ES module, synchronous) the first time it is used; the code it shares
// with the preload lives in chunks both import (the preload loads 13 files, 265 kB). Kept out
// of dist/preload.js, the deferred packages (1.2 of its 1.45 MB) are neither read nor held in
// memory by a process that never uses them: idle RSS 69.7 → 68.5 MB (bench startup, Node 24).
// Chunks are named by content hash: drop the previous build's.
for (const name of await readdir(`${root}dist`).catch(() => [])) {
  if (/^(chunk|lazy)-.*\.js(\.map)?$|^preload\.js(\.map)?$/.test(name)) await rm(`${root}dist/${name}`);
}

await build({
  entryPoints: {
    preload: `${root}src/preload.ts`,
    ...Object.fromEntries(Object.keys(deferredExports).map((specifier) => [lazyFile(specifier), specifier])),
  },
  outdir: `${root}dist`,
  splitting: true,
  chunkNames: 'chunk-[hash]',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  sourcemap: true,
  legalComments: 'none',
  // Minified: a smaller file is read, parsed and held in memory faster (start-up cpu 145 →
  // 136 ms, 2.2 → 1.4 MB); the source map keeps stack traces readable with
  // --enable-source-maps. BUILD_UNMINIFIED=1 keeps names, for --cpu-prof.
  minify: !process.env.BUILD_UNMINIFIED,
  logLevel: 'warning',
  external: ['@opentelemetry/api', 'import-in-the-middle', 'pino', 'undici', '@aws-sdk/*', '@smithy/*'],
  // CommonJS packages inside the bundle call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as __kitCreateRequire } from 'node:module'; const require = __kitCreateRequire(import.meta.url);",
  },
  plugins: [plainRequire, builtinsByRequire, deferred],
});

for (const patch of upstreamPatches) {
  if (!applied.has(patch))
    throw new Error(`upstream patch not applied (file not in the build): ${patch.file}`);
}

/** register.ts imports the preload's source; the built entry imports the bundle beside it. */
const bundleBeside: Plugin = {
  name: 'bundle-beside',
  setup(b) {
    b.onResolve({ filter: /^\.\/src\/preload\.ts$/ }, () => ({ path: './preload.js', external: true }));
  },
};

await build({
  entryPoints: [`${root}register.ts`],
  outfile: `${root}dist/register.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  logLevel: 'warning',
  plugins: [bundleBeside],
});
