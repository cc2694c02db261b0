import { say, type Ctx } from '../io/context.js';
import { isStatic } from '../tokens/dialects/index.js';
import { currentSession, notLoggedIn } from '../tokens/session.js';
import { resolveProfile, sessionSummary } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface RefreshOptions {
  profile?: string;
  timeout?: string;
}

/** Refresh the session now, whatever its expiry. Prints nothing on stdout. */
export async function run(opts: RefreshOptions, ctx: Ctx): Promise<void> {
  const profile = await resolveProfile(ctx, opts.profile);
  if (isStatic(profile.dialect)) {
    // A kept credential has nothing to renew; say so rather than claim a refresh.
    if (!(await sessionSummary(ctx, profile.name))) throw notLoggedIn(profile.name);
    say(ctx, `${profile.name} keeps a ${profile.dialect} credential, which does not expire; nothing to refresh.`);
    return;
  }
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  const session = await currentSession(ctx, profile, { force: true, timeout });
  const until = session.expiresAt ? `, valid until ${new Date(session.expiresAt).toISOString()}` : '';
  say(ctx, `Refreshed ${profile.name}${until}.`);
}
