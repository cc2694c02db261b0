/**
 * End to end: the built binary against the dialect test servers (fixtures/servers), each started
 * on 127.0.0.1 by the test and stopped by PID.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { keysmith, oneErrorLine, tempHome } from './helpers/keysmith.js';
import { startServer, stopAllServers, type ServerName, type ServerOptions } from './helpers/servers.js';

afterAll(stopAllServers);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const JWT = /^[\w-]+\.[\w-]+\.[\w-]+$/;

function sessionFiles(home: string): string[] {
  const dir = join(home, '.local', 'state', 'keysmith', 'sessions');
  try {
    return readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => join(dir, f));
  } catch {
    return [];
  }
}

async function loggedIn(name: ServerName, options: ServerOptions, loginArgs: string[], password: string) {
  const server = await startServer(name, options);
  const env = { ...tempHome(), KEYSMITH_PASSWORD: password };
  const url = name === 'wavemaker' ? `${server.url}/Demo` : server.url;
  const login = await keysmith(['login', url, ...loginArgs], { env });
  expect(login.stderr).toContain('Logged in');
  expect(login.exitCode).toBe(0);
  expect(login.stdout).toBe('');
  return { server, env, url };
}

/**
 * Log in with a 2 s token and refresh-token rotation, let the token expire, then run `keysmith
 * token` in 50 processes at once: all must print the same token after exactly one refresh.
 */
async function raceAfterExpiry(name: ServerName, loginArgs: string[], password: string) {
  const { server, env } = await loggedIn(name, { accessTtl: 2, rotateRefresh: true, slowRefreshMs: 300 }, loginArgs, password);
  await sleep(2_200);
  // The refreshed token must outlive the race (50 starts take seconds on 2 cores), or late
  // callers would rightly refresh it again.
  await server.admin({ accessTtl: 600 });
  const results = await Promise.all(Array.from({ length: 50 }, () => keysmith(['token'], { env, timeout: 60_000 })));
  for (const r of results) expect(r.exitCode, r.stderr).toBe(0);
  expect(new Set(results.map((r) => r.stdout)).size).toBe(1);
  expect(await server.count('refresh')).toBe(1);
  expect(await server.count('reuseDetected')).toBe(0);
  return { server, env };
}

describe('tiled', () => {
  it('logs in, prints the token, its header and JSON, and whoami', async () => {
    const { server, env } = await loggedIn('tiled', {}, ['-u', 'alice'], 'secret1');
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(0);
    expect(token.stdout).toMatch(JWT);
    expect(token.stderr).toBe('');
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe(`Authorization: Bearer ${token.stdout}`);
    const json = JSON.parse((await keysmith(['token', '--json'], { env })).stdout);
    expect(json).toMatchObject({ token: token.stdout, type: 'bearer', profile: new URL(server.url).host });
    expect(json.expires_in).toBeGreaterThan(800);
    expect((await keysmith(['whoami'], { env })).stdout).toBe('alice');
    // The session file is private and never holds the password.
    const [file] = sessionFiles(env.HOME);
    expect(statSync(file!).mode & 0o777).toBe(0o600);
    expect(readFileSync(file!, 'utf8')).not.toContain('secret1');
    expect(await server.count('refresh')).toBe(0);
    await server.stop();
  });

  it('refreshes ahead of expiry, once, and not on every call', async () => {
    const { server, env } = await loggedIn('tiled', { accessTtl: 4 }, ['-u', 'alice'], 'secret1');
    const first = (await keysmith(['token'], { env })).stdout;
    expect((await keysmith(['token'], { env })).stdout).toBe(first);
    expect(await server.count('refresh')).toBe(0);
    await sleep(2_100); // past half the 4 s lifetime
    const second = await keysmith(['token'], { env });
    expect(second.exitCode).toBe(0);
    expect(second.stdout).toMatch(JWT);
    expect(second.stdout).not.toBe(first);
    expect(await server.count('refresh')).toBe(1);
    await server.stop();
  });

  it('50 concurrent token calls with an expired token cause exactly one refresh, even with refresh-token rotation', async () => {
    const { server, env } = await raceAfterExpiry('tiled', ['-u', 'alice'], 'secret1');
    expect((await keysmith(['whoami'], { env })).stdout).toBe('alice');
    await server.stop();
  });

  it('logout revokes the session on the server and forgets it locally', async () => {
    const { server, env } = await loggedIn('tiled', {}, ['-u', 'alice'], 'secret1');
    const logout = await keysmith(['logout'], { env });
    expect(logout.exitCode).toBe(0);
    expect(logout.stderr).toContain('revoked');
    expect(await server.count('revoke')).toBe(1);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(1);
    expect(oneErrorLine(token.stderr)).toMatch(/not logged in/);
    expect(token.stderr).toContain('keysmith login');
    expect(sessionFiles(env.HOME)).toEqual([]);
    // The profile stays: logging in again needs no URL.
    const again = await keysmith(['login'], { env: { ...env, KEYSMITH_USERNAME: 'alice' } });
    expect(again.exitCode, again.stderr).toBe(0);
    await server.stop();
  });

  it('a session the server has ended is deleted, with a hint to log in again', async () => {
    const { server, env } = await loggedIn('tiled', { accessTtl: 1, sessionTtl: 2 }, ['-u', 'alice'], 'secret1');
    await sleep(2_300);
    const token = await keysmith(['token'], { env });
    expect(token.exitCode).toBe(1);
    expect(oneErrorLine(token.stderr)).toMatch(/Session has expired/);
    expect(token.stderr).toMatch(/hint: log in again/);
    expect(sessionFiles(env.HOME)).toEqual([]);
    await server.stop();
  });

  it('keeps the session untouched when the server is down', async () => {
    const { server, env } = await loggedIn('tiled', { accessTtl: 4 }, ['-u', 'alice'], 'secret1');
    const before = readFileSync(sessionFiles(env.HOME)[0]!, 'utf8');
    const current = (await keysmith(['token'], { env })).stdout;
    await server.stop();
    // Stale (past half its 4 s life) but still valid: the current token is printed, with a warning.
    await sleep(2_100);
    const stale = await keysmith(['token'], { env });
    expect(stale.exitCode).toBe(0);
    expect(stale.stdout).toBe(current);
    expect(stale.stderr).toMatch(/warning: could not refresh .*connection refused/);
    // Expired: exit 1, one line; the session is still there for when the server is back.
    await sleep(2_100);
    const expired = await keysmith(['token'], { env });
    expect(expired.exitCode).toBe(1);
    expect(oneErrorLine(expired.stderr)).toMatch(/cannot connect to 127\.0\.0\.1:\d+: connection refused/);
    expect(readFileSync(sessionFiles(env.HOME)[0]!, 'utf8')).toBe(before);
  });

  it('wrong password: the server\'s words, exit 1, nothing saved', async () => {
    const server = await startServer('tiled');
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'nope' };
    const r = await keysmith(['login', server.url, '-u', 'alice'], { env });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/answered 401: Incorrect username or password/);
    expect(sessionFiles(env.HOME)).toEqual([]);
    await server.stop();
  });

  it('asks for --provider when there are several and no terminal', async () => {
    const server = await startServer('tiled', { providers: ['toy', { provider: 'ldap', mode: 'internal' }] });
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'secret1' };
    const r = await keysmith(['login', server.url, '-u', 'alice'], { env });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/several providers \(toy, ldap\); choose one with --provider/);
    const ok = await keysmith(['login', server.url, '-u', 'alice', '--provider', 'toy'], { env });
    expect(ok.exitCode, ok.stderr).toBe(0);
    await server.stop();
  });

  it('reads the password from stdin and fails fast without any source or terminal', async () => {
    const server = await startServer('tiled');
    const home = tempHome();
    const piped = await keysmith(['login', server.url, '-u', 'alice', '--password-stdin'], { env: home, input: 'secret1\n' });
    expect(piped.exitCode, piped.stderr).toBe(0);
    const none = await keysmith(['login', server.url, '-u', 'alice'], { env: tempHome(), timeout: 10_000 });
    expect(none.exitCode).toBe(2);
    expect(oneErrorLine(none.stderr)).toMatch(/no password given and no terminal/);
    await server.stop();
  });
});

describe('basic-login', () => {
  it('logs in with HTTP Basic, reads expiry from the JWT and whoami from sub', async () => {
    const { server, env } = await loggedIn('basic-login', {}, ['--dialect', 'basic-login', '-u', 'dallan'], 'password');
    const json = JSON.parse((await keysmith(['token', '--json'], { env })).stdout);
    expect(json.token).toMatch(/^eyJ0eXAiOiAiSldUIiwgImFsZyI6ICJIUzI1NiJ9\./);
    expect(json.expires_in).toBeGreaterThan(0);
    expect(json.expires_in).toBeLessThanOrEqual(10);
    expect((await keysmith(['whoami'], { env })).stdout).toBe('dallan');
    await server.stop();
  });

  it('50 concurrent token calls: one refresh, one token', async () => {
    const { server } = await raceAfterExpiry('basic-login', ['--dialect', 'basic-login', '-u', 'dallan'], 'password');
    await server.stop();
  });

  it('wrong password and undetectable dialect are clear errors', async () => {
    const server = await startServer('basic-login');
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'wrong' };
    const bad = await keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'x'], { env });
    expect(bad.exitCode).toBe(1);
    expect(oneErrorLine(bad.stderr)).toMatch(/login failed: 127\.0\.0\.1:\d+ answered 401: \.\.\./);
    const auto = await keysmith(['login', server.url, '-u', 'x'], { env });
    expect(auto.exitCode).toBe(2);
    expect(oneErrorLine(auto.stderr)).toMatch(/cannot tell what kind of server/);
    expect(auto.stderr).toMatch(/--dialect/);
    await server.stop();
  });
});

describe('wavemaker', () => {
  it.each([
    ['runtime', 'WM_AUTH_TOKEN'],
    ['docs', 'wm_auth_token'],
  ] as const)('%s servers: the token goes back under the name the server used (%s)', async (variant, name) => {
    const { server, env } = await loggedIn('wavemaker', { variant }, ['-u', 'admin'], 'admin');
    const token = (await keysmith(['token'], { env })).stdout;
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect((await keysmith(['token', '--header'], { env })).stdout).toBe(`${name}: ${token}`);
    const api = await fetch(`${server.url}/Demo/services/hrdb/User/`, { headers: { [name]: token } });
    expect(api.status).toBe(200);
    await server.stop();
  });

  it('renews with the still-valid token, and after expiry only with KEYSMITH_PASSWORD', async () => {
    const { server, env } = await loggedIn('wavemaker', { variant: 'runtime', accessTtl: 4 }, ['-u', 'admin', '--token-ttl', '4'], 'admin');
    const first = (await keysmith(['token'], { env })).stdout;
    await sleep(2_100);
    const renewed = await keysmith(['token'], { env: { HOME: env.HOME } });
    expect(renewed.exitCode, renewed.stderr).toBe(0);
    expect(renewed.stdout).not.toBe(first);
    expect(await server.count('renewal')).toBe(1);
    await sleep(4_100);
    const expired = await keysmith(['token'], { env: { HOME: env.HOME } });
    expect(expired.exitCode).toBe(1);
    expect(oneErrorLine(expired.stderr)).toMatch(/WaveMaker token is no longer valid/);
    expect(expired.stderr).toMatch(/hint: set KEYSMITH_PASSWORD/);
    const withPassword = await keysmith(['token'], { env });
    expect(withPassword.exitCode, withPassword.stderr).toBe(0);
    expect(withPassword.stdout).toMatch(/^[0-9a-f]{32}$/);
    await server.stop();
  });

  it('wrong password: the server\'s message, exit 1', async () => {
    const server = await startServer('wavemaker', { variant: 'runtime' });
    const r = await keysmith(['login', `${server.url}/Demo`, '-u', 'admin'], { env: { ...tempHome(), KEYSMITH_PASSWORD: 'bad' } });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/answered 401: Require authentication to generate access token/);
    await server.stop();
  });
});

/** A throwaway server on 127.0.0.1 port 0. */
async function listen(server: Server | ReturnType<typeof createNetServer>): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('network and server errors', () => {
  const env = () => ({ ...tempHome(), KEYSMITH_PASSWORD: 'password' });
  const loginBasic = (url: string, extra: string[] = [], e: Record<string, string> = env()) =>
    keysmith(['login', url, '--dialect', 'basic-login', '-u', 'u', ...extra], { env: e });

  it('connection refused', async () => {
    const s = createNetServer();
    const port = await listen(s);
    await new Promise((resolve) => s.close(resolve));
    const r = await loginBasic(`http://127.0.0.1:${port}`);
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/connection refused/);
    expect(r.stderr).toMatch(/hint: is the server running/);
  });

  it('a server that never answers hits --timeout', async () => {
    const s = createNetServer(() => {});
    const port = await listen(s);
    const started = Date.now();
    const r = await loginBasic(`http://127.0.0.1:${port}`, ['--timeout', '1']);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(/no answer within 1 s/);
    s.close();
  });

  it.each([
    ['an HTML 500 page', 500, 'text/html', '<!doctype html><html><body><h1>Internal error</h1></body></html>', /answered 500: an HTML page/],
    ['a plain-text 500', 500, 'text/plain', 'Internal Server Error', /answered 500: Internal Server Error/],
    ['JSON without the expected fields', 200, 'application/json', '{"token":"x"}', /no access_token \(got JSON with fields token\)/],
    ['a 200 that is not JSON', 200, 'text/plain', 'OK', /no access_token \(got a non-JSON body: OK\)/],
  ])('%s', async (_name, status, type, body, message) => {
    const s = createHttpServer((_req, res) => res.writeHead(status, { 'content-type': type }).end(body));
    const port = await listen(s);
    const r = await loginBasic(`http://127.0.0.1:${port}`);
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toMatch(message);
    s.close();
  });

  it('TLS: an untrusted certificate fails with a hint; --cacert trusts it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const tokens = JSON.stringify({ access_token: 'abc', expires_in: 60, refresh_token: 'def' });
    const s = createHttpsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(tokens));
    const port = await listen(s);
    const url = `https://127.0.0.1:${port}`;
    const untrusted = await loginBasic(url);
    expect(untrusted.exitCode).toBe(1);
    expect(oneErrorLine(untrusted.stderr)).toMatch(/TLS error talking to 127\.0\.0\.1/);
    expect(untrusted.stderr).toMatch(/--cacert/);
    const home = env();
    const trusted = await loginBasic(url, ['--cacert', join(dir, 'cert.pem')], home);
    expect(trusted.exitCode, trusted.stderr).toBe(0);
    expect((await keysmith(['token'], { env: home })).stdout).toBe('abc');
    const viaEnv = await loginBasic(url, [], { ...env(), NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') });
    expect(viaEnv.exitCode, viaEnv.stderr).toBe(0);
    s.close();
  });

  it('goes through HTTP_PROXY, and around it for NO_PROXY hosts', async () => {
    const server = await startServer('basic-login');
    // undici tunnels every proxied request with CONNECT, plain http included.
    let tunnels = 0;
    const proxy = createHttpServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, client: Socket, head: Buffer) => {
      tunnels++;
      const [host, port] = req.url!.split(':');
      const upstream = connect(Number(port), host!, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
    const port = await listen(proxy);
    const viaProxy = await loginBasic(server.url, [], { ...env(), HTTP_PROXY: `http://127.0.0.1:${port}` });
    expect(viaProxy.exitCode, viaProxy.stderr).toBe(0);
    expect(tunnels).toBe(1);
    const bypass = await loginBasic(server.url, [], { ...env(), HTTP_PROXY: `http://127.0.0.1:${port}`, NO_PROXY: '127.0.0.1' });
    expect(bypass.exitCode, bypass.stderr).toBe(0);
    expect(tunnels).toBe(1);
    proxy.close();
    await server.stop();
  });

  it('bad URLs and options are usage errors', async () => {
    const r = await keysmith(['login', 'not a url'], { env: env() });
    expect(r.exitCode).toBe(2);
    expect(oneErrorLine(r.stderr)).toMatch(/not a URL/);
    const m = await keysmith(['token', '--min-ttl', 'soon'], { env: env() });
    expect(m.exitCode).toBe(2);
    const d = await keysmith(['login', 'http://127.0.0.1:1', '--dialect', 'nope'], { env: env() });
    expect(d.exitCode).toBe(2);
    expect(d.stderr).toMatch(/nope/);
  });
});
