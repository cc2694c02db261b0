/**
 * `keysmith api-key create|list|revoke` for a Tiled profile (wire-reference §1.9). A new key's
 * secret is printed once on stdout, or, with --save-profile, kept as an `apikey` profile on the
 * same server and not printed: CI then runs `keysmith token --profile NAME` (or `api`, `exec`)
 * without a password or a refresh token.
 */
import { out, outJson, say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import type { DialectEnv } from '../tokens/dialect.js';
import { currentSession, dialectEnv, httpOptions, refreshAfterRejection, withSessionLock } from '../tokens/session.js';
import { checkProfileName, deleteSession, findProfile, listProfiles, readSession, resolveProfile, saveProfile, writeSession, type Profile, type Session } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface ApiKeyOptions {
  profile?: string;
  expiresIn?: string;
  /** Repeatable; each value may hold several scopes separated by commas or spaces. */
  scopes?: string[];
  note?: string;
  saveProfile?: string;
  json?: boolean;
  timeout?: string;
}

const ACTIONS = ['create', 'list', 'revoke'] as const;
/** What Tiled's first_eight is: the first 8 hex characters of the secret. */
const FIRST_EIGHT = /^[0-9a-f]{8}$/i;

export async function run(action: string, firstEight: string | undefined, opts: ApiKeyOptions, ctx: Ctx): Promise<void> {
  if (!(ACTIONS as readonly string[]).includes(action)) throw new UsageError(`unknown action ${JSON.stringify(action)}; use api-key ${ACTIONS.join(', ')}`);
  if (action !== 'revoke' && firstEight !== undefined) throw new UsageError(`api-key ${action} takes no argument (got ${JSON.stringify(firstEight)})`);
  if (action !== 'create') {
    const stray = (['expiresIn', 'scopes', 'note', 'saveProfile'] as const).filter((k) => opts[k] !== undefined);
    if (stray.length) throw new UsageError(`--${stray.map(kebab).join(', --')} ${stray.length === 1 ? 'only goes' : 'only go'} with api-key create`);
  }
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  if (action === 'create') return create(opts, ctx, timeout);
  if (action === 'list') return list(opts, ctx, timeout);
  if (firstEight === undefined) throw new UsageError('which key? api-key revoke FIRST_EIGHT (see them with: keysmith api-key list)');
  if (!FIRST_EIGHT.test(firstEight)) throw new UsageError(`${JSON.stringify(firstEight)} is not the first eight characters of a Tiled API key (8 hex digits)`);
  return revoke(firstEight.toLowerCase(), opts, ctx, timeout);
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** The Tiled profile to act for: API keys are a Tiled feature. */
async function tiledProfile(ctx: Ctx, name: string | undefined): Promise<Profile> {
  const profile = await resolveProfile(ctx, name);
  if (profile.dialect !== 'tiled') {
    throw new UsageError(`api-key works with Tiled profiles; profile ${profile.name} is ${profile.dialect}`, 'pass --profile with a profile from `keysmith login` to a Tiled server');
  }
  return profile;
}

/**
 * Run `fn` with a fresh session (refreshed first when stale, as `token` does). If the server still
 * says the access token has expired (its clock ahead of ours), refresh now (or take the token
 * another process has just refreshed) and try once more.
 */
async function withSession<T>(ctx: Ctx, profile: Profile, timeout: number | undefined, fn: (env: DialectEnv, session: Session) => Promise<T>): Promise<T> {
  const { AccessTokenExpiredError } = await import('../tokens/tiled-apikeys.js');
  const session = await currentSession(ctx, profile, { timeout });
  const env = await dialectEnv(ctx, httpOptions(profile, { timeout }));
  try {
    return await fn(env, session);
  } catch (err) {
    if (!(err instanceof AccessTokenExpiredError)) throw err;
    return fn(env, await refreshAfterRejection(ctx, profile, session, { timeout }));
  }
}

function parseScopes(values: string[] | undefined): string[] | null {
  if (values === undefined) return null;
  const scopes = values.flatMap((v) => v.split(/[\s,]+/)).filter(Boolean);
  if (scopes.length === 0) throw new UsageError('--scopes needs at least one scope, e.g. --scopes read:metadata,read:data');
  return [...new Set(scopes)];
}

async function create(opts: ApiKeyOptions, ctx: Ctx, timeout: number | undefined): Promise<void> {
  const { createApiKey, revokeApiKey } = await import('../tokens/tiled-apikeys.js');
  let expiresIn: number | null = null;
  if (opts.expiresIn !== undefined) {
    expiresIn = parseSeconds(opts.expiresIn, '--expires-in', 0, 1);
    if (!Number.isInteger(expiresIn)) throw new UsageError(`--expires-in must be a whole number of seconds, got ${JSON.stringify(opts.expiresIn)}`);
  }
  const scopes = parseScopes(opts.scopes);
  const profile = await tiledProfile(ctx, opts.profile);
  // The target profile is checked before the key exists: a key nobody can use is not made.
  const target = opts.saveProfile === undefined ? undefined : await checkTarget(ctx, opts.saveProfile, profile);
  const key = await withSession(ctx, profile, timeout, (env, session) => createApiKey(env, profile, session, { expiresIn, scopes, note: opts.note }));
  const { secret, ...shown } = key;
  const about = `API key ${printable(key.first_eight, 20)} for ${profile.url} (${key.expiration_time ? `expires ${printable(key.expiration_time, 40)}` : 'never expires'}; scopes ${printable(key.scopes.join(', ') || 'none', 200)})`;
  if (target === undefined) {
    if (opts.json) outJson(ctx, { ...shown, secret });
    else out(ctx, secret);
    say(ctx, `Created ${about}. The secret is shown this once: keep it now.`);
    return;
  }
  const saved: Profile = {
    name: target.name,
    url: profile.url,
    dialect: 'apikey',
    ...(profile.username !== undefined && { username: profile.username }),
    apiKey: { in: 'header', name: 'Authorization', scheme: 'Apikey' },
    ...(profile.cacert !== undefined && { cacert: profile.cacert }),
    ...(profile.timeout !== undefined && { timeout: profile.timeout }),
    // Kept where the Tiled profile keeps its secrets (--storage at its login), else the keyring when one answers.
    ...(profile.storage !== undefined && { storage: profile.storage }),
  };
  try {
    await withSessionLock(ctx, target.name, timeout ?? profile.timeout ?? 30, async () => {
      // Checked again under the lock: a login may have taken the name since.
      await checkTarget(ctx, target.name, profile);
      const before = await readSession(ctx, target.name);
      try {
        await writeSession(ctx, target.name, { accessToken: secret, tokenType: 'apikey', obtainedAt: ctx.now() }, { dialect: 'apikey', storage: profile.storage ?? 'auto' });
        await saveProfile(ctx, saved, { makeDefault: false });
      } catch (err) {
        await (before ? writeSession(ctx, target.name, before) : deleteSession(ctx, target.name)).catch(() => {});
        throw err;
      }
    });
  } catch (err) {
    // Not saved and never printed: nobody could use the key, so it should not exist.
    await withSession(ctx, profile, timeout, (env, session) => revokeApiKey(env, profile, session, key.first_eight)).catch(() => {});
    throw err;
  }
  if (opts.json) outJson(ctx, { ...shown, profile: target.name });
  say(ctx, `Created ${about} and saved it as profile ${target.name}${target.replaces ? ' (replacing its previous key, which stays valid on the server until revoked)' : ''}.`);
  say(ctx, `Use it with: keysmith token --profile ${target.name}`);
}

/** The profile --save-profile names: a new name, or an API-key profile to replace. */
async function checkTarget(ctx: Ctx, name: string, source: Profile): Promise<{ name: string; replaces: boolean }> {
  checkProfileName(name);
  if (name === source.name) throw new UsageError(`--save-profile ${name} would replace the Tiled profile the key is made with; choose another name`);
  const existing = await findProfile(ctx, name);
  if (existing && existing.dialect !== 'apikey') {
    throw new UsageError(`profile ${name} already exists (${existing.dialect}); choose another name for the API key`);
  }
  return { name, replaces: existing !== undefined };
}

async function list(opts: ApiKeyOptions, ctx: Ctx, timeout: number | undefined): Promise<void> {
  const { apiKeyLine, listApiKeys } = await import('../tokens/tiled-apikeys.js');
  const profile = await tiledProfile(ctx, opts.profile);
  const keys = await withSession(ctx, profile, timeout, (env, session) => listApiKeys(env, profile, session));
  if (opts.json) return outJson(ctx, keys);
  for (const key of keys) out(ctx, apiKeyLine(key));
  if (keys.length === 0) say(ctx, `No API keys for ${profile.url} (profile ${profile.name}).`);
}

async function revoke(firstEight: string, opts: ApiKeyOptions, ctx: Ctx, timeout: number | undefined): Promise<void> {
  const { revokeApiKey } = await import('../tokens/tiled-apikeys.js');
  const profile = await tiledProfile(ctx, opts.profile);
  await withSession(ctx, profile, timeout, (env, session) => revokeApiKey(env, profile, session, firstEight));
  say(ctx, `Revoked API key ${firstEight} on ${profile.url}.`);
  // A profile saved with this key stops working now: say which, so nobody wonders why.
  const { profiles } = await listProfiles(ctx);
  for (const p of profiles) {
    if (p.dialect !== 'apikey' || p.url !== profile.url) continue;
    const session = await readSession(ctx, p.name, { secrets: 'use' }).catch(() => null);
    if (session?.accessToken.toLowerCase().startsWith(firstEight)) say(ctx, `Profile ${p.name} held this key; remove it with: keysmith profiles --delete ${p.name}`);
  }
}
