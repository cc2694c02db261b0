/**
 * The Basic-to-token pattern ("auth adventures" servers): POST /login with HTTP Basic returns a
 * JWT pair; POST /refresh with {"refresh_token"} returns a fresh pair. No revocation, no whoami
 * endpoint: the user is the access token's `sub`. Wire formats: shared/wire-reference.md §2.
 */
import { KeysmithError } from '../../io/errors.js';
import type { Dialect, DialectEnv, LoginRequest } from '../dialect.js';
import { jwtClaims, sessionFromTokenResponse } from '../dialect.js';
import { SessionDeadError, httpError, joinUrl, request } from '../http.js';
import type { Profile, Session } from '../store.js';

export const basicLogin: Dialect = {
  name: 'basic-login',

  async login(env, { profile, credentials, device }) {
    if (profile.flow === 'device') {
      const session = await deviceLogin(env, profile, device);
      const sub = jwtClaims(session.accessToken)?.sub;
      return { session, settings: { username: typeof sub === 'string' ? sub : undefined } };
    }
    const { username, password } = await credentials();
    const res = await request(env.fetch, joinUrl(profile.url, '/login'), { method: 'POST', basic: { username, password } }, env.http);
    if (res.status !== 200) throw httpError(res, 'login', res.status === 401 ? 'check the user name and password' : undefined);
    return { session: sessionFromTokenResponse(res, env.ctx.now(), 'login'), settings: { username } };
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

/**
 * The device flow (wire-reference §2): POST /authorize, then poll POST /token with form
 * device_code: 401 {"error": "pending"} while waiting, 401 "unrecognized device code -- maybe
 * expired" once the code is gone, 200 with the token pair once approved. The answer's
 * verification_uri is hard-coded to localhost:8000 in the real app, so polls go to {url}/token.
 */
async function deviceLogin(env: DialectEnv, profile: Readonly<Profile>, device: LoginRequest['device']): Promise<Session> {
  const { runDeviceFlow, startAuthorizeFlow } = await import('../flows/device.js');
  const start = await startAuthorizeFlow(env, joinUrl(profile.url, '/authorize'));
  return runDeviceFlow<Session>(
    env.ctx,
    start.codes,
    async (signal) => {
      const res = await request(env.fetch, joinUrl(profile.url, '/token'), { form: { device_code: start.deviceCode }, signal }, env.http);
      if (res.status === 200) return { status: 'approved', value: sessionFromTokenResponse(res, env.ctx.now(), 'login') };
      const error = (res.json as { error?: unknown } | undefined)?.error;
      if (res.status === 401 && error === 'pending') return { status: 'pending' };
      if (res.status === 401 && typeof error === 'string' && error.startsWith('unrecognized device code')) return { status: 'expired' };
      if (error === 'slow_down') return { status: 'slow_down' };
      throw httpError(res, 'login');
    },
    device,
  );
}
