/**
 * End to end: the built binary against a real OpenID provider (oidc-provider, fixtures/servers/
 * oidc.mjs) and a scripted device-flow server (device-stub.mjs), each started by the test on
 * 127.0.0.1 and stopped by PID. The test plays the user: it reads the code from `login --json`
 * and approves it through the provider's own pages.
 */
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  CLIENTS,
  approveInBrowser,
  introspect,
  loginInBackground,
  oidcStats,
  startFixture,
} from './helpers/device-login.js';
import { keysmith, oneErrorLine, tempHome } from './helpers/keysmith.js';
import { stopAllServers, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

/** Device-flow polls every second instead of RFC 8628's default 5 s. */
const FAST = { deviceInterval: 1 };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface StoredSession {
  accessToken: string;
  refreshToken?: string;
  clientSecret?: string;
  expiresAt?: number;
}

function sessionFile(home: string): string {
  const dir = join(home, '.local', 'state', 'keysmith', 'sessions');
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  expect(files).toHaveLength(1);
  return join(dir, files[0]!);
}

const readSession = (home: string) => JSON.parse(readFileSync(sessionFile(home), 'utf8')) as StoredSession;
const profilesText = (home: string) => readFileSync(join(home, '.config', 'keysmith', 'profiles.json'), 'utf8');

/** Log in with the device flow, approving as `user` in the provider's pages. */
async function deviceLogin(server: TestServer, args: string[] = ['--client-id', CLIENTS.device], user = 'alice', extraEnv: Record<string, string> = {}) {
  const env = { ...tempHome(), ...extraEnv };
  const login = loginInBackground([server.url, '--dialect', 'oauth2', ...args], env);
  const codes = await login.codes;
  expect(codes.verification_uri).toBe(`${server.url}/device`);
  expect(codes.verification_uri_complete).toBe(`${server.url}/device?user_code=${encodeURIComponent(codes.user_code)}`);
  await approveInBrowser(codes.verification_uri, codes.user_code, { login: user });
  const result = await login.result;
  expect(result.stderr).toContain(`Logged in to ${server.url} as ${user}`);
  expect(result.exitCode).toBe(0);
  expect(result.stdout).toBe('');
  return env;
}

describe('oauth2 against oidc-provider', () => {
  it('device flow: the user approves in the browser; token, whoami (userinfo), files', async () => {
    // No `interval` in the provider's answer: keysmith waits RFC 8628's default 5 s.
    const server = await startFixture('oidc');
    const env = await deviceLogin(server);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(0);
    expect(token.stderr).toBe('');
    const session = readSession(env.HOME);
    expect(token.stdout).toBe(session.accessToken);
    expect(session.refreshToken).toBeTruthy();
    expect(session.clientSecret).toBeUndefined();
    expect(statSync(sessionFile(env.HOME)).mode & 0o777).toBe(0o600);
    const profile = JSON.parse(profilesText(env.HOME)).profiles[new URL(server.url).host];
    expect(profile).toMatchObject({ dialect: 'oauth2', clientId: CLIENTS.device, flow: 'device', scope: 'openid offline_access' });
    expect(profile.endpoints).toMatchObject({ issuer: server.url, token_endpoint: `${server.url}/token`, userinfo_endpoint: `${server.url}/me` });
    const who = await keysmith(['whoami', '--json'], { env });
    expect(JSON.parse(who.stdout)).toMatchObject({ user: 'alice', dialect: 'oauth2', details: { sub: 'alice' } });
    const stats = await oidcStats(server);
    expect(stats.requests['GET /me']).toBe(1);
    expect(stats.grants).toEqual({ device_code: 1 });
  });

  it('refreshes after expiry, stores the rotated refresh token, and the old one is dead', async () => {
    const server = await startFixture('oidc', { ...FAST, accessTokenTtl: 2 });
    const env = await deviceLogin(server);
    const before = readSession(env.HOME);
    await sleep(2200);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(0);
    const after = readSession(env.HOME);
    expect(token.stdout).toBe(after.accessToken);
    expect(after.accessToken).not.toBe(before.accessToken);
    expect(after.refreshToken).not.toBe(before.refreshToken);
    expect((await introspect(server, after.refreshToken!)).active).toBe(true);
    expect((await introspect(server, before.refreshToken!)).active).toBe(false);
    expect((await oidcStats(server)).grants.refresh_token).toBe(1);
    // A fresh token is not refreshed again.
    expect((await keysmith(['token'], { env })).stdout).toBe(after.accessToken);
    expect((await oidcStats(server)).grants.refresh_token).toBe(1);
  });

  it('50 concurrent `token` calls after expiry make one refresh and print the same token', async () => {
    const server = await startFixture('oidc', { ...FAST, accessTokenTtl: 2 });
    const env = await deviceLogin(server);
    await sleep(2200);
    // The refreshed token lives long enough that no caller finds it stale again.
    await server.admin({ accessTokenTtl: 600 } as never);
    const results = await Promise.all(Array.from({ length: 50 }, () => keysmith(['token'], { env, timeout: 60_000 })));
    for (const r of results) expect(r.exitCode, r.stderr).toBe(0);
    const printed = new Set(results.map((r) => r.stdout));
    expect(printed.size).toBe(1);
    expect([...printed][0]).toBe(readSession(env.HOME).accessToken);
    const stats = await oidcStats(server);
    expect(stats.grants.refresh_token).toBe(1);
    expect(stats.refreshConsumed).toBe(1);
    expect(stats.grantErrors).toEqual({});
    expect(stats.grantsRevoked).toBe(0);
  });

  it('logout revokes the refresh token (RFC 7009), as introspection shows', async () => {
    const server = await startFixture('oidc', FAST);
    const env = await deviceLogin(server);
    const session = readSession(env.HOME);
    expect((await introspect(server, session.refreshToken!)).active).toBe(true);
    const logout = await keysmith(['logout'], { env });
    expect(logout.exitCode).toBe(0);
    expect(logout.stderr).toContain('revoked the session on the server');
    expect((await introspect(server, session.refreshToken!)).active).toBe(false);
    expect((await introspect(server, session.accessToken)).active).toBe(false);
    expect(oneErrorLine((await keysmith(['token'], { env })).stderr)).toMatch(/not logged in/);
  });

  it('a confidential device client keeps its secret in the session file, not in profiles.json', async () => {
    const server = await startFixture('oidc', { ...FAST, accessTokenTtl: 2 });
    const { secret } = CLIENTS.confidential;
    const env = await deviceLogin(server, ['--client-id', CLIENTS.confidential.id], 'bob', { KEYSMITH_CLIENT_SECRET: secret });
    expect(readSession(env.HOME).clientSecret).toBe(secret);
    expect(profilesText(env.HOME)).not.toContain(secret);
    await sleep(2200);
    // Renewal works without the variable: the secret comes from the session file.
    const token = await keysmith(['token'], { env: { HOME: env.HOME } });
    expect(token.exitCode, token.stderr).toBe(0);
    expect((await oidcStats(server)).grants.refresh_token).toBe(1);
    expect((await keysmith(['whoami'], { env: { HOME: env.HOME } })).stdout).toBe('bob');
  });

  it('client credentials: login with the secret on stdin, token, renewal by a new grant, whoami by introspection', async () => {
    const server = await startFixture('oidc', { ...FAST, clientCredentialsTtl: 2 });
    const env = tempHome();
    const { id, secret } = CLIENTS.ci;
    const login = await keysmith(['login', server.url, '--dialect', 'oauth2', '--flow', 'client-credentials', '--client-id', id, '--client-secret-stdin', '--scope', 'api:read'], { env, input: `${secret}\n` });
    expect(login.stderr).toContain(`Logged in to ${server.url} as ${id}`);
    expect(login.exitCode).toBe(0);
    expect(profilesText(env.HOME)).not.toContain(secret);
    const first = await keysmith(['token'], { env });
    expect(first.stdout).toBe(readSession(env.HOME).accessToken);
    expect(readSession(env.HOME).refreshToken).toBeUndefined();
    await sleep(2200);
    const second = await keysmith(['token'], { env });
    expect(second.exitCode, second.stderr).toBe(0);
    expect(second.stdout).not.toBe(first.stdout);
    expect((await introspect(server, second.stdout)).active).toBe(true);
    expect((await oidcStats(server)).grants.client_credentials).toBe(2);
    const who = JSON.parse((await keysmith(['whoami', '--json'], { env })).stdout);
    expect(who).toMatchObject({ user: id, details: { active: true, client_id: id } });
    // logout revokes the access token (there is no refresh token).
    expect((await keysmith(['logout'], { env })).exitCode).toBe(0);
    expect((await introspect(server, second.stdout)).active).toBe(false);
  });

  it('client credentials: a wrong secret is one line with the server\'s error; none at all asks for one', async () => {
    const server = await startFixture('oidc', FAST);
    const args = ['login', server.url, '--dialect', 'oauth2', '--flow', 'client-credentials', '--client-id', CLIENTS.ci.id];
    const wrong = await keysmith(args, { env: { ...tempHome(), KEYSMITH_CLIENT_SECRET: 'nope' } });
    expect(wrong.exitCode).toBe(1);
    expect(oneErrorLine(wrong.stderr)).toMatch(/^error: login failed: 127\.0\.0\.1:\d+ answered 401: invalid_client/);
    const missing = await keysmith(args, { env: tempHome() });
    expect(missing.exitCode).toBe(2);
    expect(oneErrorLine(missing.stderr)).toMatch(/no client secret given/);
    expect(missing.stderr).toContain('--client-secret-stdin or set KEYSMITH_CLIENT_SECRET');
  });

  it('the user denying the request ends the login with access_denied', async () => {
    const server = await startFixture('oidc', FAST);
    const login = loginInBackground([server.url, '--dialect', 'oauth2', '--client-id', CLIENTS.device], tempHome());
    const codes = await login.codes;
    await approveInBrowser(codes.verification_uri, codes.user_code, { deny: true });
    const result = await login.result;
    expect(result.exitCode).toBe(1);
    expect(oneErrorLine(String(result.stderr))).toMatch(/^error: the login was denied/);
  });

  it('auto-detects oauth2 from discovery; without a client ID it says what is missing', async () => {
    const server = await startFixture('oidc', FAST);
    const env = tempHome();
    const noClient = await keysmith(['login', server.url], { env });
    expect(noClient.exitCode).toBe(2);
    expect(oneErrorLine(noClient.stderr)).toMatch(/oauth2 dialect needs a client ID: pass --client-id/);
    const login = await keysmith(['login', server.url, '--flow', 'client-credentials', '--client-id', CLIENTS.ci.id], { env: { ...env, KEYSMITH_CLIENT_SECRET: CLIENTS.ci.secret } });
    expect(login.exitCode, login.stderr).toBe(0);
    expect(login.stderr).toContain('oauth2');
  });

  it('a cached valid token does not load oauth4webapi', async () => {
    const server = await startFixture('oidc', FAST);
    const env = tempHome();
    await keysmith(['login', server.url, '--flow', 'client-credentials', '--client-id', CLIENTS.ci.id], { env: { ...env, KEYSMITH_CLIENT_SECRET: CLIENTS.ci.secret } });
    // A module-resolution hook that records every bare package keysmith imports.
    const dir = mkdtempSync(join(tmpdir(), 'ks-hook-'));
    const log = join(dir, 'imports.log');
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  if (!/^(node:|[./]|file:|data:)/.test(specifier)) appendFileSync(${JSON.stringify(log)}, specifier + '\\n');
  return next(specifier, context);
}\n`);
    writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(`file://${join(dir, 'hooks.mjs')}`)});\n`);
    writeFileSync(log, '');
    const token = await keysmith(['token'], { env: { ...env, NODE_OPTIONS: `--import ${join(dir, 'register.mjs')}` } });
    expect(token.exitCode, token.stderr).toBe(0);
    expect(readFileSync(log, 'utf8')).not.toContain('oauth4webapi');
    // The same hook does see it when the token has to be renewed.
    await keysmith(['refresh'], { env: { ...env, NODE_OPTIONS: `--import ${join(dir, 'register.mjs')}` } });
    expect(readFileSync(log, 'utf8')).toContain('oauth4webapi');
  });
});

describe('device flow answers a provider will not give on demand (device-stub)', () => {
  const login = (server: TestServer) => loginInBackground([server.url, '--dialect', 'oauth2', '--client-id', 'stub-client'], tempHome());

  it('slow_down adds 5 s to the interval; discovery falls back to RFC 8414 metadata', async () => {
    const server = await startFixture('device-stub', { interval: 1, script: ['authorization_pending', 'slow_down', 'ok'] });
    const result = await login(server).result;
    expect(result.exitCode, String(result.stderr)).toBe(0);
    expect(result.stderr).toContain('now every 6 s');
    const stats = await server.stats();
    const polls = stats.polls as number[];
    expect(polls).toHaveLength(3);
    expect(polls[0]).toBeGreaterThanOrEqual(1000);
    expect(polls[1]! - polls[0]!).toBeGreaterThanOrEqual(1000);
    expect(polls[2]! - polls[1]!).toBeGreaterThanOrEqual(6000);
    expect(stats.metadata).toBe(1);
  }, 30_000);

  it('expired_token stops the login with one line', async () => {
    const server = await startFixture('device-stub', { interval: 1, script: ['authorization_pending', 'expired_token'] });
    const result = await login(server).result;
    expect(result.exitCode).toBe(1);
    expect(oneErrorLine(String(result.stderr))).toMatch(/^error: the code expired before the login was approved/);
    expect((await server.stats()).polls).toHaveLength(2);
  });

  it('an HTML error page while polling is one line naming the server', async () => {
    const server = await startFixture('device-stub', { interval: 1, script: ['authorization_pending', 'html500'] });
    const result = await login(server).result;
    expect(result.exitCode).toBe(1);
    expect(oneErrorLine(String(result.stderr))).toMatch(/^error: login failed: 127\.0\.0\.1:\d+ answered 500: an HTML page, not an API answer/);
  });

  it('stops polling when the codes expire, without a poll past expiry', async () => {
    const server = await startFixture('device-stub', { interval: 1, expiresIn: 2, script: ['authorization_pending'] });
    const result = await login(server).result;
    expect(result.exitCode).toBe(1);
    expect(oneErrorLine(String(result.stderr))).toMatch(/code expired .*valid for 2 s/);
    expect((await server.stats()).polls).toHaveLength(1);
  });

  it('Ctrl-C while waiting exits 130 with "cancelled" and no stack', async () => {
    const server = await startFixture('device-stub', { interval: 1, script: ['authorization_pending'] });
    const running = login(server);
    await running.codes;
    await sleep(1500);
    running.signal('SIGINT');
    const result = await running.result;
    expect(result.exitCode).toBe(130);
    expect(oneErrorLine(String(result.stderr))).toBe('error: cancelled');
  });
});
