/**
 * WaveMaker: GET {app}/services/security/token with HTTP Basic answers {"wm_auth_token": T}
 * (docs) or {"WM_AUTH_TOKEN": T} (runtimes since 2017). There is no refresh token: presenting a
 * still-valid token to the same endpoint gets a new one. Once it has expired, only the password
 * helps ($KEYSMITH_PASSWORD). Lifetimes are server settings (default 1800 s), not in the answer.
 * Wire formats: shared/wire-reference.md §3.
 */
import { KeysmithError } from '../../io/errors.js';
import type { Dialect, DialectEnv } from '../dialect.js';
import { describeBody } from '../dialect.js';
import { httpError, joinUrl, request, type HttpResponse, type RequestInit } from '../http.js';
import { isExpired } from '../policy.js';
import type { Profile, Session } from '../store.js';

export const DEFAULT_TOKEN_TTL = 1800;
const TOKEN_KEYS = ['WM_AUTH_TOKEN', 'wm_auth_token'];

function tokenRequest(env: DialectEnv, profile: Readonly<Profile>, auth: RequestInit): Promise<HttpResponse> {
  return request(env.fetch, joinUrl(profile.url, '/services/security/token'), { method: 'GET', ...auth }, env.http);
}

function sessionFrom(env: DialectEnv, profile: Readonly<Profile>, res: HttpResponse, action: string): Session {
  if (res.status !== 200) throw httpError(res, action, res.status === 401 && action === 'login' ? 'check the user name and password' : undefined);
  const body = res.json as Record<string, unknown> | undefined;
  // Send the token back under the name the server used (header names are case-insensitive,
  // query names are not).
  const key = TOKEN_KEYS.find((k) => typeof body?.[k] === 'string' && body[k] !== '');
  if (!key) throw new KeysmithError(`${action}: expected {"WM_AUTH_TOKEN": ...} or {"wm_auth_token": ...}, got ${describeBody(res)}`);
  const now = env.ctx.now();
  return { accessToken: body![key] as string, tokenType: key, obtainedAt: now, expiresAt: now + (profile.tokenTtl ?? DEFAULT_TOKEN_TTL) * 1000 };
}

/** auto-detection: WaveMaker's token endpoint refuses an anonymous GET with its own words. */
export async function detectWavemaker(env: DialectEnv, base: string): Promise<boolean> {
  const res = await request(env.fetch, joinUrl(base, '/services/security/token'), { method: 'GET' }, env.http);
  return res.status === 401 && JSON.stringify(res.json ?? '').includes('generate access token');
}

export const wavemaker: Dialect = {
  name: 'wavemaker',

  async login(env, { profile, credentials }) {
    const tokenTtl = profile.tokenTtl ?? DEFAULT_TOKEN_TTL;
    const { username, password } = await credentials();
    const res = await tokenRequest(env, profile, { basic: { username, password } });
    return { session: sessionFrom(env, { ...profile, tokenTtl }, res, 'login'), settings: { tokenTtl, username } };
  },

  async refresh(env, profile, session) {
    if (!isExpired(session, env.ctx.now())) {
      const res = await tokenRequest(env, profile, { headers: { [session.tokenType]: session.accessToken } });
      // 401 "Invalid Token": the server forgot the token (it restarted); fall back to the password.
      if (res.status !== 401) return sessionFrom(env, profile, res, 'renew');
    }
    const password = env.ctx.env.KEYSMITH_PASSWORD;
    if (!password || !profile.username) {
      // Not SessionDeadError: the server said nothing, we only lack the password, so the session
      // stays and a later call with KEYSMITH_PASSWORD set can renew it.
      throw new KeysmithError('the WaveMaker token is no longer valid and WaveMaker has no refresh tokens', 1,
        `set KEYSMITH_PASSWORD to renew it unattended, or run: keysmith login --profile ${profile.name}`);
    }
    return sessionFrom(env, profile, await tokenRequest(env, profile, { basic: { username: profile.username, password } }), 'renew');
  },
};
