import { out, outJson, type Ctx } from '../io/context.js';
import { printable } from '../io/escape.js';
import { listProfiles, readSession, setDefaultProfile } from '../tokens/store.js';

export interface ProfilesOptions {
  json?: boolean;
  default?: string;
}

/** List profiles (the default marked with *), or change the default. */
export async function run(opts: ProfilesOptions, ctx: Ctx): Promise<void> {
  if (opts.default) {
    await setDefaultProfile(ctx, opts.default);
    ctx.stderr.write(`Default profile is now ${opts.default}.\n`);
    return;
  }
  const { default: def, profiles } = await listProfiles(ctx);
  const rows = await Promise.all(
    profiles.map(async (p) => {
      const session = await readSession(ctx, p.name).catch(() => null);
      return {
        name: p.name,
        url: p.url,
        dialect: p.dialect,
        username: p.username ?? null,
        default: p.name === def,
        logged_in: session !== null,
        expires_at: session?.expiresAt ? new Date(session.expiresAt).toISOString() : null,
      };
    }),
  );
  if (opts.json) return outJson(ctx, rows);
  for (const r of rows) out(ctx, `${r.default ? '*' : ' '} ${r.name}\t${r.url}\t${r.dialect}\t${printable(r.username ?? '-', 200)}\t${r.logged_in ? 'logged in' : 'logged out'}`);
}
