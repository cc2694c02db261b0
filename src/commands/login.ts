/** `keysmith login URL`: exchange credentials for tokens and save the session under a profile. */
import { say, type Ctx } from '../io/context.js';
import { UsageError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import type { Credentials, Dialect, DialectEnv } from '../tokens/dialect.js';
import { loadDialect } from '../tokens/dialect.js';
import { joinUrl, parseServerUrl, request } from '../tokens/http.js';
import { dialectEnv, httpOptions } from '../tokens/session.js';
import { checkProfileName, listProfiles, saveProfile, writeSession, type DialectName, type Profile } from '../tokens/store.js';
import { parseSeconds } from './token.js';

export interface LoginOptions {
  profile?: string;
  dialect?: string;
  provider?: string;
  username?: string;
  passwordStdin?: boolean;
  timeout?: string;
  cacert?: string;
  tokenTtl?: string;
}

const DIALECTS = ['auto', 'tiled', 'basic-login', 'wavemaker'] as const;

export async function run(url: string | undefined, opts: LoginOptions, ctx: Ctx): Promise<void> {
  const wanted = (opts.dialect ?? 'auto') as (typeof DIALECTS)[number];
  if (!DIALECTS.includes(wanted)) throw new UsageError(`unknown dialect ${JSON.stringify(opts.dialect)}; choose one of ${DIALECTS.join(', ')}`);
  const previous = await previousProfile(ctx, opts.profile, url);
  const rawUrl = url ?? previous?.url;
  if (!rawUrl) throw new UsageError('which server? give its URL: keysmith login URL');
  const base = parseServerUrl(ctx, rawUrl).href.replace(/\/+$/, '');
  const name = checkProfileName(opts.profile ?? previous?.name ?? new URL(base).host);
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  const profile: Profile = {
    name,
    url: base,
    dialect: 'tiled',
    ...(opts.provider && { provider: opts.provider }),
    ...(timeout !== undefined && { timeout }),
    ...(opts.cacert && { cacert: opts.cacert }),
    ...(opts.tokenTtl !== undefined && { tokenTtl: parseSeconds(opts.tokenTtl, '--token-ttl', 1800, 1) }),
  };
  const env = await dialectEnv(ctx, httpOptions(profile));
  const dialect = wanted === 'auto' ? await detectDialect(env, base) : await loadDialect(wanted);
  profile.dialect = dialect.name;
  const session = await dialect.login(env, { profile, credentials: () => askCredentials(ctx, opts, previous?.username) });
  await writeSession(ctx, name, session);
  await saveProfile(ctx, profile);
  const until = session.expiresAt ? `; token valid until ${new Date(session.expiresAt).toISOString()}` : '';
  say(ctx, `Logged in to ${base} as ${profile.username ?? 'unknown'} (profile ${name}, ${dialect.name})${until}.`);
}

/** The profile to log in again to when no URL is given, or the one named by --profile. */
async function previousProfile(ctx: Ctx, name: string | undefined, url: string | undefined): Promise<Profile | undefined> {
  const { default: def, profiles } = await listProfiles(ctx);
  const wanted = name ?? (url === undefined ? ctx.env.KEYSMITH_PROFILE || def : undefined);
  return profiles.find((p) => p.name === wanted);
}

async function askCredentials(ctx: Ctx, opts: LoginOptions, previousUser: string | undefined): Promise<Credentials> {
  let username = opts.username || ctx.env.KEYSMITH_USERNAME || previousUser;
  if (!username) {
    if (!(ctx.isTTY.stdin && ctx.isTTY.stderr)) throw new UsageError('no user name given and no terminal to ask on', 'pass --username or set KEYSMITH_USERNAME');
    const { promptInput } = await import('../io/prompt.js');
    username = await promptInput(ctx, 'User name:');
  }
  const password = await readSecret(ctx, {
    what: 'password',
    stdin: opts.passwordStdin ? 'always' : 'never',
    envVar: 'KEYSMITH_PASSWORD',
    prompt: `Password for ${username}:`,
    howTo: 'pipe it with --password-stdin or set KEYSMITH_PASSWORD',
  });
  return { username, password };
}

/** auto: Tiled announces itself at /api/v1/; WaveMaker's token endpoint answers with its own error. */
async function detectDialect(env: DialectEnv, base: string): Promise<Dialect> {
  const { discoverTiled } = await import('../tokens/dialects/tiled.js');
  if (await discoverTiled(env, base)) return loadDialect('tiled');
  const res = await request(env.fetch, joinUrl(base, '/services/security/token'), { method: 'GET' }, env.http);
  if (res.status === 401 && JSON.stringify(res.json ?? '').includes('generate access token')) return loadDialect('wavemaker');
  throw new UsageError(`cannot tell what kind of server ${base} is`, 'pass --dialect tiled, basic-login or wavemaker');
}

export type { DialectName };
