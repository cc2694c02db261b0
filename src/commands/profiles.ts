import { out, outJson, say, type Ctx } from '../io/context.js';
import { NotFoundError, UsageError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import { closest } from '../io/words.js';
import { deleteProfile, deleteSession, listProfiles, sessionSummary, setDefaultProfile, type Profile } from '../tokens/store.js';

export interface ProfilesOptions {
  json?: boolean;
  names?: boolean;
  default?: string;
  delete?: string;
}

/** List profiles (the default marked with *), change the default, or delete one. */
export async function run(opts: ProfilesOptions, ctx: Ctx): Promise<void> {
  const actions = [opts.default !== undefined && '--default', opts.delete !== undefined && '--delete', opts.json && '--json', opts.names && '--names'].filter(Boolean);
  if (actions.length > 1) throw new UsageError(`${actions.join(' and ')} do not go together`);
  const { default: def, profiles } = await listProfiles(ctx);
  if (opts.default !== undefined) {
    await setDefaultProfile(ctx, known(profiles, opts.default).name);
    say(ctx, `Default profile is now ${opts.default}.`);
    return;
  }
  if (opts.delete !== undefined) return remove(ctx, known(profiles, opts.delete));
  if (profiles.length === 0) say(ctx, 'No profiles yet: log in with keysmith login URL');
  if (opts.names) {
    for (const p of profiles) out(ctx, p.name);
    return;
  }
  const rows = await Promise.all(
    profiles.map(async (p) => {
      // Without asking the OS keyring: listing profiles never needs a secret.
      const session = await sessionSummary(ctx, p.name).catch(() => null);
      return {
        name: p.name,
        url: p.url,
        dialect: p.dialect,
        username: p.username ?? null,
        default: p.name === def,
        logged_in: session !== null,
        expires_at: session?.expiresAt ? new Date(session.expiresAt).toISOString() : null,
        storage: session?.storage ?? null,
      };
    }),
  );
  if (opts.json) return outJson(ctx, rows);
  for (const r of rows) out(ctx, `${r.default ? '*' : ' '} ${r.name}\t${r.url}\t${r.dialect}\t${printable(r.username ?? '-', 200)}\t${r.logged_in ? 'logged in' : 'logged out'}`);
}

/** The profile called `name`; a NotFoundError naming the closest one when there is none. */
function known(profiles: Profile[], name: string): Profile {
  const profile = profiles.find((p) => p.name === name);
  if (profile) return profile;
  const names = profiles.map((p) => p.name);
  const near = closest(name, names);
  throw new NotFoundError(`no profile ${name}`, near ? `did you mean ${near}? (profiles: ${names.join(', ')})` : names.length ? `profiles: ${names.join(', ')}` : 'there are no profiles yet');
}

/** Log out (revoking where the server can), then forget the profile. */
async function remove(ctx: Ctx, profile: Profile): Promise<void> {
  // Whether there is a session, without asking the keyring for its secrets.
  if (await sessionSummary(ctx, profile.name).catch(() => null)) await (await import('./logout.js')).logout(ctx, profile);
  else await deleteSession(ctx, profile.name); // an unreadable session file goes too
  await deleteProfile(ctx, profile.name);
  const { default: def } = await listProfiles(ctx);
  say(ctx, `Deleted profile ${profile.name}.${def ? ` The default profile is ${def}.` : ''}`);
}
