/**
 * The one refresh policy for every dialect: read the session without a lock (the fast path of
 * `keysmith token`); when it is stale, take the session file's cross-process lock, read it again
 * (another process may have refreshed it while we waited), refresh at most once, write it back
 * atomically, release. N concurrent callers cause one refresh request and all get its result,
 * and a rotating refresh token is never replayed.
 */
import { dirname } from 'node:path';
import type { Ctx } from '../io/context.js';
import { KeysmithError, NotFoundError } from '../io/errors.js';
import { ensureDir, withFileLock } from '../io/files.js';
import type { DialectEnv } from './dialect.js';
import type { HttpOptions } from './http.js';
import { DEFAULT_MIN_TTL_SECONDS, isExpired, isStale } from './policy.js';
import { deleteSession, findProfile, readSession, sessionPath, writeSession, type Profile, type Session } from './store.js';

export interface SessionOptions {
  /** Refresh when the token expires within this many seconds (capped at half its lifetime). */
  minTtl?: number;
  /** Refresh even if the token is fresh (`keysmith refresh`). */
  force?: boolean;
  timeout?: number;
}

export function httpOptions(profile: Profile, overrides: { timeout?: number | undefined; cacert?: string | undefined } = {}): HttpOptions {
  return { timeout: overrides.timeout ?? profile.timeout ?? 30, cacert: overrides.cacert ?? profile.cacert };
}

export async function dialectEnv(ctx: Ctx, http: HttpOptions): Promise<DialectEnv> {
  const { makeFetch } = await import('./http.js');
  return { ctx, http, fetch: await makeFetch(ctx, http) };
}

export function notLoggedIn(profile: string): NotFoundError {
  return new NotFoundError(`not logged in (profile ${profile})`, `run: keysmith login --profile ${profile}`);
}

/**
 * Run `fn` holding the profile's session lock: every change of a session (login, refresh,
 * logout) takes it, so none of them can undo another's. Waits for a holder as long as its
 * network calls may take, plus a margin.
 */
export async function withSessionLock<T>(ctx: Ctx, name: string, timeoutSeconds: number, fn: () => Promise<T>): Promise<T> {
  const path = sessionPath(ctx, name);
  await ensureDir(dirname(path));
  return withFileLock(path, fn, { waitMs: (timeoutSeconds + 15) * 1000 });
}

/** The profile's session, refreshed first when it is stale. */
export async function currentSession(ctx: Ctx, profile: Profile, options: SessionOptions = {}): Promise<Session> {
  // The fast path: a refresh token kept in the OS keyring is read only when a refresh needs it.
  const session = await readSession(ctx, profile.name, { secrets: 'use' });
  if (!session) throw notLoggedIn(profile.name);
  if (!options.force && !isStale(session, ctx.now(), options.minTtl ?? DEFAULT_MIN_TTL_SECONDS)) return session;
  return refreshUnderLock(ctx, profile, session, options);
}

/**
 * The server answered 401 to `rejected`, a token that looked valid (revoked, or the server
 * restarted): get another one, once, under the session lock. When the stored session already
 * holds another token, a process refreshed it meanwhile and that one is used; otherwise the
 * session is refreshed now, whatever its expiry says. `keysmith api` retries once with the
 * result, never more.
 */
export async function refreshAfterRejection(ctx: Ctx, profile: Profile, rejected: Session, options: SessionOptions = {}): Promise<Session> {
  return refreshUnderLock(ctx, profile, rejected, { ...options, force: true });
}

/** Take the session lock (waiting as long as a holder's network calls may take), then refreshLocked. */
function refreshUnderLock(ctx: Ctx, profile: Profile, seen: Session, options: SessionOptions): Promise<Session> {
  const timeout = httpOptions(profile, { timeout: options.timeout }).timeout ?? 30;
  return withSessionLock(ctx, profile.name, timeout, () => refreshLocked(ctx, profile.name, seen, options));
}

async function refreshLocked(ctx: Ctx, name: string, seen: Session, options: SessionOptions): Promise<Session> {
  const current = await readSession(ctx, name);
  if (!current) throw notLoggedIn(name);
  const refreshedMeanwhile = current.accessToken !== seen.accessToken;
  if (refreshedMeanwhile && !isStale(current, ctx.now(), options.minTtl ?? DEFAULT_MIN_TTL_SECONDS)) return current;
  // The profile as it is now, under the lock: a login may have pointed it at another server since
  // this process read it, and the session's refresh token belongs to that server alone.
  const profile = await findProfile(ctx, name);
  if (!profile) throw notLoggedIn(name);
  const http = httpOptions(profile, { timeout: options.timeout });
  const { loadDialect, checkSession } = await import('./dialect.js');
  const { SessionDeadError } = await import('./http.js');
  const dialect = await loadDialect(profile.dialect);
  try {
    const fresh = checkSession(await dialect.refresh(await dialectEnv(ctx, http), profile, current), 'refresh');
    // Servers that do not rotate refresh tokens may leave them out of the answer: keep ours.
    if (!fresh.refreshToken && current.refreshToken) {
      fresh.refreshToken = current.refreshToken;
      fresh.refreshExpiresAt = current.refreshExpiresAt;
    }
    await writeSession(ctx, profile.name, fresh);
    return fresh;
  } catch (err) {
    if (err instanceof SessionDeadError) {
      // The server said the session is over: forget it, so the next call says "log in".
      await deleteSession(ctx, profile.name);
      throw new KeysmithError(err.message, 1, `log in again: keysmith login --profile ${profile.name}`);
    }
    // The server could not be asked (down, timeout): a token that is still valid is still good.
    if (!options.force && !isExpired(current, ctx.now()) && err instanceof KeysmithError) {
      const { warn } = await import('../io/escape.js');
      warn(ctx, `could not refresh the token (${err.message}); using the current one, valid for ${Math.round((current.expiresAt! - ctx.now()) / 1000)} s more`);
      return current;
    }
    throw err;
  }
}
