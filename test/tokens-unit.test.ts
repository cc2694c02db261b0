import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isStale } from '../src/tokens/policy.js';
import { listProfiles, readSession, resolveProfile, saveProfile, sessionPath, setDefaultProfile, writeSession, type Session } from '../src/tokens/store.js';
import { jwtClaims, sessionFromTokenResponse } from '../src/tokens/dialect.js';
import { serverMessage, type HttpResponse } from '../src/tokens/http.js';
import { fakeCtx } from './helpers/ctx.js';

const T0 = 1_800_000_000_000;

function session(lifetimeS: number, obtainedAt = T0): Session {
  return { accessToken: 'a', tokenType: 'bearer', obtainedAt, expiresAt: obtainedAt + lifetimeS * 1000 };
}

describe('refresh policy', () => {
  it('refreshes a 15-minute token within the last 60 s, not before', () => {
    const s = session(900);
    expect(isStale(s, T0 + 839_000)).toBe(false);
    expect(isStale(s, T0 + 840_000)).toBe(true);
  });

  it('never refreshes more than half a lifetime ahead (a 60 s token is not refreshed on every call)', () => {
    const s = session(60);
    expect(isStale(s, T0 + 1_000)).toBe(false);
    expect(isStale(s, T0 + 29_999)).toBe(false);
    expect(isStale(s, T0 + 30_000)).toBe(true);
  });

  it('honours --min-ttl and treats tokens of unknown lifetime as fresh', () => {
    expect(isStale(session(3600), T0 + 3_000_000, 900)).toBe(true);
    expect(isStale(session(3600), T0 + 3_000_000, 60)).toBe(false);
    expect(isStale({ accessToken: 'a', tokenType: 'bearer', obtainedAt: T0 }, T0 + 1e12)).toBe(false);
  });

  it('an expired token is stale', () => {
    expect(isStale(session(10), T0 + 11_000)).toBe(true);
  });
});

describe('token store', () => {
  function ctx() {
    const home = mkdtempSync(join(tmpdir(), 'ks-store-'));
    return fakeCtx({ env: { HOME: home } }).ctx;
  }

  it('saves profiles, makes the last login the default and honours KEYSMITH_PROFILE', async () => {
    const c = ctx();
    await saveProfile(c, { name: 'a', url: 'http://a', dialect: 'tiled' });
    await saveProfile(c, { name: 'b', url: 'http://b', dialect: 'wavemaker' });
    expect((await resolveProfile(c, undefined)).name).toBe('b');
    await setDefaultProfile(c, 'a');
    expect((await resolveProfile(c, undefined)).name).toBe('a');
    expect((await resolveProfile({ ...c, env: { ...c.env, KEYSMITH_PROFILE: 'b' } }, undefined)).name).toBe('b');
    expect((await resolveProfile(c, 'b')).name).toBe('b');
    await expect(resolveProfile(c, 'zzz')).rejects.toThrow(/no profile zzz/);
    expect((await listProfiles(c)).profiles.map((p) => p.name)).toEqual(['a', 'b']);
  });

  it('writes sessions 0600 in 0700 directories under XDG_STATE_HOME', async () => {
    const base = mkdtempSync(join(tmpdir(), 'ks-xdg-'));
    const c = fakeCtx({ env: { XDG_STATE_HOME: join(base, 'state'), XDG_CONFIG_HOME: join(base, 'config') } }).ctx;
    await writeSession(c, 'host:8000', session(900));
    const path = sessionPath(c, 'host:8000');
    expect(path.startsWith(join(base, 'state', 'keysmith', 'sessions'))).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(base, 'state', 'keysmith')).mode & 0o777).toBe(0o700);
    expect(await readSession(c, 'host:8000')).toEqual(session(900));
    expect(await readSession(c, 'other')).toBeNull();
  });

  it('needs HOME or XDG dirs', async () => {
    await expect(resolveProfile(fakeCtx({ env: {} }).ctx, undefined)).rejects.toThrow(/HOME/);
  });
});

function response(status: number, body: unknown, contentType = 'application/json'): HttpResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status, statusText: status === 200 ? 'OK' : 'Unauthorized', headers: new Headers({ 'content-type': contentType }), text, json, url: 'http://h:1/x' };
}

describe('token answers and server errors', () => {
  it('reads expires_in as float or int, and falls back to the JWT exp', () => {
    const s = sessionFromTokenResponse(response(200, { access_token: 'x', expires_in: 900.0, refresh_token: 'r', refresh_token_expires_in: 604800 }), T0, 'login');
    expect(s).toMatchObject({ accessToken: 'x', expiresAt: T0 + 900_000, refreshToken: 'r', refreshExpiresAt: T0 + 604_800_000 });
    const payload = Buffer.from(JSON.stringify({ sub: 'alice', exp: 1_800_000_010 })).toString('base64url');
    const jwt = `eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJIUzI1NiJ9.${payload}.sig`;
    expect(jwtClaims(jwt)?.sub).toBe('alice');
    expect(sessionFromTokenResponse(response(200, { access_token: jwt, refresh_token: jwt }), T0, 'login').expiresAt).toBe(1_800_000_010_000);
    expect(() => sessionFromTokenResponse(response(200, { token: 'x' }), T0, 'login')).toThrow(/no access_token .*fields token/);
  });

  it.each([
    [{ detail: 'Incorrect username or password' }, 'Incorrect username or password'],
    [{ detail: { error: 'authorization_pending' } }, 'authorization_pending'],
    [{ error: 'invalid_grant', error_description: 'grant request is invalid' }, 'invalid_grant: grant request is invalid'],
    [{ error: '...' }, '...'],
    [{ error: null }, 'null'],
    [{ errors: { error: [{ messageKey: 'com.wavemaker.unAuthorized', message: 'unAuthorized', parameters: ['Require authentication to generate access token'] }] } }, 'Require authentication to generate access token'],
    [{ errors: { error: [{ messageKey: null, message: 'Invalid Token,Failed to authenticate with the given token', parameters: [] }] } }, 'Invalid Token,Failed to authenticate with the given token'],
  ])('turns %j into one line', (body, expected) => {
    expect(serverMessage(response(401, body))).toBe(expected);
  });

  it('describes HTML and plain-text error pages', () => {
    expect(serverMessage(response(500, '<html><body>oops</body></html>', 'text/html'))).toMatch(/HTML page/);
    expect(serverMessage(response(500, 'Internal Server Error', 'text/plain'))).toMatch(/Internal Server Error/);
  });
});

describe('server URLs and network failures', () => {
  it('warns about plain http to hosts other than loopback', async () => {
    const { parseServerUrl } = await import('../src/tokens/http.js');
    for (const url of ['http://127.0.0.1:8000', 'http://localhost:8000', 'https://tiled.example.com']) {
      const f = fakeCtx();
      parseServerUrl(f.ctx, url);
      expect(f.stderr()).toBe('');
    }
    const f = fakeCtx();
    parseServerUrl(f.ctx, 'http://tiled.example.com');
    expect(f.stderr()).toMatch(/warning: http:\/\/tiled\.example\.com is plain http/);
    expect(() => parseServerUrl(fakeCtx().ctx, 'ftp://x')).toThrow(/unsupported URL scheme/);
  });

  it('maps DNS, reset and TLS failures to one line (no DNS lookups in tests: the resolver is not ours)', async () => {
    const { networkError } = await import('../src/tokens/http.js');
    const fail = (code: string) => Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error(code), { code }) });
    expect(networkError(fail('ENOTFOUND'), 'https://nope.invalid/x', 30).message).toBe('cannot resolve host nope.invalid (DNS lookup failed)');
    expect(networkError(fail('ECONNRESET'), 'http://h:1/', 30).message).toMatch(/closed the connection/);
    const tls = networkError(fail('SELF_SIGNED_CERT_IN_CHAIN'), 'https://h/', 30);
    expect(tls.message).toMatch(/TLS error/);
    expect(tls.hint).toMatch(/--cacert/);
    expect(networkError(Object.assign(new Error('t'), { name: 'TimeoutError' }), 'http://h/', 5).message).toMatch(/no answer within 5 s/);
  });
});
