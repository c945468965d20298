// @aws-sdk/client-s3 is an optional peer dependency: an app without it imports the kit,
// runs and logs under the preload; only constructing InstrumentedS3 fails, saying what to install.
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Child, cleanEnv, freePort, repoRoot } from './helpers/child.ts';

/**
 * A copy of the kit (sources, built preload, package.json) beside a node_modules that links
 * every installed package except the AWS SDK's: from there `@aws-sdk/client-s3` cannot
 * be resolved, as in an app that never installed it. Copied, not linked: Node resolves a
 * linked module from its real path, where the SDK is installed.
 */
function appWithoutAwsSdk(): string {
  const dir = mkdtempSync(join(tmpdir(), 'osk-no-aws-sdk-'));
  for (const entry of ['src', 'dist', 'package.json', 'test/fixtures/s3-no-sdk-app.mjs']) {
    cpSync(join(repoRoot, entry), join(dir, entry), { recursive: true });
  }
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(repoRoot, 'node_modules'))) {
    if (name === '@aws-sdk' || name.startsWith('.')) continue;
    symlinkSync(join(repoRoot, 'node_modules', name), join(modules, name));
  }
  return dir;
}

test('an app without @aws-sdk/client-s3 imports the kit and runs; InstrumentedS3 says to install it', async (t) => {
  const dir = appWithoutAwsSdk();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const child = new Child(
    ['--import', join(dir, 'dist/register.js'), join(dir, 'test/fixtures/s3-no-sdk-app.mjs')],
    cleanEnv({
      OTEL_SERVICE_NAME: 'no-aws-sdk',
      OTEL_TRACES_EXPORTER: 'none',
      OTEL_EXPORTER_PROMETHEUS_HOST: '127.0.0.1',
      OTEL_EXPORTER_PROMETHEUS_PORT: String(await freePort()),
    }),
    dir,
  );
  t.after(() => child.stop());

  const started = await child.waitForLine((l) => l.msg === 'app started');
  assert.equal(started.sdk, 'ERR_MODULE_NOT_FOUND', 'the SDK must not be resolvable from the app');
  assert.equal(started.service_name, 'no-aws-sdk');
  const failed = await child.waitForLine((l) => l.msg === 'construction failed' || l.msg === 'constructed');
  assert.equal(failed.msg, 'construction failed');
  assert.equal(failed.name, 'MissingPeerDependencyError');
  assert.equal(failed.code, 'OSK_MISSING_PEER_DEPENDENCY');
  assert.equal(failed.guard, true);
  assert.equal(failed.packageName, '@aws-sdk/client-s3');
  assert.match(
    String(failed.message),
    /^InstrumentedS3 needs @aws-sdk\/client-s3, .*npm install @aws-sdk\/client-s3$/,
  );
  const exit = await child.exited;
  assert.equal(exit.code, 0, child.stderr);
  assert.deepEqual(child.stderrLines(), []);
});
