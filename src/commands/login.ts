/** `keysmith login URL`: exchange credentials for tokens and save the session under a profile. */
import { resolve } from 'node:path';
import { say, type Ctx } from '../io/context.js';
import { printable } from '../io/escape.js';
import { UsageError } from '../io/errors.js';
import { readSecret } from '../io/input.js';
import type { Credentials, Dialect, DialectEnv } from '../tokens/dialect.js';
import { checkSession, loadDialect } from '../tokens/dialect.js';
import { DIALECT_NAMES, DIALECTS, isDialectName, type DialectInfo } from '../tokens/dialects/index.js';
import { parseServerUrl } from '../tokens/http.js';
import { dialectEnv, httpOptions, withSessionLock } from '../tokens/session.js';
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
  /** OAuth 2.0 (--dialect oauth2). */
  clientId?: string;
  clientSecretStdin?: boolean;
  scope?: string;
  /** device | client-credentials | password. */
  flow?: string;
  /** Device flows: false with --no-qr; --json also writes the codes as one JSON line to stderr. */
  qr?: boolean;
  json?: boolean;
}


export async function run(url: string | undefined, opts: LoginOptions, ctx: Ctx): Promise<void> {
  const wanted = opts.dialect ?? 'auto';
  if (wanted !== 'auto' && !isDialectName(wanted)) throw new UsageError(`unknown dialect ${JSON.stringify(opts.dialect)}; choose one of auto, ${DIALECT_NAMES.join(', ')}`);
  if (opts.passwordStdin && opts.clientSecretStdin) throw new UsageError('--password-stdin and --client-secret-stdin cannot both read standard input');
  const previous = await previousProfile(ctx, opts.profile, url);
  const rawUrl = url ?? previous?.url;
  if (!rawUrl) throw new UsageError('which server? give its URL: keysmith login URL');
  const base = parseServerUrl(ctx, rawUrl).href.replace(/\/+$/, '');
  const name = checkProfileName(opts.profile ?? previous?.name ?? new URL(base).host);
  const timeout = opts.timeout === undefined ? undefined : parseSeconds(opts.timeout, '--timeout', 30, 1);
  // Logging in again to the same server keeps its OAuth client, scope and flow unless told
  // otherwise (on Tiled the provider decides the flow).
  const same = previous?.url === base ? previous : undefined;
  const flow = opts.flow ?? (same?.dialect === 'tiled' ? undefined : same?.flow);
  const clientId = opts.clientId ?? same?.clientId;
  const scope = opts.scope ?? same?.scope;
  const profile: Profile = {
    name,
    url: base,
    dialect: 'tiled',
    ...(opts.provider && { provider: opts.provider }),
    ...(timeout !== undefined && { timeout }),
    // Kept in the profile, so it must mean the same file from any directory.
    ...(opts.cacert && { cacert: resolve(ctx.cwd, opts.cacert) }),
    ...(opts.tokenTtl !== undefined && { tokenTtl: parseSeconds(opts.tokenTtl, '--token-ttl', 1800, 1) }),
    ...(flow && { flow }),
    ...(clientId && { clientId }),
    ...(scope && { scope }),
  };
  const env = await dialectEnv(ctx, httpOptions(profile));
  const dialect = wanted === 'auto' ? await detectDialect(env, base) : await loadDialect(wanted as DialectName);
  profile.dialect = dialect.name;
  const flows = DIALECTS[dialect.name].flows as readonly string[];
  if (flow && !flows.includes(flow)) throw new UsageError(`${dialect.name} servers log in with --flow ${flows.join(' or ')}, not ${flow}`);
  if (dialect.name !== 'oauth2' && (opts.clientId || opts.clientSecretStdin || opts.scope)) {
    throw new UsageError('--client-id, --client-secret-stdin and --scope are for OAuth 2.0 servers (--dialect oauth2)');
  }
  const session = await dialect.login(env, {
    profile,
    credentials: () => askCredentials(ctx, opts, previous?.username),
    clientSecret: (required) => askClientSecret(ctx, opts, required),
    device: { qr: opts.qr !== false, json: Boolean(opts.json) },
  });
  // Nothing is saved before the answer has passed every check; the session and the profile that
  // says which server it belongs to change together, under the lock a refresh takes.
  checkSession(session, 'login');
  await withSessionLock(ctx, name, env.http.timeout ?? 30, async () => {
    await writeSession(ctx, name, session);
    await saveProfile(ctx, profile);
  });
  const until = session.expiresAt ? `; token valid until ${new Date(session.expiresAt).toISOString()}` : '';
  say(ctx, `Logged in to ${base} as ${printable(profile.username ?? 'unknown', 200)} (profile ${name}, ${dialect.name})${until}.`);
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

/**
 * A client secret, never from argv: --client-secret-stdin, $KEYSMITH_CLIENT_SECRET, or (when the
 * flow needs one) a masked prompt. Public clients (device flow) need none.
 */
async function askClientSecret(ctx: Ctx, opts: LoginOptions, required: boolean): Promise<string | undefined> {
  if (!required && !opts.clientSecretStdin && !ctx.env.KEYSMITH_CLIENT_SECRET) return undefined;
  return readSecret(ctx, {
    what: 'client secret',
    stdin: opts.clientSecretStdin ? 'always' : 'never',
    envVar: 'KEYSMITH_CLIENT_SECRET',
    prompt: 'Client secret:',
    howTo: 'pipe it with --client-secret-stdin or set KEYSMITH_CLIENT_SECRET',
  });
}

/** auto: ask each dialect that can tell, in the registry's order. */
async function detectDialect(env: DialectEnv, base: string): Promise<Dialect> {
  for (const name of DIALECT_NAMES) {
    const detect = (DIALECTS[name] as DialectInfo).detect;
    if (detect && (await detect(env, base))) return loadDialect(name);
  }
  throw new UsageError(`cannot tell what kind of server ${base} is`, `pass --dialect ${DIALECT_NAMES.join(', ')}`);
}
