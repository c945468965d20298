// Builds the preload, `dist/register.js`: one ESM bundle of register.ts with the SDK,
// exporters and instrumentations inside. Outside it, resolved from the app's
// node_modules: @opentelemetry/api (one copy shared with the app), import-in-the-middle
// (its loader hooks are files of their own), and the libraries the kit's public API
// uses (pino, undici) or instruments (@aws-sdk/*).
//
// `npm run build` runs it after tsc; `npm test` and `npm start` build first.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * Some OpenTelemetry packages' ESM builds load a dependency through
 * `createRequire(import.meta.url)` (instrumentation-http: forwarded-parse; the gRPC
 * exporter: @grpc/grpc-js), which a bundler cannot follow: the bundle would look for
 * those packages in the app's node_modules at run time. Their calls are turned back into
 * plain `require()`, which esbuild bundles.
 */
const plainRequire: Plugin = {
  name: 'plain-require',
  setup(b) {
    b.onLoad({ filter: /[\\/]node_modules[\\/]@opentelemetry[\\/].*\.mjs$/ }, async (args) => {
      const source = await readFile(args.path, 'utf8');
      if (!source.includes('_rolldown/runtime.mjs') || !source.includes('__require(')) return undefined;
      const contents = source
        .replace(/import \{ __require \} from "[^"]*_rolldown\/runtime\.mjs";\n/, '')
        .replace(/\b__require\(/g, 'require(');
      return { contents, loader: 'js' };
    });
  },
};

await build({
  entryPoints: [`${root}register.ts`],
  outfile: `${root}dist/register.js`,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  sourcemap: true,
  legalComments: 'none',
  logLevel: 'warning',
  external: ['@opentelemetry/api', 'import-in-the-middle', 'pino', 'undici', '@aws-sdk/*', '@smithy/*'],
  // CommonJS packages inside the bundle call require() for Node's built-in modules.
  banner: {
    js: "import { createRequire as __kitCreateRequire } from 'node:module'; const require = __kitCreateRequire(import.meta.url);",
  },
  plugins: [plainRequire],
});
