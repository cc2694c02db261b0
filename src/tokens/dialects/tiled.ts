/**
 * Tiled (bluesky/tiled): discovery at GET /api/v1/, password login per internal provider,
 * sliding sessions refreshed at /auth/session/refresh, revocation at /auth/session/revoke.
 * Wire formats: shared/wire-reference.md §1.
 */
import { KeysmithError, UsageError } from '../../io/errors.js';
import type { Dialect, DialectEnv, LoginRequest } from '../dialect.js';
import { describeBody, sessionFromTokenResponse } from '../dialect.js';
import { printable } from '../../io/escape.js';
import { SessionDeadError, checkSameOrigin, httpError, joinUrl, request, serverMessage, type HttpResponse } from '../http.js';
import type { Profile, Session } from '../store.js';

export interface TiledProvider {
  provider: string;
  mode: string;
  links?: { auth_endpoint?: string };
  confirmation_message?: string;
}

export interface TiledAbout {
  providers: TiledProvider[];
  links: Record<string, string>;
}

/** GET {url}/api/v1/ and read its `authentication` block; undefined when it is not Tiled. */
export async function discoverTiled(env: DialectEnv, url: string): Promise<TiledAbout | undefined> {
  const res = await request(env.fetch, joinUrl(url, '/api/v1/'), {}, env.http);
  const auth = (res.json as { authentication?: { providers?: unknown; links?: unknown } } | undefined)?.authentication;
  if (res.status !== 200 || !auth || !Array.isArray(auth.providers)) return undefined;
  return { providers: auth.providers as TiledProvider[], links: (auth.links ?? {}) as Record<string, string> };
}

/**
 * An endpoint the server named, or the standard path. Tiled's links are the server's own: one on
 * any other origin is refused (at login, and again here for profiles saved before that check).
 */
function endpoint(profile: Profile, name: string, fallbackPath: string): string {
  const named = profile.endpoints?.[name];
  return named ? checkSameOrigin(named, profile.url, `${name} endpoint`) : joinUrl(profile.url, fallbackPath);
}

async function chooseProvider(env: DialectEnv, about: TiledAbout, wanted: string | undefined): Promise<TiledProvider> {
  const names = about.providers.map((p) => p.provider);
  if (wanted) {
    const found = about.providers.find((p) => p.provider === wanted);
    if (!found) throw new UsageError(`the server has no provider ${wanted}; it has: ${names.join(', ') || 'none'}`);
    return found;
  }
  if (about.providers.length === 1) return about.providers[0]!;
  if (about.providers.length === 0) throw new KeysmithError('the server lists no authentication providers (anonymous access only?)');
  if (env.ctx.isTTY.stdin && env.ctx.isTTY.stderr) {
    const { promptSelect } = await import('../../io/prompt.js');
    // The names are the server's: shown escaped, so a menu entry cannot rewrite the screen.
    const shown = names.map((name) => printable(String(name), 100));
    const picked = await promptSelect(env.ctx, 'Log in with which provider?', shown);
    return about.providers[shown.indexOf(picked)]!;
  }
  throw new UsageError(`the server has several providers (${names.join(', ')}); choose one with --provider`);
}

export const tiled: Dialect = {
  name: 'tiled',

  async login(env, { profile, credentials, device }) {
    const about = await discoverTiled(env, profile.url);
    if (!about) throw new KeysmithError(`${profile.url} does not look like a Tiled server (GET /api/v1/ has no authentication providers)`);
    const provider = await chooseProvider(env, about, profile.provider);
    const links = about.links;
    const own = (link: unknown, what: string) => (typeof link === 'string' && link ? checkSameOrigin(link, profile.url, what) : undefined);
    const refresh = own(links.refresh_session, 'refresh_session link');
    const whoami = own(links.whoami, 'whoami link');
    // The POST form of revocation takes the refresh token; the DELETE form needs the session id.
    const revoke = own(typeof links.revoke_session === 'string' ? links.revoke_session.replace(/\/\{session_id\}$/, '') : undefined, 'revoke_session link');
    const endpoints: Record<string, string> = { ...(refresh && { refresh }), ...(whoami && { whoami }), ...(revoke && { revoke }) };
    const authEndpoint = own(provider.links?.auth_endpoint, `auth_endpoint of provider ${printable(provider.provider, 60)}`);
    const external = provider.mode === 'external';
    if (!external && provider.mode !== 'internal' && provider.mode !== 'password') {
      throw new UsageError(`provider ${provider.provider} has mode ${provider.mode}, which keysmith does not know`);
    }
    if (profile.flow && external !== (profile.flow === 'device')) {
      throw new UsageError(`provider ${provider.provider} logs in ${external ? 'through a browser (--flow device)' : 'with a password (--flow password)'}`);
    }
    const providerPath = `/api/v1/auth/provider/${encodeURIComponent(provider.provider)}`;
    let res: HttpResponse;
    let username: string | undefined;
    if (external) {
      res = await deviceLogin(env, profile.url, authEndpoint ?? joinUrl(profile.url, `${providerPath}/authorize`), joinUrl(profile.url, `${providerPath}/token`), device);
    } else {
      const auth = authEndpoint ?? joinUrl(profile.url, `${providerPath}/token`);
      endpoints.token = auth;
      const given = await credentials();
      username = given.username;
      res = await request(env.fetch, auth, { form: { grant_type: 'password', username, password: given.password } }, env.http);
      if (res.status !== 200) throw httpError(res, 'login');
    }
    const session = sessionFromTokenResponse(res, env.ctx.now(), 'login');
    // External providers: the user is the identity the server reports. The provider's
    // confirmation_message is not shown: login says who is logged in, once.
    const identityId = (res.json as { identity?: { id?: unknown } }).identity?.id;
    if (external) username = typeof identityId === 'string' ? identityId : undefined;
    return { session, settings: { provider: provider.provider, endpoints, username, flow: external ? 'device' : profile.flow } };
  },

  async refresh(env, profile, session) {
    if (!session.refreshToken) throw new SessionDeadError('the session has no refresh token');
    const res = await request(env.fetch, endpoint(profile, 'refresh', '/api/v1/auth/session/refresh'), { json: { refresh_token: session.refreshToken } }, env.http);
    // 401 "Session has expired" / "Could not validate credentials", or 400: the python client
    // treats both as "log in again" (wire-reference §1.5).
    if (res.status === 401 || res.status === 400) throw new SessionDeadError(`the server ended the session: ${serverMessage(res)}`);
    if (res.status !== 200) throw httpError(res, 'refresh');
    return sessionFromTokenResponse(res, env.ctx.now(), 'refresh');
  },

  async revoke(env, profile, session) {
    if (!session.refreshToken) return;
    const res = await request(env.fetch, endpoint(profile, 'revoke', '/api/v1/auth/session/revoke'), { json: { refresh_token: session.refreshToken } }, env.http);
    // 204 revoked; 409 "No session" or 401: the session is already gone, which is what we want.
    if (res.status === 204 || res.status === 200 || res.status === 409 || res.status === 401) return;
    throw httpError(res, 'revoke');
  },

  async whoami(env, profile, session) {
    const res = await request(env.fetch, endpoint(profile, 'whoami', '/api/v1/auth/whoami'), { headers: { authorization: `Bearer ${session.accessToken}` } }, env.http);
    if (res.status !== 200) throw httpError(res, 'whoami');
    const principal = res.json as { identities?: Array<{ id?: string; provider?: string }>; uuid?: string } | null;
    if (!principal) throw new KeysmithError(`whoami: the server does not recognise the token (got ${describeBody(res)})`);
    const identity = principal.identities?.[0];
    return { user: identity?.id ?? principal.uuid ?? 'unknown', details: principal };
  },
};

/**
 * External providers: the device flow (wire-reference §1.10). Polls take JSON {device_code,
 * grant_type}; 400 {"detail": {"error": "authorization_pending"}} is pending, 404 is an expired
 * (or already collected) code; 200 is the token pair.
 */
async function deviceLogin(env: DialectEnv, base: string, authorizeUrl: string, fallbackPollUrl: string, device: LoginRequest['device']): Promise<HttpResponse> {
  const { runDeviceFlow, startAuthorizeFlow } = await import('../flows/device.js');
  const start = await startAuthorizeFlow(env, authorizeUrl);
  // The poll carries the device code, which becomes the session: only to the server itself.
  const pollUrl = start.pollUrl ? checkSameOrigin(start.pollUrl, base, 'device-flow verification_uri') : fallbackPollUrl;
  const json = { device_code: start.deviceCode, grant_type: 'urn:ietf:params:oauth:grant-type:device_code' };
  return runDeviceFlow<HttpResponse>(
    env.ctx,
    start.codes,
    async (signal) => {
      const res = await request(env.fetch, pollUrl, { json, signal }, env.http);
      if (res.status === 200) return { status: 'approved', value: res };
      const error = serverMessage(res);
      if (res.status === 404 && error.startsWith('No such device_code')) return { status: 'expired' };
      if (res.status === 400 && error === 'authorization_pending') return { status: 'pending' };
      if (res.status === 400 && error === 'slow_down') return { status: 'slow_down' };
      if (res.status === 400 && error === 'access_denied') return { status: 'denied' };
      throw httpError(res, 'login');
    },
    device,
  );
}

export type { Session };
