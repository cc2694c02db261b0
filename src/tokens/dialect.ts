/**
 * A dialect is a small object of functions for one server family. The token store, locking and
 * refresh policy live once, outside all dialects (src/tokens/session.ts).
 */
import type { Ctx } from '../io/context.js';
import { KeysmithError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import { DIALECTS, isDialectName, type DialectName } from './dialects/index.js';
import type { Fetch, HttpOptions, HttpResponse } from './http.js';
import type { Profile, Session } from './store.js';

export interface DialectEnv {
  ctx: Ctx;
  fetch: Fetch;
  http: HttpOptions;
}

export interface Credentials {
  username: string;
  password: string;
}

export interface LoginRequest {
  /**
   * The profile as the user gave it (URL, and settings from flags or the previous login: provider,
   * flow, client ID, scope, API-key placement, ...). Read it; what the dialect learns goes into
   * `LoginResult.settings`, and login.ts saves the merge.
   */
  profile: Readonly<Profile>;
  /** Asks for username and password only when the dialect needs them. */
  credentials: () => Promise<Credentials>;
  /** API-key profiles: the key (--api-key-stdin, $KEYSMITH_API_KEY or a masked prompt). */
  apiKey?: () => Promise<string>;
  /**
   * Wave profiles: the access key pair from --access-key-stdin or $H2O_WAVE_ACCESS_KEY_ID and
   * _SECRET; undefined when neither was given (then `credentials` asks for ID and secret).
   */
  accessKey?: () => Promise<Credentials | undefined>;
  /** OAuth 2.0 client secret (--client-secret-stdin, $KEYSMITH_CLIENT_SECRET, or a prompt when required). */
  clientSecret?: (required: boolean) => Promise<string | undefined>;
  /** How a device flow shows its codes (--no-qr, --json). */
  device?: { qr: boolean; json: boolean };
}

/** Profile fields a dialect found at login (username, endpoints, provider, flow, scope, tokenTtl, ...). */
export type ProfileSettings = Partial<Omit<Profile, 'name' | 'url' | 'dialect'>>;

/** What a login obtained: the session, and what was learned about the server and the user. */
export interface LoginResult {
  session: Session;
  /** Saved over the profile's fields (a field set to undefined is removed). */
  settings: ProfileSettings;
}

export interface WhoAmI {
  user: string;
  details?: unknown;
}

/** What a request to the profile's server looks like, for `authorize`. */
export interface AuthRequest {
  method: string;
  url: URL;
  /** Digest: the 401 answer that challenged the first attempt. */
  challenge?: { wwwAuthenticate: string[]; setCookie: string[] };
}

/** How one request carries the profile's credential. */
export interface Authorization {
  headers: Record<string, string>;
  /** Query parameters to add (API keys sent as ?api_key=). */
  query?: Record<string, string>;
  /** Digest without a challenge yet: send without credentials, then answer the 401's challenge. */
  needsChallenge?: boolean;
}

export interface Dialect {
  name: DialectName;
  /**
   * The credential of one request, for `api` and `exec`. Dialects that do not define it send
   * `headerLine`'s header (bearer tokens, WaveMaker's token header, API keys, Basic).
   */
  authorize?(profile: Profile, session: Session, request: AuthRequest): Authorization | Promise<Authorization>;
  login(env: DialectEnv, request: LoginRequest): Promise<LoginResult>;
  /** Get a fresh session; throw SessionDeadError when the server says the session is over. */
  refresh(env: DialectEnv, profile: Profile, session: Session): Promise<Session>;
  /** Revoke the session on the server, where the dialect can; false when the server offers no way to. */
  revoke?(env: DialectEnv, profile: Profile, session: Session): Promise<boolean | void>;
  whoami?(env: DialectEnv, profile: Profile, session: Session): Promise<WhoAmI>;
}

export async function loadDialect(name: DialectName): Promise<Dialect> {
  if (!isDialectName(name)) throw new KeysmithError(`dialect ${printable(String(name), 40)} is not supported by this version of keysmith`, 2);
  return DIALECTS[name].load();
}

/**
 * The HTTP header that carries a profile's credential, without loading any dialect's code (the
 * fast path of `token --header`). Throws a usage error for credentials that are not one header:
 * API keys sent as a query parameter, and Digest, which answers a server's challenge.
 */
export function headerLine(profile: Profile, session: Session): [string, string] {
  switch (profile.dialect) {
    case 'apikey': {
      const key = profile.apiKey ?? { in: 'header', name: 'Authorization', scheme: 'Apikey' };
      if (key.in === 'query') {
        throw new KeysmithError(`profile ${profile.name} sends its key as the query parameter ${key.name}, not in a header`, 2, 'print the key with `keysmith token`, or let `keysmith api PATH` add it');
      }
      return [key.name, key.scheme ? `${key.scheme} ${session.accessToken}` : session.accessToken];
    }
    case 'basic':
    case 'wave':
      return ['Authorization', `Basic ${session.accessToken}`];
    case 'digest':
      throw new KeysmithError('Digest has no header to print: each request answers a challenge from the server', 2, 'use `keysmith api PATH`, or `keysmith exec` for the user and password');
    default:
      return authHeader(session);
  }
}

/** The HTTP header line that carries a token-dialect session's token. */
export function authHeader(session: Session): [string, string] {
  if (session.tokenType.toLowerCase() === 'bearer') return ['Authorization', `Bearer ${session.accessToken}`];
  return [session.tokenType, session.accessToken];
}

/** The user and password of a Basic, Digest or Wave profile (kept as base64 of `user:password`). */
export function staticCredentials(session: Session): Credentials {
  const text = Buffer.from(session.accessToken, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon < 0) throw new KeysmithError('the saved credential is damaged; log in again');
  return { username: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** How Basic, Digest and Wave profiles keep a user and password: base64 of `user:password` (RFC 7617). */
export function encodeStaticCredentials({ username, password }: Credentials): string {
  return Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
}

/** A JWT's claims, decoded without verifying it; undefined if the token is not a JWT. */
export function jwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as unknown;
    return claims && typeof claims === 'object' ? (claims as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A Session from an OAuth-style token answer ({access_token, expires_in, refresh_token, ...}).
 * Where `expires_in` is missing, the JWT's own `exp` is used.
 */
export function sessionFromTokenResponse(res: HttpResponse, nowMs: number, action: string): Session {
  const body = res.json as Record<string, unknown> | undefined;
  if (typeof body?.access_token !== 'string' || body.access_token === '') {
    throw new KeysmithError(`${action}: the server's answer has no access_token (got ${describeBody(res)})`);
  }
  return sessionFromTokenBody(body, nowMs, action);
}

/** Ten years: a lifetime beyond it is a server bug or an attack, not a token. */
const MAX_LIFETIME_SECONDS = 10 * 365 * 24 * 3600;

/**
 * A number of seconds as a server wrote it: a finite number, or a decimal string (some servers
 * send "3600"); undefined for anything else ("3600abc", an object, NaN).
 */
export function secondsOf(value: unknown): number | undefined {
  const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d{1,12}(\.\d+)?$/.test(value) ? Number(value) : NaN;
  return Number.isFinite(n) ? n : undefined;
}

/**
 * A lifetime field of a token answer in seconds: absent (undefined or null), or a positive,
 * finite number no larger than ten years (a decimal string is accepted, as some servers send
 * one). Anything else refuses the whole answer.
 */
export function lifetimeSeconds(body: Record<string, unknown>, field: string, action: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  const n = secondsOf(value);
  if (n === undefined || n <= 0 || n > MAX_LIFETIME_SECONDS) {
    throw new KeysmithError(`${action}: the server's ${field} is not a usable number of seconds (got ${printable(JSON.stringify(value) ?? String(value), 40)})`);
  }
  return n;
}

/** A JWT's `exp` in ms since the epoch, when it is a finite number. */
function jwtExpiry(token: string): number | undefined {
  const exp = jwtClaims(token)?.exp;
  return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : undefined;
}

/** A Session from the fields of a token answer that has an access_token. */
export function sessionFromTokenBody(body: Record<string, unknown>, nowMs: number, action = 'login'): Session {
  const session: Session = { accessToken: body.access_token as string, tokenType: 'bearer', obtainedAt: nowMs };
  const expiresIn = lifetimeSeconds(body, 'expires_in', action);
  const expiresAt = expiresIn !== undefined ? nowMs + expiresIn * 1000 : jwtExpiry(session.accessToken);
  if (expiresAt !== undefined) session.expiresAt = expiresAt;
  if (typeof body.refresh_token === 'string') {
    session.refreshToken = body.refresh_token;
    const refreshIn = lifetimeSeconds(body, 'refresh_token_expires_in', action);
    const refreshExpiresAt = refreshIn !== undefined ? nowMs + refreshIn * 1000 : jwtExpiry(body.refresh_token);
    if (refreshExpiresAt !== undefined) session.refreshExpiresAt = refreshExpiresAt;
  }
  if (typeof body.scope === 'string') session.scope = body.scope;
  if (typeof body.id_token === 'string') session.idToken = body.id_token;
  return session;
}

/**
 * RFC 6750 tokens are visible ASCII: no space, CR, LF or control character can be part of one.
 * A token that is not could inject a header into `curl -H "$(keysmith token --header)"`.
 */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

/**
 * Check what a server gave before it is saved or printed: every token is visible ASCII. Called
 * once, by the code that writes sessions (login and the refresh policy), for every dialect.
 */
export function checkSession(session: Session, action: string): Session {
  const tokens: Array<[string, unknown]> = [['access token', session.accessToken], ['refresh token', session.refreshToken], ['token type', session.tokenType]];
  for (const [what, value] of tokens) {
    if (value === undefined && what === 'refresh token') continue;
    if (typeof value !== 'string' || !TOKEN_CHARS.test(value)) {
      throw new KeysmithError(`${action}: the server's ${what} has characters a token cannot have (spaces, line breaks, control or non-ASCII characters); refused`);
    }
  }
  return session;
}

export function describeBody(res: HttpResponse): string {
  if (res.json !== undefined) {
    const keys = res.json && typeof res.json === 'object' ? Object.keys(res.json as object) : [];
    return keys.length ? `JSON with fields ${keys.join(', ')}` : `JSON ${JSON.stringify(res.json).slice(0, 60)}`;
  }
  return res.text ? `a non-JSON body: ${res.text.trim().slice(0, 60)}` : 'an empty body';
}
