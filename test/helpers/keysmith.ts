/** Running the built binary (bin/keysmith.js → dist/cli.cjs) in e2e tests, as a user would. */
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type Result } from 'execa';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'keysmith.js');
export const DIST = join(ROOT, 'dist', 'cli.cjs');

/** Fail with a clear message when the bundle has not been built (`npm test` builds it first). */
export function assertBuilt(): void {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: build it with \`node scripts/build.mjs\` (npm test does this before vitest)`);
}

/** Variables from the outer environment that would change what keysmith does. */
// DBUS_SESSION_BUS_ADDRESS: on a desktop, tests would otherwise write into the user's own keyring.
const SCRUBBED = /^(KEYSMITH_|H2O_WAVE_|XDG_|HTTPS?_PROXY$|https?_proxy$|NO_PROXY$|no_proxy$|NODE_EXTRA_CA_CERTS$|FORCE_COLOR$|DBUS_SESSION_BUS_ADDRESS$)/;

/** The test's own environment minus what would change keysmith's behaviour, plus `extra`. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(process.env)) if (!SCRUBBED.test(name)) env[name] = value;
  return { ...env, NO_COLOR: '1', ...extra };
}

/** A fresh, empty HOME: profiles and sessions land under it. */
export function tempHome(): { HOME: string } {
  return { HOME: mkdtempSync(join(tmpdir(), 'keysmith-home-')) };
}

export interface KeysmithOptions {
  env?: Record<string, string | undefined>;
  /** Piped on stdin; without it stdin is /dev/null (not a TTY, nothing to read, never an open pipe). */
  input?: string;
  timeout?: number;
  cwd?: string;
  /** Keep stdout's and stderr's final newline (to check output byte for byte). */
  keepFinalNewline?: boolean;
}

export type RunResult = Result<{ reject: false; encoding: 'utf8' }>;

/** Run keysmith; never rejects on an exit code; a timeout fails the test. */
export async function keysmith(args: string[], options: KeysmithOptions = {}): Promise<RunResult> {
  assertBuilt();
  const timeout = options.timeout ?? 30_000;
  const result = (await execa(process.execPath, [BIN, ...args], {
    env: cleanEnv(options.env),
    extendEnv: false,
    reject: false,
    timeout,
    cwd: options.cwd,
    stripFinalNewline: !options.keepFinalNewline,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  })) as unknown as RunResult;
  if (result.timedOut) throw new Error(`keysmith ${args.join(' ')} timed out after ${timeout} ms`);
  return result;
}

/** The one `error:` line on stderr; fails when there are none, several, or a stack trace. */
export function oneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('error:'));
  if (lines.length !== 1) throw new Error(`expected exactly one "error:" line on stderr, got:\n${stderr}`);
  if (/^\s+at /m.test(stderr)) throw new Error(`stack trace on stderr:\n${stderr}`);
  return lines[0]!;
}
