/**
 * `keysmith api` end to end: the built binary against the fixture servers (fixtures/servers/*.mjs,
 * each started on 127.0.0.1 with a free port and stopped by PID):
 *   - API keys in both styles (apikey.mjs: `Authorization: Apikey KEY`, `?api_key=KEY`), and Basic
 *     with a Wave access key checked with bcrypt against a keychain, as waved does, fed by a real
 *     `keysmith create-access-key | keysmith login --dialect wave --access-key-stdin`;
 *   - every token dialect (tiled, basic-login, wavemaker, oauth2 on oidc-provider), each with a
 *     server-side revocation of the access token: one refresh, one retry; a second 401 ends it;
 *   - redirects (same origin followed with the credential; another origin or https → http refused,
 *     the sink hears nothing), -i, --silent, -d @-, network failures and --timeout;
 *   - a 1 GiB download streamed through with the process's peak RSS bounded.
 * Flask-HTTPAuth and Apache httpd: api-peers.test.ts. The pieces in-process: api-unit.test.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLIENTS, approveInBrowser, loginInBackground, oidcStats, startFixture } from './helpers/device-login.js';
import { BIN, cleanEnv, keysmith, oneErrorLine, tempHome } from './helpers/keysmith.js';
import { startServer, stopAllServers, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

const KEY = 'ks-e2e-api-key-0123456789abcdef';
type Env = Record<string, string>;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function loginApiKey(url: string, extra: string[] = [], key = KEY): Promise<Env> {
  const env = tempHome();
  const r = await keysmith(['login', url, '--dialect', 'apikey', '--api-key-stdin', ...extra], { env, input: key });
  expect(r.exitCode, r.stderr).toBe(0);
  return env;
}

/** `keysmith token`: the session's current access token. */
async function currentToken(env: Env): Promise<string> {
  const r = await keysmith(['token'], { env });
  expect(r.exitCode, r.stderr).toBe(0);
  return r.stdout;
}

describe('API keys and Basic with a Wave keychain', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer('apikey', { apiKeys: [KEY] });
  });

  it('Authorization: Apikey KEY: 200 with the right key, the body as sent; a wrong key: the body, one error line, exit 1', async () => {
    const env = await loginApiKey(server.url);
    const ok = await keysmith(['api', '/data'], { env, keepFinalNewline: true });
    expect(ok.exitCode).toBe(0);
    expect(ok.stdout).toBe('{"data":[1,2,3],"who":"apikey"}');
    expect(ok.stderr).toBe('');
    const wrong = await loginApiKey(server.url, [], 'not-the-key-0000');
    const denied = await keysmith(['api', '/data'], { env: wrong });
    expect(denied.exitCode).toBe(1);
    expect(denied.stdout).toBe('{"error":"invalid or missing credentials"}');
    expect(oneErrorLine(denied.stderr)).toBe(`error: GET /data failed: ${new URL(server.url).host} answered 401 Unauthorized`);
    expect(denied.stderr).toContain('hint: check the credentials of profile');
  });

  it('?api_key=KEY: the key in the query, never in a message', async () => {
    const env = await loginApiKey(server.url, ['--api-key-in', 'query']);
    const echo = await keysmith(['api', '/echo?a=1'], { env });
    expect(echo.exitCode).toBe(0);
    expect(JSON.parse(echo.stdout)).toMatchObject({ query: { a: '1', api_key: KEY } });
    expect(JSON.parse(echo.stdout).headers.authorization).toBeUndefined();
    const missing = await keysmith(['api', '/nowhere?a=1'], { env });
    expect(missing.exitCode).toBe(1);
    expect(oneErrorLine(missing.stderr)).toBe(`error: GET /nowhere?a=1 failed: ${new URL(server.url).host} answered 404 Not Found`);
    expect(missing.stderr + missing.stdout).not.toContain(KEY);
  });

  it('a Wave access key: create-access-key | login --dialect wave --access-key-stdin, then Basic checked with bcrypt as waved does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-api-wave-'));
    const keychain = join(dir, '.wave-keychain');
    const wave = await startServer('apikey', { apiKeys: [], keychain });
    const home = tempHome();
    // The pipe as a user types it: the secret is never on a command line or a screen.
    const ks = `"${process.execPath}" "${BIN}"`;
    execFileSync('/bin/sh', ['-c', `${ks} create-access-key -k "${keychain}" --cost 4 | ${ks} login "${wave.url}" --dialect wave --access-key-stdin`], {
      env: cleanEnv(home) as NodeJS.ProcessEnv,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const [id] = (await keysmith(['list-access-keys', '-k', keychain], { env: home })).stdout.split('\n');
    expect(id).toMatch(/^[A-Z0-9]{20}$/);
    const ok = await keysmith(['api', '/data'], { env: home });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual({ data: [1, 2, 3], who: id });
    // The same ID with another secret: refused.
    const other = tempHome();
    const bad = await keysmith(['login', wave.url, '--dialect', 'wave', '-u', id!, '--password-stdin'], { env: other, input: 'A'.repeat(40) });
    expect(bad.exitCode, bad.stderr).toBe(0);
    const denied = await keysmith(['api', '/data'], { env: other });
    expect(denied.exitCode).toBe(1);
    expect(denied.stdout).toBe('{"error":"invalid or missing credentials"}');
    await wave.stop();
  });

  it('-i: status line and headers, a blank line, the body; --silent: nothing, the exit code still tells', async () => {
    const env = await loginApiKey(server.url);
    const included = await keysmith(['api', '-i', '/data'], { env });
    expect(included.exitCode).toBe(0);
    const [head, body] = included.stdout.split('\n\n');
    expect(head!.split('\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(head).toMatch(/^content-type: application\/json$/m);
    expect(head).toMatch(/^content-length: 31$/m);
    expect(body).toBe('{"data":[1,2,3],"who":"apikey"}');
    const silent = await keysmith(['api', '--silent', '/data'], { env });
    expect([silent.exitCode, silent.stdout, silent.stderr]).toEqual([0, '', '']);
    const silentFailure = await keysmith(['api', '--silent', '/status?code=503'], { env });
    expect([silentFailure.exitCode, silentFailure.stdout]).toEqual([1, '']);
    expect(oneErrorLine(silentFailure.stderr)).toMatch(/answered 503 Service Unavailable$/);
  });

  it('-d @- sends standard input as the body (POST), -X and -H as given', async () => {
    const env = await loginApiKey(server.url);
    const body = '{"name": "ü", "n": [1, 2]}\n';
    const r = await keysmith(['api', '-X', 'PATCH', '/echo', '-d', '@-', '--json-body', '-H', 'X-Request-Id: 42'], { env, input: body });
    expect(r.exitCode, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ method: 'PATCH', body, headers: { 'x-request-id': '42', 'content-type': 'application/json', authorization: `Apikey ${KEY}` } });
  });

  describe('redirects', () => {
    let sink: TestServer;
    beforeAll(async () => {
      sink = await startServer('sink');
    });

    it('same origin: followed with the credential; a 307 sends the body again', async () => {
      const env = await loginApiKey(server.url);
      const r = await keysmith(['api', '/redirect?status=307&to=/echo', '-d', 'a=1'], { env });
      expect(r.exitCode, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({ method: 'POST', path: '/echo', body: 'a=1', headers: { authorization: `Apikey ${KEY}` } });
    });

    it('to another origin: refused, naming both; the other server hears nothing', async () => {
      const env = await loginApiKey(server.url);
      for (const status of [301, 302, 303, 307, 308]) {
        const to = encodeURIComponent(`${sink.url}/steal`);
        const r = await keysmith(['api', `/redirect?status=${status}&to=${to}`, '-d', 'secret=1'], { env });
        expect(r.exitCode).toBe(1);
        expect(r.stdout).toBe('');
        expect(oneErrorLine(r.stderr)).toBe(`error: refused to follow a redirect from ${server.url} to ${sink.url}: keysmith sends credentials only to the server you named`);
      }
      expect(await sink.count('requests')).toBe(0);
    });

    it('an absolute URL on another server: refused (exit 2) unless --no-auth, which sends no credential', async () => {
      const env = await loginApiKey(server.url);
      const refused = await keysmith(['api', `${sink.url}/x`], { env });
      expect(refused.exitCode).toBe(2);
      expect(oneErrorLine(refused.stderr)).toContain(`${sink.url} is not the server of profile`);
      expect(await sink.count('requests')).toBe(0);
      const open = await keysmith(['api', '--no-auth', `${sink.url}/x`], { env });
      expect(open.exitCode).toBe(0);
      const records = (await sink.stats()).records as Array<{ headers: Record<string, string> }>;
      expect(records).toHaveLength(1);
      expect(records[0]!.headers.authorization).toBeUndefined();
      expect(JSON.stringify(records)).not.toContain(KEY);
    });

    it('https → http on the same host and port: refused as a downgrade', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'keysmith-api-tls-'));
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      const hostile = await startServer('hostile', { dialect: 'tiled', tls: { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') }, attacks: { whoami: { redirect: 302, to: 'http-self' } } });
      expect(hostile.url).toMatch(/^https:/);
      // A profile for it as `login` writes one (its --cacert kept), with a bearer token.
      const home = mkdtempSync(join(tmpdir(), 'keysmith-api-home-'));
      mkdirSync(join(home, '.config', 'keysmith'), { recursive: true });
      mkdirSync(join(home, '.local', 'state', 'keysmith', 'sessions'), { recursive: true });
      writeFileSync(join(home, '.config', 'keysmith', 'profiles.json'), JSON.stringify({ default: 'h', profiles: { h: { name: 'h', url: hostile.url, dialect: 'tiled', cacert: join(dir, 'cert.pem') } } }));
      writeFileSync(join(home, '.local', 'state', 'keysmith', 'sessions', 'h.json'), JSON.stringify({ accessToken: 'tok-123', tokenType: 'bearer', obtainedAt: Date.now() }), { mode: 0o600 });
      const r = await keysmith(['api', '/api/v1/auth/whoami'], { env: { HOME: home } });
      expect(r.exitCode).toBe(1);
      expect(oneErrorLine(r.stderr)).toContain(`refused to follow a redirect from ${hostile.url} to ${hostile.url.replace('https:', 'http:')} (from https down to plain http)`);
      expect(await hostile.count('whoami')).toBe(1);
      await hostile.stop();
    });
  });

  it('network failures read as they do for token: connection refused, and a server that never answers (--timeout)', async () => {
    const closed = await new Promise<number>((resolve) => {
      const s = createServer();
      s.listen(0, '127.0.0.1', () => {
        const { port } = s.address() as { port: number };
        s.close(() => resolve(port));
      });
    });
    const env = await loginApiKey(`http://127.0.0.1:${closed}`);
    const refused = await keysmith(['api', '/data'], { env });
    expect(refused.exitCode).toBe(1);
    expect(oneErrorLine(refused.stderr)).toBe(`error: cannot connect to 127.0.0.1:${closed}: connection refused`);

    const sockets: Socket[] = [];
    const silent: Server = createServer((socket) => void sockets.push(socket));
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    try {
      const env2 = await loginApiKey(`http://127.0.0.1:${port}`);
      const started = Date.now();
      const r = await keysmith(['api', '/data', '--timeout', '1'], { env: env2 });
      expect(r.exitCode).toBe(1);
      expect(oneErrorLine(r.stderr)).toBe(`error: http://127.0.0.1:${port}/data: no answer within 1 s`);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('not logged in: one line, exit 1', async () => {
    const r = await keysmith(['api', '/data'], { env: tempHome() });
    expect(r.exitCode).toBe(1);
    expect(oneErrorLine(r.stderr)).toBe('error: not logged in');
  });

  it('streams a 1 GiB download to stdout as it arrives, with the process\'s peak RSS bounded', async () => {
    const env = await loginApiKey(server.url);
    const size = 1024 * 1024 * 1024;
    const child = spawn(process.execPath, [BIN, 'api', `/download?bytes=${size}`], { env: cleanEnv(env) as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let received = 0;
    let stderr = '';
    let peakKiB = 0;
    child.stdout!.on('data', (chunk: Buffer) => (received += chunk.length));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    // VmHWM is the process's peak resident set so far; read it until the process is gone.
    const poll = setInterval(() => {
      try {
        const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (hwm) peakKiB = Math.max(peakKiB, Number(hwm[1]));
      } catch {
        // exited
      }
    }, 25);
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    clearInterval(poll);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(received).toBe(size);
    expect(peakKiB).toBeGreaterThan(0);
    // Node itself needs ~50 MiB here; a buffered 1 GiB body would need 20 times that.
    expect(peakKiB / 1024).toBeLessThan(160);
  }, 180_000);
});

// -------------------------------------------------------------------------------------------------
// Token dialects: refreshed ahead of expiry like `token`, and once more after a 401 to a token the
// server revoked; a second 401 is the answer.

describe('token dialects through api', () => {
  it('basic-login: 200; after a revocation one refresh and one retry; a second 401 ends it (exit 1, no loop)', async () => {
    const server = await startServer('basic-login', { accessTtl: 600 });
    const env = tempHome();
    const login = await keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'alice', '--password-stdin'], { env, input: 'password' });
    expect(login.exitCode, login.stderr).toBe(0);
    const ok = await keysmith(['api', '/data'], { env });
    expect([ok.exitCode, ok.stdout]).toEqual([0, '{"data":[1,2,3],"who_am_i":"alice"}']);
    expect(await server.count('refresh')).toBe(0);

    // The fixture's JWTs differ only by their `exp` second: let the refreshed one be another.
    await sleep(1_100);
    const revoked = await currentToken(env);
    await server.admin({ revokedAccess: [revoked] });
    const retried = await keysmith(['api', '/data'], { env });
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(retried.stdout).toBe('{"data":[1,2,3],"who_am_i":"alice"}');
    expect(retried.stderr).toBe('');
    expect(await server.count('refresh')).toBe(1);
    expect(await currentToken(env)).not.toBe(revoked);

    await server.admin({ revokedAccess: ['*'] });
    const before = await server.count('data');
    const refused = await keysmith(['api', '/data'], { env });
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout).toBe('{"error":"..."}');
    expect(oneErrorLine(refused.stderr)).toMatch(/^error: GET \/data failed: .* answered 401 Unauthorized$/);
    expect(await server.count('data')).toBe(before + 2);
    expect(await server.count('refresh')).toBe(2);
    await server.stop();
  });

  it('basic-login with rotating refresh tokens: five processes hit by the same revocation refresh once', async () => {
    const server = await startServer('basic-login', { accessTtl: 600, rotateRefresh: true, slowRefreshMs: 300 });
    const env = tempHome();
    expect((await keysmith(['login', server.url, '--dialect', 'basic-login', '-u', 'alice', '--password-stdin'], { env, input: 'password' })).exitCode).toBe(0);
    await sleep(1_100);
    await server.admin({ revokedAccess: [await currentToken(env)] });
    const results = await Promise.all(Array.from({ length: 5 }, () => keysmith(['api', '/data'], { env })));
    for (const r of results) expect([r.exitCode, r.stdout, r.stderr]).toEqual([0, '{"data":[1,2,3],"who_am_i":"alice"}', '']);
    expect(await server.count('refresh')).toBe(1);
    expect(await server.count('reuseDetected')).toBe(0);
    await server.stop();
  });

  it('tiled: a bearer token for /api/v1/metadata/, refreshed once after a revocation', async () => {
    const server = await startServer('tiled');
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'secret1' };
    expect((await keysmith(['login', server.url, '-u', 'alice'], { env })).exitCode).toBe(0);
    await sleep(1_100);
    const ok = await keysmith(['api', '/api/v1/metadata/'], { env });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).data.attributes.structure_family).toBe('container');
    await server.admin({ revokedAccess: [await currentToken(env)] });
    const retried = await keysmith(['api', '/api/v1/metadata/'], { env });
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(await server.count('refresh')).toBe(1);
    await server.stop();
  });

  it('wavemaker: the token header under the app path (/Demo kept); a forgotten token is renewed with $KEYSMITH_PASSWORD', async () => {
    const server = await startServer('wavemaker', { variant: 'runtime' });
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'admin' };
    expect((await keysmith(['login', `${server.url}/Demo`, '--dialect', 'wavemaker', '-u', 'admin'], { env })).exitCode).toBe(0);
    const ok = await keysmith(['api', '/services/hrdb/User/'], { env });
    expect(ok.exitCode, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).content.map((u: { username: string }) => u.username)).toEqual(['admin', 'user']);
    await server.admin({ revokedAccess: [await currentToken(env)] });
    const retried = await keysmith(['api', '/services/hrdb/User/'], { env });
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(await server.count('api')).toBe(3);
    await server.stop();
  });

  it('oauth2 (oidc-provider, device flow): /me with the bearer token; a revoked access token is refreshed once; RFC 7009 revocation ends the session', async () => {
    const server = await startFixture('oidc', { deviceInterval: 1 });
    const env = tempHome();
    const login = loginInBackground([server.url, '--dialect', 'oauth2', '--client-id', CLIENTS.device], env);
    const codes = await login.codes;
    await approveInBrowser(codes.verification_uri, codes.user_code, { login: 'alice' });
    expect((await login.result).exitCode).toBe(0);
    const me = await keysmith(['api', '/me'], { env });
    expect(me.exitCode, me.stderr).toBe(0);
    expect(JSON.parse(me.stdout)).toMatchObject({ sub: 'alice' });

    // The access token alone is gone on the server: a 401, one refresh, the retry succeeds.
    const revoked = await currentToken(env);
    const gone = await fetch(`${server.url}/__admin/revoke-access`, { method: 'POST', body: JSON.stringify({ token: revoked }) });
    expect(await gone.json()).toEqual({ revoked: true });
    const retried = await keysmith(['api', '/me'], { env });
    expect(retried.exitCode, retried.stderr).toBe(0);
    expect(JSON.parse(retried.stdout)).toMatchObject({ sub: 'alice' });
    expect((await oidcStats(server)).grants).toEqual({ device_code: 1, refresh_token: 1 });
    const fresh = await currentToken(env);
    expect(fresh).not.toBe(revoked);

    // RFC 7009 at the revocation endpoint: oidc-provider ends the grant's refresh tokens too, so
    // the refresh is refused: the 401's body on stdout, one line saying to log in again.
    const revocation = await fetch(`${server.url}/token/revocation`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: fresh, token_type_hint: 'access_token', client_id: CLIENTS.device }).toString(),
    });
    expect(revocation.status).toBe(200);
    const ended = await keysmith(['api', '/me'], { env });
    expect(ended.exitCode).toBe(1);
    expect(JSON.parse(ended.stdout)).toMatchObject({ error: 'invalid_token' });
    expect(oneErrorLine(ended.stderr)).toMatch(/^error: the server ended the session: invalid_grant/);
    expect(ended.stderr).toMatch(/^hint: log in again: keysmith login --profile /m);
    await server.stop();
  }, 90_000);
});
