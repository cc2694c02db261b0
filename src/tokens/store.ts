/**
 * Profiles (configuration) and sessions (tokens), one place for both, used by every dialect.
 *
 *   $XDG_CONFIG_HOME/keysmith/profiles.json       {"default": NAME, "profiles": {NAME: Profile}}
 *   $XDG_STATE_HOME/keysmith/sessions/NAME.json   Session (tokens), one file per profile
 *
 * Files are 0600 in 0700 directories and written atomically. The session file is also the lock
 * target for refreshes, so concurrent `token` calls refresh once.
 */
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { Ctx } from '../io/context.js';
import { FormatError, KeysmithError, NotFoundError, UsageError } from '../io/errors.js';
import { ensureDir, readFileOrNull, removeStaleTemps, updateFile, writeFileAtomic, FILE_MODE } from '../io/files.js';

import type { DialectName } from './dialects/index.js';
import type { StoredSession, WriteSessionOptions } from './secret-store.js';

export type { DialectName };

export interface Profile {
  name: string;
  url: string;
  dialect: DialectName;
  username?: string;
  /** Tiled: the authentication provider. */
  provider?: string;
  /** Endpoints found at login (so refreshing never needs discovery again). */
  endpoints?: Record<string, string>;
  /** WaveMaker: how long a token lives on the server (not in its answer), in seconds. */
  tokenTtl?: number;
  /** OAuth 2.0 client and flow. */
  clientId?: string;
  flow?: string;
  scope?: string;
  /** API-key profiles: where the key goes (default: the header `Authorization: Apikey KEY`). */
  apiKey?: { in: 'header' | 'query'; name: string; scheme?: string };
  /** HTTP options. */
  cacert?: string;
  timeout?: number;
  /** Where login was told to keep the secrets (--storage); absent: the keyring when one answers. */
  storage?: 'keyring' | 'file';
}

/**
 * What a login obtained. Token dialects: tokens. Static dialects keep their credential in
 * `accessToken` as it is sent: the API key; for Basic, Digest and Wave, base64 of `user:password`
 * (tokenType `apikey`, `basic`, `digest`, `wave`; no expiry).
 */
export interface Session {
  accessToken: string;
  /** `bearer` for most dialects; WaveMaker: the header/parameter name the server used. */
  tokenType: string;
  /** When the access token expires (ms since epoch); absent when unknown. */
  expiresAt?: number;
  /** When the access token was obtained (ms since epoch). */
  obtainedAt: number;
  refreshToken?: string;
  refreshExpiresAt?: number;
  scope?: string;
  idToken?: string;
  /** OAuth 2.0 confidential client: its secret, kept here (0600, state dir) rather than in profiles.json. */
  clientSecret?: string;
}

interface ProfilesFile {
  default?: string;
  profiles: Record<string, Profile>;
}

export function configDir(ctx: Ctx): string {
  return join(baseDir(ctx, 'XDG_CONFIG_HOME', '.config'), 'keysmith');
}

export function stateDir(ctx: Ctx): string {
  return join(baseDir(ctx, 'XDG_STATE_HOME', join('.local', 'state')), 'keysmith');
}

function baseDir(ctx: Ctx, xdgVar: string, fallback: string): string {
  const xdg = ctx.env[xdgVar];
  if (xdg && xdg.startsWith('/')) return xdg;
  const home = ctx.env.HOME;
  if (!home) throw new UsageError(`neither $${xdgVar} nor $HOME is set; cannot find keysmith's files`);
  return join(home, fallback);
}

function profilesPath(ctx: Ctx): string {
  return join(configDir(ctx), 'profiles.json');
}

export function sessionPath(ctx: Ctx, profile: string): string {
  return join(stateDir(ctx), 'sessions', `${encodeURIComponent(profile)}.json`);
}

export function checkProfileName(name: string): string {
  if (!name || name.length > 200 || /[\s\p{Cc}/\\]/u.test(name) || name.startsWith('.')) {
    throw new UsageError(`invalid profile name ${JSON.stringify(name)} (no spaces, slashes or leading dot)`);
  }
  return name;
}

function parseJson<T>(bytes: Buffer, path: string): T {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    throw new FormatError(path, undefined, `not valid JSON (${(err as Error).message}); fix or delete it`);
  }
}

async function readProfiles(ctx: Ctx): Promise<ProfilesFile> {
  const path = profilesPath(ctx);
  const bytes = await readFileOrNull(path, 'profiles file');
  if (!bytes) return { profiles: {} };
  const data = parseJson<ProfilesFile>(bytes, path);
  if (typeof data !== 'object' || data === null || typeof data.profiles !== 'object') {
    throw new FormatError(path, undefined, 'expected {"profiles": {...}}');
  }
  return withPlainNames(data);
}

/**
 * Profile names are data: keep them in an object without a prototype, so that `__proto__`,
 * `constructor` or `toString` are names like any other, never Object's own members.
 */
function withPlainNames(file: ProfilesFile): ProfilesFile {
  file.profiles = Object.assign(Object.create(null) as Record<string, Profile>, file.profiles);
  return file;
}

async function updateProfiles<T>(ctx: Ctx, change: (file: ProfilesFile) => T): Promise<T> {
  const path = profilesPath(ctx);
  await ensureDir(configDir(ctx));
  return updateFile(
    path,
    (bytes) => {
      const file = withPlainNames(bytes ? parseJson<ProfilesFile>(bytes, path) : { profiles: {} });
      const result = change(file);
      return { content: JSON.stringify(file, null, 2) + '\n', result };
    },
    { what: 'profiles file' },
  );
}

/** The profile a command uses: --profile, else $KEYSMITH_PROFILE, else the default (last login). */
export async function resolveProfile(ctx: Ctx, flag: string | undefined): Promise<Profile> {
  const file = await readProfiles(ctx);
  const name = flag || ctx.env.KEYSMITH_PROFILE || file.default;
  if (!name) throw new NotFoundError('not logged in', 'run: keysmith login URL');
  const profile = Object.hasOwn(file.profiles, name) ? file.profiles[name] : undefined;
  if (!profile) {
    const known = Object.keys(file.profiles);
    const near = (await import('../io/words.js')).closest(name, known);
    throw new NotFoundError(`no profile ${name}`, near ? `did you mean --profile ${near}? (profiles: ${known.join(', ')})`
      : known.length ? `known profiles: ${known.join(', ')}; or run: keysmith login URL --profile ${name}` : 'run: keysmith login URL');
  }
  return profile;
}

/** The profile of that name as the file says now; undefined when there is none. */
export async function findProfile(ctx: Ctx, name: string): Promise<Profile | undefined> {
  const file = await readProfiles(ctx);
  return Object.hasOwn(file.profiles, name) ? file.profiles[name] : undefined;
}

export async function listProfiles(ctx: Ctx): Promise<{ default?: string; profiles: Profile[] }> {
  const file = await readProfiles(ctx);
  return { default: file.default, profiles: Object.values(file.profiles) };
}

/**
 * Save a profile and make it the default (the last login is what `keysmith token` uses). With
 * `makeDefault: false` (a profile made on the side, e.g. `api-key create --save-profile`) the
 * default stays as it is, unless there is none yet.
 */
export async function saveProfile(ctx: Ctx, profile: Profile, { makeDefault = true }: { makeDefault?: boolean } = {}): Promise<void> {
  checkProfileName(profile.name);
  await updateProfiles(ctx, (file) => {
    file.profiles[profile.name] = profile;
    if (makeDefault || !file.default || !Object.hasOwn(file.profiles, file.default)) file.default = profile.name;
  });
}

export async function setDefaultProfile(ctx: Ctx, name: string): Promise<void> {
  await updateProfiles(ctx, (file) => {
    if (!Object.hasOwn(file.profiles, name)) throw new NotFoundError(`no profile ${name}`);
    file.default = name;
  });
}

export async function deleteProfile(ctx: Ctx, name: string): Promise<void> {
  await updateProfiles(ctx, (file) => {
    delete file.profiles[name];
    if (file.default === name) file.default = Object.keys(file.profiles)[0];
  });
}

/**
 * Read a profile's session; null when there is none (logged out, or never logged in). Secrets
 * kept in the OS keyring (src/tokens/secret-store.ts) are read from it: all of them, or with
 * `secrets: 'use'` only what using the session needs (not the refresh token or client secret),
 * so the cached `token` path of a token dialect never asks the keyring.
 */
export async function readSession(ctx: Ctx, profile: string, options: { secrets?: 'all' | 'use' } = {}): Promise<Session | null> {
  const path = sessionPath(ctx, profile);
  const bytes = await readFileOrNull(path, 'session file');
  if (!bytes) return null;
  const session = parseJson<StoredSession | null>(bytes, path);
  if (typeof session === 'object' && session !== null && session.keyring !== undefined) {
    const { loadSecrets } = await import('./secret-store.js');
    return loadSecrets(ctx, profile, session, path, options.secrets ?? 'all');
  }
  if (typeof session?.accessToken !== 'string') throw new FormatError(path, undefined, 'no access token in session file; log in again');
  return session as Session;
}

/**
 * Write a session (caller holds the session lock): its long-lived secrets to the OS keyring or
 * to the file, as `options` and the session as stored say (src/tokens/secret-store.ts). Returns
 * where they went.
 */
export async function writeSession(ctx: Ctx, profile: string, session: Session, options: WriteSessionOptions = {}): Promise<'keyring' | 'file'> {
  const path = sessionPath(ctx, profile);
  await ensureDir(join(stateDir(ctx), 'sessions'));
  // Temp files of a writer killed before its rename hold tokens: remove them with each write in
  // the sessions directory, whichever profile they were for.
  await removeStaleTemps(path, { anyFile: true });
  const { storeSecrets } = await import('./secret-store.js');
  const { content, storage } = await storeSecrets(ctx, profile, session, await readStored(path), path, options);
  await writeFileAtomic(path, JSON.stringify(content, null, 2) + '\n', FILE_MODE);
  return storage;
}

/** The session file as stored, without asking the keyring; null when there is none or it is not JSON. */
async function readStored(path: string): Promise<StoredSession | null> {
  const bytes = await readFileOrNull(path, 'session file');
  if (!bytes) return null;
  try {
    const data = JSON.parse(bytes.toString('utf8')) as unknown;
    return typeof data === 'object' && data !== null ? (data as StoredSession) : null;
  } catch {
    return null;
  }
}

/**
 * What `profiles` shows, without asking the keyring: null when logged out; else the expiry and
 * where the secrets are.
 */
export async function sessionSummary(ctx: Ctx, profile: string): Promise<{ expiresAt?: number; storage: 'keyring' | 'file' } | null> {
  const stored = await readStored(sessionPath(ctx, profile));
  if (!stored) return null;
  return { ...(typeof stored.expiresAt === 'number' && { expiresAt: stored.expiresAt }), storage: stored.keyring !== undefined ? 'keyring' : 'file' };
}

/** Forget a profile's session: its keyring entries (failing when they cannot be removed), then the file. */
export async function deleteSession(ctx: Ctx, profile: string): Promise<void> {
  const path = sessionPath(ctx, profile);
  const stored = await readStored(path);
  if (stored?.keyring !== undefined) {
    const { forget, markerOf } = await import('./secret-store.js');
    let marker;
    try {
      marker = markerOf(stored, path);
    } catch {
      marker = undefined; // damaged: nothing can be said about its entries
    }
    if (marker) await forget(ctx, profile, marker, 'throw');
  }
  try {
    await fsp.rm(path, { force: true });
  } catch (err) {
    throw new KeysmithError(`cannot delete session of ${profile}: ${(err as Error).message}`);
  }
}
