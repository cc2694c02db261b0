/**
 * Standard OAuth 2.0 / OpenID Connect servers, with oauth4webapi doing the protocol steps:
 * discovery (OIDC Discovery, RFC 8414), the device authorization grant (RFC 8628) and client
 * credentials for login, refresh with rotation, revocation (RFC 7009), and whoami through
 * userinfo, introspection (RFC 7662) or the JWT's `sub`. Login keeps what later steps need in the
 * profile (endpoints, client ID, flow, scope), so refreshing never discovers again; a client
 * secret is kept in the session file (0600, state dir), never in profiles.json.
 */
import type * as OAuth from 'oauth4webapi';
import { KeysmithError, UsageError } from '../../io/errors.js';
import { printable } from '../../io/escape.js';
import type { Dialect, DialectEnv } from '../dialect.js';
import { jwtClaims, lifetimeSeconds, sessionFromTokenBody } from '../dialect.js';
import { pollInterval } from '../flows/device.js';
import { SessionDeadError, httpError, networkError, type Fetch, type HttpResponse } from '../http.js';
import { isExpired } from '../policy.js';
import type { Profile, Session } from '../store.js';

/** Server metadata kept in `profile.endpoints` (metadata names, as discovery gives them). */
const KEPT_METADATA = [
  'issuer',
  'token_endpoint',
  'device_authorization_endpoint',
  'revocation_endpoint',
  'introspection_endpoint',
  'userinfo_endpoint',
] as const;

type Lib = typeof OAuth;

/**
 * oauth4webapi, imported when an OAuth step runs. The bundle keeps npm packages external, and a
 * static import would load it on every start, `keysmith token` with a cached token included.
 */
const load = (): Promise<Lib> => import('oauth4webapi');

/** The options every oauth4webapi call gets: our fetch, our timeout, and http:// only when typed. */
function requestOptions(oauth: Lib, env: DialectEnv, profileUrl: string, cancel?: AbortSignal) {
  const timeout = env.http.timeout ?? 30;
  return {
    [oauth.customFetch]: async (url: string, init: OAuth.CustomFetchOptions<string, unknown>): Promise<Response> => {
      try {
        return await env.fetch(url, init as Parameters<Fetch>[1]);
      } catch (err) {
        if (cancel?.aborted) throw err;
        throw networkError(err, url, timeout);
      }
    },
    // parseServerUrl has already warned about a plain-http URL that is not on this machine.
    [oauth.allowInsecureRequests]: new URL(profileUrl).protocol === 'http:',
    signal: () => (cancel ? AbortSignal.any([cancel, AbortSignal.timeout(timeout * 1000)]) : AbortSignal.timeout(timeout * 1000)),
  };
}

/**
 * The server's metadata from its issuer URL: `/.well-known/openid-configuration`, else
 * `/.well-known/oauth-authorization-server`. Undefined when neither serves a metadata document.
 */
export async function discover(env: DialectEnv, url: string): Promise<OAuth.AuthorizationServer | undefined> {
  const oauth = await load();
  const issuer = new URL(url);
  for (const algorithm of ['oidc', 'oauth2'] as const) {
    let res: Response;
    try {
      res = await oauth.discoveryRequest(issuer, { ...requestOptions(oauth, env, url), algorithm });
    } catch (err) {
      throw await failure(oauth, err, 'discovery', url);
    }
    const text = res.status === 200 ? await res.text() : (await res.body?.cancel(), '');
    let doc: { issuer?: unknown } | undefined;
    try {
      doc = JSON.parse(text) as { issuer?: unknown };
    } catch {
      continue; // not found, or an HTML page that answers every path: not a metadata document
    }
    if (typeof doc?.issuer !== 'string') continue;
    // An issuer that differs from the URL only by a trailing slash is the same server.
    const expected = doc.issuer.replace(/\/+$/, '') === url.replace(/\/+$/, '') ? new URL(doc.issuer) : issuer;
    try {
      return await oauth.processDiscoveryResponse(expected, new Response(text, { status: 200, headers: { 'content-type': 'application/json' } }));
    } catch (err) {
      const hint = doc.issuer !== url ? `the server calls itself ${doc.issuer}: log in with that URL` : undefined;
      throw new KeysmithError(`${url} serves server metadata keysmith cannot use: ${(err as Error).message}`, 1, hint);
    }
  }
  return undefined;
}

/** Metadata fields that name endpoints keysmith sends credentials or tokens to. */
const ENDPOINTS = KEPT_METADATA.filter((key) => key !== 'issuer');

/**
 * Endpoints from a server's metadata are checked before anything is sent to them: https, or
 * plain http only on the issuer's own origin (an http:// issuer the user typed). Endpoints on
 * other https origins are normal (Google's token endpoint is not on its issuer's host).
 */
function checkEndpoints(as: Record<string, unknown>, issuerUrl: string): void {
  const issuer = new URL(issuerUrl);
  for (const key of ENDPOINTS) {
    const value = as[key];
    if (value === undefined) continue;
    let url: URL | undefined;
    try {
      url = typeof value === 'string' ? new URL(value) : undefined;
    } catch {
      url = undefined;
    }
    if (!url) throw new KeysmithError(`${issuer.origin} gives an invalid ${key} in its metadata`);
    if (url.protocol === 'https:' || (url.protocol === 'http:' && url.origin === issuer.origin)) continue;
    throw new KeysmithError(`${issuer.origin} names ${url.origin} as its ${key}: keysmith sends credentials only over https, or to the server you named`);
  }
}

/** The metadata oauth4webapi needs, rebuilt from the profile (no discovery after login). */
function serverOf(profile: Profile): OAuth.AuthorizationServer {
  const e = profile.endpoints ?? {};
  if (!e.issuer || !e.token_endpoint) throw new KeysmithError(`profile ${profile.name} has no OAuth 2.0 endpoints`, 1, `log in again: keysmith login --profile ${profile.name}`);
  checkEndpoints(e, profile.url);
  const as: Record<string, string | string[]> = {};
  for (const key of KEPT_METADATA) if (e[key]) as[key] = e[key];
  if (e.id_token_signing_alg_values_supported) as.id_token_signing_alg_values_supported = e.id_token_signing_alg_values_supported.split(' ');
  return as as unknown as OAuth.AuthorizationServer;
}

/** What the profile keeps of the server's metadata, so that refreshing never discovers again. */
function rememberServer(as: OAuth.AuthorizationServer, authMethod: string): Record<string, string> {
  const endpoints: Record<string, string> = { token_endpoint_auth_method: authMethod };
  for (const key of KEPT_METADATA) if (typeof as[key] === 'string') endpoints[key] = as[key];
  if (as.id_token_signing_alg_values_supported?.length) endpoints.id_token_signing_alg_values_supported = as.id_token_signing_alg_values_supported.join(' ');
  return endpoints;
}

/** client_secret_basic unless the server only takes client_secret_post; `none` for public clients. */
function chooseAuthMethod(as: OAuth.AuthorizationServer, secret: string | undefined): string {
  if (!secret) return 'none';
  const supported = as.token_endpoint_auth_methods_supported;
  return supported && !supported.includes('client_secret_basic') && supported.includes('client_secret_post') ? 'client_secret_post' : 'client_secret_basic';
}

function clientAuth(oauth: Lib, profile: Profile, secret: string | undefined): OAuth.ClientAuth {
  if (!secret) return oauth.None();
  return profile.endpoints?.token_endpoint_auth_method === 'client_secret_post' ? oauth.ClientSecretPost(secret) : oauth.ClientSecretBasic(secret);
}

/** The secret kept in the session at login; $KEYSMITH_CLIENT_SECRET when none was kept. */
function secretFor(env: DialectEnv, profile: Profile, session: Session): string | undefined {
  if (session.clientSecret) return session.clientSecret;
  if (profile.endpoints?.token_endpoint_auth_method === 'none') return undefined;
  const fromEnv = env.ctx.env.KEYSMITH_CLIENT_SECRET;
  if (!fromEnv) throw new KeysmithError(`profile ${profile.name} is a confidential client but its secret is not stored`, 1, 'set KEYSMITH_CLIENT_SECRET or log in again');
  return fromEnv;
}

function scopeParameter(profile: Profile): Record<string, string> {
  return profile.scope ? { scope: profile.scope } : {};
}

function clientOf(profile: Profile): OAuth.Client {
  if (!profile.clientId) throw new KeysmithError(`profile ${profile.name} has no client ID`, 1, `log in again: keysmith login --profile ${profile.name} --client-id ID`);
  return { client_id: profile.clientId };
}

function toSession(tokens: OAuth.TokenEndpointResponse, nowMs: number, secret: string | undefined): Session {
  const session = sessionFromTokenBody(tokens as unknown as Record<string, unknown>, nowMs);
  if (secret) session.clientSecret = secret;
  return session;
}

const HINTS: Record<string, string> = {
  invalid_client: 'check --client-id and the client secret ($KEYSMITH_CLIENT_SECRET or --client-secret-stdin)',
  unauthorized_client: 'the server does not allow this client that grant: check --flow, or the client\'s registration',
  unsupported_grant_type: 'the server does not support that grant: check --flow',
  invalid_scope: 'check --scope against what the server offers',
};

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/** One line for anything oauth4webapi or the network threw, with the server's error and description. */
async function failure(oauth: Lib, err: unknown, action: string, url: string): Promise<KeysmithError> {
  if (err instanceof KeysmithError) return err;
  const host = hostOf(url);
  if (err instanceof oauth.ResponseBodyError) {
    const said = printable(err.error_description ? `${err.error}: ${err.error_description}` : err.error, 300);
    return new KeysmithError(`${action} failed: ${host} answered ${err.status}: ${said}`, 1, HINTS[err.error]);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const params = err.cause[0]?.parameters ?? {};
    const said = printable(params.error ? (params.error_description ? `${params.error}: ${params.error_description}` : params.error) : `${err.cause[0]?.scheme ?? 'authentication'} challenge`, 300);
    return new KeysmithError(`${action} failed: ${host} answered ${err.status}: ${said}`, 1, params.error ? HINTS[params.error] : undefined);
  }
  // An unexpected status (an HTML error page, a 500): the response is the cause, still unread.
  // (undici's Response, with --cacert or a proxy, is not the global class: test its shape.)
  const cause = (err as { cause?: Partial<Response> } | undefined)?.cause;
  if (err instanceof oauth.OperationProcessingError && typeof cause?.text === 'function' && typeof cause.status === 'number' && !cause.bodyUsed) {
    const res = await toHttpResponse(cause as Response);
    if (res.status >= 300) return httpError(res, action);
  }
  const message = err instanceof Error ? err.message : String(err);
  return new KeysmithError(`${action} failed: unexpected answer from ${host}: ${printable(message, 300)}`);
}

async function toHttpResponse(res: Response): Promise<HttpResponse> {
  const text = await res.text().catch(() => '');
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, statusText: res.statusText, headers: res.headers, text, json, url: res.url };
}

/** A protocol answer (an error body, a challenge, a malformed response), not a network failure. */
function isProtocolError(oauth: Lib, err: unknown): boolean {
  return err instanceof oauth.ResponseBodyError || err instanceof oauth.WWWAuthenticateChallengeError || err instanceof oauth.OperationProcessingError;
}

/** The most readable name in a set of claims (userinfo, introspection, an ID token, a JWT). */
function userName(claims: Record<string, unknown> | undefined): string | undefined {
  for (const key of ['preferred_username', 'email', 'username', 'sub']) {
    if (typeof claims?.[key] === 'string' && claims[key] !== '') return claims[key];
  }
  return undefined;
}

/** An answer's JSON object, read from a copy (guardFetch has already read it into memory). */
async function jsonOf(res: Response): Promise<Record<string, unknown> | undefined> {
  const body = (await res.clone().json().catch(() => undefined)) as unknown;
  return body && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
}

/**
 * A token answer's lifetimes as the server wrote them, checked by keysmith's rules before
 * oauth4webapi reads them (it turns "3600abc" into 3600, where every other dialect refuses it).
 */
async function checkedTokenAnswer(res: Response, action: string): Promise<Response> {
  const body = res.status === 200 ? await jsonOf(res) : undefined;
  if (body) {
    lifetimeSeconds(body, 'expires_in', action);
    lifetimeSeconds(body, 'refresh_token_expires_in', action);
  }
  return res;
}

/**
 * A device authorization answer whose `interval` is kept within keysmith's bounds: oauth4webapi
 * refuses an interval of 0 where keysmith polls once a second, as for every other dialect.
 */
async function clampedDeviceAnswer(res: Response): Promise<Response> {
  const body = res.status === 200 ? await jsonOf(res) : undefined;
  if (!body || body.interval === undefined) return res;
  const fixed = { ...body, interval: pollInterval(body.interval) };
  return new Response(JSON.stringify(fixed), { status: res.status, statusText: res.statusText, headers: res.headers });
}

export const oauth2: Dialect = {
  name: 'oauth2',

  async login(env, { profile: given, clientSecret, device }) {
    const oauth = await load();
    if (!given.clientId) {
      throw new UsageError('the oauth2 dialect needs a client ID: pass --client-id ID', 'register keysmith with the server as a client (a public client for the device flow)');
    }
    // login.ts has checked the flow: device (the default) or client-credentials.
    const flow = given.flow ?? 'device';
    const as = await discover(env, given.url);
    if (!as) {
      throw new KeysmithError(`${given.url} serves no OAuth 2.0 server metadata (/.well-known/openid-configuration or /.well-known/oauth-authorization-server)`, 1, 'give the issuer URL of the server');
    }
    checkEndpoints(as as unknown as Record<string, unknown>, given.url);
    const secret = await clientSecret?.(flow === 'client-credentials');
    // The profile as this login leaves it: later steps (client auth, whoami) read it.
    const profile: Profile = { ...given, flow, endpoints: rememberServer(as, chooseAuthMethod(as, secret)) };
    const learned = () => ({ endpoints: profile.endpoints, flow, scope: profile.scope, username: profile.username });
    const client = clientOf(profile);
    const auth = clientAuth(oauth, profile, secret);
    const options = requestOptions(oauth, env, profile.url);

    if (flow === 'client-credentials') {
      try {
        const res = await checkedTokenAnswer(await oauth.clientCredentialsGrantRequest(as, client, auth, scopeParameter(profile), options), 'login');
        const tokens = await oauth.processClientCredentialsResponse(as, client, res);
        profile.username = profile.clientId;
        return { session: toSession(tokens, env.ctx.now(), secret), settings: learned() };
      } catch (err) {
        throw await failure(oauth, err, 'login', profile.url);
      }
    }

    if (!as.device_authorization_endpoint) {
      throw new KeysmithError(`${profile.url} offers no device authorization endpoint (RFC 8628)`, 1, 'a CI job can use --flow client-credentials with a confidential client');
    }
    // Without --scope, ask for an ID token and a refresh token where the server lists those scopes.
    profile.scope ??= ['openid', 'offline_access'].filter((s) => as.scopes_supported?.includes(s)).join(' ') || undefined;
    let codes: OAuth.DeviceAuthorizationResponse;
    try {
      const res = await oauth.deviceAuthorizationRequest(as, client, auth, scopeParameter(profile), options);
      codes = await oauth.processDeviceAuthorizationResponse(as, client, await clampedDeviceAnswer(res));
    } catch (err) {
      throw await failure(oauth, err, 'device authorization', profile.url);
    }
    const { runDeviceFlow } = await import('../flows/device.js');
    const tokens = await runDeviceFlow<OAuth.TokenEndpointResponse>(
      env.ctx,
      {
        verificationUri: codes.verification_uri,
        verificationUriComplete: codes.verification_uri_complete,
        userCode: codes.user_code,
        expiresIn: codes.expires_in,
        interval: codes.interval,
      },
      async (signal) => {
        try {
          const res = await checkedTokenAnswer(await oauth.deviceCodeGrantRequest(as, client, auth, codes.device_code, requestOptions(oauth, env, profile.url, signal)), 'login');
          return { status: 'approved', value: await oauth.processDeviceCodeResponse(as, client, res) };
        } catch (err) {
          if (err instanceof oauth.ResponseBodyError) {
            switch (err.error) {
              case 'authorization_pending':
                return { status: 'pending' };
              case 'slow_down':
                return { status: 'slow_down' };
              case 'expired_token':
                return { status: 'expired' };
              case 'access_denied':
                return { status: 'denied', reason: err.error_description };
            }
          }
          if (signal.aborted) throw err;
          throw await failure(oauth, err, 'login', profile.url);
        }
      },
      device,
    );
    const session = toSession(tokens, env.ctx.now(), secret);
    profile.username = userName(oauth.getValidatedIdTokenClaims(tokens)) ?? userName(jwtClaims(session.accessToken));
    if (!profile.username && as.userinfo_endpoint) profile.username = (await oauth2.whoami!(env, profile, session).catch(() => undefined))?.user;
    return { session, settings: learned() };
  },

  async refresh(env, profile, session) {
    const oauth = await load();
    const as = serverOf(profile);
    const client = clientOf(profile);
    const secret = secretFor(env, profile, session);
    const auth = clientAuth(oauth, profile, secret);
    const options = requestOptions(oauth, env, profile.url);
    let tokens: OAuth.TokenEndpointResponse;
    try {
      if (profile.flow === 'client-credentials') {
        // No refresh token in this grant: a new client_credentials grant renews the token.
        const res = await oauth.clientCredentialsGrantRequest(as, client, auth, scopeParameter(profile), options);
        tokens = await oauth.processClientCredentialsResponse(as, client, await checkedTokenAnswer(res, 'refresh'));
      } else if (session.refreshToken) {
        const res = await oauth.refreshTokenGrantRequest(as, client, auth, session.refreshToken, options);
        tokens = await oauth.processRefreshTokenResponse(as, client, await checkedTokenAnswer(res, 'refresh'));
      } else {
        const message = 'the server gave no refresh token, so the session cannot be renewed';
        // Still valid: keep using it (session.ts warns); expired: the session is over.
        if (isExpired(session, env.ctx.now())) throw new SessionDeadError(message);
        throw new KeysmithError(message, 1, 'ask for one at login, e.g. --scope "openid offline_access"');
      }
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError && err.error === 'invalid_grant') {
        throw new SessionDeadError(`the server ended the session: ${err.error_description ? `invalid_grant: ${err.error_description}` : 'invalid_grant'}`);
      }
      throw await failure(oauth, err, 'refresh', profile.url);
    }
    return toSession(tokens, env.ctx.now(), secret);
  },

  async revoke(env, profile, session) {
    if (!profile.endpoints?.revocation_endpoint) {
      env.ctx.stderr.write(`note: ${profile.url} has no revocation endpoint (RFC 7009); its tokens stay valid until they expire\n`);
      return false;
    }
    const oauth = await load();
    const as = serverOf(profile);
    const client = clientOf(profile);
    const auth = clientAuth(oauth, profile, secretFor(env, profile, session));
    // Revoking the refresh token ends the grant (RFC 7009 §2.1); servers that refuse it may still
    // revoke the access token.
    const tokens: Array<[string, string]> = [];
    if (session.refreshToken) tokens.push([session.refreshToken, 'refresh_token']);
    tokens.push([session.accessToken, 'access_token']);
    let last: unknown;
    for (const [token, hint] of tokens) {
      try {
        const res = await oauth.revocationRequest(as, client, auth, token, { ...requestOptions(oauth, env, profile.url), additionalParameters: { token_type_hint: hint } });
        await oauth.processRevocationResponse(res);
        return true;
      } catch (err) {
        if (!isProtocolError(oauth, err)) throw await failure(oauth, err, 'revoke', profile.url);
        last = err;
      }
    }
    throw await failure(oauth, last, 'revoke', profile.url);
  },

  async whoami(env, profile, session) {
    const oauth = await load();
    const as = serverOf(profile);
    const client = clientOf(profile);
    const options = requestOptions(oauth, env, profile.url);
    const tried: string[] = [];
    if (profile.flow !== 'client-credentials' && as.userinfo_endpoint) {
      try {
        const res = await oauth.userInfoRequest(as, client, session.accessToken, options);
        const claims = await oauth.processUserInfoResponse(as, client, oauth.skipSubjectCheck, res);
        return { user: userName(claims as Record<string, unknown>) ?? 'unknown', details: claims };
      } catch (err) {
        const failed = await failure(oauth, err, 'userinfo', profile.url);
        if (!isProtocolError(oauth, err)) throw failed;
        tried.push(failed.message);
      }
    }
    if (as.introspection_endpoint) {
      try {
        const auth = clientAuth(oauth, profile, secretFor(env, profile, session));
        const res = await oauth.introspectionRequest(as, client, auth, session.accessToken, options);
        const info = await oauth.processIntrospectionResponse(as, client, res);
        if (!info.active) throw new KeysmithError('the server says the access token is not active (revoked or expired)', 1, `log in again: keysmith login --profile ${profile.name}`);
        return { user: userName(info as Record<string, unknown>) ?? info.client_id ?? profile.clientId ?? 'unknown', details: info };
      } catch (err) {
        const failed = await failure(oauth, err, 'introspection', profile.url);
        if (!isProtocolError(oauth, err)) throw failed;
        tried.push(failed.message);
      }
    }
    const claims = jwtClaims(session.accessToken);
    const user = userName(claims) ?? (profile.flow === 'client-credentials' ? profile.clientId : undefined);
    if (user) return { user, details: claims ?? null };
    if (tried.length) throw new KeysmithError(`cannot tell who the session belongs to: ${tried.join('; ')}`);
    throw new KeysmithError('cannot tell who the session belongs to: the token is not a JWT and the server offers no userinfo or introspection endpoint');
  },
};
