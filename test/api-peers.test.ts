/**
 * `keysmith api` against the real peers from Debian, each started by the test on 127.0.0.1 and
 * stopped by PID:
 *   - Flask-HTTPAuth 4.5 (fixtures/flask/app.py on /usr/bin/python3): HTTPBasicAuth, HTTPDigestAuth
 *     with its defaults (RFC 2069: no qop; nonce and opaque in the Flask session cookie of the
 *     401, which the answer must send back) and HTTPTokenAuth with the schemes Bearer and Token;
 *   - Apache httpd with mod_auth_digest (qop="auth", MD5: Apache 2.4 has no MD5-sess) and an htdigest file made
 *     by htdigest, and mod_auth_basic with an htpasswd file written by `keysmith set-password`.
 * Right credentials: 200 and the body; wrong ones: the server's body, one error line, exit 1.
 * A missing peer skips with the reason, except under CI=true (a failure).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithApache, startApache, type ApacheServer } from './helpers/apache.js';
import { describeWithFlask, startFlask, type FlaskServer } from './helpers/flask.js';
import { keysmith, oneErrorLine, tempHome } from './helpers/keysmith.js';

type Env = Record<string, string>;

async function loginWith(url: string, dialect: 'basic' | 'digest', user: string, password: string): Promise<Env> {
  const env = tempHome();
  const r = await keysmith(['login', url, '--dialect', dialect, '-u', user, '--password-stdin'], { env, input: `${password}\n` });
  expect(r.exitCode, r.stderr).toBe(0);
  return env;
}

async function loginToken(url: string, scheme: string, token: string): Promise<Env> {
  const env = tempHome();
  const r = await keysmith(['login', url, '--dialect', 'apikey', '--api-key-scheme', scheme, '--api-key-stdin'], { env, input: token });
  expect(r.exitCode, r.stderr).toBe(0);
  return env;
}

describeWithFlask('Flask-HTTPAuth (Debian python3-flask-httpauth)', () => {
  let flask: FlaskServer;
  beforeAll(async () => {
    // Flask-HTTPAuth compares Basic passwords with hmac.compare_digest, which refuses non-ASCII
    // text (a 500): alice's is ASCII; dora's, for Digest (hashed as UTF-8), is not.
    flask = await startFlask({ users: { alice: 'wonder land', dora: 'düsseldorf 9' }, tokens: { 'tok-bearer-123': 'alice', 'tok-token-456': 'bob' } });
  });
  afterAll(() => flask?.stop());

  it('HTTPBasicAuth: 200 with the password, a clean exit 1 without it', async () => {
    const ok = await keysmith(['api', '/basic'], { env: await loginWith(flask.url, 'basic', 'alice', 'wonder land') });
    expect([ok.exitCode, ok.stderr]).toEqual([0, '']);
    expect(JSON.parse(ok.stdout)).toEqual({ user: 'alice', auth: 'basic' });
    const wrong = await keysmith(['api', '/basic'], { env: await loginWith(flask.url, 'basic', 'alice', 'wonder-land') });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toBe('Unauthorized Access');
    expect(oneErrorLine(wrong.stderr)).toBe(`error: GET /basic failed: ${new URL(flask.url).host} answered 401 UNAUTHORIZED`);
  });

  it('HTTPDigestAuth (no qop, nonce in the session cookie): GET and POST answered; a wrong password: exit 1', async () => {
    const env = await loginWith(flask.url, 'digest', 'alice', 'wonder land');
    const get = await keysmith(['api', '/digest'], { env });
    expect([get.exitCode, get.stderr]).toEqual([0, '']);
    expect(JSON.parse(get.stdout)).toEqual({ user: 'alice', auth: 'digest' });
    const utf8 = await keysmith(['api', '/digest'], { env: await loginWith(flask.url, 'digest', 'dora', 'düsseldorf 9') });
    expect(JSON.parse(utf8.stdout)).toEqual({ user: 'dora', auth: 'digest' });
    const post = await keysmith(['api', '/digest?x=1', '-d', '{"a":1}', '--json-body'], { env });
    expect([post.exitCode, post.stderr]).toEqual([0, '']);
    expect(JSON.parse(post.stdout)).toEqual({ user: 'alice', auth: 'digest' });
    const wrong = await keysmith(['api', '/digest'], { env: await loginWith(flask.url, 'digest', 'alice', 'wrong') });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toBe('Unauthorized Access');
    expect(oneErrorLine(wrong.stderr)).toMatch(/answered 401 UNAUTHORIZED$/);
  });

  it('HTTPTokenAuth: scheme Bearer and a custom scheme (Token); a wrong token: exit 1', async () => {
    const bearer = await keysmith(['api', '/bearer'], { env: await loginToken(flask.url, 'Bearer', 'tok-bearer-123') });
    expect([bearer.exitCode, bearer.stderr]).toEqual([0, '']);
    expect(JSON.parse(bearer.stdout)).toEqual({ user: 'alice', auth: 'bearer' });
    const token = await keysmith(['api', '/token'], { env: await loginToken(flask.url, 'Token', 'tok-token-456') });
    expect(JSON.parse(token.stdout)).toEqual({ user: 'bob', auth: 'token' });
    // The right token under the other scheme is refused, as is a wrong token.
    expect((await keysmith(['api', '/token'], { env: await loginToken(flask.url, 'Bearer', 'tok-token-456') })).exitCode).toBe(1);
    const wrong = await keysmith(['api', '/bearer'], { env: await loginToken(flask.url, 'Bearer', 'tok-nope') });
    expect(wrong.exitCode).toBe(1);
    expect(oneErrorLine(wrong.stderr)).toMatch(/GET \/bearer failed: .* answered 401 UNAUTHORIZED$/);
  });
});

describeWithApache('Apache httpd (Debian apache2): mod_auth_digest and mod_auth_basic', () => {
  const servers: ApacheServer[] = [];
  afterAll(async () => {
    for (const server of servers) await server.stop();
  });

  it('Digest qop="auth", algorithm MD5: 200 with the password, exit 1 without it', async () => {
    const apache = await startApache({ digestUsers: { alice: 'apache pw 1', bob: 'other' } });
    servers.push(apache);
    const env = await loginWith(apache.url, 'digest', 'alice', 'apache pw 1');
    const ok = await keysmith(['api', '/digest/data.json'], { env });
    expect([ok.exitCode, ok.stderr], apache.errorLog()).toEqual([0, '']);
    expect(ok.stdout).toBe('{"data":"digest"}');
    // Twice more: each run answers a fresh challenge (its own nonce, nc=00000001).
    for (let i = 0; i < 2; i++) expect((await keysmith(['api', '/digest/data.json'], { env })).exitCode).toBe(0);
    const wrong = await keysmith(['api', '/digest/data.json'], { env: await loginWith(apache.url, 'digest', 'alice', 'apache pw 2') });
    expect(wrong.exitCode).toBe(1);
    expect(wrong.stdout).toContain('401 Unauthorized');
    expect(oneErrorLine(wrong.stderr)).toBe(`error: GET /digest/data.json failed: ${new URL(apache.url).host} answered 401 Unauthorized`);
  });

  it('Basic with an htpasswd file written by keysmith set-password: 200, and exit 1 for a wrong password', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keysmith-api-htpasswd-'));
    const htpasswd = join(dir, 'htpasswd');
    const set = await keysmith(['set-password', '-k', htpasswd, 'carol', '--password-stdin', '--cost', '4'], { input: 'c4rol pass\n' });
    expect(set.exitCode, set.stderr).toBe(0);
    const apache = await startApache({ digestUsers: { alice: 'x' }, htpasswd: readFileSync(htpasswd, 'utf8') });
    servers.push(apache);
    const ok = await keysmith(['api', '/basic/data.json'], { env: await loginWith(apache.url, 'basic', 'carol', 'c4rol pass') });
    expect([ok.exitCode, ok.stdout, ok.stderr], apache.errorLog()).toEqual([0, '{"data":"basic"}', '']);
    const wrong = await keysmith(['api', '/basic/data.json'], { env: await loginWith(apache.url, 'basic', 'carol', 'nope') });
    expect(wrong.exitCode).toBe(1);
    expect(oneErrorLine(wrong.stderr)).toMatch(/answered 401 Unauthorized$/);
  });
});
