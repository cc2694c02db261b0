/**
 * The Basic-to-token pattern ("auth adventures" servers): POST /login with HTTP Basic returns a
 * JWT pair; POST /refresh with {"refresh_token"} returns a fresh pair. No revocation, no whoami
 * endpoint: the user is the access token's `sub`. Wire formats: shared/wire-reference.md §2.
 */
import { KeysmithError } from '../../io/errors.js';
import type { Dialect } from '../dialect.js';
import { jwtClaims, sessionFromTokenResponse } from '../dialect.js';
import { SessionDeadError, httpError, joinUrl, request } from '../http.js';

export const basicLogin: Dialect = {
  name: 'basic-login',

  async login(env, { profile, credentials }) {
    const { username, password } = await credentials();
    profile.username = username;
    const res = await request(env.fetch, joinUrl(profile.url, '/login'), { method: 'POST', basic: { username, password } }, env.http);
    if (res.status !== 200) throw httpError(res, 'login', res.status === 401 ? 'check the user name and password' : undefined);
    return sessionFromTokenResponse(res, env.ctx.now(), 'login');
  },

  async refresh(env, profile, session) {
    if (!session.refreshToken) throw new SessionDeadError('the session has no refresh token');
    const res = await request(env.fetch, joinUrl(profile.url, '/refresh'), { json: { refresh_token: session.refreshToken } }, env.http);
    // 401 {"error": null} for an expired or invalid refresh token (wire-reference §2).
    if (res.status === 401) throw new SessionDeadError('the server no longer accepts the refresh token');
    if (res.status !== 200) throw httpError(res, 'refresh');
    return sessionFromTokenResponse(res, env.ctx.now(), 'refresh');
  },

  async whoami(_env, _profile, session) {
    const sub = jwtClaims(session.accessToken)?.sub;
    if (typeof sub !== 'string') throw new KeysmithError('the access token carries no user (no `sub` claim)');
    return { user: sub };
  },
};
