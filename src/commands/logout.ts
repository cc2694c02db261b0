import { say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { loadDialect } from '../tokens/dialect.js';
import { warn } from '../io/escape.js';
import { removeStaleTemps } from '../io/files.js';
import type { HttpOptions } from '../tokens/http.js';
import { dialectEnv, httpOptions, withSessionLock } from '../tokens/session.js';
import { deleteSession, listProfiles, readSession, resolveProfile, sessionPath, type Profile } from '../tokens/store.js';

export interface LogoutOptions {
  profile?: string;
  all?: boolean;
}

/** Revoke the session on the server where the dialect can, then delete it locally. */
export async function run(opts: LogoutOptions, ctx: Ctx): Promise<void> {
  if (opts.all && opts.profile) throw new UsageError('use either --profile or --all');
  const profiles = opts.all ? (await listProfiles(ctx)).profiles : [await resolveProfile(ctx, opts.profile)];
  for (const profile of profiles) await logout(ctx, profile);
}

/**
 * The profile's settings stay, so `keysmith login --profile NAME` logs in again without a URL.
 * Under the session lock: a refresh in flight finishes first, and its tokens are the ones revoked.
 * The last line says whether the server revoked the session, or its token stays valid until it
 * expires (a dialect that cannot revoke, a server without a revocation endpoint, a failed call).
 */
export async function logout(ctx: Ctx, profile: Profile): Promise<void> {
  const http = httpOptions(profile);
  await withSessionLock(ctx, profile.name, http.timeout ?? 30, () => logoutLocked(ctx, profile, http));
}

async function logoutLocked(ctx: Ctx, profile: Profile, http: HttpOptions): Promise<void> {
  const session = await readSession(ctx, profile.name);
  const dialect = await loadDialect(profile.dialect);
  let revoked = false;
  let why = 'the server offers no way to revoke it';
  if (session && dialect.revoke) {
    try {
      revoked = (await dialect.revoke(await dialectEnv(ctx, http), profile, session)) !== false;
      why = 'the server has no revocation endpoint';
    } catch (err) {
      // Still forget it locally: the user asked to log out. Say the server was not told.
      warn(ctx, `could not revoke the session on the server: ${(err as Error).message}`);
      why = 'revoking it failed';
    }
  }
  await deleteSession(ctx, profile.name);
  // A writer killed mid-write may have left a temp copy of the tokens next to the session.
  await removeStaleTemps(sessionPath(ctx, profile.name), { anyFile: true });
  if (!session) say(ctx, `Not logged in to ${profile.name}; nothing to do.`);
  else if (revoked) say(ctx, `Logged out of ${profile.name} and revoked the session on the server.`);
  else {
    const until = session.expiresAt === undefined ? 'until the server ends it' : `until it expires (${new Date(session.expiresAt).toISOString()})`;
    say(ctx, `Logged out of ${profile.name} on this machine only: ${why}, so its token stays valid ${until}.`);
  }
}
