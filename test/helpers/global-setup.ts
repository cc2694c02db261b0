/**
 * vitest globalSetup: one temporary directory per test run. TMPDIR points into it before the test
 * workers start, so everything the tests, keysmith and the fixture servers make with os.tmpdir()
 * or mktemp lands there; it is removed when the run ends, also when tests failed or were
 * interrupted with Ctrl-C. The system temp directory keeps nothing of a run.
 */
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Give the owner back every permission under `dir`, so that a test's chmod 000 cannot stop the removal. */
function unlock(dir: string): void {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const st = statSync(path, { throwIfNoEntry: false });
    if (!st?.isDirectory()) continue;
    chmodSync(path, 0o700);
    unlock(path);
  }
}

function remove(dir: string): void {
  try {
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  } catch {
    unlock(dir);
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
  }
}

export default function setup(): () => void {
  const previous = process.env.TMPDIR;
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-test-run-'));
  // Tests that run keysmith as another user (nobody) or serve files to nginx's workers must be able
  // to walk through it, as through /tmp; listing it stays private.
  chmodSync(dir, 0o711);
  process.env.TMPDIR = dir;
  const onExit = () => remove(dir);
  process.once('exit', onExit);
  return () => {
    process.off('exit', onExit);
    remove(dir);
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
  };
}
