/**
 * `keysmith login URL`: exchange credentials for tokens (or keep a static credential) and save the
 * session under a profile. Logging in again to a known profile reuses everything it stored.
 */
import { resolve } from 'node:path';
import { say, type Ctx } from '../io/context.js';
import { printable } from '../io/escape.js';
import { UsageError } from '../io/errors.js';
import { readAll, readSecret } from '../io/input.js';
import type { Credentials, Dialect, DialectEnv, LoginRequest } from '../tokens/dialect.js';
import { checkSession, loadDialect } from '../tokens/dialect.js';
import { DIALECT_NAMES, DIALECTS, isDialectName, isStatic, type DialectInfo } from '../tokens/dialects/index.js';
import { LOOPBACK, parseServerUrl } from '../tokens/http.js';
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
  /** API keys (--dialect apikey): the key from stdin, and where it is sent. */
  apiKeyStdin?: boolean;
  apiKeyIn?: string;
  apiKeyName?: string;
  apiKeyScheme?: string;
  /** Wave (--dialect wave): the output of `keysmith create-access-key` on stdin. */
  accessKeyStdin?: boolean;
  /** Where the secrets go: keyring or file (default: the profile's choice, else the keyring when one answers). */
  storage?: string;
}

export async function run(url: string | undefined, opts: LoginOptions, ctx: Ctx): Promise<void> {
  const wanted = opts.dialect ?? 'auto';
  if (wanted !== 'auto' && !isDialectName(wanted)) throw new UsageError(`unknown dialect ${JSON.stringify(opts.dialect)}; choose one of auto, ${DIALECT_NAMES.join(', ')}`);
  const readers = STDIN_FLAGS.filter(([key]) => opts[key]).map(([, flag]) => flag);
  if (readers.length > 1) throw new UsageError(`${readers.join(' and ')} cannot both read standard input`);
  const { base, previous } = await whichServer(ctx, url, opts.profile);
  const name = checkProfileName(opts.profile ?? previous?.name ?? new URL(base).host);
  // Logging in again to the same server reuses what the profile stored, unless told otherwise.
  const same = previous?.url === base ? previous : undefined;
  const timeout = opts.timeout === undefined ? same?.timeout : parseSeconds(opts.timeout, '--timeout', 30, 1);
  // Kept in the profile, so it must mean the same file from any directory.
  const cacert = opts.cacert ? resolve(ctx.cwd, opts.cacert) : same?.cacert;
  const http = { ...(timeout !== undefined && { timeout }), ...(cacert && { cacert }) };
  const env = await dialectEnv(ctx, httpOptions({ name, url: base, dialect: 'tiled', ...http }));
  // The dialect: --dialect, else the one this profile used (static dialects are never detected).
  const known = wanted === 'auto' ? same?.dialect : (wanted as DialectName);
  const dialect = known ? await loadDialect(known) : await detectDialect(env, base);
  checkOptions(dialect.name, opts);
  const reuse = same?.dialect === dialect.name ? same : undefined;
  const profile = await givenProfile(name, base, dialect.name, http, opts, reuse);

  const { session, settings } = await dialect.login(env, {
    profile,
    credentials: () => askCredentials(ctx, opts, dialect.name, same?.username),
    clientSecret: (required) => askClientSecret(ctx, opts, required),
    apiKey: () => askApiKey(ctx, opts),
    accessKey: () => askAccessKey(ctx, opts),
    device: { qr: opts.qr !== false, json: Boolean(opts.json) },
  } satisfies LoginRequest);
  const saved = withoutUndefined({ ...profile, ...settings, name, url: base, dialect: dialect.name });
  // Nothing is saved before the answer has passed every check; the session and the profile that
  // says which server it belongs to change together, under the lock a refresh takes.
  checkSession(session, 'login');
  const storage = (opts.storage ?? previous?.storage) as Profile['storage'];
  await withSessionLock(ctx, name, env.http.timeout ?? 30, async () => {
    await writeSession(ctx, name, session, { dialect: dialect.name, storage: storage ?? 'auto' });
    await saveProfile(ctx, storage ? { ...saved, storage } : saved);
  });
  say(ctx, confirmation(saved, session.expiresAt));
}

/** The --*-stdin flags: at most one of them can have standard input. */
const STDIN_FLAGS = [
  ['passwordStdin', '--password-stdin'],
  ['clientSecretStdin', '--client-secret-stdin'],
  ['apiKeyStdin', '--api-key-stdin'],
  ['accessKeyStdin', '--access-key-stdin'],
] as const;

/**
 * The server and the profile it had before: `login` (the default profile, or $KEYSMITH_PROFILE),
 * `login --profile NAME`, or `login URL`, which finds the profile that already uses that URL.
 */
async function whichServer(ctx: Ctx, url: string | undefined, flag: string | undefined): Promise<{ base: string; previous?: Profile }> {
  const { default: def, profiles } = await listProfiles(ctx);
  const named = (name: string | undefined) => profiles.find((p) => p.name === name);
  if (url === undefined) {
    const previous = named(flag ?? (ctx.env.KEYSMITH_PROFILE || def));
    if (!previous) throw new UsageError('which server? give its URL: keysmith login URL', flag ? `keysmith login URL --profile ${flag}` : undefined);
    return { base: previous.url, previous };
  }
  const base = serverUrl(ctx, url);
  if (flag !== undefined) return { base, previous: named(flag) };
  const users = profiles.filter((p) => p.url === base);
  const host = new URL(base).host;
  if (users.length <= 1) return { base, previous: users[0] ?? named(host) };
  const chosen = users.find((p) => p.name === def) ?? users.find((p) => p.name === host);
  if (!chosen) throw new UsageError(`several profiles use ${base}: ${users.map((p) => p.name).join(', ')}`, `choose one: keysmith login --profile ${users[0]!.name}`);
  return { base, previous: chosen };
}

/**
 * A server URL as typed. A bare host (`tiled.example.com`, `localhost:8000`) gets https://, or
 * http:// on this machine (localhost, 127.x, [::1]), and the URL chosen is said on stderr.
 */
function serverUrl(ctx: Ctx, raw: string): string {
  let text = raw;
  const bare = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? undefined : /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::\d{1,5})?(?:\/\S*)?$/.exec(raw);
  if (bare) text = `${LOOPBACK.test(bare[1]!) ? 'http' : 'https'}://${raw}`;
  const base = parseServerUrl(ctx, text).href.replace(/\/+$/, '');
  if (bare) say(ctx, `No scheme given: using ${base}`);
  return base;
}

/** Options that only some dialects take: refused, with the reason, by the others. */
function checkOptions(dialect: DialectName, opts: LoginOptions): void {
  if (dialect !== 'oauth2' && (opts.clientId || opts.clientSecretStdin || opts.scope)) {
    throw new UsageError('--client-id, --client-secret-stdin and --scope are for OAuth 2.0 servers (--dialect oauth2)');
  }
  if (dialect !== 'apikey' && (opts.apiKeyStdin || opts.apiKeyIn !== undefined || opts.apiKeyName !== undefined || opts.apiKeyScheme !== undefined)) {
    throw new UsageError('--api-key-stdin, --api-key-in, --api-key-name and --api-key-scheme are for API keys (--dialect apikey)');
  }
  if (dialect !== 'wave' && opts.accessKeyStdin) throw new UsageError('--access-key-stdin is for H2O Wave access keys (--dialect wave)');
  if (dialect === 'apikey' && (opts.username || opts.passwordStdin)) {
    throw new UsageError('an API key profile has no user or password', 'give the key with --api-key-stdin, $KEYSMITH_API_KEY or at the prompt');
  }
  if (opts.accessKeyStdin && opts.username) throw new UsageError('--access-key-stdin reads the ID and the secret; leave out --username');
  if (isStatic(dialect) && opts.flow) throw new UsageError(`--flow is for token servers; a ${dialect} profile keeps its credential as given`);
  const flows = DIALECTS[dialect].flows as readonly string[];
  if (opts.flow && !flows.includes(opts.flow)) throw new UsageError(`${dialect} servers log in with --flow ${flows.join(' or ')}, not ${opts.flow}`);
}

/**
 * The profile as the user gave it: flags, over the settings of the profile's last login to the
 * same server with the same dialect (provider, flow, client ID, scope, token TTL, API-key placement).
 */
async function givenProfile(name: string, base: string, dialect: DialectName, http: { timeout?: number; cacert?: string }, opts: LoginOptions, reuse: Profile | undefined): Promise<Profile> {
  // On Tiled the provider decides the flow.
  const flow = opts.flow ?? (dialect === 'tiled' ? undefined : reuse?.flow);
  const provider = opts.provider ?? reuse?.provider;
  const clientId = opts.clientId ?? reuse?.clientId;
  const scope = opts.scope ?? reuse?.scope;
  const tokenTtl = opts.tokenTtl !== undefined ? parseSeconds(opts.tokenTtl, '--token-ttl', 1800, 1) : reuse?.tokenTtl;
  let apiKey: Profile['apiKey'];
  if (dialect === 'apikey') {
    const { apiKeyPlacement } = await import('../tokens/dialects/static.js');
    apiKey = apiKeyPlacement({ in: opts.apiKeyIn, name: opts.apiKeyName, scheme: opts.apiKeyScheme }, reuse?.apiKey);
  }
  return {
    name,
    url: base,
    dialect,
    ...(provider && { provider }),
    ...http,
    ...(tokenTtl !== undefined && { tokenTtl }),
    ...(flow && { flow }),
    ...(clientId && { clientId }),
    ...(scope && { scope }),
    ...(apiKey && { apiKey }),
  };
}

/** A profile without the fields a dialect cleared (set to undefined). */
function withoutUndefined(profile: Profile): Profile {
  return Object.fromEntries(Object.entries(profile).filter(([, value]) => value !== undefined)) as unknown as Profile;
}

/** The one line a login ends with. */
function confirmation(profile: Profile, expiresAt: number | undefined): string {
  const where = `(profile ${profile.name}, ${profile.dialect})`;
  const user = printable(profile.username ?? 'unknown', 200);
  switch (profile.dialect) {
    case 'apikey': {
      const key = profile.apiKey!;
      const how = key.in === 'query' ? `?${key.name}=KEY` : `${key.name}: ${key.scheme ? `${key.scheme} ` : ''}KEY`;
      return `Saved the API key for ${profile.url} ${where}, sent as ${how}.`;
    }
    case 'wave':
      return `Saved access key ${user} for ${profile.url} ${where}.`;
    case 'basic':
    case 'digest':
      return `Saved the password of ${user} for ${profile.url} ${where}.`;
    default: {
      const until = expiresAt ? `; token valid until ${new Date(expiresAt).toISOString()}` : '';
      return `Logged in to ${profile.url} as ${user} ${where}${until}.`;
    }
  }
}

async function askCredentials(ctx: Ctx, opts: LoginOptions, dialect: DialectName, previousUser: string | undefined): Promise<Credentials> {
  const wave = dialect === 'wave';
  let username = opts.username || ctx.env.KEYSMITH_USERNAME || previousUser;
  if (!username) {
    if (!(ctx.isTTY.stdin && ctx.isTTY.stderr)) {
      throw new UsageError(`no ${wave ? 'access key ID' : 'user name'} given and no terminal to ask on`, wave ? 'pipe `keysmith create-access-key` into --access-key-stdin, or set H2O_WAVE_ACCESS_KEY_ID and H2O_WAVE_ACCESS_KEY_SECRET' : 'pass --username or set KEYSMITH_USERNAME');
    }
    const { promptInput } = await import('../io/prompt.js');
    username = await promptInput(ctx, wave ? 'Access key ID:' : 'User name:');
  }
  const password = await readSecret(ctx, {
    what: wave ? 'access key secret' : 'password',
    stdin: opts.passwordStdin ? 'always' : 'never',
    envVar: 'KEYSMITH_PASSWORD',
    prompt: wave ? `Secret of ${username}:` : `Password for ${username}:`,
    howTo: 'pipe it with --password-stdin or set KEYSMITH_PASSWORD',
  });
  return { username, password };
}

/** An API key, never from argv: --api-key-stdin, $KEYSMITH_API_KEY, or a masked prompt. */
function askApiKey(ctx: Ctx, opts: LoginOptions): Promise<string> {
  return readSecret(ctx, {
    what: 'API key',
    stdin: opts.apiKeyStdin ? 'always' : 'never',
    envVar: 'KEYSMITH_API_KEY',
    prompt: 'API key:',
    howTo: 'pipe it with --api-key-stdin or set KEYSMITH_API_KEY',
  });
}

/**
 * A Wave access key pair: --access-key-stdin (the output of `keysmith create-access-key`), else
 * $H2O_WAVE_ACCESS_KEY_ID and _SECRET; undefined when -u, --password-stdin or neither is given,
 * so that the ID and secret are asked for as a user and password.
 */
async function askAccessKey(ctx: Ctx, opts: LoginOptions): Promise<Credentials | undefined> {
  const { accessKeyFromEnv, parseAccessKey } = await import('../tokens/dialects/static.js');
  if (opts.accessKeyStdin) {
    if (ctx.isTTY.stdin) ctx.stderr.write('Reading the access key from standard input (end with Ctrl-D)...\n');
    return parseAccessKey(await readAll(ctx.stdin()));
  }
  if (opts.username || opts.passwordStdin) return undefined;
  return accessKeyFromEnv(ctx.env);
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
