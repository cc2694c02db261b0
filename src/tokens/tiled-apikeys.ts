/**
 * Tiled API keys (shared/wire-reference.md §1.9), with a Tiled session's bearer token:
 *   POST   /api/v1/auth/apikey  {"expires_in", "scopes", "note"?}  → {"secret", "first_eight", ...}
 *   GET    /api/v1/auth/whoami  → the principal, whose `api_keys` lists the user's keys
 *   DELETE /api/v1/auth/apikey?first_eight=XXXXXXXX  → 204, or 404 for an unknown key
 * Plain functions named after the step they implement; storage and output belong to the command.
 */
import { KeysmithError, NotFoundError } from '../io/errors.js';
import { printable } from '../io/escape.js';
import type { DialectEnv } from './dialect.js';
import { describeBody } from './dialect.js';
import { checkSameOrigin, httpError, joinUrl, request, serverMessage, type HttpResponse } from './http.js';
import type { Profile, Session } from './store.js';

/** An API key as Tiled describes it (the secret is never part of it after creation). */
export interface ApiKeyInfo {
  first_eight: string;
  expiration_time: string | null;
  note: string | null;
  scopes: string[];
  access_tags: string[] | null;
  latest_activity: string | null;
}

export interface NewApiKey extends ApiKeyInfo {
  secret: string;
}

export interface ApiKeyRequest {
  /** Seconds; null for a key that never expires. */
  expiresIn: number | null;
  /** null: the key inherits the user's scopes. */
  scopes: string[] | null;
  note?: string | undefined;
}

/** The server said the access token has expired (our clock and its disagree): refresh and retry. */
export class AccessTokenExpiredError extends KeysmithError {
  constructor(message: string) {
    super(message);
    this.name = 'AccessTokenExpiredError';
  }
}

/** An endpoint the server named at login, or Tiled's standard path; never another origin. */
function endpoint(profile: Profile, name: string, path: string): string {
  const named = profile.endpoints?.[name];
  return named ? checkSameOrigin(named, profile.url, `${name} endpoint`) : joinUrl(profile.url, path);
}

function bearer(session: Session): Record<string, string> {
  return { authorization: `Bearer ${session.accessToken}` };
}

/** A 401 or 403 as one line that says which permission is missing. */
function refusal(res: HttpResponse, action: string, scope: string): KeysmithError {
  const said = serverMessage(res);
  if (res.status === 401 && /has expired/i.test(said)) return new AccessTokenExpiredError(`${action}: ${said}`);
  if (res.status === 401 && /^Not enough permissions/i.test(said)) {
    return new KeysmithError(`${action}: the session lacks the ${scope} scope (the server said: ${said})`, 1, 'ask the server administrator for a role with that scope');
  }
  return httpError(res, action);
}

const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

function info(value: unknown): ApiKeyInfo | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as Record<string, unknown>;
  if (typeof v.first_eight !== 'string') return undefined;
  const text = (x: unknown) => (typeof x === 'string' ? x : null);
  const list = (x: unknown) => (Array.isArray(x) ? x.filter((s): s is string => typeof s === 'string') : null);
  return {
    first_eight: v.first_eight,
    expiration_time: text(v.expiration_time),
    note: text(v.note),
    scopes: list(v.scopes) ?? [],
    access_tags: list(v.access_tags),
    latest_activity: text(v.latest_activity),
  };
}

/** POST /api/v1/auth/apikey: a new key; its secret is in this answer and nowhere else, ever. */
export async function createApiKey(env: DialectEnv, profile: Profile, session: Session, wanted: ApiKeyRequest): Promise<NewApiKey> {
  // Tiled requires expires_in and scopes to be present, though either may be null.
  const json: Record<string, unknown> = { expires_in: wanted.expiresIn, scopes: wanted.scopes };
  if (wanted.note !== undefined) json.note = wanted.note;
  const res = await request(env.fetch, endpoint(profile, 'apikey', '/api/v1/auth/apikey'), { method: 'POST', json, headers: bearer(session) }, env.http);
  if (res.status === 401 || res.status === 403) throw refusal(res, 'api-key create', 'create:apikeys');
  if (res.status !== 200) throw httpError(res, 'api-key create');
  const key = info(res.json);
  const secret = (res.json as { secret?: unknown } | undefined)?.secret;
  // The secret is printed or saved and sent in a header later: visible ASCII only (Tiled: hex).
  if (!key || typeof secret !== 'string' || !VISIBLE_ASCII.test(secret)) {
    throw new KeysmithError(`api-key create: the server's answer has no usable secret (got ${describeBody(res)})`);
  }
  return { ...key, secret };
}

/** The user's keys, from the principal that GET /api/v1/auth/whoami returns. */
export async function listApiKeys(env: DialectEnv, profile: Profile, session: Session): Promise<ApiKeyInfo[]> {
  const res = await request(env.fetch, endpoint(profile, 'whoami', '/api/v1/auth/whoami'), { headers: bearer(session) }, env.http);
  if (res.status === 401 || res.status === 403) throw refusal(res, 'api-key list', 'read');
  if (res.status !== 200) throw httpError(res, 'api-key list');
  const principal = res.json as { api_keys?: unknown } | null | undefined;
  if (!principal || typeof principal !== 'object') throw new KeysmithError(`api-key list: the server does not recognise the session (got ${describeBody(res)})`);
  if (!Array.isArray(principal.api_keys)) throw new KeysmithError(`api-key list: the server's whoami answer has no api_keys list (got ${describeBody(res)})`);
  return principal.api_keys.map(info).filter((k): k is ApiKeyInfo => k !== undefined);
}

/** DELETE /api/v1/auth/apikey?first_eight=...: 204, or 404 for a key this user does not have. */
export async function revokeApiKey(env: DialectEnv, profile: Profile, session: Session, firstEight: string): Promise<void> {
  const url = new URL(endpoint(profile, 'apikey', '/api/v1/auth/apikey'));
  url.searchParams.set('first_eight', firstEight);
  const res = await request(env.fetch, url.href, { method: 'DELETE', headers: bearer(session) }, env.http);
  if (res.status === 204 || res.status === 200) return;
  if (res.status === 404) {
    throw new NotFoundError(`no API key ${firstEight} on ${new URL(profile.url).host} for this user (the server said: ${serverMessage(res)})`, 'see the keys with: keysmith api-key list');
  }
  if (res.status === 401 || res.status === 403) throw refusal(res, 'api-key revoke', 'revoke:apikeys');
  throw httpError(res, 'api-key revoke');
}

/** One key as a line for people and scripts: FIRST_EIGHT, expiry, scopes, note (server text escaped). */
export function apiKeyLine(key: ApiKeyInfo): string {
  // printable escapes tabs and line breaks too, so a note cannot add columns or lines.
  const cell = (text: string) => printable(text, 200);
  return [cell(key.first_eight), cell(key.expiration_time ?? 'never'), cell(key.scopes.join(',') || '-'), cell(key.note ?? '')].join('\t');
}
