/**
 * `keysmith api`'s pieces, in-process: the Digest computation against the RFCs' worked examples,
 * the WWW-Authenticate parser, the streaming guard's redirect rule (the same as guardFetch's), and
 * the command itself run with a fake context against fixture servers started in this process
 * (the HTTP transport injected through Ctx, as tests may). The built binary against real servers
 * and peers: api-e2e.test.ts, api-peers.test.ts.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run as api, type ApiOptions } from '../src/commands/api.js';
import { KeysmithError } from '../src/io/errors.js';
import { chooseDigest, cookieHeader, digestAuthorization, isStaleNonce, parseChallenges, type DigestChoice } from '../src/tokens/dialects/digest.js';
import { guardStream, type StreamRequest, type StreamResponse, type StreamTransport } from '../src/tokens/http.js';
import { fakeCtx } from './helpers/ctx.js';
import { startServer, stopAllServers, type TestServer } from './helpers/servers.js';

const md5 = (s: string) => createHash('md5').update(s).digest('hex');

function choose(header: string): DigestChoice {
  return chooseDigest(parseChallenges([header]), 'example.org');
}

/** The fields of an Authorization: Digest value (quoted values unescaped). */
function fields(value: string): Record<string, string> {
  expect(value.startsWith('Digest ')).toBe(true);
  return parseChallenges([value])[0]!.params;
}

describe('Digest answers (RFC 7616, RFC 2617, RFC 2069)', () => {
  const rfc7616 = (algorithm: string) =>
    `Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=${algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"`;
  const mufasa = { username: 'Mufasa', password: 'Circle of Life', method: 'GET', uri: '/dir/index.html', cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ', nc: 1 };

  it('RFC 7616 §3.9.1, MD5: the example response and every field', () => {
    const value = digestAuthorization({ ...mufasa, choice: choose(rfc7616('MD5')) });
    expect(fields(value)).toEqual({
      username: 'Mufasa',
      realm: 'http-auth@example.org',
      nonce: '7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
      uri: '/dir/index.html',
      algorithm: 'MD5',
      response: '8ca523f5e9506fed4657c9700eebdbec',
      opaque: 'FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS',
      qop: 'auth',
      nc: '00000001',
      cnonce: 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    });
    // algorithm, qop and nc are never quoted (RFC 7616 §3.4).
    expect(value).toMatch(/algorithm=MD5,/);
    expect(value).toMatch(/qop=auth, nc=00000001,/);
  });

  it('RFC 7616 §3.9.1, SHA-256: the example response', () => {
    const value = digestAuthorization({ ...mufasa, choice: choose(rfc7616('SHA-256')) });
    expect(fields(value).response).toBe('753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1');
  });

  it('RFC 2617 §3.5: the example response (qop=auth, MD5 by default, no algorithm echoed)', () => {
    const choice = choose('Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"');
    const value = digestAuthorization({ username: 'Mufasa', password: 'Circle Of Life', method: 'GET', uri: '/dir/index.html', choice, cnonce: '0a4f113b', nc: 1 });
    expect(fields(value).response).toBe('6629fae49393a05397450978507c4ef1');
    expect(fields(value).algorithm).toBeUndefined();
  });

  it('RFC 2069 (Flask-HTTPAuth: no qop, no algorithm): response = MD5(HA1:nonce:HA2), no nc or cnonce', () => {
    const choice = choose('Digest realm="keysmith-digest",nonce="abc123",opaque="op4"');
    expect(choice.qop).toBeUndefined();
    const value = digestAuthorization({ username: 'alice', password: 'wonderland', method: 'POST', uri: '/digest?x=1', choice, cnonce: 'unused', nc: 1 });
    const ha1 = md5('alice:keysmith-digest:wonderland');
    const ha2 = md5('POST:/digest?x=1');
    expect(fields(value)).toEqual({ username: 'alice', realm: 'keysmith-digest', nonce: 'abc123', uri: '/digest?x=1', response: md5(`${ha1}:abc123:${ha2}`), opaque: 'op4' });
  });

  it('MD5-sess: HA1 = MD5(MD5(user:realm:password):nonce:cnonce); nc counts in hex', () => {
    const choice = choose('Digest realm="r", nonce="N", qop="auth", algorithm=MD5-sess');
    const value = digestAuthorization({ username: 'u', password: 'p', method: 'GET', uri: '/x', choice, cnonce: 'C', nc: 26 });
    const ha1 = md5(`${md5('u:r:p')}:N:C`);
    expect(fields(value)).toMatchObject({ algorithm: 'MD5-sess', nc: '0000001a', cnonce: 'C', response: md5(`${ha1}:N:0000001a:C:auth:${md5('GET:/x')}`) });
  });

  it('userhash=true sends H(user:realm) as the user name', () => {
    const choice = choose('Digest realm="r", nonce="N", qop="auth", algorithm=SHA-256, userhash=true');
    const f = fields(digestAuthorization({ username: 'Mufasa', password: 'p', method: 'GET', uri: '/', choice, cnonce: 'C', nc: 1 }));
    expect(f.username).toBe(createHash('sha256').update('Mufasa:r').digest('hex'));
    expect(f.userhash).toBe('true');
  });

  it('quoted values with escapes survive the round trip; a user name with a quote is escaped', () => {
    const choice = choose('Digest realm="a \\"quoted\\" realm, with a comma", nonce="n\\\\1"');
    expect(choice.challenge.params).toMatchObject({ realm: 'a "quoted" realm, with a comma', nonce: 'n\\1' });
    const value = digestAuthorization({ username: 'o"neil', password: 'p', method: 'GET', uri: '/', choice, cnonce: 'C', nc: 1 });
    expect(value).toContain('username="o\\"neil"');
    expect(fields(value)).toMatchObject({ username: 'o"neil', realm: 'a "quoted" realm, with a comma', nonce: 'n\\1' });
  });

  it('picks the strongest challenge it can answer, whatever the order', () => {
    const md5Challenge = 'Digest realm="r", nonce="a", qop="auth", algorithm=MD5';
    const sha256 = 'Digest realm="r", nonce="b", qop="auth", algorithm=SHA-256';
    const sha512 = 'Digest realm="r", nonce="c", qop="auth", algorithm=SHA-512-256';
    expect(chooseDigest(parseChallenges([md5Challenge, sha256]), 'h').challenge.params.nonce).toBe('b');
    expect(chooseDigest(parseChallenges([sha256, md5Challenge]), 'h').challenge.params.nonce).toBe('b');
    expect(chooseDigest(parseChallenges([`${md5Challenge}, ${sha512}, ${sha256}`]), 'h').challenge.params.nonce).toBe('c');
    // Unknown algorithms and qop=auth-int alone are passed over.
    expect(chooseDigest(parseChallenges(['Digest realm="r", nonce="x", algorithm=SHA-1', 'Digest realm="r", nonce="y", qop="auth-int"', md5Challenge]), 'h').challenge.params.nonce).toBe('a');
  });

  it('says why when there is nothing to answer', () => {
    expect(() => chooseDigest(parseChallenges(['Basic realm="r"', 'Bearer']), 'h:1')).toThrow('h:1 did not ask for Digest authentication (it asked for Basic, Bearer)');
    expect(() => chooseDigest(parseChallenges([]), 'h:1')).toThrow(/did not ask for Digest authentication$/);
    expect(() => chooseDigest(parseChallenges(['Digest realm="r", nonce="n", algorithm=SHA-1']), 'h:1')).toThrow(/asks for Digest with algorithm SHA-1, which keysmith cannot answer/);
    expect(() => chooseDigest(parseChallenges(['Digest realm="r", nonce="n", qop="auth-int"']), 'h:1')).toThrow(/qop auth-int/);
  });
});

describe('WWW-Authenticate', () => {
  it('several challenges in one value and across values, commas inside quotes', () => {
    const challenges = parseChallenges(['Basic realm="a, b", Digest realm="x", nonce="n,1", qop="auth,auth-int"', 'Bearer realm="api", error="invalid_token"']);
    expect(challenges.map((c) => c.scheme)).toEqual(['Basic', 'Digest', 'Bearer']);
    expect(challenges[0]!.params).toEqual({ realm: 'a, b' });
    expect(challenges[1]!.params).toEqual({ realm: 'x', nonce: 'n,1', qop: 'auth,auth-int' });
    expect(challenges[2]!.params).toEqual({ realm: 'api', error: 'invalid_token' });
  });

  it('token68, bare schemes, odd spacing, case of names, repeated parameters', () => {
    const challenges = parseChallenges(['Negotiate abc+/==, NTLM,Digest   REALM = "r" ,  Nonce=tok, realm="second"']);
    expect(challenges).toEqual([
      { scheme: 'Negotiate', params: {}, token68: 'abc+/==' },
      { scheme: 'NTLM', params: {} },
      { scheme: 'Digest', params: { realm: 'r', nonce: 'tok' } },
    ]);
  });

  it('malformed input is skipped, never fatal', () => {
    expect(parseChallenges(['Digest realm="unterminated']).map((c) => c.params)).toEqual([{ realm: 'unterminated' }]);
    expect(parseChallenges(['', ',,', '=x', '"q"'])).toEqual([]);
    expect(parseChallenges(['Digest realm=r junk, nonce="n"'])[0]!.params).toEqual({ realm: 'r', nonce: 'n' });
  });

  it('stale=true (any case, quoted or not) means: answer once more', () => {
    expect(isStaleNonce(parseChallenges(['Digest realm="r", nonce="n", stale=TRUE']))).toBe(true);
    expect(isStaleNonce(parseChallenges(['Digest realm="r", nonce="n", stale="true"']))).toBe(true);
    expect(isStaleNonce(parseChallenges(['Digest realm="r", nonce="n", stale=false']))).toBe(false);
    expect(isStaleNonce(parseChallenges(['Digest realm="r", nonce="n"']))).toBe(false);
  });

  it('the cookies a 401 set go back as name=value pairs', () => {
    expect(cookieHeader(['session=.eJw.abc; HttpOnly; Path=/', 'theme=dark; Max-Age=60', 'junk', '; x=1'])).toBe('session=.eJw.abc; theme=dark');
    expect(cookieHeader([])).toBeUndefined();
  });
});

// -------------------------------------------------------------------------------------------------
// The streaming guard's redirect rule

interface Sent {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
}

function streamScript(answer: (url: URL, sent: Sent) => { status: number; headers?: Record<string, string> }): { transport: StreamTransport; sent: Sent[]; cancelled: number[] } {
  const sent: Sent[] = [];
  const cancelled: number[] = [];
  const transport: StreamTransport = async (url: URL, request: StreamRequest): Promise<StreamResponse> => {
    const entry = { url: url.href, method: request.method, headers: request.headers, body: request.body && Buffer.from(request.body).toString('utf8') };
    sent.push(entry);
    const { status, headers = {} } = answer(url, entry);
    const index = sent.length - 1;
    return { status, statusText: '', httpVersion: '1.1', rawHeaders: Object.entries(headers), url: url.href, body: (async function* () {})(), cancel: () => void cancelled.push(index) };
  };
  return { transport, sent, cancelled };
}

describe('guardStream: the same redirect rule as guardFetch', () => {
  const A = 'http://127.0.0.1:1001';
  const post: StreamRequest = { method: 'POST', headers: { authorization: 'Bearer t', 'content-type': 'application/json' }, body: Buffer.from('{"a":1}') };

  it('follows a same-origin 307 with the credential and the body, and hands back the last answer unread', async () => {
    const { transport, sent, cancelled } = streamScript((url) => (url.pathname === '/a' ? { status: 307, headers: { Location: '/b' } } : { status: 200 }));
    const res = await guardStream(transport)(new URL(`${A}/a`), post);
    expect(res.status).toBe(200);
    expect(res.url).toBe(`${A}/b`);
    expect(sent.map((s) => [s.url, s.method, s.headers.authorization, s.body])).toEqual([
      [`${A}/a`, 'POST', 'Bearer t', '{"a":1}'],
      [`${A}/b`, 'POST', 'Bearer t', '{"a":1}'],
    ]);
    expect(cancelled).toEqual([0]);
  });

  it.each([303, 301, 302])('%i after a POST: a GET without the body or its content type', async (status) => {
    const { transport, sent } = streamScript((url) => (url.pathname === '/a' ? { status, headers: { location: '/b' } } : { status: 200 }));
    await guardStream(transport)(new URL(`${A}/a`), post);
    expect(sent[1]).toEqual({ url: `${A}/b`, method: 'GET', headers: { authorization: 'Bearer t' }, body: undefined });
  });

  it.each([301, 302, 303, 307, 308])('refuses a %i to another origin, naming both, and sends nothing there', async (status) => {
    const { transport, sent } = streamScript(() => ({ status, headers: { location: 'http://127.0.0.1:1002/steal' } }));
    await expect(guardStream(transport)(new URL(`${A}/a`), post)).rejects.toThrow(`refused to follow a redirect from ${A} to http://127.0.0.1:1002`);
    expect(sent).toHaveLength(1);
  });

  it('refuses https → http on the same host and port', async () => {
    const { transport, sent } = streamScript(() => ({ status: 302, headers: { location: 'http://h.example/x' } }));
    await expect(guardStream(transport)(new URL('https://h.example/x'), { method: 'GET', headers: {} })).rejects.toThrow('(from https down to plain http)');
    expect(sent).toHaveLength(1);
  });

  it('gives up after 5 hops', async () => {
    const { transport, sent } = streamScript((url) => ({ status: 302, headers: { location: `/hop${Number(url.pathname.slice(4) || 0) + 1}` } }));
    await expect(guardStream(transport)(new URL(`${A}/hop0`), { method: 'GET', headers: {} })).rejects.toThrow(`${A} redirected more than 5 times`);
    expect(sent).toHaveLength(6);
  });

  it('a 3xx without Location, and 304, are answers', async () => {
    for (const status of [300, 304]) {
      const { transport } = streamScript(() => ({ status }));
      expect((await guardStream(transport)(new URL(`${A}/a`), { method: 'GET', headers: {} })).status).toBe(status);
    }
  });
});

// -------------------------------------------------------------------------------------------------
// The command, in-process (ctx.transport = fetch), against fixture servers in this process

const listening = (server: Server) => new Promise<string>((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as { port: number }).port}`)));
const closing = (server: Server) => new Promise<void>((resolve) => {
  server.close(() => resolve());
  server.closeAllConnections();
});

let dir: string;
let apikeyServer: TestServer;
let apikeyUrl: string;
const KEY = 'ks-unit-api-key-0123456789';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'keysmith-api-unit-'));
  apikeyServer = await startServer('apikey', { apiKeys: [KEY] });
  apikeyUrl = apikeyServer.url;
});

afterAll(async () => {
  await stopAllServers();
  rmSync(dir, { recursive: true, force: true });
});

let homes = 0;

/** A profile and its session written as `login` would, in a fresh config and state dir. */
function loggedIn(profile: Record<string, unknown>, session: Record<string, unknown>): Record<string, string> {
  const home = join(dir, `home-${++homes}`);
  const name = profile.name as string;
  mkdirSync(join(home, 'config', 'keysmith'), { recursive: true, mode: 0o700 });
  mkdirSync(join(home, 'state', 'keysmith', 'sessions'), { recursive: true, mode: 0o700 });
  writeFileSync(join(home, 'config', 'keysmith', 'profiles.json'), JSON.stringify({ default: name, profiles: { [name]: profile } }), { mode: 0o600 });
  writeFileSync(join(home, 'state', 'keysmith', 'sessions', `${name}.json`), JSON.stringify({ obtainedAt: Date.now(), ...session }), { mode: 0o600 });
  return { XDG_CONFIG_HOME: join(home, 'config'), XDG_STATE_HOME: join(home, 'state') };
}

function apikeyProfile(): Record<string, string> {
  return loggedIn({ name: 'keys', url: apikeyUrl, dialect: 'apikey' }, { accessToken: KEY, tokenType: 'apikey' });
}

async function call(target: string, opts: ApiOptions, env: Record<string, string>, extra: { tty?: boolean; stdin?: string } = {}) {
  const f = fakeCtx({ env, tty: extra.tty, ...(extra.stdin !== undefined && { stdin: extra.stdin }) });
  f.ctx.transport = fetch;
  let error: KeysmithError | undefined;
  try {
    await api(target, opts, f.ctx);
  } catch (err) {
    if (!(err instanceof KeysmithError)) throw err;
    error = err;
  }
  return { stdout: f.stdout(), stderr: f.stderr(), error };
}

const echoOf = (stdout: string) => JSON.parse(stdout) as { method: string; headers: Record<string, string>; body: string; query: Record<string, string> };

describe('keysmith api, in-process', () => {
  it('sends the key, the user headers and the body; --json-body sets the content type; -H replaces keysmith\'s own', async () => {
    const r = await call('/echo', { header: ['X-Trace: 1', 'accept: application/json'], data: '{"a":1}', jsonBody: true }, apikeyProfile());
    expect(r.error).toBeUndefined();
    const echo = echoOf(r.stdout);
    expect(echo.method).toBe('POST');
    expect(echo.body).toBe('{"a":1}');
    expect(echo.headers).toMatchObject({ authorization: `Apikey ${KEY}`, 'x-trace': '1', accept: 'application/json', 'content-type': 'application/json' });
  });

  it('-d @FILE and -d @- send the bytes as given; -X sets the method', async () => {
    const file = join(dir, 'body.bin');
    writeFileSync(file, 'line 1\r\nline 2 ü\n');
    const fromFile = await call('/echo', { data: `@${file}`, method: 'put' }, apikeyProfile());
    expect(echoOf(fromFile.stdout)).toMatchObject({ method: 'PUT', body: 'line 1\r\nline 2 ü\n' });
    expect(echoOf(fromFile.stdout).headers['content-type']).toBe('application/x-www-form-urlencoded');
    const fromStdin = await call('/echo', { data: '@-' }, apikeyProfile(), { stdin: 'a=1&b=2' });
    expect(echoOf(fromStdin.stdout)).toMatchObject({ method: 'POST', body: 'a=1&b=2' });
    const missing = await call('/echo', { data: `@${join(dir, 'nope')}` }, apikeyProfile());
    expect(missing.error?.message).toMatch(/body file .*nope does not exist/);
  });

  it('bad command lines are refused before anything is sent', async () => {
    const before = await apikeyServer.count('echo');
    const env = apikeyProfile();
    const cases: Array<[ApiOptions, RegExp]> = [
      [{ header: ['NoColon'] }, /expected 'Name: value'/],
      [{ header: ['Bad Name: x'] }, /expected 'Name: value'/],
      [{ header: ['X-A: one\r\nX-Injected: two'] }, /cannot contain line breaks/],
      [{ header: ['X-A: \u001b[31m'] }, /control or non-Latin-1/],
      [{ method: 'GET', data: 'x' }, /-X GET cannot send a body/],
      [{ method: 'G E T' }, /is not an HTTP method/],
      [{ jsonBody: true }, /--json-body needs a body/],
      [{ jsonBody: true, data: '{nope' }, /not valid JSON/],
      [{ timeout: '0' }, /--timeout must be a number of seconds ≥ 1/],
    ];
    for (const [opts, message] of cases) {
      const r = await call('/echo', opts, env);
      expect(r.error?.message, JSON.stringify(opts)).toMatch(message);
      expect(r.error?.exitCode).toBe(2);
    }
    for (const target of ['', 'ftp://127.0.0.1/x', 'http://user:pw@127.0.0.1/x']) {
      expect((await call(target, {}, env)).error?.exitCode).toBe(2);
    }
    expect(await apikeyServer.count('echo')).toBe(before);
  });

  it('a URL on another origin is refused without --no-auth; with it, nothing of the profile is sent', async () => {
    const sink = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ authorization: req.headers.authorization ?? null }));
    });
    const sinkUrl = await listening(sink);
    try {
      const env = apikeyProfile();
      const refused = await call(`${sinkUrl}/x`, {}, env);
      expect(refused.error?.exitCode).toBe(2);
      expect(refused.error?.message).toBe(`${sinkUrl} is not the server of profile keys (${apikeyUrl}): keysmith sends credentials only to the profile's server`);
      const open = await call(`${sinkUrl}/x`, { auth: false }, env);
      expect(open.error).toBeUndefined();
      expect(JSON.parse(open.stdout)).toEqual({ authorization: null });
      // No profile at all is needed for --no-auth and a URL.
      expect((await call(`${sinkUrl}/x`, { auth: false }, { XDG_CONFIG_HOME: join(dir, 'none'), XDG_STATE_HOME: join(dir, 'none') })).error).toBeUndefined();
    } finally {
      await closing(sink);
    }
  });

  it('an absolute URL on the profile\'s origin gets the credential; a PATH keeps the profile\'s path prefix', async () => {
    const env = loggedIn({ name: 'prefixed', url: `${apikeyUrl}/ignored-prefix`, dialect: 'apikey' }, { accessToken: KEY, tokenType: 'apikey' });
    const absolute = await call(`${apikeyUrl}/echo?x=1`, {}, env);
    expect(echoOf(absolute.stdout)).toMatchObject({ query: { x: '1' }, headers: { authorization: `Apikey ${KEY}` } });
    const path = await call('echo', {}, env);
    expect(path.error?.message).toMatch(/GET \/ignored-prefix\/echo failed: .* answered 404 Not Found/);
  });

  it('HTTP >= 400: the body on stdout, one error naming the request and the status, exit 1', async () => {
    const r = await call('/status?code=418', {}, apikeyProfile());
    expect(r.stdout).toBe('{"status":418}');
    expect(r.error?.exitCode).toBe(1);
    expect(r.error?.message).toBe(`GET /status?code=418 failed: ${new URL(apikeyUrl).host} answered 418 I'm a Teapot`);
    const denied = await call('/data', {}, loggedIn({ name: 'bad', url: apikeyUrl, dialect: 'apikey' }, { accessToken: 'wrong-key', tokenType: 'apikey' }));
    expect(denied.stdout).toBe('{"error":"invalid or missing credentials"}');
    expect(denied.error?.hint).toBe('check the credentials of profile bad: keysmith login --profile bad');
  });

  it('a query-parameter API key goes in the query and never into a message', async () => {
    const env = loggedIn({ name: 'q', url: apikeyUrl, dialect: 'apikey', apiKey: { in: 'query', name: 'api_key' } }, { accessToken: KEY, tokenType: 'apikey' });
    expect(echoOf((await call('/echo?a=b', {}, env)).stdout)).toMatchObject({ query: { a: 'b', api_key: KEY } });
    const failed = await call('/status?code=500', {}, env);
    expect(failed.error?.message).toContain('GET /status?code=500 failed');
    expect(failed.error?.message).not.toContain(KEY);
  });

  it('-i prints the status line and headers first; --silent prints nothing', async () => {
    const included = await call('/data', { include: true }, apikeyProfile());
    const [head, body] = included.stdout.split('\n\n');
    expect(head!.split('\n')[0]).toBe('HTTP/1.1 200 OK');
    expect(head).toMatch(/^content-type: application\/json$/m);
    expect(JSON.parse(body!)).toEqual({ data: [1, 2, 3], who: 'apikey' });
    expect((await call('/data', { silent: true, include: true }, apikeyProfile())).stdout).toBe('');
    const silentFailure = await call('/status?code=404', { silent: true }, apikeyProfile());
    expect(silentFailure.stdout).toBe('');
    expect(silentFailure.error?.exitCode).toBe(1);
  });

  it('to a terminal, control characters of the body are shown escaped; to a pipe, the bytes are as sent', async () => {
    const raw = 'title\x1b]0;pwned\x07 red\x1b[31m bell\x07 cr\roverwritten crlf\r\n\u202eevil\n';
    expect((await call('/terminal', {}, apikeyProfile())).stdout).toBe(raw);
    const shown = (await call('/terminal', {}, apikeyProfile(), { tty: true })).stdout;
    expect(shown).toBe('title\\u001b]0;pwned\\u0007 red\\u001b[31m bell\\u0007 cr\\u000doverwritten crlf\r\n\\u202eevil\n');
  });
});

// -------------------------------------------------------------------------------------------------
// Digest's challenge loop against a scripted server: stale=true gets one more answer, never a loop

describe('Digest through keysmith api, in-process', () => {
  let server: Server;
  let url: string;
  let mode: 'ok' | 'stale-once' | 'stale-always' | 'wrong' = 'ok';
  let requests: Array<{ authorization?: string; cookie?: string }> = [];
  let nonces = 0;

  /** A server that wants Digest (qop=auth, MD5) for alice:secret, with its nonce in a cookie. */
  function check(req: IncomingMessage): 'ok' | 'stale' | 'no' {
    const header = req.headers.authorization;
    if (!header) return 'no';
    const f = parseChallenges([header])[0]!.params;
    const cookieNonce = /nonce=([^;]+)/.exec(req.headers.cookie ?? '')?.[1];
    if (f.nonce !== cookieNonce) return 'no';
    const ha1 = md5(`${f.username}:${f.realm}:secret`);
    const expected = md5(`${ha1}:${f.nonce}:${f.nc}:${f.cnonce}:auth:${md5(`${req.method}:${f.uri}`)}`);
    if (f.response !== expected || f.uri !== req.url) return 'no';
    if (mode === 'stale-always' || (mode === 'stale-once' && Number(f.nonce!.slice(1)) === 1)) return 'stale';
    return 'ok';
  }

  beforeAll(async () => {
    server = createServer((req, res) => {
      requests.push({ authorization: req.headers.authorization, cookie: req.headers.cookie });
      const verdict = check(req);
      if (verdict === 'ok' && mode !== 'wrong') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{"ok":true}');
      }
      const nonce = `n${++nonces}`;
      res.writeHead(401, {
        'www-authenticate': `Digest realm="unit", nonce="${nonce}", qop="auth", algorithm=MD5${verdict === 'stale' ? ', stale=true' : ''}`,
        'set-cookie': `nonce=${nonce}; HttpOnly; Path=/`,
        'content-type': 'text/plain',
      });
      res.end('Unauthorized');
    });
    url = await listening(server);
  });
  afterAll(() => closing(server));

  async function digestCall(m: typeof mode) {
    mode = m;
    requests = [];
    nonces = 0;
    const env = loggedIn({ name: 'dig', url, dialect: 'digest', username: 'alice' }, { accessToken: Buffer.from('alice:secret').toString('base64'), tokenType: 'digest' });
    return call('/data?x=1', { header: ['Cookie: mine=1'] }, env);
  }

  it('first without credentials, then the answer with the cookie the 401 set (and the user\'s own)', async () => {
    const r = await digestCall('ok');
    expect(r.error).toBeUndefined();
    expect(r.stdout).toBe('{"ok":true}');
    expect(requests).toHaveLength(2);
    expect(requests[0]!.authorization).toBeUndefined();
    expect(requests[1]!.cookie).toBe('mine=1; nonce=n1');
    expect(parseChallenges([requests[1]!.authorization!])[0]!.params).toMatchObject({ username: 'alice', uri: '/data?x=1', nc: '00000001', qop: 'auth' });
  });

  it('stale=true: one more answer with the new nonce', async () => {
    const r = await digestCall('stale-once');
    expect(r.error).toBeUndefined();
    expect(requests).toHaveLength(3);
    expect(parseChallenges([requests[2]!.authorization!])[0]!.params.nonce).toBe('n2');
  });

  it('stale forever, or a wrong password: the 401 is the answer (three and two requests, no loop)', async () => {
    const stale = await digestCall('stale-always');
    expect(requests).toHaveLength(3);
    expect(stale.error?.message).toMatch(/GET \/data\?x=1 failed: .* answered 401 Unauthorized/);
    expect(stale.stdout).toBe('Unauthorized');
    const wrong = await digestCall('wrong');
    expect(requests).toHaveLength(2);
    expect(wrong.error?.exitCode).toBe(1);
  });
});
