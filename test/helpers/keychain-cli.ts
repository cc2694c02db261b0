/** The keychain tests' way of running keysmith (final newlines kept), and scratch directories. */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, assertBuilt, keysmith as run, type KeysmithOptions, type RunResult } from './keysmith.js';
import { afterAll, beforeAll } from 'vitest';

export { BIN, ROOT, assertBuilt, cleanEnv, type RunResult } from './keysmith.js';
export const FIXTURES = join(ROOT, 'fixtures', 'keychains');

/** Run keysmith for the keychain tests: output checked byte for byte, so final newlines are kept. */
export function keysmith(args: string[], options: Omit<KeysmithOptions, 'keepFinalNewline'> = {}): Promise<RunResult> {
  return run(args, { timeout: 20_000, ...options, keepFinalNewline: true });
}

/**
 * Every keychain command once, as [label, arguments, stdin]: for the checks that each of them
 * treats a bad keychain path (a directory, a FIFO, a device) the same way.
 */
export const KEYCHAIN_COMMANDS: Array<[string, string[], string | undefined]> = [
  ['list-access-keys', ['list-access-keys'], undefined],
  ['list-access-keys --json', ['list-access-keys', '--json'], undefined],
  ['create-access-key', ['create-access-key', '--cost', '4'], undefined],
  ['remove-access-key', ['remove-access-key', 'AAAA'], undefined],
  ['verify-access-key', ['verify-access-key', 'AAAA'], 'secret\n'],
  ['rotate-access-key', ['rotate-access-key', 'AAAA', '--cost', '4'], undefined],
  ['set-password', ['set-password', 'zed', '--password-stdin', '--cost', '4'], 'pw\n'],
];

/** A fresh temporary directory, removed by the returned cleanup function. */
export function scratchDir(prefix = 'keysmith-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A scratch directory for the calling test file, made in beforeAll (after checking that the
 * binary is built) and removed in afterAll; `fresh()` makes a new empty subdirectory in it.
 */
export function useScratch(prefix: string): { root: () => string; fresh: () => string } {
  let scratch: { dir: string; cleanup: () => void } | undefined;
  let counter = 0;
  beforeAll(() => {
    assertBuilt();
    scratch = scratchDir(prefix);
  });
  afterAll(() => scratch?.cleanup());
  return {
    root: () => scratch!.dir,
    fresh: () => {
      const dir = join(scratch!.dir, `t${counter++}`);
      mkdirSync(dir);
      return dir;
    },
  };
}

/** stderr must be a clean one-line error: exactly one `error:` line and no stack trace; returns it. */
export { oneErrorLine as errorLine } from './keysmith.js';
