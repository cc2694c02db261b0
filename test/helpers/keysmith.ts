/**
 * Running the built binary in the token e2e tests.
 *
 * NOTE (keychain tests engineer): the original of this file was overwritten by mistake at 10:10
 * and reconstructed from its uses in test/tokens-e2e.test.ts (keysmith, oneErrorLine, tempHome).
 * Its owner should check it against their version. The keychain tests use test/helpers/keychain-cli.ts.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

const BIN = fileURLToPath(new URL('../../bin/keysmith.js', import.meta.url));

/** Variables from the outer environment that would change what keysmith does. */
const SCRUBBED = /^(KEYSMITH_|H2O_WAVE_|XDG_|HTTPS?_PROXY$|https?_proxy$|NO_PROXY$|no_proxy$|NODE_EXTRA_CA_CERTS$|FORCE_COLOR$)/;

/** A fresh, empty HOME: profiles and sessions land under it (XDG_* are scrubbed from the environment). */
export function tempHome(): { HOME: string } {
  return { HOME: mkdtempSync(join(tmpdir(), 'keysmith-home-')) };
}

export interface KeysmithOptions {
  env?: Record<string, string | undefined>;
  /** Piped on stdin; without it stdin is /dev/null (not a TTY, nothing to read). */
  input?: string;
  timeout?: number;
  cwd?: string;
}

/** Run keysmith; resolves with exitCode/stdout/stderr (final newline stripped), never rejects on exit codes. */
export async function keysmith(args: string[], options: KeysmithOptions = {}) {
  const env: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(process.env)) if (!SCRUBBED.test(name)) env[name] = value;
  Object.assign(env, { NO_COLOR: '1' }, options.env);
  const result = await execa(process.execPath, [BIN, ...args], {
    env,
    extendEnv: false,
    reject: false,
    timeout: options.timeout ?? 30_000,
    cwd: options.cwd,
    ...(options.input === undefined ? { stdin: 'ignore' as const } : { input: options.input }),
  });
  if (result.timedOut) throw new Error(`keysmith ${args.join(' ')} timed out`);
  return result;
}

/** The one `error:` line on stderr; fails when there are none, several, or a stack trace. */
export function oneErrorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.startsWith('error:'));
  if (lines.length !== 1) throw new Error(`expected exactly one "error:" line on stderr, got:\n${stderr}`);
  if (/^\s+at /m.test(stderr)) throw new Error(`stack trace on stderr:\n${stderr}`);
  return lines[0]!;
}
