/**
 * Issue 10, end to end: keysmith against a hostile server (fixtures/servers/hostile.mjs), which
 * imitates one dialect well enough to be trusted and then does exactly one bad thing, and a sink
 * (fixtures/servers/sink.mjs) that records whatever reaches it. The contract:
 *
 * - A refused request: exit 1, one `error:` line, no stack trace, nothing saved (login: no profile,
 *   no session file; refresh: the session file byte for byte as before), and the sink got nothing.
 * - Redirects to another origin (any of 301, 302, 303, 307, 308, also after a same-origin hop, and
 *   https -> http): refused, naming both origins. Same-origin redirects may be followed.
 * - Endpoints a server hands out (Tiled links and providers, device-flow poll URLs, OAuth 2.0
 *   metadata): on the typed origin (Tiled) or https/loopback and the typed issuer (OAuth 2.0).
 * - Answers over 1 MiB (or endless) are refused, promptly.
 * - Tokens that are not visible ASCII, and absurd lifetimes, are refused before anything is saved.
 * - Server text reaches the terminal escaped, on one line.
 * - Credentials inside URLs are never printed; empty piped secrets never fall back to the env.
 * - login, logout and the refreshing `token` share the session's lock.
 * - Profile names like __proto__ work or are refused, never half-saved.
 *
 * One sink serves the whole file: every hostile server gets its own path prefix on it
 * (`sink: http://127.0.0.1:PORT/case-N`), so each case reads only its own records.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keysmith, oneErrorLine, tempHome, type RunResult } from './helpers/keysmith.js';
import { startServer, stopAllServers, type HostileAttack, type ServerOptions, type TestServer } from './helpers/servers.js';

afterAll(stopAllServers);

const PASSWORD = 'pw-Hostile-s3cret';
const CLIENT_SECRET = 'cs-Hostile-s3cret';
const CODES = [301, 302, 303, 307, 308] as const;
/** Every refused case must end well within this (keysmith's own --timeout is 10 s). */
const RUN_TIMEOUT = 15_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const origin = (url: string) => new URL(url).origin;

// -------------------------------------------------------------------------------------------------
// The sink (one for the file) and a self-signed certificate for the TLS cases

let sinkServer: TestServer;
let caseCounter = 0;
let cert: { cert: string; key: string };

beforeAll(async () => {
  sinkServer = await startServer('sink');
  const dir = mkdtempSync(join(tmpdir(), 'keysmith-hostile-tls-'));
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')],
    { stdio: 'ignore' },
  );
  cert = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
});

interface SinkRecord {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** What reached the sink under one case's prefix. */
async function sinkRecords(prefix: string): Promise<SinkRecord[]> {
  const records = (await sinkServer.stats()).records as SinkRecord[];
  return records.filter((r) => r.path.startsWith(`${prefix}/`) || r.path === prefix);
}

// -------------------------------------------------------------------------------------------------
// A case: a hostile server, a temp HOME, and how to log in to it

type Dialect = 'tiled' | 'basic-login' | 'wavemaker' | 'oauth2';
type Flow = 'password' | 'device' | 'client-credentials';

interface Setup {
  dialect: Dialect;
  flow?: Flow;
  tls?: boolean;
}

interface Rig {
  hostile: TestServer;
  /** The sink URL as the hostile server uses it (origin + this case's prefix). */
  sinkUrl: string;
  sinkOrigin: string;
  prefix: string;
  home: string;
  env: Record<string, string>;
  url: string;
  loginArgs: string[];
  run(args: string[], extra?: { input?: string; env?: Record<string, string>; timeout?: number }): Promise<RunResult>;
  login(): Promise<RunResult>;
  /** Nothing secret and nothing at all reached the sink. */
  expectSinkUntouched(): Promise<void>;
}

async function rig(setup: Setup, options: ServerOptions = {}): Promise<Rig> {
  const prefix = `/case-${++caseCounter}`;
  const sinkUrl = `${sinkServer.url}${prefix}`;
  const device = setup.flow === 'device';
  const hostile = await startServer('hostile', {
    dialect: setup.dialect,
    sink: sinkUrl,
    ...(device && { deviceInterval: 1, approveAfterPolls: 0 }),
    ...(device && setup.dialect === 'tiled' && { provider: 'orcid', providerMode: 'external' as const }),
    ...(setup.tls && { tls: cert }),
    ...options,
  });
  const home = tempHome().HOME;
  const env: Record<string, string> = { HOME: home, KEYSMITH_PASSWORD: PASSWORD };
  if (setup.dialect === 'oauth2' && setup.flow === 'client-credentials') env.KEYSMITH_CLIENT_SECRET = CLIENT_SECRET;
  const url = hostile.url;
  const common = ['--timeout', '10', ...(setup.tls ? ['--cacert', cert.cert] : [])];
  const loginArgs = (() => {
    switch (setup.dialect) {
      case 'tiled':
        return ['login', url, '--dialect', 'tiled', ...(device ? [] : ['-u', 'alice']), ...common];
      case 'basic-login':
        return ['login', url, '--dialect', 'basic-login', '-u', 'alice', ...(device ? ['--flow', 'device'] : []), ...common];
      case 'wavemaker':
        return ['login', `${url}/Demo`, '--dialect', 'wavemaker', '-u', 'admin', ...common];
      case 'oauth2':
        return setup.flow === 'client-credentials'
          ? ['login', url, '--dialect', 'oauth2', '--flow', 'client-credentials', '--client-id', 'keysmith-ci', ...common]
          : ['login', url, '--dialect', 'oauth2', '--client-id', 'keysmith-device', ...common];
    }
  })();
  const run: Rig['run'] = (args, extra = {}) =>
    keysmith(args, { env: { ...env, ...extra.env }, timeout: extra.timeout ?? RUN_TIMEOUT, ...(extra.input !== undefined && { input: extra.input }) });
  return {
    hostile,
    sinkUrl,
    sinkOrigin: sinkServer.url,
    prefix,
    home,
    env,
    url,
    loginArgs,
    run,
    login: () => run(loginArgs),
    async expectSinkUntouched() {
      const records = await sinkRecords(prefix);
      const issued = (await hostile.stats()).issued as { access: string[]; refresh: string[] } | undefined;
      const secrets = [PASSWORD, CLIENT_SECRET, Buffer.from(`alice:${PASSWORD}`).toString('base64'), Buffer.from(`admin:${PASSWORD}`).toString('base64'), ...(issued?.access ?? []), ...(issued?.refresh ?? [])];
      const seen = JSON.stringify(records);
      for (const secret of secrets) expect(seen.includes(secret), `a secret reached the sink: ${seen.slice(0, 600)}`).toBe(false);
      expect(records, `the sink was contacted: ${seen.slice(0, 600)}`).toEqual([]);
    },
  };
}

// -------------------------------------------------------------------------------------------------
// Files under the temp HOME

function sessionFiles(home: string): string[] {
  const dir = join(home, '.local', 'state', 'keysmith', 'sessions');
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .map((f) => join(dir, f));
  } catch {
    return [];
  }
}

function profileNames(home: string): string[] {
  const path = join(home, '.config', 'keysmith', 'profiles.json');
  if (!existsSync(path)) return [];
  return Object.keys((JSON.parse(readFileSync(path, 'utf8')) as { profiles?: object }).profiles ?? {});
}

function expectNothingSaved(home: string): void {
  expect(profileNames(home), 'a profile was saved').toEqual([]);
  expect(sessionFiles(home), 'a session file was written').toEqual([]);
}

/** The one session file's bytes (after a successful login). */
function sessionBytes(home: string): string {
  const files = sessionFiles(home);
  expect(files).toHaveLength(1);
  return readFileSync(files[0]!, 'utf8');
}

/** Exit 1 and one error line (no stack), which contains every one of `parts`. */
function expectRefused(r: RunResult, ...parts: string[]): string {
  expect(r.exitCode, `expected exit 1; stderr:\n${r.stderr}`).toBe(1);
  const line = oneErrorLine(r.stderr);
  for (const part of parts) expect(line).toContain(part);
  return line;
}

async function expectLoggedIn(r: Rig, login: RunResult): Promise<void> {
  expect(login.exitCode, login.stderr).toBe(0);
  const token = await r.run(['token']);
  expect(token.exitCode, token.stderr).toBe(0);
  expect(token.stdout).toMatch(/^[\x21-\x7e]+$/);
}

// =================================================================================================
// 1. Redirects

type Stage = 'login' | 'refresh' | 'whoami' | 'logout';

interface Scenario {
  name: string;
  setup: Setup;
  /** The hostile route that redirects. */
  route: string;
  /** Which command meets the redirect: login itself, or one run after a clean login. */
  stage: Stage;
  /** Only "the sink got nothing" is asserted (logout may still exit 0 with a warning). */
  sinkOnly?: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'basic-login login (password in HTTP Basic)', setup: { dialect: 'basic-login' }, route: 'login', stage: 'login' },
  { name: 'tiled password login (password in the form)', setup: { dialect: 'tiled' }, route: 'login', stage: 'login' },
  { name: 'oauth2 client-credentials login (client secret)', setup: { dialect: 'oauth2', flow: 'client-credentials' }, route: 'login', stage: 'login' },
  { name: 'tiled refresh', setup: { dialect: 'tiled' }, route: 'refresh', stage: 'refresh' },
  { name: 'basic-login refresh', setup: { dialect: 'basic-login' }, route: 'refresh', stage: 'refresh' },
  { name: 'oauth2 refresh_token grant', setup: { dialect: 'oauth2', flow: 'device' }, route: 'refresh', stage: 'refresh' },
  { name: 'wavemaker renewal (token header)', setup: { dialect: 'wavemaker' }, route: 'renew', stage: 'refresh' },
  { name: 'tiled whoami', setup: { dialect: 'tiled' }, route: 'whoami', stage: 'whoami' },
  { name: 'oauth2 userinfo (whoami)', setup: { dialect: 'oauth2', flow: 'device' }, route: 'userinfo', stage: 'whoami', sinkOnly: true },
  { name: 'tiled revoke (logout)', setup: { dialect: 'tiled' }, route: 'revoke', stage: 'logout', sinkOnly: true },
  { name: 'oauth2 revoke (logout)', setup: { dialect: 'oauth2', flow: 'device' }, route: 'revoke', stage: 'logout', sinkOnly: true },
  { name: 'tiled device-flow poll', setup: { dialect: 'tiled', flow: 'device' }, route: 'poll', stage: 'login' },
  { name: 'basic-login device-flow poll', setup: { dialect: 'basic-login', flow: 'device' }, route: 'poll', stage: 'login' },
  { name: 'oauth2 device-flow poll', setup: { dialect: 'oauth2', flow: 'device' }, route: 'poll', stage: 'login' },
];

/**
 * Run one scenario with `attack` on its route and assert the refusal. `origins`: what the error
 * line must name (default: the hostile server's and the sink's origins).
 */
async function redirectCase(s: Scenario, attack: HostileAttack, origins?: (r: Rig) => string[]): Promise<void> {
  const early = s.stage === 'login';
  const r = await rig(s.setup, early ? { attacks: { [s.route]: attack } } : {});
  const named = origins ? origins(r) : [origin(r.url), r.sinkOrigin];
  if (early) {
    const login = await r.login();
    await r.expectSinkUntouched();
    expectRefused(login, ...named);
    expectNothingSaved(r.home);
    return;
  }
  await expectLoggedIn(r, await r.login());
  const before = sessionBytes(r.home);
  await r.hostile.admin({ attacks: { [s.route]: attack } });
  const command = s.stage === 'refresh' ? ['refresh'] : s.stage === 'whoami' ? ['whoami'] : ['logout'];
  const result = await r.run(command);
  await r.expectSinkUntouched();
  if (s.sinkOnly) return;
  expectRefused(result, ...named);
  expect(readFileSync(sessionFiles(r.home)[0]!, 'utf8')).toBe(before);
}

describe.concurrent('redirects to another origin are refused, naming both origins', () => {
  const cases = SCENARIOS.flatMap((s) => CODES.map((code) => [s.name, code, s] as const));
  it.each(cases)('%s answered by %i to the sink', async (_name, code, s) => {
    await redirectCase(s, { redirect: code, to: 'sink' });
  });
});

describe.concurrent('`keysmith token` with an expired session meets the redirect the same way', () => {
  it.each([
    ['tiled', 'refresh'],
    ['basic-login', 'refresh'],
  ] as const)('%s %s: 307 to the sink; exit 1, both origins, session as it was', async (dialect, route) => {
    const r = await rig({ dialect }, { accessTtl: 2 });
    await expectLoggedIn(r, await r.login());
    const before = sessionBytes(r.home);
    await r.hostile.admin({ attacks: { [route]: { redirect: 307, to: 'sink' } } });
    await sleep(2200); // expired: no "still valid, using the current one" fallback
    const token = await r.run(['token']);
    await r.expectSinkUntouched();
    expectRefused(token, origin(r.url), r.sinkOrigin);
    expect(sessionBytes(r.home)).toBe(before);
  });
});

describe.concurrent('a cross-origin redirect after one same-origin hop is refused', () => {
  const wanted = ['basic-login login (password in HTTP Basic)', 'tiled password login (password in the form)', 'tiled refresh', 'wavemaker renewal (token header)', 'oauth2 client-credentials login (client secret)'];
  const cases = SCENARIOS.filter((s) => wanted.includes(s.name)).flatMap((s) => ([302, 307] as const).map((code) => [s.name, code, s] as const));
  it.each(cases)('%s: %i to itself, then to the sink', async (_name, code, s) => {
    await redirectCase(s, { redirect: code, to: 'hop' });
  });
});

describe.concurrent('https -> http is refused, naming both origins', () => {
  const wanted = ['basic-login login (password in HTTP Basic)', 'tiled password login (password in the form)', 'tiled refresh', 'wavemaker renewal (token header)'];
  const cases = SCENARIOS.filter((s) => wanted.includes(s.name)).map((s) => [s.name, s] as const);
  it.each(cases)('%s: https server redirects (307) to the plain-http sink', async (_name, s) => {
    await redirectCase({ ...s, setup: { ...s.setup, tls: true } }, { redirect: 307, to: 'sink' }, (r) => [origin(r.url), r.sinkOrigin]);
  });

  it('basic-login login: https redirects (308) to http on the same host and port', async () => {
    const s = SCENARIOS[0]!;
    await redirectCase({ ...s, setup: { ...s.setup, tls: true } }, { redirect: 308, to: 'http-self' }, (r) => [origin(r.url), origin(r.url).replace('https:', 'http:')]);
  });
});

describe.concurrent('same-origin redirects are fine', () => {
  it.each([
    ['basic-login', 'login', 307],
    ['basic-login', 'login', 308],
    ['tiled', 'login', 307],
    ['tiled', 'discovery', 307],
    ['wavemaker', 'login', 302],
  ] as const)('%s %s: %i to the other slash form, which answers', async (dialect, route, code) => {
    const r = await rig({ dialect }, { attacks: { [route]: { redirect: code, to: 'same' } } });
    await expectLoggedIn(r, await r.login());
    await r.expectSinkUntouched();
  });

  it('tiled refresh: 307 to /api/v1/auth/session/refresh/ is followed', async () => {
    const r = await rig({ dialect: 'tiled' });
    await expectLoggedIn(r, await r.login());
    await r.hostile.admin({ attacks: { refresh: { redirect: 307, to: 'same' } } });
    const refresh = await r.run(['refresh']);
    expect(refresh.exitCode, refresh.stderr).toBe(0);
    expect(await r.hostile.count('refresh')).toBe(2);
  });
});

// =================================================================================================
// 2. Endpoints the server hands out

describe.concurrent('server-supplied endpoints on another origin are refused before any secret goes there', () => {
  const sinkPath = (p: string) => `{sink}${p}`;
  it.each([
    ['refresh_session', { authentication: { links: { refresh_session: sinkPath('/api/v1/auth/session/refresh') } } }],
    ['whoami', { authentication: { links: { whoami: sinkPath('/api/v1/auth/whoami') } } }],
    ['revoke_session', { authentication: { links: { revoke_session: sinkPath('/api/v1/auth/session/revoke/{session_id}') } } }],
    ['a provider\'s auth_endpoint', { authentication: { providers: [{ links: { auth_endpoint: sinkPath('/api/v1/auth/provider/toy/token') } }] } }],
  ])('tiled /api/v1/ link %s on the sink', async (_name, fields) => {
    const r = await rig({ dialect: 'tiled' }, { attacks: { discovery: { fields } } });
    const login = await r.login();
    await r.expectSinkUntouched();
    expectRefused(login, r.sinkOrigin);
    expectNothingSaved(r.home);
  });

  it('tiled device flow: a poll URL (verification_uri) on the sink', async () => {
    const r = await rig({ dialect: 'tiled', flow: 'device' }, { attacks: { authorize: { fields: { verification_uri: '{sink}/api/v1/auth/provider/orcid/token' } } } });
    const login = await r.login();
    await r.expectSinkUntouched();
    expectRefused(login, r.sinkOrigin);
    expectNothingSaved(r.home);
  });

  it('basic-login device flow: keysmith polls {url}/token whatever verification_uri says (the real app hard-codes localhost:8000)', async () => {
    const r = await rig({ dialect: 'basic-login', flow: 'device' }, { attacks: { authorize: { fields: { verification_uri: '{sink}/token' } } } });
    const login = await r.login();
    await r.expectSinkUntouched();
    await expectLoggedIn(r, login);
  });

  // OAuth 2.0 metadata: endpoints on another (here: loopback http) origin than the issuer.
  it.each([
    ['token_endpoint', 'client-credentials', { token_endpoint: '{sink}/token' }],
    ['device_authorization_endpoint', 'device', { device_authorization_endpoint: '{sink}/device_authorization' }],
    ['revocation_endpoint', 'client-credentials', { revocation_endpoint: '{sink}/revoke' }],
    ['userinfo_endpoint', 'device', { userinfo_endpoint: '{sink}/userinfo' }],
  ] as const)('oauth2 metadata: %s on the sink', async (_name, flow, fields) => {
    const r = await rig({ dialect: 'oauth2', flow }, { attacks: { metadata: { fields } } });
    const login = await r.login();
    await r.expectSinkUntouched();
    expectRefused(login, r.sinkOrigin);
    expectNothingSaved(r.home);
  });

  it.each([
    ['token_endpoint', 'client-credentials', { token_endpoint: 'http://example.invalid/token' }],
    ['device_authorization_endpoint', 'device', { device_authorization_endpoint: 'http://example.invalid/device_authorization' }],
    ['revocation_endpoint', 'client-credentials', { revocation_endpoint: 'http://example.invalid/revoke' }],
  ] as const)('oauth2 metadata: %s on plain http to a non-loopback host is refused before any request', async (_name, flow, fields) => {
    const r = await rig({ dialect: 'oauth2', flow }, { attacks: { metadata: { fields } } });
    const login = await r.login();
    const line = expectRefused(login, 'http://example.invalid');
    // Refused as insecure, not after trying to reach it.
    expect(line).not.toMatch(/resolve|DNS|connect|no answer/i);
    expectNothingSaved(r.home);
  });

  it.each([
    ['the sink', '{sink}'],
    ['another path on the same server', '{self}/realms/other'],
  ])('oauth2 metadata whose issuer is %s, not the URL typed', async (_name, issuer) => {
    const r = await rig({ dialect: 'oauth2', flow: 'client-credentials' }, { attacks: { metadata: { fields: { issuer } } } });
    const login = await r.login();
    await r.expectSinkUntouched();
    expectRefused(login);
    expectNothingSaved(r.home);
    expect(await r.hostile.count('login')).toBe(0);
  });
});

// =================================================================================================
// 3. Huge and endless answers

describe.concurrent('answers over 1 MiB are refused, promptly', () => {
  const MiB2 = 2 * 1024 * 1024;
  it.each([
    ['basic-login login, 2 MiB', { dialect: 'basic-login' }, 'login', { huge: MiB2 }],
    ['basic-login login, endless', { dialect: 'basic-login' }, 'login', { endless: true }],
    ['tiled discovery, 2 MiB', { dialect: 'tiled' }, 'discovery', { huge: MiB2 }],
    ['tiled discovery, endless', { dialect: 'tiled' }, 'discovery', { endless: true }],
    ['tiled login, endless', { dialect: 'tiled' }, 'login', { endless: true }],
    ['wavemaker login, 2 MiB', { dialect: 'wavemaker' }, 'login', { huge: MiB2 }],
    ['oauth2 metadata, 2 MiB', { dialect: 'oauth2', flow: 'client-credentials' }, 'metadata', { huge: MiB2 }],
    ['oauth2 metadata, endless', { dialect: 'oauth2', flow: 'client-credentials' }, 'metadata', { endless: true }],
    ['oauth2 token answer, 2 MiB', { dialect: 'oauth2', flow: 'client-credentials' }, 'login', { huge: MiB2 }],
    ['oauth2 token answer, endless', { dialect: 'oauth2', flow: 'client-credentials' }, 'login', { endless: true }],
  ] as [string, Setup, string, HostileAttack][])('%s', async (_name, setup, route, attack) => {
    const r = await rig(setup, { attacks: { [route]: attack } });
    const started = Date.now();
    const login = await r.login();
    expect(Date.now() - started).toBeLessThan(RUN_TIMEOUT);
    expect(expectRefused(login)).toMatch(/larger than 1 MiB/);
    expectNothingSaved(r.home);
  });

  it.each([
    ['tiled refresh, 2 MiB', { dialect: 'tiled' }, { huge: MiB2 }],
    ['tiled refresh, endless', { dialect: 'tiled' }, { endless: true }],
    ['basic-login refresh, endless', { dialect: 'basic-login' }, { endless: true }],
  ] as [string, Setup, HostileAttack][])('%s: the session stays as it was', async (_name, setup, attack) => {
    const r = await rig(setup);
    await expectLoggedIn(r, await r.login());
    const before = sessionBytes(r.home);
    await r.hostile.admin({ attacks: { refresh: attack } });
    const refresh = await r.run(['refresh']);
    expect(expectRefused(refresh)).toMatch(/larger than 1 MiB/);
    expect(sessionBytes(r.home)).toBe(before);
  });
});

// =================================================================================================
// 4. Tokens that are not visible ASCII

const BAD_TOKENS: Array<[string, string]> = [
  ['CRLF and a header', 'abc\r\nX-Injected: 1'],
  ['LF', 'abc\ndef'],
  ['a space', 'abc def'],
  ['an ESC sequence', 'abc\u001b[2Jdef'],
  ['NUL', 'abc\u0000def'],
  ['a tab', 'abc\tdef'],
  ['DEL', 'abc\u007fdef'],
  ['non-ASCII', 'tökén'],
];
const SOME_BAD = BAD_TOKENS.filter(([name]) => ['CRLF and a header', 'a space', 'an ESC sequence', 'non-ASCII'].includes(name));

describe.concurrent('tokens with CR, LF, spaces, controls or non-ASCII are refused before anything is saved', () => {
  it.each(BAD_TOKENS)('tiled login: access_token with %s', async (_name, token) => {
    const r = await rig({ dialect: 'tiled' }, { attacks: { login: { fields: { access_token: token } } } });
    expectRefused(await r.login());
    expectNothingSaved(r.home);
  });

  const loginCases = SOME_BAD.flatMap(([name, token]) => [
    ['basic-login login: access_token', name, { dialect: 'basic-login' }, 'login', { access_token: token }],
    ['tiled login: refresh_token', name, { dialect: 'tiled' }, 'login', { refresh_token: token }],
    ['wavemaker login: wm_auth_token', name, { dialect: 'wavemaker' }, 'login', { wm_auth_token: token }],
    ['oauth2 client credentials: access_token', name, { dialect: 'oauth2', flow: 'client-credentials' }, 'login', { access_token: token }],
    ['oauth2 device flow: refresh_token', name, { dialect: 'oauth2', flow: 'device' }, 'poll', { refresh_token: token }],
  ]) as Array<[string, string, Setup, string, Record<string, string>]>;
  it.each(loginCases)('%s with %s', async (_what, _name, setup, route, fields) => {
    const r = await rig(setup, { attacks: { [route]: { fields } } });
    expectRefused(await r.login());
    expectNothingSaved(r.home);
  });

  const refreshCases = SOME_BAD.flatMap(([name, token]) => [
    ['tiled refresh: access_token', name, { dialect: 'tiled' }, 'refresh', { access_token: token }],
    ['tiled refresh: refresh_token', name, { dialect: 'tiled' }, 'refresh', { refresh_token: token }],
    ['basic-login refresh: access_token', name, { dialect: 'basic-login' }, 'refresh', { access_token: token }],
    ['wavemaker renewal: wm_auth_token', name, { dialect: 'wavemaker' }, 'renew', { wm_auth_token: token }],
  ]) as Array<[string, string, Setup, string, Record<string, string>]>;
  it.each(refreshCases)('%s with %s: the session stays as it was', async (_what, _name, setup, route, fields) => {
    const r = await rig(setup);
    await expectLoggedIn(r, await r.login());
    const before = sessionBytes(r.home);
    await r.hostile.admin({ attacks: { [route]: { fields } } });
    expectRefused(await r.run(['refresh']));
    expect(sessionBytes(r.home)).toBe(before);
  });

  it.each(BAD_TOKENS)('whatever was saved, `token --header` is exactly one line (access_token with %s)', async (_name, token) => {
    for (const dialect of ['basic-login', 'wavemaker'] as const) {
      const field = dialect === 'wavemaker' ? 'wm_auth_token' : 'access_token';
      const r = await rig({ dialect }, { attacks: { login: { fields: { [field]: token } } } });
      const login = await r.login();
      if (login.exitCode !== 0) continue; // refused: nothing to print
      const header = await keysmith(['token', '--header'], { env: r.env, keepFinalNewline: true });
      if (header.exitCode !== 0) continue;
      expect(header.stdout).toMatch(/^[^\r\n]*\n$/);
      expect(header.stdout).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f]/);
    }
  });
});

// =================================================================================================
// 5. Absurd numbers

describe.concurrent('absurd lifetimes are refused before anything is saved', () => {
  const ABSURD: Array<[string, unknown]> = [
    ['negative', -3600],
    ['-1', -1],
    ['1e308', 1e308],
    ['2**53', 2 ** 53],
    ['more than 10 years', 400_000_000],
    ['"NaN"', 'NaN'],
    ['"3600abc"', '3600abc'],
    ['"Infinity"', 'Infinity'],
    ['an object', { seconds: 3600 }],
    ['a list', [3600]],
    ['true', true],
  ];
  it.each(ABSURD)('tiled login: expires_in %s', async (_name, value) => {
    const r = await rig({ dialect: 'tiled' }, { attacks: { login: { fields: { expires_in: value } } } });
    expectRefused(await r.login());
    expectNothingSaved(r.home);
  });

  it.each(ABSURD.filter(([name]) => ['negative', '1e308', '"3600abc"', 'an object'].includes(name)))('tiled login: refresh_token_expires_in %s', async (_name, value) => {
    const r = await rig({ dialect: 'tiled' }, { attacks: { login: { fields: { refresh_token_expires_in: value } } } });
    expectRefused(await r.login());
    expectNothingSaved(r.home);
  });

  it.each(ABSURD.filter(([name]) => ['negative', '1e308', '"3600abc"', 'an object'].includes(name)))('oauth2 client credentials: expires_in %s', async (_name, value) => {
    const r = await rig({ dialect: 'oauth2', flow: 'client-credentials' }, { attacks: { login: { fields: { expires_in: value } } } });
    expectRefused(await r.login());
    expectNothingSaved(r.home);
  });

  it.each(ABSURD.filter(([name]) => ['negative', '2**53', '"3600abc"'].includes(name)))('tiled refresh: expires_in %s leaves the session as it was', async (_name, value) => {
    const r = await rig({ dialect: 'tiled' });
    await expectLoggedIn(r, await r.login());
    const before = sessionBytes(r.home);
    await r.hostile.admin({ attacks: { refresh: { fields: { expires_in: value } } } });
    expectRefused(await r.run(['refresh']));
    expect(sessionBytes(r.home)).toBe(before);
  });
});

describe.concurrent('a device-flow interval of 0, negative or tiny never polls faster than once a second', () => {
  const cases = (['tiled', 'basic-login', 'oauth2'] as const).flatMap((dialect) =>
    [0, -5, 0.001].map((interval) => [dialect, interval] as const),
  );
  it.each(cases)('%s: interval %d', async (dialect, interval) => {
    // Approval comes 3 s after the codes; until then every poll is "pending".
    const r = await rig({ dialect, flow: 'device' }, { approveAfterMs: 3000, attacks: { [dialect === 'oauth2' ? 'device' : 'authorize']: { fields: { interval } } } });
    const login = await r.run(r.loginArgs, { timeout: 20_000 });
    const polls = (await r.hostile.stats()).polls as number[];
    expect(polls.filter((t) => t < 3000).length, `polls at ${polls.join(', ')} ms`).toBeLessThanOrEqual(4);
    for (let i = 1; i < polls.length; i++) expect(polls[i]! - polls[i - 1]!, `polls at ${polls.join(', ')} ms`).toBeGreaterThanOrEqual(900);
    await expectLoggedIn(r, login);
  });
});

// =================================================================================================
// 6. Server text reaches the terminal escaped

const NASTY = 'bad\u001b[31m red\u001b]0;pwned\u0007\r\nX-Evil: 1\u0008\u0000end';

/** No ESC, CR or other C0 control but the newline at the end of each line; the ESC still shows. */
function expectCleanStderr(stderr: string, { escapedVisible = true } = {}): void {
  expect(stderr).not.toContain('\u001b');
  expect(stderr).not.toContain('\r');
  expect(stderr, JSON.stringify(stderr)).not.toMatch(/[\x00-\x09\x0b-\x1f]/);
  if (escapedVisible) expect(stderr).toMatch(/\\x1b|\\u001b|\\u\{1b\}|\\e|\^\[/i);
}

describe.concurrent('control characters and escape sequences in server text are escaped', () => {
  it.each([
    ['basic-login 401 {"error"}', { dialect: 'basic-login' }, 'login', { status: 401, json: { error: NASTY } }],
    ['tiled 401 {"detail"}', { dialect: 'tiled' }, 'login', { status: 401, json: { detail: NASTY } }],
    ['tiled 500 plain text', { dialect: 'tiled' }, 'login', { status: 500, body: NASTY }],
    ['wavemaker 401 errors body', { dialect: 'wavemaker' }, 'login', { status: 401, json: { errors: { error: [{ messageKey: null, message: NASTY, parameters: [] }] } } }],
    ['oauth2 error_description', { dialect: 'oauth2', flow: 'client-credentials' }, 'login', { status: 401, json: { error: 'invalid_client', error_description: NASTY } }],
    ['oauth2 error code itself', { dialect: 'oauth2', flow: 'client-credentials' }, 'login', { status: 400, json: { error: NASTY } }],
    ['a device poll error', { dialect: 'basic-login', flow: 'device' }, 'poll', { status: 400, json: { error: NASTY } }],
  ] as [string, Setup, string, HostileAttack][])('login error: %s', async (_name, setup, route, attack) => {
    const r = await rig(setup, { attacks: { [route]: attack } });
    const login = await r.login();
    expectRefused(login);
    expectCleanStderr(login.stderr);
    expectNothingSaved(r.home);
  });

  it('refresh error: tiled 500 plain text', async () => {
    const r = await rig({ dialect: 'tiled' });
    await expectLoggedIn(r, await r.login());
    await r.hostile.admin({ attacks: { refresh: { status: 500, body: NASTY } } });
    const refresh = await r.run(['refresh']);
    expectRefused(refresh);
    expectCleanStderr(refresh.stderr);
  });

  it.each([
    ['confirmation_message', { dialect: 'tiled' }, 'discovery', { fields: { authentication: { providers: [{ confirmation_message: `Hello {id} ${NASTY}` }] } } }],
    ['identity id', { dialect: 'tiled' }, 'login', { fields: { identity: { id: NASTY } } }],
    ['device-flow user_code (oauth2)', { dialect: 'oauth2', flow: 'device' }, 'device', { fields: { user_code: NASTY } }],
    ['device-flow verification_uri (oauth2)', { dialect: 'oauth2', flow: 'device' }, 'device', { fields: { verification_uri: `{self}/device${NASTY}`, verification_uri_complete: `{self}/device?c=${NASTY}` } }],
    ['device-flow user_code (tiled)', { dialect: 'tiled', flow: 'device' }, 'authorize', { fields: { user_code: NASTY } }],
    ['device-flow authorization_uri (tiled)', { dialect: 'tiled', flow: 'device' }, 'authorize', { fields: { authorization_uri: `{self}/__idp/auth${NASTY}` } }],
  ] as [string, Setup, string, HostileAttack][])('%s: whatever keysmith does, stderr stays clean and one line per message', async (_name, setup, route, attack) => {
    const r = await rig(setup, { attacks: { [route]: attack } });
    const login = await r.login();
    expect(login.stderr).not.toMatch(/^\s+at /m);
    if (login.exitCode !== 0) oneErrorLine(login.stderr);
    expectCleanStderr(login.stderr, { escapedVisible: false });
  });

  it('tiled provider names with escapes, listed in the "several providers" error', async () => {
    const evil = { provider: `evil${NASTY}`, mode: 'internal', links: { auth_endpoint: '{self}/api/v1/auth/provider/evil/token' }, confirmation_message: '' };
    const r = await rig({ dialect: 'tiled' }, { attacks: { discovery: { fields: { authentication: { providers: [{}, evil] } } } } });
    const login = await r.login();
    expect(login.exitCode).not.toBe(0);
    oneErrorLine(login.stderr);
    expectCleanStderr(login.stderr);
    expectNothingSaved(r.home);
  });
});

// =================================================================================================
// 7. Credentials inside URLs are never printed

describe.concurrent('passwords inside URLs never appear in any output', () => {
  it('login http://alice:s3cretPW@host: refused (exit 2, with a hint), the password never printed or saved', async () => {
    const r = await rig({ dialect: 'basic-login' });
    const withCreds = r.url.replace('http://', 'http://alice:s3cretPW@');
    for (const dialect of ['basic-login', 'auto']) {
      const login = await r.run(['login', withCreds, '--dialect', dialect]);
      expect(login.stdout + login.stderr).not.toContain('s3cretPW');
      expect(login.exitCode, login.stderr).toBe(2);
      expect(oneErrorLine(login.stderr)).toBeTruthy();
      expect(login.stderr).toMatch(/--username|--password-stdin/);
    }
    expectNothingSaved(r.home);
    expect(await r.hostile.count('login')).toBe(0);
  });

  it('an unreachable HTTPS_PROXY/HTTP_PROXY with a password: the password is never printed', async () => {
    const r = await rig({ dialect: 'basic-login' });
    const proxy = 'http://u:pr0xyPW@127.0.0.1:1';
    for (const args of [r.loginArgs, ['login', r.url.replace('http:', 'https:'), '--dialect', 'basic-login', '-u', 'alice', '--timeout', '5']]) {
      const login = await r.run(args, { env: { HTTPS_PROXY: proxy, HTTP_PROXY: proxy } });
      expect(login.stdout + login.stderr).not.toContain('pr0xyPW');
      expect(login.exitCode).not.toBe(0);
      oneErrorLine(login.stderr);
    }
    expectNothingSaved(r.home);
  });
});

// =================================================================================================
// 8. Empty piped secrets never fall back to the environment

describe.concurrent('an empty piped secret is an error, not a fallback to the environment', () => {
  it.each(['', '\n', '\r\n'])('login --password-stdin with %j and KEYSMITH_PASSWORD set', async (input) => {
    const r = await rig({ dialect: 'basic-login' });
    const login = await r.run([...r.loginArgs, '--password-stdin'], { input });
    expect(login.exitCode, login.stderr).toBe(2);
    oneErrorLine(login.stderr);
    expect(await r.hostile.count('login')).toBe(0);
    expectNothingSaved(r.home);
  });

  it.each(['', '\n'])('login --client-secret-stdin with %j and KEYSMITH_CLIENT_SECRET set', async (input) => {
    const r = await rig({ dialect: 'oauth2', flow: 'client-credentials' });
    const login = await r.run([...r.loginArgs, '--client-secret-stdin'], { input });
    expect(login.exitCode, login.stderr).toBe(2);
    oneErrorLine(login.stderr);
    expect(await r.hostile.count('login')).toBe(0);
    expect(await r.hostile.count('token')).toBe(0);
    expectNothingSaved(r.home);
  });
});

// =================================================================================================
// 9. One lock for a session

/** Resolve once `check` is true; fail after `ms`. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe.concurrent('login, logout and a refreshing token share the session lock', () => {
  it('tiled: logout while a slow refresh is in flight leaves no session behind, and the server session revoked', async () => {
    const server = await startServer('tiled', { accessTtl: 2, slowRefreshMs: 3000 });
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'secret1' };
    const login = await keysmith(['login', server.url, '-u', 'alice'], { env });
    expect(login.exitCode, login.stderr).toBe(0);
    await sleep(1100); // past half the 2 s lifetime: `token` refreshes
    const token = keysmith(['token'], { env, timeout: 20_000 });
    await until(async () => (await server.count('refresh')) >= 1, 10_000, 'the refresh to start');
    await sleep(300);
    const logout = await keysmith(['logout'], { env, timeout: 20_000 });
    await token;
    expect(logout.exitCode, logout.stderr).toBe(0);
    expect(sessionFiles(env.HOME)).toEqual([]);
    const sessions = (await server.stats()).sessions as Array<{ revoked: boolean }>;
    expect(sessions.length).toBeGreaterThan(0);
    for (const s of sessions) expect(s.revoked).toBe(true);
    await server.stop();
  });

  it('hostile tiled: a refresh already answered but delivered late cannot resurrect a session logout removed', async () => {
    const r = await rig({ dialect: 'tiled' }, { accessTtl: 2 });
    await expectLoggedIn(r, await r.login());
    await r.hostile.admin({ attacks: { refresh: { lateMs: 3000 } } });
    await sleep(1100);
    const token = r.run(['token'], { timeout: 20_000 });
    await until(async () => (await r.hostile.count('refresh')) >= 1, 10_000, 'the refresh to start');
    await sleep(300);
    const logout = await r.run(['logout'], { timeout: 20_000 });
    await token;
    expect(logout.exitCode, logout.stderr).toBe(0);
    expect(sessionFiles(r.home)).toEqual([]);
  });

  it('tiled: login during a slow refresh wins; the session file holds the login\'s session and token works after', async () => {
    const server = await startServer('tiled', { accessTtl: 2, slowRefreshMs: 3000 });
    const env = { ...tempHome(), KEYSMITH_PASSWORD: 'secret1' };
    expect((await keysmith(['login', server.url, '-u', 'alice'], { env })).exitCode).toBe(0);
    await sleep(1100);
    const token = keysmith(['token'], { env, timeout: 20_000 });
    await until(async () => (await server.count('refresh')) >= 1, 10_000, 'the refresh to start');
    await sleep(300);
    const again = await keysmith(['login', server.url, '-u', 'alice'], { env, timeout: 20_000 });
    await token;
    expect(again.exitCode, again.stderr).toBe(0);
    const sessions = (await server.stats()).sessions as Array<{ sid: string }>;
    expect(sessions).toHaveLength(2);
    const stored = JSON.parse(sessionBytes(env.HOME)) as { refreshToken: string };
    expect(jwtPayload(stored.refreshToken).sid, 'the session file holds the refreshed old session, not the new login').toBe(sessions[1]!.sid);
    await server.admin({ slowRefreshMs: 0, accessTtl: 900 });
    const after = await keysmith(['token'], { env });
    expect(after.exitCode, after.stderr).toBe(0);
    await server.stop();
  });
});

// =================================================================================================
// 10. Profile names are data

describe.concurrent('profile names such as __proto__ work like any name or are refused, never half-saved', () => {
  it.each(['__proto__', 'constructor', 'hasOwnProperty', 'toString'])('%s', async (name) => {
    const r = await rig({ dialect: 'basic-login' });
    const login = await r.run([...r.loginArgs, '--profile', name]);
    if (login.exitCode === 2) {
      oneErrorLine(login.stderr);
      expectNothingSaved(r.home);
      return;
    }
    expect(login.exitCode, login.stderr).toBe(0);
    expect(profileNames(r.home)).toEqual([name]);
    expect(sessionFiles(r.home)).toHaveLength(1);
    const token = await r.run(['token', '--profile', name]);
    expect(token.exitCode, token.stderr).toBe(0);
    expect(token.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    const listed = JSON.parse((await r.run(['profiles', '--json'])).stdout) as Array<{ name: string; logged_in: boolean }>;
    expect(listed.map((p) => p.name)).toEqual([name]);
    expect(listed[0]!.logged_in).toBe(true);
    expect((await r.run(['token'])).stdout).toBe(token.stdout);
  });

  it.each(['constructor', '__proto__', 'toString'])('token --profile %s without such a profile: exit 1 "no profile", no crash', async (name) => {
    const r = await rig({ dialect: 'basic-login' });
    const none = await r.run(['token', '--profile', name]);
    expect(none.exitCode).toBe(1);
    expect(oneErrorLine(none.stderr)).toMatch(/no profile|not logged in/);
    expect((await r.login()).exitCode).toBe(0);
    const other = await r.run(['token', '--profile', name]);
    expect(other.exitCode).toBe(1);
    expect(oneErrorLine(other.stderr)).toMatch(/no profile/);
  });
});

// =================================================================================================
// 11. What stays on disk: paths in profiles, and temp copies of tokens

describe.concurrent('paths stored in a profile, and temp files that hold tokens', () => {
  it('--cacert given as a relative path is kept as an absolute one, so token works from any directory', async () => {
    const r = await rig({ dialect: 'basic-login', tls: true });
    const args = r.loginArgs.map((a) => (a === cert.cert ? basename(cert.cert) : a));
    const login = await keysmith(args, { env: r.env, cwd: dirname(cert.cert), timeout: RUN_TIMEOUT });
    expect(login.exitCode, login.stderr).toBe(0);
    const stored = (JSON.parse(readFileSync(join(r.home, '.config', 'keysmith', 'profiles.json'), 'utf8')) as { profiles: Record<string, { cacert?: string }> }).profiles;
    const cacert = Object.values(stored)[0]!.cacert!;
    expect(isAbsolute(cacert)).toBe(true);
    expect(cacert).toBe(cert.cert);
    expect((await keysmith(['refresh'], { env: r.env, cwd: tmpdir(), timeout: RUN_TIMEOUT })).exitCode).toBe(0);
  });

  it('logout removes temp copies of tokens that killed writers left in the sessions directory', async () => {
    const r = await rig({ dialect: 'basic-login' });
    await expectLoggedIn(r, await r.login());
    const [session] = sessionFiles(r.home);
    const dead = spawnSync(process.execPath, ['-e', '0']).pid;
    const leftovers = [`.${basename(session!)}.${dead}.0abc.tmp`, `.other.json.${dead}.1abc.tmp`].map((name) => join(dirname(session!), name));
    for (const file of leftovers) writeFileSync(file, '{"refreshToken":"left-behind"}');
    const logout = await r.run(['logout']);
    expect(logout.exitCode, logout.stderr).toBe(0);
    expect(readdirSync(dirname(session!))).toEqual([]);
  });
});
