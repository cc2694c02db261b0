/**
 * Helpers for the `keysmith exec` tests: one private temp root per test file (homes, token-file
 * directories, child scripts), removed in afterAll; profiles and sessions written straight into a
 * home in the documented store format (profiles.json + sessions/NAME.json, 0600), so that static
 * dialects can be tested whatever state `login --dialect apikey/basic/wave` is in.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TempRoot {
  readonly path: string;
  /** A new empty directory under the root (mode 0700). */
  dir(prefix: string): string;
  /** A file under the root with `content`; returns its path. */
  file(name: string, content: string, mode?: number): string;
  remove(): void;
}

export function tempRoot(label: string): TempRoot {
  const path = mkdtempSync(join(tmpdir(), `keysmith-${label}-`));
  return {
    path,
    dir: (prefix) => {
      const dir = mkdtempSync(join(path, `${prefix}-`));
      chmodSync(dir, 0o700);
      return dir;
    },
    file: (name, content, mode = 0o644) => {
      const file = join(path, name);
      writeFileSync(file, content, { mode });
      chmodSync(file, mode);
      return file;
    },
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}

export interface StoredProfile {
  name: string;
  url: string;
  dialect: string;
  username?: string;
  apiKey?: { in: 'header' | 'query'; name: string; scheme?: string };
  [field: string]: unknown;
}

export interface StoredSession {
  accessToken: string;
  tokenType: string;
  obtainedAt: number;
  expiresAt?: number;
  refreshToken?: string;
}

/** Write a profile (made the default) and its session into `home`, as `login` would. */
export function writeProfile(home: string, profile: StoredProfile, session: StoredSession): void {
  const config = join(home, '.config', 'keysmith');
  const sessions = join(home, '.local', 'state', 'keysmith', 'sessions');
  mkdirSync(config, { recursive: true, mode: 0o700 });
  mkdirSync(sessions, { recursive: true, mode: 0o700 });
  writeFileSync(join(config, 'profiles.json'), JSON.stringify({ default: profile.name, profiles: { [profile.name]: profile } }, null, 2) + '\n', { mode: 0o600 });
  writeFileSync(join(sessions, `${encodeURIComponent(profile.name)}.json`), JSON.stringify(session, null, 2) + '\n', { mode: 0o600 });
}

/** How Basic, Digest and Wave profiles keep their credential: base64 of `user:password`. */
export function basicCredential(user: string, password: string): string {
  return Buffer.from(`${user}:${password}`, 'utf8').toString('base64');
}

/** A session of a token dialect that stays valid for an hour. */
export function bearerSession(token: string): StoredSession {
  const now = Date.now();
  return { accessToken: token, tokenType: 'bearer', obtainedAt: now, expiresAt: now + 3_600_000, refreshToken: 'refresh-' + token };
}

/**
 * A child that prints, as one JSON line on stdout, the variables whose names match `pattern`
 * (a RegExp source), plus the token file's mode and content when KEYSMITH_TOKEN_FILE (or the
 * variable named in argv[2]) names one.
 */
export const ENV_DUMP = `
import { readFileSync, statSync } from 'node:fs';
const pattern = new RegExp(process.argv[2] ?? '^(KEYSMITH_|H2O_WAVE_)');
const fileVar = process.argv[3] ?? 'KEYSMITH_TOKEN_FILE';
const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => pattern.test(k)).sort());
const path = process.env[fileVar];
const file = path ? { path, mode: (statSync(path).mode & 0o777).toString(8), content: readFileSync(path, 'utf8') } : null;
process.stdout.write(JSON.stringify({ env, file }) + '\\n');
`;
