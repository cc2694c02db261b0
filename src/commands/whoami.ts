import { out, outJson, type Ctx } from '../io/context.js';
import { printable } from '../io/escape.js';
import { jwtClaims, loadDialect } from '../tokens/dialect.js';
import { currentSession, dialectEnv, httpOptions } from '../tokens/session.js';
import { resolveProfile } from '../tokens/store.js';

export interface WhoamiOptions {
  profile?: string;
  json?: boolean;
}

/** Who the session belongs to (the server's answer where it has one, else the token's `sub`). */
export async function run(opts: WhoamiOptions, ctx: Ctx): Promise<void> {
  const profile = await resolveProfile(ctx, opts.profile);
  const session = await currentSession(ctx, profile);
  const dialect = await loadDialect(profile.dialect);
  const who = dialect.whoami
    ? await dialect.whoami(await dialectEnv(ctx, httpOptions(profile)), profile, session)
    : { user: (jwtClaims(session.accessToken)?.sub as string | undefined) ?? profile.username ?? 'unknown' };
  const expires = session.expiresAt ? new Date(session.expiresAt).toISOString() : null;
  const sessionEnds = session.refreshExpiresAt ? new Date(session.refreshExpiresAt).toISOString() : null;
  if (opts.json) {
    outJson(ctx, { user: who.user, profile: profile.name, url: profile.url, dialect: profile.dialect, token_expires_at: expires, refresh_expires_at: sessionEnds, details: who.details ?? null });
    return;
  }
  // The server chose the name: printed escaped, so it stays one line and moves no cursor.
  out(ctx, printable(String(who.user), 500));
  ctx.stderr.write(`profile ${profile.name} at ${profile.url} (${profile.dialect})` + (expires ? `; token valid until ${expires}` : '') + (sessionEnds ? `; session renewable until ${sessionEnds}` : '') + '\n');
}
