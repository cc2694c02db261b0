/**
 * Logging in again (issue 14), end to end through the built binary against the fixture servers:
 * `login --profile NAME` and `login URL` of a known profile reuse everything the profile stored
 * (dialect, provider, flow, client ID, scope, CA file, timeout, token TTL, API-key placement);
 * a bare host gets https://, or http:// on this machine, and says so; a login says one line.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CLIENTS, startFixture } from './helpers/device-login.js';
import { keysmith, oneErrorLine, type RunResult } from './helpers/keysmith.js';
import { startServer, stopAllServers } from './helpers/servers.js';

const dirs: string[] = [];
const httpsServers: Server[] = [];
afterAll(async () => {
  await stopAllServers();
  await Promise.all(httpsServers.map((s) => new Promise((resolve) => s.close(resolve))));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory (a HOME, or certificates), removed when the file's tests end. */
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'ks-login-again-'));
  dirs.push(dir);
  return dir;
}

const home = () => ({ HOME: tempDir() });
type Home = { HOME: string };

const profiles = (env: Home) => JSON.parse(readFileSync(join(env.HOME, '.config', 'keysmith', 'profiles.json'), 'utf8')).profiles as Record<string, Record<string, unknown>>;

/** stderr without the one-time `note:` about where secrets are kept (machines without a keyring). */
const said = (r: RunResult) => r.stderr.split('\n').filter((line) => !line.startsWith('note: '));

function expectOk(r: RunResult): void {
  expect(r.exitCode, r.stderr).toBe(0);
  expect(r.stdout).toBe('');
}

/** Log out (the profile stays), then check `token` says "not logged in". */
async function logout(env: Home): Promise<void> {
  expectOk(await keysmith(['logout'], { env }));
  const token = await keysmith(['token'], { env });
  expect(token.exitCode).toBe(1);
  expect(oneErrorLine(token.stderr)).toMatch(/not logged in/);
}

describe('logging in again reuses what the profile stored', () => {
  it('basic-login: `login --profile NAME --password-stdin` and `login URL` after logout (never detectable)', async () => {
    const server = await startServer('basic-login');
    const env = home();
    expectOk(await keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'dallan', '--profile', 'adv'], { env: { ...env, KEYSMITH_PASSWORD: 'password' } }));
    await logout(env);
    const again = await keysmith(['login', '--profile', 'adv', '--password-stdin'], { env, input: 'password\n' });
    expectOk(again);
    expect(said(again)).toEqual([expect.stringMatching(new RegExp(`^Logged in to ${server.url} as dallan \\(profile adv, basic-login\\)`))]);
    expect((await keysmith(['token'], { env })).stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    await logout(env);
    // `login URL` finds the profile that uses the URL, whatever its name, and keeps its user.
    const byUrl = await keysmith(['login', server.url, '--password-stdin'], { env, input: 'password\n' });
    expectOk(byUrl);
    expect(said(byUrl)[0]).toContain('(profile adv, basic-login)');
    expect(Object.keys(profiles(env))).toEqual(['adv']);
    await logout(env);
    // And plain `login`: the default profile.
    expectOk(await keysmith(['login'], { env: { ...env, KEYSMITH_PASSWORD: 'password' } }));
    expect(await server.count('login')).toBe(4);
    await server.stop();
  });

  it('tiled: the provider and timeout are reused; --provider overrides; one confirmation line per login', async () => {
    const server = await startServer('tiled', { providers: ['toy', 'ldap'] });
    const env = { ...home(), KEYSMITH_PASSWORD: 'secret1' };
    const first = await keysmith(['login', server.url, '-u', 'alice', '--provider', 'ldap', '--timeout', '7'], { env });
    expectOk(first);
    // One line: keysmith's own, not the server's confirmation_message as well.
    expect(said(first)).toEqual([expect.stringMatching(new RegExp(`^Logged in to ${server.url} as alice \\(profile [^,]+, tiled\\); token valid until `))]);
    expect(first.stderr).not.toContain('You have logged in');
    const name = new URL(server.url).host;
    expect(profiles(env)[name]).toMatchObject({ dialect: 'tiled', provider: 'ldap', timeout: 7, username: 'alice' });
    await logout(env);
    // Without the reuse, two providers and no terminal would be "choose one with --provider".
    const again = await keysmith(['login', '--profile', name], { env });
    expectOk(again);
    expect(said(again)).toHaveLength(1);
    expect(profiles(env)[name]).toMatchObject({ dialect: 'tiled', provider: 'ldap', timeout: 7, username: 'alice' });
    const other = await keysmith(['login', server.url, '--provider', 'toy', '-u', 'bob'], { env: { ...env, KEYSMITH_PASSWORD: 'secret2' } });
    expectOk(other);
    expect(profiles(env)[name]).toMatchObject({ provider: 'toy', timeout: 7, username: 'bob' });
    await server.stop();
  });

  it('oauth2: dialect, flow, client ID and scope are reused by `login URL`', async () => {
    const server = await startFixture('oidc', { deviceInterval: 1 });
    const env = { ...home(), KEYSMITH_CLIENT_SECRET: CLIENTS.ci.secret };
    const first = await keysmith(['login', server.url, '--dialect', 'oauth2', '--flow', 'client-credentials', '--client-id', CLIENTS.ci.id, '--scope', 'api:read'], { env });
    expectOk(first);
    const name = new URL(server.url).host;
    const stored = { dialect: 'oauth2', flow: 'client-credentials', clientId: CLIENTS.ci.id, scope: 'api:read' };
    expect(profiles(env)[name]).toMatchObject(stored);
    await logout(env);
    const again = await keysmith(['login', server.url], { env });
    expectOk(again);
    expect(said(again)).toEqual([expect.stringContaining(`Logged in to ${server.url} as ${CLIENTS.ci.id} (profile ${name}, oauth2)`)]);
    expect(profiles(env)[name]).toMatchObject(stored);
    expect((await keysmith(['token'], { env })).exitCode).toBe(0);
    await server.stop();
  });

  it('wavemaker: the token TTL is reused', async () => {
    const server = await startServer('wavemaker', { variant: 'runtime' });
    const env = { ...home(), KEYSMITH_PASSWORD: 'admin' };
    expectOk(await keysmith(['login', `${server.url}/Demo`, '--dialect', 'wavemaker', '-u', 'admin', '--token-ttl', '60'], { env }));
    await logout(env);
    expectOk(await keysmith(['login'], { env }));
    expect(Object.values(profiles(env))[0]).toMatchObject({ dialect: 'wavemaker', tokenTtl: 60, username: 'admin', url: `${server.url}/Demo` });
    const json = JSON.parse((await keysmith(['token', '--json'], { env })).stdout);
    expect(json.expires_in).toBeLessThanOrEqual(60);
    await server.stop();
  });

  it('the CA file is reused: an https server trusted only through --cacert', async () => {
    const dir = tempDir();
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const tokens = JSON.stringify({ access_token: 'abc', expires_in: 600, refresh_token: 'def' });
    const server = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(tokens));
    httpsServers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const env = { ...home(), KEYSMITH_PASSWORD: 'pw' };
    expectOk(await keysmith(['login', url, '--dialect', 'basic-login', '-u', 'u', '--cacert', join(dir, 'cert.pem')], { env }));
    await logout(env);
    expectOk(await keysmith(['login'], { env }));
    expectOk(await keysmith(['login', url], { env }));
    expect(Object.values(profiles(env))[0]).toMatchObject({ dialect: 'basic-login', cacert: join(dir, 'cert.pem') });
    // Without the profile, the same server is not trusted.
    const fresh = await keysmith(['login', url, '--dialect', 'basic-login', '-u', 'u'], { env: { ...home(), KEYSMITH_PASSWORD: 'pw' } });
    expect(fresh.exitCode).toBe(1);
    expect(oneErrorLine(fresh.stderr)).toMatch(/TLS error/);
  });

  it('static profiles: the API-key placement and the Wave access key ID are reused; flags override', async () => {
    const env = home();
    expectOk(await keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'apikey', '--api-key-in', 'query', '--api-key-name', 'key', '--profile', 'keys'], { env: { ...env, KEYSMITH_API_KEY: 'first-key' } }));
    await logout(env);
    const again = await keysmith(['login', '--profile', 'keys', '--api-key-stdin'], { env, input: 'second-key\n' });
    expectOk(again);
    expect(said(again)).toEqual(['Saved the API key for http://127.0.0.1:9 (profile keys, apikey), sent as ?key=KEY.']);
    expect(profiles(env).keys).toMatchObject({ dialect: 'apikey', apiKey: { in: 'query', name: 'key' } });
    expect((await keysmith(['token'], { env })).stdout).toBe('second-key');
    // Moving the key into a header starts from the header's defaults.
    expectOk(await keysmith(['login', '--profile', 'keys', '--api-key-in', 'header'], { env: { ...env, KEYSMITH_API_KEY: 'third-key' } }));
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe('Authorization: Apikey third-key');
    // A Wave profile keeps its access key ID: a new secret is all it needs.
    expectOk(await keysmith(['login', 'http://127.0.0.1:10101', '--dialect', 'wave', '--profile', 'wave'], { env: { ...env, H2O_WAVE_ACCESS_KEY_ID: 'ID1', H2O_WAVE_ACCESS_KEY_SECRET: 'secret1' } }));
    await logout(env);
    expectOk(await keysmith(['login', '--profile', 'wave', '--password-stdin'], { env, input: 'secret2' }));
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe(`Authorization: Basic ${Buffer.from('ID1:secret2').toString('base64')}`);
    // --dialect overrides what was stored (and the old dialect's settings go with it).
    expectOk(await keysmith(['login', '--profile', 'keys', '--dialect', 'basic', '-u', 'alice'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } }));
    expect(profiles(env).keys).toEqual({ name: 'keys', url: 'http://127.0.0.1:9', dialect: 'basic', username: 'alice' });
  });

  it('`login URL` used by several profiles, none the default or named after the host, asks for --profile', async () => {
    const env = home();
    const login = (args: string[]) => keysmith(['login', 'http://127.0.0.1:9', '--dialect', 'basic', ...args], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } });
    expectOk(await login(['-u', 'a', '--profile', 'one']));
    expectOk(await login(['-u', 'b', '--profile', 'two']));
    expectOk(await keysmith(['login', 'http://127.0.0.1:10', '--dialect', 'basic', '-u', 'c', '--profile', 'three'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } }));
    const before = readFileSync(join(env.HOME, '.config', 'keysmith', 'profiles.json'), 'utf8');
    const ambiguous = await keysmith(['login', 'http://127.0.0.1:9'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } });
    expect(ambiguous.exitCode).toBe(2);
    expect(oneErrorLine(ambiguous.stderr)).toMatch(/several profiles use http:\/\/127\.0\.0\.1:9: one, two/);
    expect(ambiguous.stderr).toMatch(/hint: .*--profile/);
    expect(readFileSync(join(env.HOME, '.config', 'keysmith', 'profiles.json'), 'utf8')).toBe(before);
  });

  it('`login --profile NAME` of a profile that does not exist asks for the URL', async () => {
    const r = await keysmith(['login', '--profile', 'nope'], { env: home() });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/which server\? give its URL/);
    expect(r.stderr).toContain('hint: keysmith login URL --profile nope');
  });
});

describe('a bare host is accepted', () => {
  it.each([
    ['localhost:8000', 'http://localhost:8000'],
    ['127.0.0.1:8080', 'http://127.0.0.1:8080'],
    ['127.1.2.3', 'http://127.1.2.3'],
    ['[::1]:9000', 'http://[::1]:9000'],
    ['tiled.example.com', 'https://tiled.example.com'],
    ['tiled.example.com:8443/api', 'https://tiled.example.com:8443/api'],
    ['intranet', 'https://intranet'],
  ])('%s → %s, said on stderr in one line', async (host, url) => {
    const env = home();
    const r = await keysmith(['login', host, '--dialect', 'basic', '-u', 'alice'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } });
    expectOk(r);
    expect(said(r)).toEqual([`No scheme given: using ${url}`, expect.stringMatching(/^Saved the password of alice for /)]);
    expect(Object.values(profiles(env))[0]).toMatchObject({ url, dialect: 'basic' });
    // The bare host of a known profile is that profile: no --dialect needed the second time.
    const again = await keysmith(['login', host], { env: { ...env, KEYSMITH_PASSWORD: 'pw2' } });
    expectOk(again);
    expect(Object.keys(profiles(env))).toHaveLength(1);
  });

  it('against a real server: 127.0.0.1:PORT logs in over http', async () => {
    const server = await startServer('basic-login');
    const env = { ...home(), KEYSMITH_PASSWORD: 'password' };
    const r = await keysmith(['login', server.url.replace('http://', ''), '--dialect', 'basic-login', '-u', 'alice'], { env });
    expectOk(r);
    expect(said(r)[0]).toBe(`No scheme given: using ${server.url}`);
    expect(await server.count('login')).toBe(1);
    await server.stop();
  });

  it.each([
    ['not a url', /not a URL/],
    ['ftp://example.com', /unsupported URL scheme ftp:/],
    ['user@example.com', /not a URL/],
  ])('%s is still refused with one line', async (raw, message) => {
    const env = home();
    const r = await keysmith(['login', raw, '--dialect', 'basic', '-u', 'a'], { env: { ...env, KEYSMITH_PASSWORD: 'pw' } });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(message);
  });
});
