/**
 * The fixture token servers speak their dialects' wire formats exactly (shared/wire-reference.md
 * §1-3): status codes, bodies byte for byte where it matters, floats vs ints, key order.
 * Each server runs as its own process (test/helpers/servers.ts) and is reached over real HTTP.
 */
import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, stopAllServers, type TestServer } from './helpers/servers.js';

const REQUEST_TIMEOUT_MS = 5_000;

afterAll(() => stopAllServers());

// ---------------------------------------------------------------------------------------------
// HTTP and JWT helpers

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

async function call(url: string, init: RequestInit & { form?: Record<string, string>; json?: unknown } = {}): Promise<Reply> {
  const { form, json, ...rest } = init;
  const headers = new Headers(rest.headers);
  let body = rest.body;
  if (form) body = new URLSearchParams(form);
  if (json !== undefined) {
    body = JSON.stringify(json);
    headers.set('content-type', 'application/json');
  }
  const method = rest.method ?? (body === undefined ? 'GET' : 'POST');
  const res = await fetch(url, { redirect: 'manual', ...rest, method, headers, body, signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  return { status: res.status, headers: res.headers, text, json: parsed };
}

const b64url = (s: string | Buffer) => Buffer.from(s).toString('base64url');

function sign(headerJson: string, payloadJson: string, key: string): string {
  const input = `${b64url(headerJson)}.${b64url(payloadJson)}`;
  return `${input}.${createHmac('sha256', key).update(input).digest('base64url')}`;
}

const TILED_HEADER = '{"alg":"HS256","typ":"JWT"}';
const signTiled = (claims: Record<string, unknown>, key: string) => sign(TILED_HEADER, JSON.stringify(claims), key);

/** The payload segment of a JWT as text. */
const payloadText = (jwt: string) => Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8');
const claims = (jwt: string) => JSON.parse(payloadText(jwt)) as Record<string, unknown>;
const now = () => Math.floor(Date.now() / 1000);
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const field = (reply: Reply, name: string) => (reply.json as Record<string, unknown>)[name] as string;

// ---------------------------------------------------------------------------------------------

describe('tiled fixture (wire-reference §1)', () => {
  const NEW = 'tiled-key-new';
  const OLD = 'tiled-key-old';
  let s: TestServer;
  let api: string;

  beforeAll(async () => {
    s = await startServer('tiled', { providers: ['toy', 'orcid'], secretKeys: [NEW, OLD] });
    api = `${s.url}/api/v1`;
  });
  afterAll(() => s?.stop());

  const login = (username = 'alice', password = 'secret1') => call(`${api}/auth/provider/toy/token`, { form: { grant_type: 'password', username, password } });

  it('redirects /api/v1 to /api/v1/ and lists internal and external providers', async () => {
    const redirect = await call(`${s.url}/api/v1`);
    expect(redirect.status).toBe(307);
    expect(redirect.headers.get('location')).toBe(`${api}/`);

    const about = await call(`${api}/`);
    expect(about.status).toBe(200);
    const auth = (about.json as { authentication: Record<string, unknown> }).authentication;
    expect(auth).toEqual({
      required: true,
      providers: [
        {
          provider: 'toy',
          mode: 'internal',
          links: { auth_endpoint: `${api}/auth/provider/toy/token` },
          confirmation_message: 'You have logged in as {id}.',
          extra_scopes: null,
        },
        {
          provider: 'orcid',
          mode: 'external',
          links: { auth_endpoint: `${api}/auth/provider/orcid/authorize` },
          confirmation_message: 'You have logged in with ORCID as {id}.',
          extra_scopes: null,
        },
      ],
      links: {
        whoami: `${api}/auth/whoami`,
        apikey: `${api}/auth/apikey`,
        refresh_session: `${api}/auth/session/refresh`,
        revoke_session: `${api}/auth/session/revoke/{session_id}`,
        logout: `${api}/auth/logout`,
      },
    });
    expect(about.json).toMatchObject({ api_version: 0, library_version: '0.2.16', links: { self: api, documentation: `${api}/docs` } });
  });

  it('logs in with a password: float lifetimes, identity, principal, python-jose tokens', async () => {
    const before = now();
    const r = await login();
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.text).toMatch(
      /^\{"access_token":"[^"]+","expires_in":900\.0,"refresh_token":"[^"]+","refresh_token_expires_in":604800\.0,"token_type":"bearer","identity":\{"id":"alice","provider":"toy"\},"principal":"[0-9a-f]{32}"\}$/,
    );
    const access = field(r, 'access_token');
    const refresh = field(r, 'refresh_token');
    expect(access.split('.')[0]).toBe('eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9');
    const ac = claims(access);
    expect(Object.keys(ac)).toEqual(['sub', 'sub_typ', 'scp', 'state', 'ids', 'exp', 'type']);
    expect(ac).toMatchObject({ sub: field(r, 'principal'), sub_typ: 'user', state: {}, ids: [{ id: 'alice', idp: 'toy' }], type: 'access' });
    expect(ac.scp).toContain('read:metadata');
    expect(Number.isInteger(ac.exp)).toBe(true);
    expect(ac.exp as number).toBeGreaterThanOrEqual(before + 900);
    expect(ac.exp as number).toBeLessThanOrEqual(now() + 900);
    const rc = claims(refresh);
    expect(Object.keys(rc)).toEqual(['type', 'sid', 'exp']);
    expect(rc.type).toBe('refresh');
    expect(rc.sid).toMatch(/^[0-9a-f]{32}$/);
    // Signed with the first key.
    expect(access).toBe(signTiled(ac, NEW));
  });

  it('answers a wrong password with 401 and WWW-Authenticate: Bearer', async () => {
    for (const r of [await login('alice', 'wrong'), await login('mallory', 'secret1')]) {
      expect(r.status).toBe(401);
      expect(r.text).toBe('{"detail":"Incorrect username or password"}');
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('answers 422 for missing form fields (an empty value counts as missing) and a bad grant_type', async () => {
    const missing = await call(`${api}/auth/provider/toy/token`, { form: { username: 'alice', password: '' } });
    expect(missing.status).toBe(422);
    expect(missing.text).toBe('{"detail":[{"type":"missing","loc":["body","password"],"msg":"Field required","input":null}]}');
    const grant = await call(`${api}/auth/provider/toy/token`, { form: { grant_type: 'client_credentials', username: 'alice', password: 'secret1' } });
    expect(grant.status).toBe(422);
    const multipart = new FormData();
    multipart.set('username', 'bob');
    multipart.set('password', 'secret2');
    expect((await call(`${api}/auth/provider/toy/token`, { method: 'POST', body: multipart })).status).toBe(200);
    expect(grant.json).toEqual({
      detail: [
        {
          type: 'string_pattern_mismatch',
          loc: ['body', 'grant_type'],
          msg: "String should match pattern '^password$'",
          input: 'client_credentials',
          ctx: { pattern: '^password$' },
        },
      ],
    });
  });

  it('refreshes with integer lifetimes and the same sid; old refresh tokens stay valid', async () => {
    const first = await login();
    const refresh = field(first, 'refresh_token');
    const r = await call(`${api}/auth/session/refresh`, { json: { refresh_token: refresh } });
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/^\{"access_token":"[^"]+","expires_in":900,"refresh_token":"[^"]+","refresh_token_expires_in":604800,"token_type":"bearer"\}$/);
    expect(claims(field(r, 'refresh_token')).sid).toBe(claims(refresh).sid);
    // Real Tiled does not rotate: the first refresh token still works.
    expect((await call(`${api}/auth/session/refresh`, { json: { refresh_token: refresh } })).status).toBe(200);
  });

  it('refresh errors: bad token 401 + header, expired 401, access token 500, bodies 422', async () => {
    const url = `${api}/auth/session/refresh`;
    const garbage = await call(url, { json: { refresh_token: 'not-a-jwt' } });
    expect(garbage.status).toBe(401);
    expect(garbage.text).toBe('{"detail":"Could not validate credentials"}');
    expect(garbage.headers.get('www-authenticate')).toBe('Bearer');

    const sid = claims(field(await login(), 'refresh_token')).sid;
    const expired = await call(url, { json: { refresh_token: signTiled({ type: 'refresh', sid, exp: now() - 5 }, NEW) } });
    expect(expired.status).toBe(401);
    expect(expired.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');
    expect(expired.headers.get('www-authenticate')).toBeNull();

    const unknown = await call(url, { json: { refresh_token: signTiled({ type: 'refresh', sid: 'f'.repeat(32), exp: now() + 60 }, NEW) } });
    expect(unknown.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');
    const legacy = await call(url, { json: { refresh_token: signTiled({ type: 'refresh', sid: 42, exp: now() + 60 }, NEW) } });
    expect(legacy.status).toBe(401);
    expect(legacy.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');

    const access = await call(url, { json: { refresh_token: field(await login(), 'access_token') } });
    expect(access.status).toBe(500);
    expect(access.text).toBe('Internal Server Error');

    const missing = await call(url, { json: {} });
    expect(missing.status).toBe(422);
    expect(missing.text).toBe('{"detail":[{"type":"missing","loc":["body","refresh_token"],"msg":"Field required","input":{}}]}');
    const form = await call(url, { form: { refresh_token: 'x' } });
    expect(form.status).toBe(422);
    expect(form.json).toEqual({ detail: [{ type: 'json_invalid', loc: ['body', 0], msg: 'JSON decode error', input: {}, ctx: { error: 'Expecting value' } }] });
  });

  it('verifies with every secret key and signs with the first', async () => {
    const r = await login();
    const sid = claims(field(r, 'refresh_token')).sid;
    const oldSigned = signTiled({ type: 'refresh', sid, exp: now() + 60 }, OLD);
    const refreshed = await call(`${api}/auth/session/refresh`, { json: { refresh_token: oldSigned } });
    expect(refreshed.status).toBe(200);
    const token = field(refreshed, 'refresh_token');
    expect(token).toBe(signTiled(claims(token), NEW));
    const foreign = signTiled({ type: 'refresh', sid, exp: now() + 60 }, 'some-other-key');
    expect((await call(`${api}/auth/session/refresh`, { json: { refresh_token: foreign } })).status).toBe(401);
  });

  it('revokes sessions: 204 (again 204), then refresh fails; unknown 409; DELETE by id', async () => {
    const r = await login();
    const refresh = field(r, 'refresh_token');
    const revoke = (token: string) => call(`${api}/auth/session/revoke`, { json: { refresh_token: token } });
    const done = await revoke(refresh);
    expect(done.status).toBe(204);
    expect(done.text).toBe('');
    expect((await revoke(refresh)).status).toBe(204);
    const after = await call(`${api}/auth/session/refresh`, { json: { refresh_token: refresh } });
    expect(after.status).toBe(401);
    expect(after.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');

    // ExpiredSignatureError is not caught on the revoke route.
    expect((await revoke(signTiled({ type: 'refresh', sid: claims(refresh).sid, exp: now() - 5 }, NEW))).status).toBe(500);
    const sid = 'a'.repeat(32);
    const unknown = await revoke(signTiled({ type: 'refresh', sid, exp: now() + 60 }, NEW));
    expect(unknown.status).toBe(409);
    expect(unknown.text).toBe(`{"detail":"No session ${sid}"}`);

    const other = await login();
    const otherSid = claims(field(other, 'refresh_token')).sid as string;
    const bearer = { authorization: `Bearer ${field(other, 'access_token')}` };
    const del = (id: string, headers: Record<string, string> = bearer) => call(`${api}/auth/session/revoke/${id}`, { method: 'DELETE', headers });
    expect((await del(sid)).text).toBe(`{"detail":"No session ${sid}"}`);
    const bobs = claims(field(await login('bob', 'secret2'), 'refresh_token')).sid as string;
    const foreign = await del(bobs);
    expect(foreign.status).toBe(404);
    expect(foreign.text).toBe('{"detail":"Sessions does not exist or requester has insufficient permissions"}');
    expect((await del(otherSid, {})).status).toBe(500);
    expect((await del(otherSid)).status).toBe(204);
    expect((await call(`${api}/auth/session/refresh`, { json: { refresh_token: field(other, 'refresh_token') } })).status).toBe(401);
  });

  it('whoami: null without credentials, the principal, 401 when expired, 400 for Basic, 500 for a refresh token', async () => {
    const anonymous = await call(`${api}/auth/whoami`);
    expect(anonymous.status).toBe(200);
    expect(anonymous.text).toBe('null');

    const r = await login('cara', 'secret3');
    const me = await call(`${api}/auth/whoami`, { headers: { authorization: `Bearer ${field(r, 'access_token')}` } });
    expect(me.status).toBe(200);
    const principal = me.json as Record<string, unknown>;
    expect(Object.keys(principal)).toEqual(['uuid', 'type', 'identities', 'roles', 'api_keys', 'sessions', 'latest_activity']);
    expect(principal.uuid).toBe(field(r, 'principal').replace(/^(.{8})(.{4})(.{4})(.{4})(.{12})$/, '$1-$2-$3-$4-$5'));
    expect(principal.identities).toEqual([{ id: 'cara', provider: 'toy', latest_login: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d$/) }]);

    const expiredToken = signTiled({ ...claims(field(r, 'access_token')), exp: now() - 5 }, NEW);
    const expired = await call(`${api}/auth/whoami`, { headers: { authorization: `Bearer ${expiredToken}` } });
    expect(expired.status).toBe(401);
    expect(expired.text).toBe('{"detail":"Access token has expired. Refresh token."}');
    expect(expired.headers.get('www-authenticate')).toBe('Bearer');
    expect(expired.headers.get('x-tiled-root')).toBe(api);

    const basicAuth = await call(`${api}/auth/whoami`, { headers: { authorization: basic('cara', 'secret3') } });
    expect(basicAuth.status).toBe(400);
    expect(basicAuth.text).toBe(
      `{"detail":"Authorization header must include the authorization type followed by a space and then the secret, as in 'Bearer SECRET' or 'Apikey SECRET'. "}`,
    );

    const refreshAsBearer = await call(`${api}/auth/whoami`, { headers: { authorization: `Bearer ${field(r, 'refresh_token')}` } });
    expect(refreshAsBearer.status).toBe(500);
  });

  it('protects /metadata with the read:metadata scope', async () => {
    const none = await call(`${api}/metadata/raw/scan1`);
    expect(none.status).toBe(401);
    expect(none.text).toBe(`{"detail":"Not enough permissions. Requires scopes ['read:metadata']. Request had scopes []"}`);
    expect(none.headers.get('www-authenticate')).toBe('Bearer scope="read:metadata"');
    expect(none.headers.get('x-tiled-root')).toBe(api);

    const token = field(await login(), 'access_token');
    const ok = await call(`${api}/metadata/raw/scan1`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(ok.json).toMatchObject({ data: { id: 'scan1', attributes: { ancestors: ['raw'] } } });

    const expired = await call(`${api}/metadata/raw`, { headers: { authorization: `Bearer ${signTiled({ ...claims(token), exp: now() - 5 }, NEW)}` } });
    expect(expired.status).toBe(401);
    expect(expired.headers.get('www-authenticate')).toBe('Bearer scope="read:metadata"');
  });

  it('creates and accepts API keys (Apikey header, ?api_key= moved into a cookie)', async () => {
    const bearer = { authorization: `Bearer ${field(await login(), 'access_token')}` };
    const created = await call(`${api}/auth/apikey`, { headers: bearer, json: { expires_in: 600, scopes: ['read:metadata'], note: 'ci' } });
    expect(created.status).toBe(200);
    expect(Object.keys(created.json as object)).toEqual(['first_eight', 'expiration_time', 'note', 'scopes', 'access_tags', 'latest_activity', 'secret']);
    const secret = field(created, 'secret');
    expect(secret).toMatch(/^[0-9a-f]{72}$/);
    expect(field(created, 'first_eight')).toBe(secret.slice(0, 8));

    expect((await call(`${api}/metadata/x`, { headers: { authorization: `Apikey ${secret}` } })).status).toBe(200);
    const viaQuery = await call(`${api}/metadata/x?api_key=${secret}`);
    expect(viaQuery.status).toBe(200);
    expect(viaQuery.headers.getSetCookie().some((c) => c.startsWith(`tiled_api_key=${secret};`))).toBe(true);
    const bad = await call(`${api}/metadata/x`, { headers: { authorization: `Apikey ${'0'.repeat(72)}` } });
    expect(bad.status).toBe(401);
    expect(bad.text).toBe('{"detail":"Invalid API key"}');

    const missing = await call(`${api}/auth/apikey`, { headers: bearer, json: { scopes: null } });
    expect(missing.status).toBe(422);
    expect((await call(`${api}/auth/apikey`, { method: 'DELETE', headers: bearer })).status).toBe(422);
    expect((await call(`${api}/auth/apikey?first_eight=${secret.slice(0, 8)}`, { method: 'DELETE', headers: bearer })).status).toBe(204);
    expect((await call(`${api}/metadata/x`, { headers: { authorization: `Apikey ${secret}` } })).status).toBe(401);
  });

  it('device flow: 400 pending, approve, 200 once with floats, then 404; 401 for non-hex; 422', async () => {
    const start = await call(`${api}/auth/provider/orcid/authorize`, { method: 'POST' });
    expect(start.status).toBe(200);
    expect(Object.keys(start.json as object)).toEqual(['authorization_uri', 'verification_uri', 'interval', 'device_code', 'expires_in', 'user_code']);
    expect(start.text).toContain('"interval":5,');
    expect(start.text).toContain('"expires_in":900.0,');
    expect(field(start, 'verification_uri')).toBe(`${api}/auth/provider/orcid/token`);
    expect(field(start, 'device_code')).toMatch(/^[0-9a-f]{64}$/);
    expect(field(start, 'user_code')).toMatch(/^[0-9A-F]{4}-[0-9A-F]{4}$/);
    const authUri = new URL(field(start, 'authorization_uri'));
    expect(authUri.searchParams.get('redirect_uri')).toBe(`${api}/auth/provider/orcid/device_code`);
    expect(authUri.searchParams.get('response_type')).toBe('code');

    const poll = (deviceCode: string) =>
      call(field(start, 'verification_uri'), { json: { device_code: deviceCode, grant_type: 'urn:ietf:params:oauth:grant-type:device_code' } });
    const pending = await poll(field(start, 'device_code'));
    expect(pending.status).toBe(400);
    expect(pending.text).toBe('{"detail":{"error":"authorization_pending"}}');

    await s.approve(field(start, 'user_code').toLowerCase(), '0000-0002-1825-0097');
    const done = await poll(field(start, 'device_code'));
    expect(done.status).toBe(200);
    expect(done.text).toContain('"expires_in":900.0,');
    expect(done.json).toMatchObject({ token_type: 'bearer', identity: { id: '0000-0002-1825-0097', provider: 'orcid' } });
    const again = await poll(field(start, 'device_code'));
    expect(again.status).toBe(404);
    expect(again.text).toBe('{"detail":"No such device_code. The pending request may have expired."}');

    const nonHex = await poll('xyz');
    expect(nonHex.status).toBe(401);
    expect(nonHex.text).toBe('{"detail":"Invalid device code"}');
    const noGrant = await call(field(start, 'verification_uri'), { json: { device_code: field(start, 'device_code') } });
    expect(noGrant.status).toBe(422);
    // The password route does not exist for external providers and vice versa.
    expect((await call(`${api}/auth/provider/toy/authorize`, { method: 'POST' })).status).toBe(404);
  });

  it('device flow through the browser step: fake IdP redirect, device_code form', async () => {
    const start = await call(`${api}/auth/provider/orcid/authorize`, { method: 'POST' });
    const idp = await call(field(start, 'authorization_uri'));
    expect(idp.status).toBe(302);
    const back = new URL(idp.headers.get('location')!);
    expect(`${back.origin}${back.pathname}`).toBe(`${api}/auth/provider/orcid/device_code`);
    const page = await call(back.toString());
    expect(page.status).toBe(200);
    expect(page.text).toContain('name="user_code"');

    const code = back.searchParams.get('code')!;
    const wrong = await call(`${api}/auth/provider/orcid/device_code`, { form: { code, user_code: 'ZZZZ-ZZZZ' } });
    expect(wrong.status).toBe(401);
    const ok = await call(`${api}/auth/provider/orcid/device_code`, { form: { code, user_code: ` ${field(start, 'user_code').toLowerCase()}` } });
    expect(ok.status).toBe(200);
    const done = await call(field(start, 'verification_uri'), { json: { device_code: field(start, 'device_code'), grant_type: 'x' } });
    expect(done.status).toBe(200);
    expect(done.json).toMatchObject({ identity: { id: 'alice', provider: 'orcid' } });
  });

  it('counts requests per route and status, and takes options at runtime', async () => {
    const before = await s.stats();
    await login('alice', 'wrong');
    await s.admin({ accessTtl: 60 });
    const r = await login();
    expect(r.text).toContain('"expires_in":60.0,');
    await s.admin({ accessTtl: 900 });
    const after = await s.stats();
    expect(after.login).toBe((before.login as number) + 2);
    expect(after.statuses.login!['401']).toBe((before.statuses.login?.['401'] ?? 0) + 1);
    expect(after.sessions.some((x) => x.sid === claims(field(r, 'refresh_token')).sid && x.revoked === false)).toBe(true);
  });
});

describe('tiled fixture options', () => {
  it('rotateRefresh: each refresh retires the used token; a replay revokes the whole session', async () => {
    const s = await startServer('tiled', { rotateRefresh: true });
    try {
      const api = `${s.url}/api/v1`;
      const first = await call(`${api}/auth/provider/toy/token`, { form: { username: 'bob', password: 'secret2' } });
      const t1 = field(first, 'refresh_token');
      const refresh = (t: string) => call(`${api}/auth/session/refresh`, { json: { refresh_token: t } });
      const second = await refresh(t1);
      expect(second.status).toBe(200);
      const t2 = field(second, 'refresh_token');
      expect(t2).not.toBe(t1);
      const third = await refresh(t2);
      expect(third.status).toBe(200);
      const replay = await refresh(t1);
      expect(replay.status).toBe(401);
      expect(replay.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');
      // The whole session is gone, including the newest token.
      expect((await refresh(field(third, 'refresh_token'))).status).toBe(401);
      const stats = await s.stats();
      expect(stats.reuseDetected).toBe(1);
      expect(stats.sessions).toEqual([expect.objectContaining({ revoked: true, refreshCount: 2 })]);
    } finally {
      await s.stop();
    }
  });

  it('slowRefreshMs widens the race window: concurrent refreshes overlap', async () => {
    const s = await startServer('tiled', { slowRefreshMs: 300 });
    try {
      const api = `${s.url}/api/v1`;
      const t = field(await call(`${api}/auth/provider/toy/token`, { form: { username: 'alice', password: 'secret1' } }), 'refresh_token');
      const started = Date.now();
      const replies = await Promise.all([0, 1].map(() => call(`${api}/auth/session/refresh`, { json: { refresh_token: t } })));
      expect(replies.map((r) => r.status)).toEqual([200, 200]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(290);
      const stats = await s.stats();
      expect(stats.maxInFlight.refresh).toBe(2);
      expect(stats.refresh).toBe(2);
    } finally {
      await s.stop();
    }
  });

  it('short sessionTtl and deviceExpiresIn expire sessions and device codes', async () => {
    const s = await startServer('tiled', { sessionTtl: 1, deviceExpiresIn: 1, providers: ['orcid', 'toy'] });
    try {
      const api = `${s.url}/api/v1`;
      const r = await call(`${api}/auth/provider/toy/token`, { form: { username: 'alice', password: 'secret1' } });
      const start = await call(`${api}/auth/provider/orcid/authorize`, { method: 'POST' });
      await new Promise((resolve) => setTimeout(resolve, 2100));
      const refreshed = await call(`${api}/auth/session/refresh`, { json: { refresh_token: field(r, 'refresh_token') } });
      expect(refreshed.status).toBe(401);
      expect(refreshed.text).toBe('{"detail":"Session has expired. Please re-authenticate."}');
      const poll = await call(`${api}/auth/provider/orcid/token`, { json: { device_code: field(start, 'device_code'), grant_type: 'g' } });
      expect(poll.status).toBe(404);
    } finally {
      await s.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('basic-login fixture (wire-reference §2)', () => {
  const KEY = 'basic-key-new';
  const OLD = 'basic-key-old';
  let s: TestServer;

  beforeAll(async () => {
    s = await startServer('basic-login', { secretKeys: [KEY, OLD] });
  });
  afterAll(() => s?.stop());

  const login = (user = 'dallan', password = 'password') => call(`${s.url}/login`, { method: 'POST', headers: { authorization: basic(user, password) } });
  const PY_HEADER = '{"typ": "JWT", "alg": "HS256"}';

  it('logs in any user with password "password": Python-serialised JWTs, refresh_token first', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await login();
    expect(r.status).toBe(200);
    expect(Object.keys(r.json as object)).toEqual(['refresh_token', 'access_token']);
    const access = field(r, 'access_token');
    const refresh = field(r, 'refresh_token');
    expect(access.split('.')[0]).toBe('eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJIUzI1NiJ9');
    const exp = claims(access).exp as number;
    expect(payloadText(access)).toBe(`{"sub": "dallan", "type": "access", "exp": ${exp}}`);
    expect(exp - before).toBeGreaterThanOrEqual(9);
    expect(exp - before).toBeLessThanOrEqual(11);
    expect(payloadText(refresh)).toMatch(/^\{"sub": "dallan", "type": "refresh", "exp": \d+\}$/);
    expect((claims(refresh).exp as number) - before).toBeGreaterThanOrEqual(1209600 - 1);
    expect(access).toBe(sign(PY_HEADER, payloadText(access), KEY));
  });

  it('login errors: 401 {"error":"..."} without WWW-Authenticate, 500 for bad base64, 405 for GET', async () => {
    for (const r of [await login('dallan', 'nope'), await call(`${s.url}/login`, { method: 'POST' }), await call(`${s.url}/login`, { method: 'POST', headers: { authorization: 'Bearer x' } })]) {
      expect(r.status).toBe(401);
      expect(r.text).toBe('{"error":"..."}');
      expect(r.headers.get('www-authenticate')).toBeNull();
    }
    const bad = await call(`${s.url}/login`, { method: 'POST', headers: { authorization: 'Basic YQ' } });
    expect(bad.status).toBe(500);
    expect(bad.text).toBe('Internal Server Error');
    expect(bad.headers.get('content-type')).toMatch(/^text\/plain/);
    const get = await call(`${s.url}/login`);
    expect(get.status).toBe(405);
    expect(get.text).toBe('Method Not Allowed');
  });

  it('serves /data to a bearer access token only', async () => {
    const r = await login('alice');
    const data = await call(`${s.url}/data`, { headers: { authorization: `Bearer ${field(r, 'access_token')}` } });
    expect(data.status).toBe(200);
    expect(data.text).toBe('{"data":[1,2,3],"who_am_i":"alice"}');
    const refreshAsBearer = await call(`${s.url}/data`, { headers: { authorization: `Bearer ${field(r, 'refresh_token')}` } });
    expect(refreshAsBearer.status).toBe(401);
    expect(refreshAsBearer.text).toBe('{"error":"..."}');
    expect((await call(`${s.url}/data`)).text).toBe('{"error":"..."}');
    const expired = sign(PY_HEADER, `{"sub": "alice", "type": "access", "exp": ${now() - 1}}`, OLD);
    expect((await call(`${s.url}/data`, { headers: { authorization: `Bearer ${expired}` } })).status).toBe(401);
    const oldKey = sign(PY_HEADER, `{"sub": "alice", "type": "access", "exp": ${now() + 60}}`, OLD);
    expect((await call(`${s.url}/data`, { headers: { authorization: `Bearer ${oldKey}` } })).status).toBe(200);
    const malformed = await call(`${s.url}/data`, { headers: { authorization: 'Bearer garbage' } });
    expect(malformed.status).toBe(500);
    expect(malformed.text).toBe('Internal Server Error');
  });

  it('refreshes without rotation; errors {"error": null} and {"error": <payload>}', async () => {
    const r = await login('alice');
    const refresh = field(r, 'refresh_token');
    const again = await call(`${s.url}/refresh`, { json: { refresh_token: refresh } });
    expect(again.status).toBe(200);
    expect(Object.keys(again.json as object)).toEqual(['refresh_token', 'access_token']);
    expect((await call(`${s.url}/refresh`, { json: { refresh_token: refresh, access_token: 'ignored' } })).status).toBe(200);

    const wrongKey = sign(PY_HEADER, payloadText(refresh), 'another-key');
    const bad = await call(`${s.url}/refresh`, { json: { refresh_token: wrongKey } });
    expect(bad.status).toBe(401);
    expect(bad.text).toBe('{"error":null}');

    const access = field(r, 'access_token');
    const notRefresh = await call(`${s.url}/refresh`, { json: { refresh_token: access } });
    expect(notRefresh.status).toBe(401);
    expect(notRefresh.text).toBe(`{"error":${JSON.stringify(claims(access))}}`);

    expect((await call(`${s.url}/refresh`, { json: {} })).status).toBe(500);
    expect((await call(`${s.url}/refresh`, { form: { refresh_token: refresh } })).status).toBe(500);
  });

  it('device flow: pending 401, approval, single-use collection, unrecognized afterwards', async () => {
    const start = await call(`${s.url}/authorize`, { method: 'POST' });
    expect(start.status).toBe(200);
    expect(Object.keys(start.json as object)).toEqual(['authorization_uri', 'verification_uri', 'interval', 'device_code', 'expires_in', 'user_code']);
    expect(start.json).toMatchObject({ verification_uri: `${s.url}/token`, interval: 2, expires_in: 900 });
    expect(field(start, 'user_code')).toMatch(/^[0-9A-F]{8}$/);
    const authUri = new URL(field(start, 'authorization_uri'));
    expect(Object.fromEntries(authUri.searchParams)).toEqual({
      client_id: 'example_client_id',
      response_type: 'code',
      scope: 'openid',
      redirect_uri: `${s.url}/device_code_callback`,
    });

    const poll = () => call(`${s.url}/token`, { form: { device_code: field(start, 'device_code') } });
    const pending = await poll();
    expect(pending.status).toBe(401);
    expect(pending.text).toBe('{"error":"pending"}');
    await s.approve(field(start, 'user_code'), 'carol');
    const done = await poll();
    expect(done.status).toBe(200);
    expect(Object.keys(done.json as object)).toEqual(['refresh_token', 'access_token']);
    expect(claims(field(done, 'access_token')).sub).toBe('carol');
    const again = await poll();
    expect(again.status).toBe(401);
    expect(again.text).toBe('{"error":"unrecognized device code -- maybe expired"}');
    expect((await call(`${s.url}/token`, { json: { device_code: 'x' } })).status).toBe(500);
    // Approval matches the user code exactly (no normalisation).
    await expect(s.approve(field(start, 'user_code').toLowerCase())).rejects.toThrow(/404/);
  });

  it('device flow through the browser step: fake IdP, /device_code_callback, /device_code_form', async () => {
    const start = await call(`${s.url}/authorize`, { method: 'POST' });
    const idp = await call(field(start, 'authorization_uri'));
    expect(idp.status).toBe(302);
    const back = new URL(idp.headers.get('location')!);
    const page = await call(back.toString());
    expect(page.text).toContain(`action="${s.url}/device_code_form"`);
    const code = back.searchParams.get('code')!;
    const ok = await call(`${s.url}/device_code_form`, { form: { code, user_code: field(start, 'user_code') } });
    expect(ok.status).toBe(200);
    expect(ok.text).toBe('<html><body>And there was much rejoicing!</body></html>');
    const done = await call(`${s.url}/token`, { form: { device_code: field(start, 'device_code') } });
    expect(claims(field(done, 'access_token')).sub).toBe('alice');
  });
});

describe('basic-login fixture options', () => {
  it('users replaces the any-user check; rotateRefresh detects replays; accessTtl applies', async () => {
    const s = await startServer('basic-login', { users: { bob: 'hunter2' }, rotateRefresh: true, accessTtl: 60 });
    try {
      const denied = await call(`${s.url}/login`, { method: 'POST', headers: { authorization: basic('alice', 'password') } });
      expect(denied.status).toBe(401);
      const r = await call(`${s.url}/login`, { method: 'POST', headers: { authorization: basic('bob', 'hunter2') } });
      expect(r.status).toBe(200);
      const exp = claims(field(r, 'access_token')).exp as number;
      expect(exp - now()).toBeGreaterThanOrEqual(58);
      const t1 = field(r, 'refresh_token');
      const refresh = (t: string) => call(`${s.url}/refresh`, { json: { refresh_token: t } });
      const t2 = field(await refresh(t1), 'refresh_token');
      const replay = await refresh(t1);
      expect(replay.status).toBe(401);
      expect(replay.text).toBe('{"error":null}');
      expect((await refresh(t2)).status).toBe(401);
      const stats = await s.stats();
      expect(stats.reuseDetected).toBe(1);
      expect(stats.sessions).toEqual([expect.objectContaining({ sub: 'bob', revoked: true, refreshCount: 1 })]);
      expect(stats.statuses.refresh).toEqual({ '200': 1, '401': 2 });
    } finally {
      await s.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('wavemaker fixture (wire-reference §3)', () => {
  let docs: TestServer;
  let runtime: TestServer;

  beforeAll(async () => {
    [docs, runtime] = await Promise.all([startServer('wavemaker', { variant: 'docs' }), startServer('wavemaker', { variant: 'runtime', base: '/App' })]);
  });
  afterAll(() => Promise.all([docs?.stop(), runtime?.stop()]));

  const tokenUrl = (s: TestServer, base = '/Demo') => `${s.url}${base}/services/security/token`;
  const apiUrl = (s: TestServer, base = '/Demo') => `${s.url}${base}/services/hrdb/User/`;
  const DOCS_401 =
    '{"errors":{"error":[{"id":null,"messageKey":"com.wavemaker.studio.json$UnexpectedError","message":null,"parameters":["Require authentication to generate access token"]}]}}';
  const RUNTIME_401 =
    '{"errors":{"error":[{"messageKey":"com.wavemaker.unAuthorized","message":"unAuthorized","parameters":["Require authentication to generate access token"]}]}}';
  const INVALID_TOKEN = '"messageKey":null,"message":"Invalid Token,Failed to authenticate with the given token","parameters":[]}]}}';

  it('docs variant: Basic gets {"wm_auth_token": 32 hex}, a new one each time', async () => {
    const a = await call(tokenUrl(docs), { headers: { authorization: basic('admin', 'admin') } });
    const b = await call(tokenUrl(docs), { headers: { authorization: basic('admin', 'admin') } });
    expect(a.status).toBe(200);
    expect(a.text).toMatch(/^\{"wm_auth_token":"[0-9a-f]{32}"\}$/);
    expect(field(a, 'wm_auth_token')).not.toBe(field(b, 'wm_auth_token'));
    // Older tokens stay valid.
    expect((await call(apiUrl(docs), { headers: { wm_auth_token: field(a, 'wm_auth_token') } })).status).toBe(200);
  });

  it('docs variant: missing and wrong credentials give the same documented 401', async () => {
    const attempts: Array<Record<string, string>> = [{}, { authorization: basic('admin', 'wrong') }, { authorization: 'Basic !!!' }];
    for (const headers of attempts) {
      const r = await call(tokenUrl(docs), { headers });
      expect(r.status).toBe(401);
      expect(r.text).toBe(DOCS_401);
    }
  });

  it('a still-valid token (header of any case, or query) renews; an invalid one is 401 Invalid Token', async () => {
    const token = field(await call(tokenUrl(docs), { headers: { authorization: basic('user', 'user') } }), 'wm_auth_token');
    for (const name of ['wm_auth_token', 'WM_AUTH_TOKEN', 'Wm_Auth_Token']) {
      const renewed = await call(tokenUrl(docs), { headers: { [name]: token } });
      expect(renewed.status).toBe(200);
      expect(field(renewed, 'wm_auth_token')).not.toBe(token);
    }
    expect((await call(`${tokenUrl(docs)}?wm_auth_token=${token}`)).status).toBe(200);
    // Query names are case-sensitive: this one is not the token parameter.
    expect((await call(`${tokenUrl(docs)}?WM_AUTH_TOKEN=${token}`)).text).toBe(DOCS_401);

    const invalid = await call(tokenUrl(docs), { headers: { wm_auth_token: 'f'.repeat(32), authorization: basic('user', 'user') } });
    expect(invalid.status).toBe(401);
    expect(invalid.text).toBe(`{"errors":{"error":[{"id":null,${INVALID_TOKEN}`);
    // The query parameter wins over the header.
    expect((await call(`${apiUrl(docs)}?wm_auth_token=bad`, { headers: { wm_auth_token: token } })).status).toBe(401);
    expect((await call(`${apiUrl(docs)}?wm_auth_token=${token}`, { headers: { wm_auth_token: 'bad' } })).status).toBe(200);
    // A blank query parameter falls back to the header.
    expect((await call(`${apiUrl(docs)}?wm_auth_token=`, { headers: { wm_auth_token: token } })).status).toBe(200);
  });

  it('protected API: Basic or token; nothing gives 401 with X-WM-Login-ErrorMessage', async () => {
    const none = await call(apiUrl(docs));
    expect(none.status).toBe(401);
    expect(none.headers.get('x-wm-login-errormessage')).toBe('Session Not Found');
    expect((await call(apiUrl(docs), { headers: { authorization: basic('admin', 'admin') } })).status).toBe(200);
  });

  it('non-GET on the token endpoint is a 400 errors body', async () => {
    const r = await call(tokenUrl(docs), { method: 'POST', headers: { authorization: basic('admin', 'admin') } });
    expect(r.status).toBe(400);
    expect(r.json).toEqual({
      errors: { error: [{ id: null, messageKey: 'com.wavemaker.runtime.data$InvalidInput', message: null, parameters: ["Request method 'POST' not supported"] }] },
    });
  });

  it('runtime variant: WM_AUTH_TOKEN key and parameter, unAuthorized body, custom base', async () => {
    const r = await call(tokenUrl(runtime, '/App'), { headers: { authorization: basic('admin', 'admin') } });
    expect(r.text).toMatch(/^\{"WM_AUTH_TOKEN":"[0-9a-f]{32}"\}$/);
    const token = field(r, 'WM_AUTH_TOKEN');
    const anonymous = await call(tokenUrl(runtime, '/App'));
    expect(anonymous.status).toBe(401);
    expect(anonymous.text).toBe(RUNTIME_401);
    // The documented lower-case query parameter is ignored by a current runtime.
    expect((await call(`${tokenUrl(runtime, '/App')}?wm_auth_token=${token}`)).text).toBe(RUNTIME_401);
    expect((await call(`${tokenUrl(runtime, '/App')}?WM_AUTH_TOKEN=${token}`)).status).toBe(200);
    // Header names are case-insensitive.
    expect((await call(apiUrl(runtime, '/App'), { headers: { wm_auth_token: token } })).status).toBe(200);
    const invalid = await call(apiUrl(runtime, '/App'), { headers: { WM_AUTH_TOKEN: 'nope' } });
    expect(invalid.text).toBe(`{"errors":{"error":[{${INVALID_TOKEN}`);
    expect((await call(tokenUrl(runtime))).status).toBe(404);
  });

  it('tokens expire accessTtl seconds after creation (set at runtime)', async () => {
    await docs.admin({ accessTtl: 1 });
    try {
      const token = field(await call(tokenUrl(docs), { headers: { authorization: basic('admin', 'admin') } }), 'wm_auth_token');
      expect((await call(apiUrl(docs), { headers: { wm_auth_token: token } })).status).toBe(200);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const expired = await call(tokenUrl(docs), { headers: { wm_auth_token: token } });
      expect(expired.status).toBe(401);
      expect(expired.text).toContain('Invalid Token,Failed to authenticate with the given token');
    } finally {
      await docs.admin({ accessTtl: 1800 });
    }
    const stats = await docs.stats();
    expect(stats.invalidToken as number).toBeGreaterThanOrEqual(1);
    expect(stats.renewal as number).toBeGreaterThanOrEqual(3);
  });
});

describe('wavemaker fixture options', () => {
  it('rotateRefresh + slowRefreshMs: concurrent renewals with one token revoke its family', async () => {
    const s = await startServer('wavemaker', { rotateRefresh: true, slowRefreshMs: 200 });
    try {
      const url = `${s.url}/Demo/services/security/token`;
      const token = field(await call(url, { headers: { authorization: basic('admin', 'admin') } }), 'wm_auth_token');
      const replies = await Promise.all([0, 1].map(() => call(url, { headers: { wm_auth_token: token } })));
      expect(replies.map((r) => r.status).sort()).toEqual([200, 401]);
      const winner = replies.find((r) => r.status === 200)!;
      expect((await call(`${s.url}/Demo/services/hrdb/User/`, { headers: { wm_auth_token: field(winner, 'wm_auth_token') } })).status).toBe(401);
      const stats = await s.stats();
      expect(stats.reuseDetected).toBe(1);
      expect(stats.maxInFlight.token).toBe(2);
      expect(stats.sessions).toEqual([expect.objectContaining({ user: 'admin', revoked: true, liveTokens: 0 })]);
    } finally {
      await s.stop();
    }
  });
});

describe('startServer helper', () => {
  it('reports a server that cannot listen, and stop() ends the process', async () => {
    const first = await startServer('basic-login');
    try {
      const port = Number(new URL(first.url).port);
      await expect(startServer('basic-login', { port })).rejects.toThrow(/exited before it was ready/);
    } finally {
      await first.stop();
    }
    expect(() => process.kill(first.pid, 0)).toThrow();
    await first.stop(); // idempotent
  });
});
