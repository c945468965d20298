import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

/**
 * Where `promtool`/`prometheus` are. Tests that need them skip only when the binary is
 * missing AND `REQUIRE_PROMETHEUS` is unset; `.ci/run` installs them and sets it, so on
 * CI a missing binary fails instead of hiding.
 */
export function requireBinary(t: TestContext, name: 'promtool' | 'prometheus'): string | undefined {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (found !== '') return found;
  if (process.env.REQUIRE_PROMETHEUS)
    throw new Error(`${name} is required (REQUIRE_PROMETHEUS is set) but not installed`);
  t.skip(
    `${name} not installed (apt-get install prometheus); set REQUIRE_PROMETHEUS=1 to make this a failure`,
  );
  return undefined;
}

/** Run promtool with `args`, feeding `input` on stdin; returns its exit status and output. */
export function promtool(
  bin: string,
  args: string[],
  input?: string,
): { status: number | null; output: string } {
  const r = spawnSync(bin, args, { input, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}
