/**
 * The static dialects in-process: where an API key goes (flags over the stored placement), how
 * create-access-key's output is read, what `login` returns (and that it never touches the network
 * or the profile it is given), and what `authorize` adds to a request.
 */
import { describe, expect, it } from 'vitest';
import type { DialectEnv, LoginRequest } from '../src/tokens/dialect.js';
import { accessKeyFromEnv, apiKeyPlacement, apikey, basic, loginWithPassword, parseAccessKey, wave } from '../src/tokens/dialects/static.js';
import type { Profile } from '../src/tokens/store.js';
import { fakeCtx } from './helpers/ctx.js';

const noNetwork = (() => Promise.reject(new Error('static dialects make no request'))) as unknown as DialectEnv['fetch'];
const env = (): DialectEnv => ({ ctx: fakeCtx({ now: 1_700_000_000_000 }).ctx, fetch: noNetwork, http: {} });
const noCredentials = () => Promise.reject(new Error('not asked'));

describe('apiKeyPlacement', () => {
  it.each([
    [{}, undefined, { in: 'header', name: 'Authorization', scheme: 'Apikey' }],
    [{ scheme: 'Bearer' }, undefined, { in: 'header', name: 'Authorization', scheme: 'Bearer' }],
    [{ scheme: 'none' }, undefined, { in: 'header', name: 'Authorization' }],
    [{ name: 'X-API-Key' }, undefined, { in: 'header', name: 'X-API-Key' }],
    [{ name: 'authorization' }, undefined, { in: 'header', name: 'authorization', scheme: 'Apikey' }],
    [{ in: 'query' }, undefined, { in: 'query', name: 'api_key' }],
    [{ in: 'query', name: 'key' }, undefined, { in: 'query', name: 'key' }],
    // The stored placement is kept unless a flag changes it.
    [{}, { in: 'query', name: 'key' }, { in: 'query', name: 'key' }],
    [{}, { in: 'header', name: 'X-Key' }, { in: 'header', name: 'X-Key' }],
    [{}, { in: 'header', name: 'Authorization', scheme: 'Token' }, { in: 'header', name: 'Authorization', scheme: 'Token' }],
    [{ name: 'X-Other' }, { in: 'header', name: 'Authorization', scheme: 'Token' }, { in: 'header', name: 'X-Other' }],
    [{ in: 'header' }, { in: 'query', name: 'key' }, { in: 'header', name: 'Authorization', scheme: 'Apikey' }],
  ] as const)('%j over %j → %j', (flags, previous, expected) => {
    expect(apiKeyPlacement(flags, previous as Profile['apiKey'])).toEqual(expected);
  });

  it.each([
    [{ in: 'cookie' }, /header or query/],
    [{ name: 'X Key' }, /not a valid HTTP header name/],
    [{ name: '' }, /not a valid HTTP header name/],
    [{ scheme: 'A B' }, /not a valid scheme/],
    [{ in: 'query', scheme: 'Bearer' }, /is for keys sent in a header/],
    [{ in: 'query', name: 'a\nb' }, /not a usable query parameter name/],
  ])('%j is refused', (flags, message) => {
    expect(() => apiKeyPlacement(flags)).toThrow(message);
  });
});

describe('parseAccessKey', () => {
  const pair = { username: 'ABCDEFGHIJ0123456789', password: 'secretSECRET0123456789secretSECRET012345' };
  it.each([
    ['create-access-key', `H2O_WAVE_ACCESS_KEY_ID=${pair.username}\nH2O_WAVE_ACCESS_KEY_SECRET=${pair.password}\n`],
    ['--export', `export H2O_WAVE_ACCESS_KEY_ID=${pair.username}\nexport H2O_WAVE_ACCESS_KEY_SECRET=${pair.password}\n`],
    ['single quotes', `export H2O_WAVE_ACCESS_KEY_ID='${pair.username}'\nexport H2O_WAVE_ACCESS_KEY_SECRET='${pair.password}'`],
    ['double quotes, CRLF', `H2O_WAVE_ACCESS_KEY_ID="${pair.username}"\r\nH2O_WAVE_ACCESS_KEY_SECRET="${pair.password}"\r\n`],
    ['secret first, with comments and other variables', `# key\nH2O_WAVE_ADDRESS=http://x\nH2O_WAVE_ACCESS_KEY_SECRET=${pair.password}\n\nH2O_WAVE_ACCESS_KEY_ID=${pair.username}\n`],
    ['--json', `${JSON.stringify({ id: pair.username, secret: pair.password, keychain: '.wave-keychain' })}\n`],
    ['a BOM', `\uFEFFH2O_WAVE_ACCESS_KEY_ID=${pair.username}\nH2O_WAVE_ACCESS_KEY_SECRET=${pair.password}\n`],
  ])('%s', (_name, text) => {
    expect(parseAccessKey(text)).toEqual(pair);
  });

  it.each([
    ['', /it was empty/],
    ['H2O_WAVE_ACCESS_KEY_ID=A\nH2O_WAVE_ACCESS_KEY_ID=B\nH2O_WAVE_ACCESS_KEY_SECRET=S\n', /more than one H2O_WAVE_ACCESS_KEY_ID/],
    ['{"id":"A","secret":"S"}\n{"id":"B","secret":"T"}\n', /more than one access key/],
    ['H2O_WAVE_ACCESS_KEY_ID=A\nH2O_WAVE_ACCESS_KEY_SECRET="S\n', /characters an access key cannot have/],
    ['just-a-secret\n', /line 1 is not NAME=value/],
  ])('%j is refused', (text, message) => {
    expect(() => parseAccessKey(text)).toThrow(message);
  });

  it('never quotes the input in an error', () => {
    const secret = 'TopSecretValue0123456789';
    for (const text of [`${secret}\n`, `H2O_WAVE_ACCESS_KEY_SECRET=${secret} extra\nH2O_WAVE_ACCESS_KEY_ID=A`, `{"id":"A","secret":"${secret}"`]) {
      expect(() => parseAccessKey(text)).toThrow();
      try {
        parseAccessKey(text);
      } catch (err) {
        expect((err as Error).message).not.toContain(secret);
      }
    }
  });

  it('accessKeyFromEnv: both or neither', () => {
    expect(accessKeyFromEnv({})).toBeUndefined();
    expect(accessKeyFromEnv({ H2O_WAVE_ACCESS_KEY_ID: 'A', H2O_WAVE_ACCESS_KEY_SECRET: 'S' })).toEqual({ username: 'A', password: 'S' });
    expect(() => accessKeyFromEnv({ H2O_WAVE_ACCESS_KEY_ID: 'A' })).toThrow(/H2O_WAVE_ACCESS_KEY_SECRET is not set/);
    expect(() => accessKeyFromEnv({ H2O_WAVE_ACCESS_KEY_SECRET: 'S' })).toThrow(/H2O_WAVE_ACCESS_KEY_ID is not set/);
  });
});

describe('login returns the credential as sent and what it learned, and leaves the profile alone', () => {
  const base = (dialect: Profile['dialect'], extra: Partial<Profile> = {}): Profile => ({ name: 'p', url: 'http://127.0.0.1:9', dialect, ...extra });

  it('apikey', async () => {
    const profile = Object.freeze(base('apikey', { apiKey: { in: 'query', name: 'key' } }));
    const request: LoginRequest = { profile, credentials: noCredentials, apiKey: async () => 'k-123' };
    const { session, settings } = await apikey.login(env(), request);
    expect(session).toEqual({ accessToken: 'k-123', tokenType: 'apikey', obtainedAt: 1_700_000_000_000 });
    expect(settings).toEqual({ apiKey: { in: 'query', name: 'key' } });
    await expect(apikey.login(env(), { ...request, apiKey: async () => 'two words' })).rejects.toThrow(/characters a key cannot have/);
  });

  it('basic, and wave from the access key before the credentials', async () => {
    const profile = Object.freeze(base('basic'));
    const { session, settings } = await basic.login(env(), { profile, credentials: async () => ({ username: 'alice', password: 'pw:with:colons' }) });
    expect(session).toEqual({ accessToken: Buffer.from('alice:pw:with:colons').toString('base64'), tokenType: 'basic', obtainedAt: 1_700_000_000_000 });
    expect(settings).toEqual({ username: 'alice' });
    const waveLogin = await wave.login(env(), { profile: Object.freeze(base('wave')), credentials: noCredentials, accessKey: async () => ({ username: 'ID', password: 'S' }) });
    expect(waveLogin.session.tokenType).toBe('wave');
    expect(waveLogin.settings).toEqual({ username: 'ID' });
    const fallback = await wave.login(env(), { profile: base('wave'), credentials: async () => ({ username: 'ID2', password: 'S2' }), accessKey: async () => undefined });
    expect(fallback.settings).toEqual({ username: 'ID2' });
    await expect(loginWithPassword('digest')(env(), { profile: base('digest'), credentials: async () => ({ username: 'a:b', password: 'x' }) })).rejects.toThrow(/":"/);
  });

  it('refresh keeps the session; authorize adds the header or the query parameter', async () => {
    const session = { accessToken: 'k-123', tokenType: 'apikey', obtainedAt: 1 };
    expect(await apikey.refresh(env(), base('apikey'), session)).toBe(session);
    const request = { method: 'GET', url: new URL('http://127.0.0.1:9/x') };
    expect(await apikey.authorize!(base('apikey'), session, request)).toEqual({ headers: { Authorization: 'Apikey k-123' } });
    expect(await apikey.authorize!(base('apikey', { apiKey: { in: 'header', name: 'X-API-Key' } }), session, request)).toEqual({ headers: { 'X-API-Key': 'k-123' } });
    expect(await apikey.authorize!(base('apikey', { apiKey: { in: 'query', name: 'api_key' } }), session, request)).toEqual({ headers: {}, query: { api_key: 'k-123' } });
    const pair = { accessToken: Buffer.from('alice:pw').toString('base64'), tokenType: 'basic', obtainedAt: 1 };
    expect(await basic.authorize!(base('basic'), pair, request)).toEqual({ headers: { Authorization: `Basic ${pair.accessToken}` } });
    expect(await basic.whoami!(env(), base('basic'), pair)).toEqual({ user: 'alice' });
    expect((await apikey.whoami!(env(), base('apikey'), { ...session, accessToken: 'abcdefghijklmnop1234' })).user).toBe('API key …1234');
    expect((await apikey.whoami!(env(), base('apikey'), session)).user).toBe('API key');
  });
});
