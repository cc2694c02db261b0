/**
 * Static credentials: API keys, HTTP Basic, H2O Wave access keys, and the login half of Digest
 * (src/tokens/dialects/digest.ts answers the challenges). Nothing is exchanged with a server:
 * login keeps the credential as it is sent (store.ts: the API key, or base64 of `user:password`),
 * refresh returns it unchanged (no expiry, never stale), and whoami names the user without a
 * request. Wire formats: shared/protocols.md §5.
 */
import { UsageError } from '../../io/errors.js';
import type { Authorization, Credentials, Dialect, LoginResult, WhoAmI } from '../dialect.js';
import { encodeStaticCredentials, headerLine, staticCredentials } from '../dialect.js';
import type { Profile, Session } from '../store.js';

export type ApiKeyPlacement = NonNullable<Profile['apiKey']>;

/** Dialects that keep a user (or access key ID) and a password (or secret). */
export type PasswordDialect = 'basic' | 'digest' | 'wave';

/** `Authorization: Apikey KEY`, the auth-adventures servers' and Tiled's form. */
export const DEFAULT_API_KEY: ApiKeyPlacement = { in: 'header', name: 'Authorization', scheme: 'Apikey' };
/** `?api_key=KEY`, the other form those servers accept. */
export const DEFAULT_QUERY_PARAMETER = 'api_key';

/** RFC 7230 `token`: what a header name and an auth scheme may be made of. */
const HTTP_TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Keys, IDs and secrets are sent in headers and URLs: visible ASCII only. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

/** How `login --dialect apikey` was told to send the key. */
export interface ApiKeyFlags {
  /** --api-key-in: header or query. */
  in?: string;
  /** --api-key-name: the header or query parameter name. */
  name?: string;
  /** --api-key-scheme: the word before the key in the header; `none` for the bare key. */
  scheme?: string;
}

/**
 * Where an API key goes, from login's flags over what the profile kept from its last login:
 * a header (`Authorization` by default, scheme `Apikey` for Authorization and none for any other
 * header, e.g. `X-API-Key: KEY`) or a query parameter (`api_key` by default). The names follow
 * OpenAPI's apiKey security scheme (`in`, `name`).
 */
export function apiKeyPlacement(flags: ApiKeyFlags, previous?: ApiKeyPlacement): ApiKeyPlacement {
  if (flags.in !== undefined && flags.in !== 'header' && flags.in !== 'query') {
    throw new UsageError(`--api-key-in must be header or query, got ${JSON.stringify(flags.in)}`);
  }
  const where = (flags.in ?? previous?.in ?? 'header') as ApiKeyPlacement['in'];
  // A key moved from header to query (or back) starts from that place's defaults.
  const kept = previous?.in === where ? previous : undefined;
  if (where === 'query') {
    if (flags.scheme !== undefined) throw new UsageError('--api-key-scheme is for keys sent in a header, not as a query parameter');
    const name = flags.name ?? kept?.name ?? DEFAULT_QUERY_PARAMETER;
    checkParameterName(name);
    return { in: 'query', name };
  }
  const name = flags.name ?? kept?.name ?? DEFAULT_API_KEY.name;
  if (!HTTP_TOKEN.test(name)) throw new UsageError(`--api-key-name: ${JSON.stringify(name)} is not a valid HTTP header name`);
  let scheme: string | undefined;
  if (flags.scheme !== undefined) {
    scheme = flags.scheme.toLowerCase() === 'none' ? undefined : flags.scheme;
    if (scheme !== undefined && !HTTP_TOKEN.test(scheme)) throw new UsageError(`--api-key-scheme: ${JSON.stringify(flags.scheme)} is not a valid scheme (one word, e.g. Apikey, Bearer, Token; or none)`);
  } else if (kept && kept.name.toLowerCase() === name.toLowerCase()) {
    scheme = kept.scheme;
  } else {
    scheme = name.toLowerCase() === 'authorization' ? DEFAULT_API_KEY.scheme : undefined;
  }
  return scheme === undefined ? { in: 'header', name } : { in: 'header', name, scheme };
}

function checkParameterName(name: string): void {
  if (name === '' || name.length > 200 || /[\s\p{Cc}]/u.test(name)) {
    throw new UsageError(`--api-key-name: ${JSON.stringify(name)} is not a usable query parameter name`);
  }
}

/** The placement a profile saved, checked again (profiles.json is a file people edit). */
function placementOf(profile: Readonly<Profile>): ApiKeyPlacement {
  const saved = profile.apiKey;
  if (!saved) return DEFAULT_API_KEY;
  return apiKeyPlacement({ in: saved.in, name: saved.name, ...(saved.in === 'header' && { scheme: saved.scheme ?? 'none' }) });
}

/** The user of a Basic, Digest or Wave profile: it goes into `user:password`, so no colon. */
function checkUser(dialect: PasswordDialect, username: string): void {
  const who = dialect === 'wave' ? 'access key ID' : 'user name';
  if (username === '') throw new UsageError(`the ${who} is empty`);
  if (username.includes(':')) {
    throw new UsageError(dialect === 'digest' ? `a user name with ":" cannot be stored for Digest` : `a ${who} with ":" cannot be sent with HTTP Basic (RFC 7617)`);
  }
  if (/\p{Cc}/u.test(username)) throw new UsageError(`the ${who} has control characters (a line break?)`);
}

function staticSession(accessToken: string, tokenType: string, nowMs: number): Session {
  return { accessToken, tokenType, obtainedAt: nowMs };
}

/**
 * `login` of a dialect that keeps a user and password (Basic, Digest, Wave): no request is made;
 * the pair is kept as base64 of `user:password`. Wave takes the pair from `accessKey` first
 * (--access-key-stdin, or $H2O_WAVE_ACCESS_KEY_ID and _SECRET), else from `credentials`.
 */
export function loginWithPassword(name: PasswordDialect): Dialect['login'] {
  return async (env, request): Promise<LoginResult> => {
    const given = (name === 'wave' ? await request.accessKey?.() : undefined) ?? (await request.credentials());
    checkUser(name, given.username);
    return {
      session: staticSession(encodeStaticCredentials(given), name, env.ctx.now()),
      settings: { username: given.username },
    };
  };
}

/** A static credential does not expire: refreshing keeps it as it is. */
export async function refreshStatic(_env: unknown, _profile: Profile, session: Session): Promise<Session> {
  return session;
}

/** Who a Basic, Digest or Wave profile logs in as: the user (access key ID) it keeps. */
export async function whoamiWithPassword(_env: unknown, profile: Profile, session: Session): Promise<WhoAmI> {
  return { user: staticCredentials(session).username || profile.username || 'unknown' };
}

/** Basic and Wave: the `Authorization: Basic` header of every request. */
function authorizeBasic(profile: Profile, session: Session): Authorization {
  const [name, value] = headerLine(profile, session);
  return { headers: { [name]: value } };
}

export const apikey: Dialect = {
  name: 'apikey',

  async login(env, { profile, apiKey }) {
    const placement = placementOf(profile);
    if (!apiKey) throw new UsageError('no way to read the API key');
    const key = await apiKey();
    if (!VISIBLE_ASCII.test(key)) {
      throw new UsageError('the API key has characters a key cannot have (spaces, line breaks, control or non-ASCII characters)');
    }
    return {
      session: staticSession(key, 'apikey', env.ctx.now()),
      settings: { apiKey: placement },
    };
  },

  refresh: refreshStatic,

  async whoami(_env, _profile, session) {
    // Never the key: its last four characters, and those only when they are a small part of it.
    const key = session.accessToken;
    return { user: key.length >= 16 ? `API key …${key.slice(-4)}` : 'API key' };
  },

  authorize(profile, session) {
    const placement = placementOf(profile);
    if (placement.in === 'query') return { headers: {}, query: { [placement.name]: session.accessToken } };
    return { headers: { [placement.name]: placement.scheme ? `${placement.scheme} ${session.accessToken}` : session.accessToken } };
  },
};

export const basic: Dialect = {
  name: 'basic',
  login: loginWithPassword('basic'),
  refresh: refreshStatic,
  whoami: whoamiWithPassword,
  authorize: authorizeBasic,
};

export const wave: Dialect = {
  name: 'wave',
  login: loginWithPassword('wave'),
  refresh: refreshStatic,
  whoami: whoamiWithPassword,
  authorize: authorizeBasic,
};

const ID_VAR = 'H2O_WAVE_ACCESS_KEY_ID';
const SECRET_VAR = 'H2O_WAVE_ACCESS_KEY_SECRET';

/**
 * The access key pair in what `keysmith create-access-key` prints: the lines
 * `H2O_WAVE_ACCESS_KEY_ID=...` and `H2O_WAVE_ACCESS_KEY_SECRET=...`, also as `export NAME=...`
 * with the value in single or double quotes (`--export`), or its `--json` line
 * {"id","secret"}. Blank lines, `#` comments and other variables of an env file are skipped.
 * Errors never quote the input: it holds the secret.
 */
export function parseAccessKey(text: string): Credentials {
  const body = text.replace(/^\uFEFF/, '');
  if (body.trim() === '') throw new UsageError('no access key on standard input (it was empty)', 'pipe the output of: keysmith create-access-key');
  if (body.trimStart().startsWith('{')) return accessKeyFromJson(body);
  const found: Partial<Record<typeof ID_VAR | typeof SECRET_VAR, string>> = {};
  const lines = body.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) throw new UsageError(`standard input line ${i + 1} is not NAME=value; expected the output of keysmith create-access-key`);
    const variable = m[1]!;
    if (variable !== ID_VAR && variable !== SECRET_VAR) continue;
    if (found[variable] !== undefined) throw new UsageError(`standard input has more than one ${variable}= line: pipe one access key`, 'keysmith create-access-key (without -n)');
    found[variable] = unquote(m[2]!, variable);
  }
  for (const variable of [ID_VAR, SECRET_VAR] as const) {
    if (found[variable] === undefined) throw new UsageError(`standard input has no ${variable}= line; expected the output of keysmith create-access-key`);
  }
  return { username: found[ID_VAR]!, password: found[SECRET_VAR]! };
}

/** A value as a shell would read it from `NAME='value'`, `NAME="value"` or `NAME=value`. */
function unquote(raw: string, variable: string): string {
  const quoted = /^'([^']*)'$/.exec(raw) ?? /^"([^"\\$`]*)"$/.exec(raw);
  return checkKeyPart(quoted ? quoted[1]! : raw, `${variable} on standard input`);
}

/** IDs and secrets travel in a Basic header and in environment variables: visible ASCII, no quotes. */
function checkKeyPart(value: string, what: string): string {
  if (value === '') throw new UsageError(`${what} is empty`);
  if (!VISIBLE_ASCII.test(value) || /["'\\]/.test(value)) throw new UsageError(`${what} has characters an access key cannot have`);
  return value;
}

function accessKeyFromJson(body: string): Credentials {
  const lines = body.split('\n').filter((l) => l.trim() !== '');
  if (lines.length > 1) throw new UsageError('standard input has more than one access key: pipe one', 'keysmith create-access-key --json (without -n)');
  let value: unknown;
  try {
    value = JSON.parse(lines[0]!);
  } catch {
    throw new UsageError('standard input starts like JSON but is not valid JSON; expected the output of keysmith create-access-key [--json]');
  }
  const { id, secret } = (value ?? {}) as { id?: unknown; secret?: unknown };
  if (typeof id !== 'string' || typeof secret !== 'string') throw new UsageError('the JSON on standard input has no "id" and "secret" strings');
  return { username: checkKeyPart(id, 'the access key ID on standard input'), password: checkKeyPart(secret, 'the access key secret on standard input') };
}

/** A pair from $H2O_WAVE_ACCESS_KEY_ID and $H2O_WAVE_ACCESS_KEY_SECRET; undefined when neither is set. */
export function accessKeyFromEnv(env: Readonly<Record<string, string | undefined>>): Credentials | undefined {
  const id = env[ID_VAR];
  const secret = env[SECRET_VAR];
  if (!id && !secret) return undefined;
  if (!id || !secret) throw new UsageError(`$${id ? SECRET_VAR : ID_VAR} is not set (both are needed)`, `set both, or give the ID with -u and the secret with --password-stdin`);
  return { username: checkKeyPart(id, `$${ID_VAR}`), password: checkKeyPart(secret, `$${SECRET_VAR}`) };
}
